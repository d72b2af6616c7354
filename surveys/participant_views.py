"""Participants' pages (phone first). A personal link starts a session that sees only that
participant's own things; anything else answers 404.

The survey page is a plain HTML form that works without JavaScript (every question on one
page, branching applied by the server on submit). ``survey.js`` turns it into one screen at a
time with live branching, autosave and offline sending, through the participant API.
"""

import contextlib
import hashlib
import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import rotate_token
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.crypto import salted_hmac
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from surveys.instruments import InstrumentNotReady, version_with_items
from surveys.links import LinkExpired, LinkNotFound, participant_link_resolve
from surveys.models import Assignment, Item, Language, Participant, Response, SafetyAlert
from surveys.ratelimit import client_ip, counted_over_limit, too_many_requests
from surveys.safety import crisis_text
from surveys.screens import ANSWERED, diary_note, screens_build
from surveys.selectors import (
    diary_prefill,
    next_assignment,
    participant_entry_scope,
    participant_home,
)
from surveys.services import participant_language_set
from surveys.submission import (
    REVIEW_POSITION,
    SubmissionConflict,
    days_since_last_survey,
    response_submit,
)
from surveys.templatetags.participant import shown_name
from surveys.validation import TYPED_NUMBER_PROBLEMS, uses_since_last_survey

SESSION_KEY = "participant_id"
# The participant's language, for the participant API's error messages (api/participant.py).
LANGUAGE_KEY = "participant_language"
# The participant's access_epoch when the session started (see Participant.access_epoch).
EPOCH_KEY = "participant_epoch"
# A link opened for a participant with a PIN, waiting for the PIN (surveys/participant_access.py).
PIN_PENDING_KEY = "participant_pin_pending"
PIN_PENDING_LINK_KEY = "participant_pin_pending_link"


def session_participant(request: HttpRequest, *, consent_pending_ok: bool = False) -> Participant:
    """The participant this browser session belongs to, or 404 (also for a session started
    before the participant's PIN changed or their links were revoked, and, on every page but
    home, consent and language, for one who has not yet given the consent they were enrolled
    to give on their phone)."""
    participant_id = request.session.get(SESSION_KEY)
    participant = (
        Participant.objects.filter(
            pk=participant_id,
            status=Participant.Status.ACTIVE,
            access_epoch=request.session.get(EPOCH_KEY, -1),
        ).first()
        if participant_id
        else None
    )
    if participant is None or (participant.consent_pending and not consent_pending_ok):
        raise Http404
    return participant


def drafts_prefix(participant: Participant) -> str:
    """The start of the keys under which a participant's survey page keeps their answers in
    the phone's localStorage while they type (drafts.js removes everyone else's)."""
    return f"survey:{participant.pk}:"


def _render(request, participant: Participant, template: str, context: dict, status=200):
    """Render in the participant's language and time zone."""
    with translation.override(participant.language), timezone.override(participant.timezone):
        response = render(
            request,
            template,
            {
                "participant": participant,
                "signed_in": request.session.get(SESSION_KEY) == participant.pk,
                "languages": Language.choices,
                "drafts_prefix": drafts_prefix(participant),
                **context,
            },
            status=status,
        )
    if participant.pin_hash:
        # A shared phone: the service worker keeps no copy of this page for offline use, and
        # forgets those it kept before the PIN was set.
        response["X-Offline-Copy"] = "no"
    elif request.session.get(SESSION_KEY) == participant.pk:
        response["X-Offline-Owner"] = offline_owner(participant)
    return response


def offline_owner(participant: Participant) -> str:
    """Whose pages the service worker keeps, sent with every page of a signed-in participant
    (X-Offline-Owner): the worker forgets the copies of any other owner before it shows a page,
    so a phone handed to the next person keeps nothing of the last one, and the same person
    coming back keeps theirs. A keyed hash: the same for a participant on every visit, and
    telling nothing of who they are."""
    return salted_hmac(
        "participant-offline-owner", str(participant.pk), algorithm="sha256"
    ).hexdigest()[:24]


