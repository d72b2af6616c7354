"""Participant pages about getting in: "send me a new link", the PIN screen, setting a PIN,
and signing out on a shared phone. Services in surveys/access.py."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.translation import gettext as _
from django.views import csrf as django_csrf
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from surveys.access import (
    NEW_LINK_PER_ADDRESS,
    NEW_LINK_PER_CONTACT,
    NEW_LINK_WINDOW,
    PIN_TRIES_PER_ADDRESS,
    PinLocked,
    new_link_request,
    participant_pin_remove,
    participant_pin_set,
    participant_pin_verify,
    typed_contact_parse,
)
from surveys.models import Language, Participant, ParticipantLink
from surveys.participant_views import (
    EPOCH_KEY,
    LANGUAGE_KEY,
    PIN_PENDING_KEY,
    PIN_PENDING_LINK_KEY,
    SESSION_KEY,
    _render,
    participant_session_start,
    session_participant,
)
from surveys.ratelimit import attempt_over_limit, client_ip

LANGUAGE_CODES = {code for code, _name in Language.choices}


def _language(request: HttpRequest, default: str = "en") -> str:
    wanted = request.POST.get("language") or request.GET.get("lang") or default
    return wanted if wanted in LANGUAGE_CODES else "en"


def new_link_page(request: HttpRequest, *, language: str, expired: bool) -> HttpResponse:
    """The expired-link page and the "send me a new link" page (one template)."""
    with translation.override(language):
        return render(
            request,
            "participant/new_link.html",
            {"expired": expired, "language": language, "languages": Language.choices},
            status=410 if expired else 200,
        )


@never_cache
@require_http_methods(["GET", "POST"])
def new_link(request: HttpRequest) -> HttpResponse:
    language = _language(request)
    if request.method == "GET":
        return new_link_page(request, language=language, expired=False)
    context = {"language": language, "languages": Language.choices, "value": ""}
    with translation.override(language):
        if attempt_over_limit(
            "new-link-address",
            client_ip(request),
            limit=NEW_LINK_PER_ADDRESS,
            window=NEW_LINK_WINDOW,
        ):
            return render(
                request, "participant/new_link.html", {**context, "busy": True}, status=429
            )
        value = request.POST.get("contact", "")
        try:
            contact = typed_contact_parse(value)
        except ValidationError as exc:
            context.update(error=exc.messages[0], value=value[:254])
            return render(request, "participant/new_link.html", context, status=400)
        # Over the per-contact limit nothing is sent, and the answer stays the same: it must
        # not tell whether the contact exists.
        if not attempt_over_limit(
            "new-link-contact",
            f"{contact.kind}:{contact.lookup}",
            limit=NEW_LINK_PER_CONTACT,
            window=NEW_LINK_WINDOW,
        ):
            new_link_request(contact=contact)
        return render(request, "participant/new_link_sent.html", {**context, "kind": contact.kind})


def _pending_participant(request: HttpRequest) -> Participant | None:
    """The participant whose link opened the PIN screen, while that link still works (links
    revoked by the study team, or by an erasure, no longer open a session from this screen; a
    PIN the team removed still lets the waiting phone in)."""
    participant_id = request.session.get(PIN_PENDING_KEY)
    if not participant_id:
        return None
    link_works = ParticipantLink.objects.filter(
        pk=request.session.get(PIN_PENDING_LINK_KEY),
        participant_id=participant_id,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )
    return Participant.objects.filter(
        pk=participant_id, status=Participant.Status.ACTIVE, pk__in=link_works.values("participant")
    ).first()


@never_cache
@require_http_methods(["GET", "POST"])
def unlock(request: HttpRequest) -> HttpResponse:
    participant = _pending_participant(request)
    if participant is None:
        return redirect("participant-new-link")
    if not participant.pin_hash:  # removed by the study team meanwhile
        del request.session[PIN_PENDING_KEY]
        request.session.pop(PIN_PENDING_LINK_KEY, None)
        participant_session_start(request, participant)
        return redirect("participant-home")
    context: dict = {}
    if request.method == "POST":
        if attempt_over_limit(
            "pin-address", client_ip(request), limit=PIN_TRIES_PER_ADDRESS, window=3600
        ):
            context["error"] = "busy"
            return _render(request, participant, "participant/unlock.html", context, status=429)
        try:
            right = participant_pin_verify(participant=participant, pin=request.POST.get("pin"))
        except PinLocked as locked:
            with (
                timezone.override(participant.timezone),
                translation.override(participant.language),
            ):
                until = formats.time_format(timezone.localtime(locked.until), "TIME_FORMAT")
            context.update(error="locked", until=until)
            return _render(request, participant, "participant/unlock.html", context, status=429)
        if right:
            request.session.cycle_key()
            del request.session[PIN_PENDING_KEY]
            request.session.pop(PIN_PENDING_LINK_KEY, None)
            participant_session_start(request, participant)
            request.session.set_expiry(0)  # ends when the browser closes
            return redirect("participant-home")
        context["error"] = "wrong"
        return _render(request, participant, "participant/unlock.html", context, status=400)
    return _render(request, participant, "participant/unlock.html", context)


@never_cache
@require_http_methods(["GET", "POST"])
def pin(request: HttpRequest) -> HttpResponse:
    """Set, change or remove the PIN. Changing or removing it asks for the current one."""
    participant = session_participant(request)
    with translation.override(participant.language):
        return _pin(request, participant)


def _pin(request: HttpRequest, participant: Participant) -> HttpResponse:
    errors: dict = {}
    if request.method == "POST":
        action = request.POST.get("action", "set")
        try:
            if participant.pin_hash and not participant_pin_verify(
                participant=participant, pin=request.POST.get("current")
            ):
                raise ValidationError({"current": _("That is not your current PIN.")})
            if action == "remove":
                participant_pin_remove(participant=participant)
                # This session carries on; every other one of this participant ends.
                request.session[EPOCH_KEY] = participant.access_epoch
                return redirect(f"{reverse('participant-home')}?pin=removed")
            participant_pin_set(
                participant=participant,
                pin=request.POST.get("pin", ""),
                repeat=request.POST.get("repeat", ""),
            )
            request.session[EPOCH_KEY] = participant.access_epoch
            request.session.set_expiry(0)
            return redirect(f"{reverse('participant-home')}?pin=set")
        except PinLocked:
            errors = {"current": _("Too many wrong tries. Please try again in 15 minutes.")}
        except ValidationError as exc:
            errors = {field: messages[0] for field, messages in exc.message_dict.items()}
    return _render(
        request,
        participant,
        "participant/pin.html",
        {"errors": errors},
        status=400 if errors else 200,
    )


@never_cache
@csrf_exempt
@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """End the session. Without a CSRF check: a sign-out from a page whose token went stale
    (the same link opened again in another tab starts a new session with a new token) must
    still end the session, not leave it open behind an error page; and the session cookie is
    SameSite=Lax, so another site's form cannot end it."""
    participant_id = request.session.get(SESSION_KEY)
    participant = Participant.objects.filter(pk=participant_id).first()
    language = participant.language if participant else _language(request)
    request.session.flush()
    with translation.override(language):
        return render(request, "participant/signed_out.html", {"language": language})


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A form of the participant pages sent with a token that went stale (their surveys opened
    again in another tab since): a page in their language that says what happened and where
    to go, instead of Django's "CSRF verification failed". Staff pages keep Django's."""
    if not request.path.startswith("/p/"):
        return django_csrf.csrf_failure(request, reason)
    session = getattr(request, "session", None)
    language = (session and session.get(LANGUAGE_KEY)) or translation.get_language_from_request(
        request
    )
    with translation.override(language if language in LANGUAGE_CODES else "en"):
        return render(request, "participant/stale_form.html", status=403)
