"""Webhooks that providers call (signed machine requests: no session, no CSRF token).

``POST /hooks/sms/twilio``: Twilio's incoming-message webhook. A STOP reply opts the sender's
number out of texts, START opts it back in (surveys/optout.py). Twilio itself answers the
participant with the carriers' confirmation, so the reply here is an empty TwiML document.
"""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from surveys.optout import sms_opt_in, sms_opt_out

logger = logging.getLogger(__name__)

# Twilio's default opt-out and opt-in keywords: the whole message, any case.
OPT_OUT_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def twilio_signature_valid(request: HttpRequest) -> bool:
    """Twilio signs the public URL it called plus the POST parameters with the Auth Token. The
    app sits behind a proxy, so the URL is rebuilt from SITE_URL, not from the request."""
    from twilio.request_validator import RequestValidator

    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get("X-Twilio-Signature", "")
    if not token or not signature:
        return False
    url = settings.SITE_URL + request.get_full_path()
    return RequestValidator(token).validate(url, request.POST, signature)


def sms_keyword(request: HttpRequest) -> str:
    """'stop', 'start' or ''. Twilio's Advanced Opt-Out names the keyword type itself
    (OptOutType), which also covers keywords configured there in other languages."""
    opt_out_type = request.POST.get("OptOutType", "").strip().upper()
    if opt_out_type in ("STOP", "START"):
        return opt_out_type.lower()
    word = request.POST.get("Body", "").strip().strip(".!").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "stop"
    if word in OPT_IN_KEYWORDS:
        return "start"
    return ""


@csrf_exempt
@require_POST
def twilio_inbound_sms(request: HttpRequest) -> HttpResponse:
    if not twilio_signature_valid(request):
        logger.warning("Inbound SMS webhook: missing or invalid Twilio signature")
        return HttpResponseForbidden()
    keyword = sms_keyword(request)
    phone = request.POST.get("From", "")
    # Never log the number or the text: only what happened and how many.
    if keyword == "stop":
        changed = sms_opt_out(phone=phone, now=timezone.now())
        logger.info("Inbound SMS opt-out: %d participant(s) opted out", changed)
    elif keyword == "start":
        changed = sms_opt_in(phone=phone, now=timezone.now())
        logger.info("Inbound SMS opt-in: %d participant(s) opted back in", changed)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


urlpatterns = [
    path("sms/twilio", twilio_inbound_sms, name="hooks-sms-twilio"),
]
