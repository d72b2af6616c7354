"""Sending a claimed message (``surveys.dispatch``) at the right time, on the participant's
clock, however late its turn comes: never in the quiet hours, never long after its time. (How
the messages are planned, and the other send checks: tests/surveys/test_reminders.py.)"""

import threading
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from surveys.dispatch import (
    MAX_ATTEMPTS,
    STALE_AFTER,
    TOO_LATE,
    RetryLater,
    message_send,
    message_texts,
    reminders_dispatch,
)
from surveys.models import Assignment, Message
from surveys.reminders import QUIET_REASON, local_moment
from surveys.services import messages_send_now
from surveys.tasks import MAX_SEND_RETRIES, message_send_retry_wait
from tests.surveys.test_export_line_cache import another_process

NY, LONDON = ZoneInfo("America/New_York"), ZoneInfo("Europe/London")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def month1_open(site_a, enrol):
    """``month1_open(opens=…, zone=…)``: a participant reached by e-mail whose month-1 survey
    is open for two weeks from local midnight on ``opens``; returns its invitation, the only
    message of the survey still queued (the others are sent, so none is skipped as older)."""

    def _open(*, opens: date, zone: ZoneInfo = NY, code: str = "NYC-0042") -> Message:
        participant = enrol(
            site=site_a,
            code=code,
            enrolled_on=opens - timedelta(days=23),
            timezone=zone.key,
            contact={"email": f"{code.lower()}@example.org", "first_name": "Dana"},
            now=local_moment(opens - timedelta(days=23), time(12), zone),
        )
        month1 = participant.assignments.get(wave__slug="m1")
        Assignment.objects.filter(pk=month1.pk).update(
            status=Assignment.Status.OPEN,
            opens_at=local_moment(opens, time(0), zone),
            closes_at=local_moment(opens + timedelta(days=14), time(0), zone),
        )
        messages = Message.objects.filter(assignment=month1).order_by("sequence")
        invitation = messages.first()
        messages.exclude(pk=invitation.pk).update(status=Message.Status.SENT)
        return invitation

    return _open


def claim_and_send(message: Message, *, now: datetime) -> str:
    """A dispatch cycle at ``now`` claims the message, and its send task runs at once."""
    assert message.pk in reminders_dispatch(now=now, enqueue=False).claimed_ids
    return message_send(message_id=message.pk, now=now)


# --- Quiet hours at sending time ------------------------------------------------------------


def test_a_message_whose_turn_comes_at_night_waits_for_the_morning_across_the_autumn_change(
    month1_open,
):
    """Due at 09:00 on Saturday 31 October 2026 in New York; the broker was down all day and
    the first cycle after it runs at 01:30 on Sunday, the night the clocks go back at 02:00.
    The invitation goes at 09:00 New York time that morning (EST: 14:00 UTC), not at once."""
    invitation = month1_open(opens=date(2026, 10, 25))
    due = local_moment(date(2026, 10, 31), time(9), NY)
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=due)
    night = local_moment(date(2026, 11, 1), time(1, 30), NY)
    assert night == utc(2026, 11, 1, 5, 30)  # EDT, before the change

    assert claim_and_send(invitation, now=night) == Message.Status.QUEUED
    invitation.refresh_from_db()
    assert not mail.outbox
    assert (
        invitation.scheduled_at
        == utc(2026, 11, 1, 14)
        == local_moment(date(2026, 11, 1), time(9), NY)
    )
    assert invitation.reason == QUIET_REASON
    assert (invitation.claimed_at, invitation.attempts) == (None, 0)
    # 08:30 EST (13:30 UTC, which was 09:30 the day before): still too early.
    assert reminders_dispatch(now=utc(2026, 11, 1, 13, 30), enqueue=False).claimed == 0
    assert claim_and_send(invitation, now=utc(2026, 11, 1, 14)) == Message.Status.SENT
    [email] = mail.outbox
    assert email.to == ["nyc-0042@example.org"]


