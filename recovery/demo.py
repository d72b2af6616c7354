"""Small helpers for the demo."""

from django.utils import timezone

from surveys.links import participant_link_create, participant_link_url
from surveys.models import Assignment, Participant, Study


def demo_participant_link(*, study: Study) -> tuple[Participant, str] | None:
    """A fresh personal link for an active participant, preferring one with a survey open now."""
    now = timezone.now()
    open_now = (
        Assignment.objects.filter(
            participant__study=study,
            participant__status=Participant.Status.ACTIVE,
            status__in=(Assignment.Status.SCHEDULED, Assignment.Status.OPEN),
            opens_at__lte=now,
            closes_at__gt=now,
        )
        .select_related("participant")
        .order_by("participant__code")
        .first()
    )
    participant = (
        open_now.participant
        if open_now
        else study.participants.filter(status=Participant.Status.ACTIVE).order_by("code").first()
    )
    if participant is None:
        return None
    _, token = participant_link_create(participant=participant)
    return participant, participant_link_url(token)
