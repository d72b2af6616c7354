"""The meeting diary on the participant's home page: log a meeting, remove one logged by
mistake.

Plain forms that work without JavaScript, CSRF-protected, for the signed-in participant only.
A meeting logged (or removed) redirects to the home page, which says so; a form with errors
shows the home page again with the errors next to their fields and the answers kept.
"""

import uuid
from datetime import date, datetime, timedelta

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from surveys import diary
from surveys.models import DiaryEntry, Participant
from surveys.participant_views import home_page, session_participant
from surveys.selectors import diary_home
from surveys.services import DIARY_DAYS_BEFORE_ENROLMENT, diary_entry_delete, diary_entry_log

FIELDS = ("group", "format", "occurred_on")
MESSAGE_TAG = "diary"


def diary_context(*, participant: Participant, now: datetime, form: dict | None = None) -> dict:
    """The home page's diary: the form (blank, or as sent with its errors), the latest
    entries and the count since the last survey. Labels in the active language."""
    language = translation.get_language() or participant.language
    today = diary.local_today(participant.timezone, now)
    form = form or {}
    logged = diary_home(participant=participant, now=now)
    return {
        "diary": {
            **logged,
            "entries": [_entry_row(entry, language) for entry in logged["entries"]],
            "groups": diary.group_choices(language),
            "formats": diary.format_choices(language),
            "today": today.isoformat(),
            "earliest": (
                participant.enrolled_on - timedelta(days=DIARY_DAYS_BEFORE_ENROLMENT)
            ).isoformat(),
            "values": {"group": "", "format": "", "occurred_on": today.isoformat()}
            | form.get("values", {}),
            "errors": form.get("errors", {}),
            # A new id per form shown: the same form sent twice stores one meeting.
            "client_id": form.get("client_id") or str(uuid.uuid4()),
        }
    }


def _entry_row(entry: DiaryEntry, language: str) -> dict:
    return {
        "id": entry.pk,
        "occurred_on": entry.occurred_on,
        "group": diary.group_label(entry.group, language),
        "format": diary.format_label(entry.format, language),
    }


def _described(entry: DiaryEntry) -> str:
    """'Narcotics Anonymous, in person, 3 March 2026' in the active language."""
    language = translation.get_language()
    return ", ".join(
        (
            diary.group_label(entry.group, language),
            diary.format_label(entry.format, language),
            date_format(entry.occurred_on, "j F Y"),
        )
    )


def _home_url() -> str:
    return reverse("participant-home") + "#diary"


@never_cache
@require_http_methods(["GET", "POST"])
def diary_log(request: HttpRequest) -> HttpResponse:
    participant = session_participant(request)
    if request.method == "GET":  # e.g. the language switcher on a page shown after errors
        return redirect(_home_url())
    with translation.override(participant.language):
        values = {name: request.POST.get(name, "").strip() for name in FIELDS}
        try:
            client_id = uuid.UUID(request.POST.get("client_id", ""))
        except ValueError:
            client_id = uuid.uuid4()
        errors: dict[str, str] = {}
        try:
            occurred_on = date.fromisoformat(values["occurred_on"])
        except ValueError:
            errors["occurred_on"] = _("Enter the date of the meeting.")
        if not errors:
            try:
                entry = diary_entry_log(
                    participant=participant,
                    group=values["group"],
                    format=values["format"],
                    occurred_on=occurred_on,
                    client_id=client_id,
                )
            except ValidationError as exc:
                errors = {field: texts[0] for field, texts in exc.message_dict.items()}
            else:
                messages.success(
                    request,
                    _("Meeting logged: %(meeting)s.") % {"meeting": _described(entry)},
                    extra_tags=MESSAGE_TAG,
                )
                return redirect(_home_url())
        if "client_id" in errors:  # shown with the form, which gets a fresh id
            errors["form"] = errors.pop("client_id")
            client_id = uuid.uuid4()
    form = {"values": values, "errors": errors, "client_id": str(client_id)}
    return home_page(request, participant, diary_form=form, status=400)


@never_cache
@require_POST
def diary_delete(request: HttpRequest, entry_id: int) -> HttpResponse:
    participant = session_participant(request)
    with translation.override(participant.language):
        entry = diary_entry_delete(participant=participant, entry_id=entry_id)
        if entry is None:
            raise Http404
        messages.success(
            request,
            _("Removed from your log: %(meeting)s.") % {"meeting": _described(entry)},
            extra_tags=MESSAGE_TAG,
        )
    return redirect(_home_url())