@never_cache
@require_GET
def link_open(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = participant_link_resolve(token=token)
    except LinkNotFound as exc:
        # Someone trying made-up links: after PARTICIPANT_BAD_LINKS_PER_HOUR unknown ones from
        # one address, the next unknown ones get 429 for the rest of the hour (0: no limit).
        # Real links from that address still open: people behind a clinic's or a carrier's
        # address are never locked out by someone else's guessing.
        limit = settings.PARTICIPANT_BAD_LINKS_PER_HOUR
        if limit and counted_over_limit("bad-links", client_ip(request), limit=limit, window=3600):
            return too_many_requests(request, retry_after=3600)
        raise Http404 from exc
    except LinkExpired as expired:
        from surveys.participant_access import new_link_page  # that module imports this one

        return new_link_page(request, language=expired.language, expired=True)
    # A new session key on every link: a session made on a shared phone before never carries
    # over to this participant.
    request.session.flush()
    if link.participant.pin_hash:
        # A PIN protects this participant: the session opens only after the PIN screen, and
        # ends when the browser closes.
        request.session[PIN_PENDING_KEY] = link.participant_id
        # the link itself: revoked meanwhile, the PIN screen no longer opens a session
        request.session[PIN_PENDING_LINK_KEY] = link.pk
        return redirect("participant-unlock")
    participant_session_start(request, link.participant)
    return redirect("participant-home")


def participant_session_start(request: HttpRequest, participant: Participant) -> None:
    rotate_token(request)  # a new CSRF secret too: nothing carries over on a shared phone
    request.session[SESSION_KEY] = participant.pk
    request.session[LANGUAGE_KEY] = participant.language
    request.session[EPOCH_KEY] = participant.access_epoch


@never_cache
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    participant = session_participant(request, consent_pending_ok=True)
    if participant.consent_pending:
        return redirect("participant-consent")
    return home_page(request, participant)


def home_page(
    request: HttpRequest, participant: Participant, *, diary_form: dict | None = None, status=200
) -> HttpResponse:
    """The home page: surveys, and the meeting diary (whose views show it again with a
    form's errors)."""
    from surveys.participant_diary import diary_context  # that module imports this one

    now = timezone.now()
    context = participant_home(participant=participant, now=now)
    with translation.override(participant.language):
        context |= diary_context(participant=participant, now=now, form=diary_form)
    return _render(request, participant, "participant/home.html", context, status=status)


@never_cache
@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    participant = session_participant(request, consent_pending_ok=True)
    language = request.POST.get("language", "")
    if language in Language.values:
        participant_language_set(participant=participant, language=language)
        request.session[LANGUAGE_KEY] = language
    target = request.POST.get("next", "")
    if not target.startswith("/p/"):  # only back to a participant page, never elsewhere
        target = reverse("participant-home")
    return redirect(target)


def _survey_context(request, participant: Participant, assignment_id: int, slug: str):
    """The assignment, instrument, version, items and any response, if they are this
    participant's; else 404."""
    scope = participant_entry_scope(
        participant_id=participant.pk,
        access_epoch=participant.access_epoch,
        assignment_id=assignment_id,
        instrument_slug=slug,
    )
    if scope is None:
        raise Http404
    assignment = Assignment.objects.select_related("wave").get(pk=assignment_id)
    assignment.participant = participant
    response = Response.objects.filter(
        assignment_id=assignment_id, instrument=scope.instrument
    ).first()
    try:
        version, items = version_with_items(
            instrument=scope.instrument,
            version_id=response.instrument_version_id if response else None,
        )
    except InstrumentNotReady as exc:
        raise Http404 from exc
    return assignment, scope.instrument, version, items, response


def _answers_from_form(items: list[Item], data) -> dict:
    """A no-JavaScript form's fields as answers (text; the validation reads numbers)."""
    answers: dict = {}
    for item in items:
        if item.kind not in ANSWERED:
            continue
        if item.kind == Item.Kind.MULTIPLE:
            chosen = data.getlist(item.variable)
            if chosen:
                answers[item.variable] = chosen
        elif data.get(item.variable, "").strip():
            answers[item.variable] = data[item.variable]
    return answers


def _closed_reason(assignment: Assignment, now) -> str:
    if assignment.status == Assignment.Status.CANCELLED:
        return "cancelled"
    if now < assignment.opens_at:
        return "not_open_yet"
    if now >= assignment.closes_at or assignment.status == Assignment.Status.MISSED:
        return "closed"
    return ""


def _closed_message(assignment: Assignment, reason: str) -> str:
    """What the home page says to someone who opened a survey that cannot be answered now
    (in the participant's language: the survey view runs under it)."""
    name = shown_name(assignment.wave)
    if reason == "not_open_yet":
        day = date_format(assignment.first_day(), "j F Y")
        return _("“%(name)s” is not open yet: you can answer it from %(day)s.") % {
            "name": name,
            "day": day,
        }
    if reason == "cancelled":
        return _("“%(name)s” was cancelled. Nothing more is needed.") % {"name": name}
    return _(
        "“%(name)s” has closed: the last day to answer it was %(day)s. Thank you — nothing "
        "more is needed."
    ) % {"name": name, "day": date_format(assignment.last_day(), "j F Y")}


def _survey_strings() -> dict:
    """The survey script's words, in the page's language."""
    return {
        "progress": _("Question %(n)s of %(total)s"),
        "review": _("Check your answers"),
        "required": _("This question needs an answer."),
        "range": _("Enter a number from %(min)s to %(max)s."),
        "whole": _("Enter a whole number."),
        "number": _("Enter a number."),
        **{problem: str(words) for problem, words in TYPED_NUMBER_PROBLEMS.items()},
        "change": _("Change"),
        "unanswered": _("Not answered"),
        "saved": _("Saved."),
        "saved_here": _("Saved on this phone — will send when you are online."),
        "sending": _("Sending…"),
        "reopen": _(
            "Your answers are saved on this phone. To send them, open the link in your "
            "message again."
        ),
        "queued": _(
            "Your answers are saved on this phone and will be sent when you are online. "
            "You can close this page."
        ),
        "problems": _("Some answers need your attention."),
        "changed": _(
            "This survey was changed since you opened it. Reload the page: your answers "
            "are kept on this phone."
        ),
        "slider_unset": _("Not answered yet: tap or use the arrow keys"),
        "slider_value": _("Your answer: %(value)s"),
    }


@never_cache
@require_http_methods(["GET", "POST"])
def survey(request: HttpRequest, assignment_id: int, slug: str) -> HttpResponse:
    participant = session_participant(request)
    with translation.override(participant.language):
        return _survey(request, participant, assignment_id, slug)


def _form_sent_again(request, assignment, instrument, items, done_url: str) -> HttpResponse:
    """The form posted for a survey already sent (its first reply never reached the phone):
    the done page, which says so when the answers differ from those kept."""
    with contextlib.suppress(ValueError, ValidationError, SubmissionConflict):
        # No usable id, or another one (already_submitted): the survey was sent under the
        # first, and the done page shows it as it is.
        response_submit(
            assignment=assignment,
            instrument=instrument,
            answers=_answers_from_form(items, request.POST),
            client_id=uuid.UUID(request.POST.get("client_id", "")),
        )
    return redirect(done_url)


def _survey(request, participant: Participant, assignment_id: int, slug: str) -> HttpResponse:
    assignment, instrument, version, items, response = _survey_context(
        request, participant, assignment_id, slug
    )
    done_url = reverse("participant-survey-done", args=[assignment_id, slug])
    if response is not None and response.status == Response.Status.SUBMITTED:
        if request.method == "POST":  # sent again: the answers may have changed meanwhile
            return _form_sent_again(request, assignment, instrument, items, done_url)
        return redirect(done_url)
    now = timezone.now()
    closed = _closed_reason(assignment, now)
    if closed and request.method != "POST":
        # An old tab or a bookmark: the home page, which shows what can be answered now.
        messages.info(request, _closed_message(assignment, closed), extra_tags="survey")
        return redirect("participant-home")
    errors: dict = {}
    answers = dict(response.answers) if response else {}
    client_id = str(response.client_id) if response else str(uuid.uuid4())
    status = 200
    if request.method == "POST" and not closed:
        answers = _answers_from_form(items, request.POST)
        with contextlib.suppress(ValueError):  # else the fresh id from above
            client_id = str(uuid.UUID(request.POST.get("client_id", "")))
        try:
            response_submit(
                assignment=assignment,
                instrument=instrument,
                answers=answers,
                client_id=uuid.UUID(client_id),
            )
            return redirect(done_url)
        except ValidationError as exc:
            errors = exc.message_dict
            status = 400
        except SubmissionConflict as exc:
            if exc.code == "already_submitted":
                return redirect(done_url)
            closed = exc.code
            status = 409
    screens = screens_build(
        items=items,
        language=participant.language,
        since_last_survey=(
            days_since_last_survey(assignment, instrument.pk, now)
            if uses_since_last_survey(items)
            else None
        ),
    )
    # The meeting log's counts as starting answers, where the draft has no answer yet (a
    # draft's answer, or the answers just sent, always win).
    prefills = (
        diary_prefill(participant=participant, items=items, now=now)
        if request.method != "POST" and not closed
        else {}
    )
    for screen in screens:
        for question in screen.questions:
            value = answers.get(question.variable)
            if value is None and question.variable in prefills:
                prefill = prefills[question.variable]
                value = prefill.value
                question.diary_note = diary_note(question.kind, prefill.count, prefill.since)
            question.value = value
            question.chosen = (
                {str(v) for v in value}
                if isinstance(value, list)
                else ({str(value)} if value is not None else set())
            )
            question.error = (errors.get(question.variable) or [""])[0]
    calcs = [
        {"variable": item.variable, "formula": item.calculation, "branching": item.branching}
        for item in items
        if item.kind == Item.Kind.CALC
    ]
    draft = {
        "client_id": client_id,
        "answers": answers,
        "position": response.resume_at if response else "",
        "saved_at": response.updated_at.isoformat() if response else "",
    }
    return _render(
        request,
        participant,
        "participant/survey.html",
        {
            "assignment": assignment,
            "instrument": instrument,
            "version": version,
            "screens": screens,
            "answers": answers,
            "errors": errors,
            "error_count": len(errors),
            "closed": closed,
            "client_id": client_id,
            "draft": draft,
            "calcs": calcs,
            "crisis_text": crisis_text(study=participant.study, language=participant.language),
            "page_data": {
                "draft": draft,
                "calcs": calcs,
                # Every item's variable in the order the server checks them (survey.js).
                "order": [item.variable for item in items],
                "api": f"/api/v1/participant/assignments/{assignment_id}/responses/{slug}/",
                "done": done_url,
                "review_position": REVIEW_POSITION,
                "key": f"{drafts_prefix(participant)}{assignment_id}:{slug}",
                "strings": _survey_strings(),
            },
        },
        status=status,
    )


@never_cache
@require_GET
def survey_done(request: HttpRequest, assignment_id: int, slug: str) -> HttpResponse:
    participant = session_participant(request)
    assignment, instrument, _, _, response = _survey_context(
        request, participant, assignment_id, slug
    )
    if response is None or response.status != Response.Status.SUBMITTED:
        return redirect("participant-survey", assignment_id, slug)
    now = timezone.now()
    return _render(
        request,
        participant,
        "participant/done.html",
        {
            "assignment": assignment,
            "instrument": instrument,
            "next": next_assignment(participant=participant, now=now),
            "now": now,
            "kept_first": response.changes_refused_at is not None,
            "crisis_text": crisis_text(study=participant.study, language=participant.language)
            if SafetyAlert.objects.filter(assignment_id=assignment_id).exists()
            else "",
        },
    )


@require_GET
def manifest(request: HttpRequest) -> HttpResponse:
    """The web app manifest: participants can add their surveys to the home screen (named in
    the language of the session that asks)."""
    with translation.override(request.session.get(LANGUAGE_KEY) or "en"):
        return _manifest()


def _manifest() -> HttpResponse:
    data = {
        "name": _("Your surveys"),
        "short_name": _("Surveys"),
        "start_url": reverse("participant-home"),
        "scope": "/p/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0b5cad",
        "icons": [
            {
                "src": static("surveys/icon.svg"),
                "sizes": "any",
                "type": "image/svg+xml",
                "purpose": "any",
            }
        ],
    }
    response = JsonResponse(data)
    response["Content-Type"] = "application/manifest+json"
    return response


@require_GET
def service_worker(request: HttpRequest) -> HttpResponse:
    """The service worker, served under /p/ so that its scope covers the participant pages.
    It names the hashed static files of this deployment so that it caches the right ones."""
    assets = [
        static("surveys/participant.css"),
        static("surveys/logic.js"),
        static("surveys/outbox.js"),
        static("surveys/survey.js"),
        static("surveys/drafts.js"),
        static("surveys/icon.svg"),
    ]
    script = render_to_string(
        "participant/sw.js",
        {
            "assets_json": json.dumps(assets),
            "outbox_json": json.dumps(static("surveys/outbox.js")),
            # A new cache whenever the files change (their hashed names, in production).
            "version": hashlib.sha256("".join(assets).encode()).hexdigest()[:12],
        },
    )
    response = HttpResponse(script, content_type="text/javascript")
    response["Cache-Control"] = "no-cache"
    return response
