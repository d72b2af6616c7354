"""E-consent on the participant's phone: the study's consent text in their language, a typed
name and a tick; then a copy they can keep or print."""

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from surveys.consent import consent_version_current, econsent_give, text_digest
from surveys.models import Consent, Participant
from surveys.participant_views import _render, session_participant
from surveys.services import participant_status_change


def _paragraphs(text: str) -> list[str]:
    return [part.strip() for part in text.split("\n\n") if part.strip()]


# Messages of econsent_give, shown in the participant's language.
def _messages() -> dict[str, str]:
    return {
        "typed_name": _("Type your name to sign."),
        "agree": _("Tick the box to say you agree."),
        "changed": _("The consent text has just been updated. Please read the new text."),
    }


@never_cache
@require_http_methods(["GET", "POST"])
def consent(request: HttpRequest) -> HttpResponse:
    participant = session_participant(request, consent_pending_ok=True)
    if not participant.consent_pending:
        return redirect("participant-home")
    version = consent_version_current(study=participant.study)
    if version is None:
        raise Http404  # enrolment refuses e-consent without a text; a deleted text lands here
    errors: dict[str, str] = {}
    typed_name = ""
    declined = False
    with translation.override(participant.language):
        if request.method == "POST" and request.POST.get("action") == "decline":
            # Recorded, and every invitation and reminder stops at once; the coordinator sees
            # it in the status history and can enrol them again if they change their mind.
            participant_status_change(
                participant=participant,
                status=Participant.Status.WITHDRAWN,
                reason="Declined consent on their phone",
            )
            declined = True
        elif request.method == "POST":
            typed_name = request.POST.get("typed_name", "")
            try:
                version_id = int(request.POST.get("version", ""))
            except ValueError:
                version_id = -1
            try:
                econsent_give(
                    participant=participant,
                    typed_name=typed_name,
                    agreed=request.POST.get("agree") == "yes",
                    language=participant.language,
                    version_id=version_id,
                    text_sha256=request.POST.get("text", ""),
                )
            except ValidationError as exc:
                messages = _messages()
                if hasattr(exc, "error_dict"):
                    errors = {
                        field: messages.get(field, _("Please check this."))
                        for field in exc.error_dict
                    }
                elif exc.code == "already":
                    return redirect("participant-home")
                else:
                    errors = {"form": messages.get(exc.code, _("Please try again."))}
                version = consent_version_current(study=participant.study)
            else:
                return redirect(reverse("participant-consent-copy") + "?new=1")
        language, text = version.text_in(participant.language)
        if declined:
            participant.status = Participant.Status.WITHDRAWN
        return _render(
            request,
            participant,
            "participant/consent.html",
            {
                "version": version,
                "text_language": language,
                "text_sha256": text_digest(text),
                "paragraphs": _paragraphs(text),
                "errors": errors,
                "typed_name": typed_name,
                "declined": declined,
            },
            status=400 if errors else 200,
        )


@never_cache
@require_GET
def consent_copy(request: HttpRequest) -> HttpResponse:
    """The participant's own copy of what they agreed to, as they read it."""
    participant = session_participant(request)
    record = (
        Consent.objects.filter(participant=participant, method=Consent.Method.ELECTRONIC)
        .select_related("version")
        .order_by("-recorded_at")
        .first()
    )
    if record is None:
        raise Http404
    with timezone.override(participant.timezone):
        return _render(
            request,
            participant,
            "participant/consent_copy.html",
            {
                "consent": record,
                "study": participant.study,
                "paragraphs": _paragraphs(record.text),
                "typed_name": record.typed_name,
                "just_given": request.GET.get("new") == "1",
            },
        )
