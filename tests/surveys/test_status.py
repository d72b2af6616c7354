from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from surveys.models import Assignment, Participant, ParticipantStatusChange
from surveys.services import assignment_statuses_refresh, participant_status_change

NOW = datetime(2026, 2, 20, 12, tzinfo=UTC)


def test_withdrawal_cancels_every_unanswered_assignment_and_keeps_history(
    site_a, enrol, coordinator_a
):
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    Assignment.objects.filter(participant=participant, wave__slug="baseline").update(
        status=Assignment.Status.COMPLETED
    )
    participant_status_change(
        participant=participant,
        status=Participant.Status.WITHDRAWN,
        reason="Moved away, asked to stop",
        changed_by=coordinator_a,
        now=NOW,
    )
    statuses = dict(participant.assignments.values_list("wave__slug", "status"))
    assert statuses == {
        "baseline": "completed",
        "m1": "cancelled",
        "m3": "cancelled",
        "m6": "cancelled",
        "m12": "cancelled",
    }
    change = ParticipantStatusChange.objects.get()
    assert (change.from_status, change.to_status, change.changed_by) == (
        "active",
        "withdrawn",
        coordinator_a,
    )
    assert change.reason == "Moved away, asked to stop"
    # Cancelled stays cancelled when windows close.
    assignment_statuses_refresh(now=NOW + timedelta(days=400))
    assert not participant.assignments.filter(status=Assignment.Status.MISSED).exists()


def test_a_withdrawal_undone_brings_back_the_surveys_it_cancelled_and_their_messages(
    site_a, enrol, coordinator_a
):
    """Withdrawn by mistake on 20 February (enrolled 15 January), back to active on 20 March:
    the 1-month survey, whose window closed on 15 March, is missed; the later ones are to come
    again with their invitations planned; one cancelled on its own before stays cancelled;
    the baseline stays completed."""
    from surveys.models import Message

    participant = enrol(
        site=site_a, contact={"email": "rae@example.org"}, now=datetime(2026, 1, 15, 6, tzinfo=UTC)
    )
    Assignment.objects.filter(participant=participant, wave__slug="baseline").update(
        status=Assignment.Status.COMPLETED
    )
    Assignment.objects.filter(participant=participant, wave__slug="m12").update(
        status=Assignment.Status.CANCELLED, status_changed_at=NOW - timedelta(days=10)
    )
    participant_status_change(
        participant=participant, status="withdrawn", reason="clicked the wrong person", now=NOW
    )
    assert not Message.objects.filter(assignment__participant=participant, status="queued")
    back = NOW + timedelta(days=28)
    participant_status_change(
        participant=participant, status="active", changed_by=coordinator_a, now=back
    )
    statuses = dict(participant.assignments.values_list("wave__slug", "status"))
    assert statuses == {
        "baseline": "completed",
        "m1": "missed",
        "m3": "scheduled",
        "m6": "scheduled",
        "m12": "cancelled",
    }
    queued = Message.objects.filter(assignment__participant=participant, status="queued")
    assert set(queued.values_list("assignment__wave__slug", flat=True)) == {"m3", "m6"}
    assert all(message.scheduled_at > back for message in queued)
    # Withdrawn again, then active again: the same surveys come back.
    participant_status_change(participant=participant, status="withdrawn", reason="r", now=back)
    later = back + timedelta(days=1)
    participant_status_change(participant=participant, status="active", now=later)
    again = dict(participant.assignments.values_list("wave__slug", "status"))
    assert again == statuses


def test_a_survey_begun_before_the_withdrawal_comes_back_in_progress(site_a, enrol):
    from surveys.models import Response

    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    month1 = participant.assignments.get(wave__slug="m1")
    version = month1.wave.instruments.get().versions.get()
    Response.objects.create(
        assignment=month1, instrument=version.instrument, instrument_version=version,
        answers={}, status="draft", started_at=NOW - timedelta(days=2),
    )  # fmt: skip
    Assignment.objects.filter(pk=month1.pk).update(status=Assignment.Status.IN_PROGRESS)
    participant_status_change(participant=participant, status="withdrawn", reason="r", now=NOW)
    participant_status_change(participant=participant, status="active", now=NOW + timedelta(1))
    month1.refresh_from_db()
    assert month1.status == Assignment.Status.IN_PROGRESS  # the window is open until 15 March


def test_back_to_active_after_two_moves_out_brings_back_what_the_first_cancelled(site_a, enrol):
    """Found by review: withdrawn, then deceased (a wrong record), then active again. The
    withdrawal cancelled the surveys and the move to deceased nothing more, so looking only at
    the last move brought nothing back: active, and never asked again. One cancelled on its
    own before the withdrawal stays cancelled."""
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    Assignment.objects.filter(participant=participant, wave__slug="m12").update(
        status=Assignment.Status.CANCELLED, status_changed_at=NOW - timedelta(days=10)
    )
    participant_status_change(participant=participant, status="withdrawn", reason="r", now=NOW)
    later = NOW + timedelta(days=1)
    participant_status_change(participant=participant, status="deceased", now=later)
    participant_status_change(participant=participant, status="active", now=later)
    statuses = dict(participant.assignments.values_list("wave__slug", "status"))
    assert statuses == {
        "baseline": "missed",
        "m1": "open",
        "m3": "scheduled",
        "m6": "scheduled",
        "m12": "cancelled",
    }