def test_send_now_in_the_evening_goes_at_nine_the_next_morning_across_the_spring_change(
    month1_open,
):
    """A coordinator presses "send now" at 22:30 on Saturday 7 March 2026 in New York; the
    clocks go forward at 02:00 that night. The message goes at 09:00 EDT (13:00 UTC)."""
    invitation = month1_open(opens=date(2026, 3, 2))
    Message.objects.filter(pk=invitation.pk).update(
        scheduled_at=local_moment(date(2026, 3, 12), time(9), NY)
    )
    evening = local_moment(date(2026, 3, 7), time(22, 30), NY)
    assert messages_send_now(messages=Message.objects.filter(pk=invitation.pk), now=evening) == 1

    assert claim_and_send(invitation, now=evening) == Message.Status.QUEUED
    invitation.refresh_from_db()
    assert invitation.scheduled_at == utc(2026, 3, 8, 13)
    assert invitation.scheduled_at.astimezone(NY).time() == time(9)
    assert claim_and_send(invitation, now=utc(2026, 3, 8, 13)) == Message.Status.SENT
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(
    ("zone", "sent"),
    [(LONDON, True), (NY, False)],
    ids=["london-at-noon", "new-york-at-seven"],
)
def test_the_quiet_hours_are_the_participants_own(month1_open, zone, sent):
    """The same instant, 12:00 UTC on 1 November 2026, is noon in London and 07:00 in New
    York: the message goes to the Londoner now and to the New Yorker at 09:00 their time."""
    invitation = month1_open(opens=date(2026, 10, 25), zone=zone)
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=utc(2026, 11, 1, 11, 59))

    status = claim_and_send(invitation, now=utc(2026, 11, 1, 12))

    invitation.refresh_from_db()
    if sent:
        assert status == Message.Status.SENT and len(mail.outbox) == 1
    else:
        assert status == Message.Status.QUEUED and not mail.outbox
        assert invitation.scheduled_at == local_moment(date(2026, 11, 1), time(9), NY)


def test_a_message_requeued_by_the_sweep_at_night_is_not_sent_at_night(month1_open):
    """Claimed at 20:55, its task lost; the sweep puts it back at 02:00 and the next cycle
    claims it at once: it goes when the quiet hours end."""
    invitation = month1_open(opens=date(2026, 6, 1))
    due = local_moment(date(2026, 6, 3), time(20, 55), NY)
    Message.objects.filter(pk=invitation.pk).update(
        scheduled_at=due, status=Message.Status.SENDING, claimed_at=due
    )
    night = local_moment(date(2026, 6, 4), time(2), NY)

    cycle = reminders_dispatch(now=night, enqueue=False)
    assert cycle.requeued == 1 and cycle.claimed_ids == [invitation.pk]
    assert message_send(message_id=invitation.pk, now=night) == Message.Status.QUEUED
    invitation.refresh_from_db()
    assert invitation.scheduled_at == local_moment(date(2026, 6, 4), time(9), NY)
    assert not mail.outbox


# --- The catch-up limit ---------------------------------------------------------------------


def test_a_message_overdue_by_more_than_a_day_is_skipped_not_sent_late(month1_open):
    """Due at 09:00 on 31 October 2026 in New York; the first cycle after an outage runs at
    noon on 1 November, 28 hours later (the clocks went back in between): too late."""
    invitation = month1_open(opens=date(2026, 10, 25))
    Message.objects.filter(pk=invitation.pk).update(
        scheduled_at=local_moment(date(2026, 10, 31), time(9), NY)
    )

    noon = local_moment(date(2026, 11, 1), time(12), NY)
    assert claim_and_send(invitation, now=noon) == Message.Status.SKIPPED

    invitation.refresh_from_db()
    assert invitation.reason == TOO_LATE
    assert "24 hours" in invitation.reason
    assert not mail.outbox


def test_a_message_overdue_by_less_than_a_day_still_goes(month1_open):
    """Due at noon on 31 October 2026 in New York, its turn comes at 10:30 the next morning:
    23½ hours later (22½ by the wall clock: the clocks went back). It goes."""
    invitation = month1_open(opens=date(2026, 10, 25))
    due = local_moment(date(2026, 10, 31), time(12), NY)
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=due)

    later = local_moment(date(2026, 11, 1), time(10, 30), NY)
    assert later - due == timedelta(hours=23, minutes=30)
    assert claim_and_send(invitation, now=later) == Message.Status.SENT
    assert len(mail.outbox) == 1


# --- A completion in flight -----------------------------------------------------------------


@pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="row locks: PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_a_send_waits_for_a_submission_in_flight_and_then_sends_nothing(month1_open):
    """The participant submits while their reminder is being checked: the submission (another
    process) holds the survey's row lock, as surveys.submission does, and commits the
    completion a second later. The send waits for it, sees the survey completed, and cancels
    the reminder."""
    invitation = month1_open(opens=date(2026, 6, 1))
    noon = local_moment(date(2026, 6, 3), time(12), NY)
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=noon)
    assert invitation.pk in reminders_dispatch(now=noon, enqueue=False).claimed_ids
    submission = another_process()
    try:
        with submission.cursor() as cursor:
            cursor.execute(
                "SELECT a.id FROM surveys_assignment a "
                "JOIN surveys_participant p ON p.id = a.participant_id "
                "WHERE a.id = %s FOR UPDATE OF a",
                [invitation.assignment_id],
            )

        def complete_and_commit():
            clock.sleep(1)
            with submission.cursor() as cursor:
                cursor.execute(
                    "UPDATE surveys_assignment SET status = 'completed', completed_at = %s "
                    "WHERE id = %s",
                    [noon, invitation.assignment_id],
                )
            submission.commit()

        submitting = threading.Thread(target=complete_and_commit)
        submitting.start()
        status = message_send(message_id=invitation.pk, now=noon)
        submitting.join()
    finally:
        submission.close()

    assert status == Message.Status.CANCELLED
    invitation.refresh_from_db()
    assert (invitation.status, invitation.reason) == (Message.Status.CANCELLED, "completed")
    assert invitation.send_started_at is None
    assert not mail.outbox


# --- Retries and the sweep ------------------------------------------------------------------


class Unreachable:
    """A mail server that refuses the connection: nothing went out, the send is retried."""

    def __init__(self, *args, **kwargs):
        pass

    def open(self):
        raise ConnectionRefusedError("connection refused")

    def close(self):
        pass

    def send_messages(self, messages):
        raise AssertionError("never connected")


def test_a_message_waiting_for_its_retry_is_left_to_it_by_the_sweep(settings, month1_open):
    """The mail server refuses four attempts, each taking 15 seconds to fail; the task retries
    1, 2, 4 and 8 minutes after each, so the fifth attempt comes more than STALE_AFTER after
    the claim. The beat's cycle every minute in between leaves the row to its retry (a
    requeue would start a second chain of tasks for it), and the fifth attempt sends it,
    once."""
    invitation = month1_open(opens=date(2026, 6, 1))
    claimed = local_moment(date(2026, 6, 3), time(12), NY)
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=claimed)
    assert invitation.pk in reminders_dispatch(now=claimed, enqueue=False).claimed_ids
    working = settings.MAILERS
    settings.MAILERS = {"default": {"BACKEND": "tests.surveys.test_dispatch.Unreachable"}}
    attempt_at = claimed
    for retries in range(MAX_SEND_RETRIES):
        with pytest.raises(RetryLater):
            message_send(message_id=invitation.pk, now=attempt_at)
        next_attempt = attempt_at + timedelta(seconds=15 + message_send_retry_wait(retries))
        cycle_at = attempt_at + timedelta(minutes=1)
        while cycle_at < next_attempt:
            cycle = reminders_dispatch(now=cycle_at, enqueue=False)
            assert (cycle.requeued, cycle.claimed) == (0, 0), f"requeued at {cycle_at}"
            cycle_at += timedelta(minutes=1)
        attempt_at = next_attempt
    assert attempt_at - claimed > STALE_AFTER
    settings.MAILERS = working

    assert message_send(message_id=invitation.pk, now=attempt_at) == Message.Status.SENT
    invitation.refresh_from_db()
    assert invitation.attempts == MAX_ATTEMPTS
    assert len(mail.outbox) == 1


def test_an_attempt_and_the_longest_wait_for_its_retry_fit_inside_the_staleness_limit(
    settings,
):
    """What the retry's fresh claim relies on: the sweep never takes a row that is still
    being tried or waiting for its retry for stale."""
    longest = settings.CELERY_TASK_TIME_LIMIT + message_send_retry_wait(MAX_SEND_RETRIES - 1)
    assert timedelta(seconds=longest) < STALE_AFTER


def test_a_reminder_says_the_last_day_to_answer_not_the_midnight_that_closes_the_window(
    month1_open,
):
    """Open from 13 December 2026 in New York, it closes at the midnight that starts the 27th
    (05:00 UTC): the e-mail and the text say it is open until 26 December."""
    invitation = month1_open(opens=date(2026, 12, 13))
    assert invitation.assignment.closes_at == utc(2026, 12, 27, 5)
    reminder = Message.objects.filter(assignment=invitation.assignment, sequence__gt=0).first()
    texts = message_texts(reminder, "https://example.org/p/x", "https://example.org/u/x")
    assert "It stays open until 26 December 2026." in texts["text"]
    assert "a reminder, your 1 month survey is open until 26 December 2026" in texts["sms"]
    noon = local_moment(date(2026, 12, 26), time(12), NY)  # on the last day
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=noon)
    assert claim_and_send(invitation, now=noon) == Message.Status.SENT
    [email] = mail.outbox
    assert "It stays open until 26 December 2026." in email.body
    assert "27 December" not in email.body
