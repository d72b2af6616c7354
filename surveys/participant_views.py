"""Participants' pages (phone first). A personal link starts a session that sees only that
participant's own things; anything else answers 404."""

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from surveys.links import LinkExpired, LinkNotFound, participant_link_resolve
from surveys.models import Assignment, Participant

SESSION_KEY = "participant_id"


def session_participant(request: HttpRequest) -> Participant:
    """The participant this browser session belongs to, or 404."""
    participant_id = request.session.get(SESSION_KEY)
    participant = (
        Participant.objects.filter(pk=participant_id, status=Participant.Status.ACTIVE).first()
        if participant_id
        else None
    )
    if participant is None:
        raise Http404
    return participant


@never_cache
@require_GET
def link_open(request: HttpRequest, token: str) -> HttpResponse:
    try:
        link = participant_link_resolve(token=token)
    except LinkNotFound as exc:
        raise Http404 from exc
    except LinkExpired:
        return render(request, "participant/link_expired.html", status=410)
    # A new session key on every link: a session made on a shared phone before never carries
    # over to this participant.
    request.session.cycle_key()
    request.session[SESSION_KEY] = link.participant_id
    return redirect("participant-home")


@never_cache
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    participant = session_participant(request)
    now = timezone.now()
    assignments = list(participant.assignments.select_related("wave").order_by("due_at"))
    due = [
        a
        for a in assignments
        if a.opens_at <= now < a.closes_at
        and a.status
        in (Assignment.Status.SCHEDULED, Assignment.Status.OPEN, Assignment.Status.IN_PROGRESS)
    ]
    upcoming = [
        a for a in assignments if a.opens_at > now and a.status == Assignment.Status.SCHEDULED
    ][:1]
    done = sum(a.status == Assignment.Status.COMPLETED for a in assignments)
    # Dates in the participant's own time zone. The page's words are not translated yet (the
    # Spanish and Persian catalogues come with the phone pages), so the language is not switched
    # either: a page half in English and half in Spanish would be worse than one in English.
    with timezone.override(participant.timezone):
        return render(
            request,
            "participant/home.html",
            {
                "participant": participant,
                "due": due,
                "upcoming": upcoming,
                "done": done,
                "total": len(assignments),
            },
        )