def test_back_to_active_from_lost_plans_the_messages_again(site_a, enrol):
    """Found by the diff's review: while a participant is lost to follow-up the dispatcher
    cancels their queued messages; back to active, nothing planned them again once the
    participant page stopped re-planning on every save. The status change does it now."""
    from django.utils import timezone

    from surveys.dispatch import messages_settle
    from surveys.models import Message

    participant = enrol(
        site=site_a, contact={"email": "lee@example.org"},
        enrolled_on=timezone.localdate() - timedelta(days=25),
    )  # fmt: skip
    queued = Message.objects.filter(assignment__participant=participant, status="queued")
    before = queued.count()
    assert before
    participant_status_change(participant=participant, status="lost", reason="no reply")
    messages_settle(now=timezone.now())
    assert not queued.exists()
    participant_status_change(participant=participant, status="active")
    assert queued.count() == before


@pytest.mark.django_db(transaction=True)
def test_a_status_change_from_outside_any_transaction_is_one_transaction(site_a, enrol):
    """The participant's own "I do not agree" on the consent page calls the service from a
    view with no transaction of its own: it opens one (on PostgreSQL its row lock needs it)."""
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    participant_status_change(
        participant=participant, status="withdrawn", reason="declined consent", now=NOW
    )
    assert set(participant.assignments.values_list("status", flat=True)) == {"cancelled"}


def test_withdrawal_needs_a_reason_and_changes_nothing_without_one(site_a, enrol):
    participant = enrol(site=site_a)
    with pytest.raises(ValidationError):
        participant_status_change(participant=participant, status="withdrawn")
    participant.refresh_from_db()
    assert participant.status == Participant.Status.ACTIVE
    assert not ParticipantStatusChange.objects.exists()


def test_lost_to_follow_up_keeps_assignments_open_for_a_late_return(site_a, enrol):
    participant = enrol(site=site_a, now=datetime(2026, 1, 15, 6, tzinfo=UTC))
    participant_status_change(
        participant=participant, status=Participant.Status.LOST_TO_FOLLOW_UP, now=NOW
    )
    assert not participant.assignments.filter(status=Assignment.Status.CANCELLED).exists()


def test_the_same_status_again_records_nothing(site_a, enrol):
    participant = enrol(site=site_a)
    participant_status_change(participant=participant, status="active")
    assert not ParticipantStatusChange.objects.exists()


def test_withdrawing_in_the_admin_goes_through_the_service(client, coordinator_a, site_a, enrol):
    participant = enrol(site=site_a, code="NYC-77")
    client.force_login(coordinator_a)
    url = reverse("admin:surveys_participant_change", args=[participant.pk])
    form = {
        "site": site_a.pk,
        "code": "NYC-77",
        "status": "withdrawn",
        "timezone": participant.timezone,
        "language": "en",
        "preferred_channel": "email",
        "contact-TOTAL_FORMS": "1",
        "contact-INITIAL_FORMS": "0",
        "contact-MIN_NUM_FORMS": "0",
        "contact-MAX_NUM_FORMS": "1",
        "assignments-TOTAL_FORMS": "0",
        "assignments-INITIAL_FORMS": "5",
        "assignments-MIN_NUM_FORMS": "0",
        "assignments-MAX_NUM_FORMS": "1000",
        "status_changes-TOTAL_FORMS": "0",
        "status_changes-INITIAL_FORMS": "0",
        "status_changes-MIN_NUM_FORMS": "0",
        "status_changes-MAX_NUM_FORMS": "1000",
        "links-TOTAL_FORMS": "0",
        "links-INITIAL_FORMS": "0",
        "links-MIN_NUM_FORMS": "0",
        "links-MAX_NUM_FORMS": "1000",
        "contact_attempts-TOTAL_FORMS": "0",
        "contact_attempts-INITIAL_FORMS": "0",
        "contact_attempts-MIN_NUM_FORMS": "0",
        "contact_attempts-MAX_NUM_FORMS": "1000",
        "consents-TOTAL_FORMS": "0",
        "consents-INITIAL_FORMS": "0",
        "consents-MIN_NUM_FORMS": "0",
        "consents-MAX_NUM_FORMS": "1000",
    }
    without_reason = client.post(url, form)
    assert without_reason.status_code == 200
    assert "Say why the participant withdrew." in without_reason.text
    participant.refresh_from_db()
    assert participant.status == "active"
    done = client.post(url, {**form, "status_reason": "Wants no more contact"})
    assert done.status_code == 302, done.text[:3000]
    participant.refresh_from_db()
    assert participant.status == "withdrawn"
    assert participant.status_changes.get().changed_by == coordinator_a
    assert not participant.assignments.filter(
        status__in=["scheduled", "open", "in_progress"]
    ).exists()
    assert participant.assignments.filter(status="cancelled").exists()
