"""Sending the planned messages: claim due rows, send each once, and never after completion.

One dispatch cycle (``manage.py dispatch_reminders`` and the beat entry run the same function):

1. settle: queued messages whose assignment is completed, cancelled or missed, or whose
   participant left, become cancelled with the reason (a few set-based UPDATEs);
2. sweep: rows claimed long ago that never started sending go back to the queue; rows that
   started sending and never finished become ``review`` (they may have gone out, so they are
   never resent blindly: a coordinator looks);
3. claim: due queued rows move to ``sending`` in batches, one UPDATE … RETURNING per batch
   (on PostgreSQL the rows are picked in a CTE with ``FOR UPDATE SKIP LOCKED``, so two
   dispatchers never claim the same row), and a send task per row is enqueued after commit.
   With the broker (Redis) down the cycle stops claiming and ends normally: the rows it
   claimed stay claimed, never started, and the sweep of a cycle after ``STALE_AFTER`` puts
   them back in the queue.

The send task checks everything again under row locks (the assignment's, then the message's:
a submission in flight is waited for), records that it is about to call the provider
(committed), sends, then records the outcome. A row may be claimed long after its time (a
broker or beat outage, a sweep's requeue, a coordinator's "send now" in the evening), so the
time is checked there too, on the participant's clock: in the study's quiet hours the row goes
back to the queue for their end, and one overdue by more than ``CATCH_UP_LIMIT`` is skipped.
A transient provider error is retried with backoff (a round of ``MAX_ATTEMPTS``), and a row
whose round failed goes back to the queue for a later round (an outage may last hours), up to
``SEND_ROUNDS``; a permanent one fails the row with its reason. A coordinator's "send now"
queues a failed row again (a phone number corrected, say).
"""

import contextlib
import logging
import smtplib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, mailers
from django.db import connection, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import formats, timezone, translation
from kombu.exceptions import OperationalError as KombuOperationalError

from surveys.links import participant_link_create, participant_link_url
from surveys.models import Assignment, Message, Participant, ReminderRule
from surveys.reminders import QUIET_REASON, quiet_hours_apply
from surveys.scheduling import CATCH_UP_LIMIT
from surveys.sms import (
    SmsPermanentError,
    SmsTransientError,
    SmsUnavailable,
    sms_send,
)
from surveys.unsubscribe import unsubscribe_token

logger = logging.getLogger(__name__)

BATCH_SIZE = 1000
# A round of attempts: the first and four retries, 1, 2, 4 and 8 minutes apart (the task's).
MAX_ATTEMPTS = 5
# A provider's outage longer than a round: the row is queued again an hour later, then two,
# then four (on the participant's clock, out of the quiet hours), and fails after four rounds.
SEND_ROUNDS = 4
ROUND_WAIT = timedelta(hours=1)
# A claimed row whose send never started is requeued after this; one that started is reviewed.
# Longer than an attempt (the hard time limit) and the longest wait for its retry together: a
# retry claims its row again, so a row waiting for its retry is never taken for stale.
STALE_AFTER = timedelta(minutes=15)
INTERRUPTED = "interrupted while sending: it may have gone out; check before sending again"
TOO_LATE = (
    f"overdue by more than {CATCH_UP_LIMIT.total_seconds() / 3600:.0f} hours when its turn "
    "came; not sent late"
)
SUPERSEDED = "overdue; a later message of this survey goes instead"


@dataclass
class CycleResult:
    cancelled: int = 0
    requeued: int = 0
    to_review: int = 0
    claimed: int = 0
    batches: int = 0
    not_queued: int = 0  # claimed, but the broker could not be reached: left to the sweep
    claimed_ids: list[int] = field(default_factory=list)


def messages_settle(*, now: datetime) -> int:
    """Cancel queued messages that must never go, with the reason."""
    cancelled = 0
    for reason, condition in (
        ("completed", "a.status = 'completed'"),
        ("survey cancelled", "a.status = 'cancelled'"),
        ("window closed", "(a.status = 'missed' OR a.closes_at <= %s)"),
        ("participant no longer active", "p.status <> 'active'"),
    ):
        params = [reason, now]
        if "%s" in condition:
            params.append(now)
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE surveys_message SET status = 'cancelled', reason = %s, updated_at = %s
                WHERE status = 'queued' AND assignment_id IN (
                    SELECT a.id FROM surveys_assignment a
                    JOIN surveys_participant p ON p.id = a.participant_id
                    WHERE {condition}
                )
                """,  # noqa: S608 - the conditions are the constants above
                params,
            )
            cancelled += cursor.rowcount
    # After an outage several messages of one survey may be overdue at once: only the latest
    # goes, the older ones are skipped.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE surveys_message SET status = 'skipped', reason = %s, updated_at = %s
            WHERE status = 'queued' AND scheduled_at <= %s AND EXISTS (
                SELECT 1 FROM surveys_message later
                WHERE later.assignment_id = surveys_message.assignment_id
                  AND later.status = 'queued' AND later.scheduled_at <= %s
                  AND (later.scheduled_at > surveys_message.scheduled_at
                       OR (later.scheduled_at = surveys_message.scheduled_at
                           AND later.id > surveys_message.id))
            )
            """,
            [SUPERSEDED, now, now, now],
        )
        cancelled += cursor.rowcount
    return cancelled


def messages_sweep(*, now: datetime) -> tuple[int, int]:
    """(requeued, to review) for rows stuck in 'sending'."""
    stale = Message.objects.filter(status=Message.Status.SENDING, claimed_at__lt=now - STALE_AFTER)
    requeued = stale.filter(send_started_at__isnull=True).update(
        status=Message.Status.QUEUED, claimed_at=None, updated_at=now
    )
    reviewed = stale.filter(send_started_at__isnull=False).update(
        status=Message.Status.REVIEW,
        reason=INTERRUPTED,
        updated_at=now,
    )
    return requeued, reviewed


HOUSEKEEPING_LOCK = 7_461_001  # an arbitrary key for pg_try_advisory_xact_lock


def _housekeeping_lock() -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite runs one writer at a time anyway
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [HOUSEKEEPING_LOCK])
        return bool(cursor.fetchone()[0])


def _claim_batch(*, now: datetime, size: int) -> list[int]:
    if connection.vendor == "postgresql":
        # The rows are picked once, in a CTE: a LIMIT … SKIP LOCKED sub-select inside
        # "WHERE id IN (…)" may be run again for each outer row by the planner and would then
        # claim more than ``size`` rows (found by the two-dispatcher test).
        sql = """
            WITH picked AS (
                SELECT id FROM surveys_message
                WHERE status = 'queued' AND scheduled_at <= %s
                ORDER BY scheduled_at, id LIMIT %s
                FOR UPDATE SKIP LOCKED
            )
            UPDATE surveys_message m SET status = 'sending', claimed_at = %s, updated_at = %s
            FROM picked WHERE m.id = picked.id AND m.status = 'queued'
            RETURNING m.id
        """
        params = [now, size, now, now]
    else:  # SQLite: one writer at a time, the sub-select runs once
        sql = """
            UPDATE surveys_message SET status = 'sending', claimed_at = %s, updated_at = %s
            WHERE status = 'queued' AND id IN (
                SELECT id FROM surveys_message
                WHERE status = 'queued' AND scheduled_at <= %s
                ORDER BY scheduled_at, id LIMIT %s
            )
            RETURNING id
        """
        params = [now, now, now, size]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def _enqueue(ids: list[int]) -> None:
    from surveys.tasks import message_send  # tasks import this module

    with message_send.app.producer_or_acquire() as producer:
        for message_id in ids:
            message_send.apply_async((message_id,), producer=producer)


def reminders_dispatch(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, enqueue: bool = True
) -> CycleResult:
    """One dispatch cycle (see the module's docstring). ``enqueue=False`` claims without
    enqueueing (the benchmark and tests that send by hand)."""
    now = now or timezone.now()
    result = CycleResult()
    with transaction.atomic():
        # Settling and sweeping update the same rows in one set-based statement each; two
        # dispatchers doing it at once could deadlock. One does it, the other goes on to claim.
        if _housekeeping_lock():
            result.cancelled = messages_settle(now=now)
            result.requeued, result.to_review = messages_sweep(now=now)
    not_queued: list[int] = []

    def enqueue_or_leave(ids: list[int]) -> None:
        try:
            _enqueue(ids)
        except (KombuOperationalError, OSError) as exc:
            # The broker is down and the claims are committed. The rows whose task did not
            # get through never start sending, so the sweep requeues them once they are
            # STALE_AFTER old; any that did get through are sent by it. Raising here would end
            # the cycle with a traceback and change nothing more.
            logger.warning(
                "reminders: the broker is unreachable (%s); %d claimed message(s) not queued, "
                "requeued by a later cycle",
                type(exc).__name__,
                len(ids),
            )
            not_queued.extend(ids)

    while True:
        with transaction.atomic():
            ids = _claim_batch(now=now, size=batch_size)
            if ids and enqueue:
                transaction.on_commit(lambda ids=ids: enqueue_or_leave(ids))
        if not ids:
            return result
        result.claimed += len(ids)
        result.claimed_ids += ids
        result.batches += 1
        if not_queued:  # no broker: claim no more rows this cycle
            result.not_queued = len(not_queued)
            return result


# Contact fields the dry run's checks do not read (each would be decrypted for nothing).
UNREAD_CONTACT = ("first_name", "last_name", "alternative_contacts", "locator_notes")


def reminders_dry_run(
    *, now: datetime | None = None, participants=None, limit: int = 2000
) -> list[Message]:
    """What the next cycle would claim (nothing is claimed), for these participants or all,
    each with what the cycle and the send would do now: ``would`` is ``"send"``, ``"wait"``
    (in the study's quiet hours on the participant's clock: back in the queue for their end)
    or the status the cycle's settling or the send's last check would give it (skipped,
    cancelled), and ``would_note`` says why."""
    now = now or timezone.now()
    rows = Message.objects.filter(status=Message.Status.QUEUED, scheduled_at__lte=now)
    if participants is not None:
        rows = rows.filter(assignment__participant__in=participants)
    due = list(
        rows.exclude(assignment__status__in=("completed", "cancelled", "missed"))
        .filter(assignment__closes_at__gt=now)
        .filter(assignment__participant__status=Participant.Status.ACTIVE)
        .select_related(
            "assignment__wave",
            "assignment__participant__contact",
            "assignment__participant__study",
        )
        # Only the two contact fields the checks read are decrypted.
        .defer(*(f"assignment__participant__contact__{name}" for name in UNREAD_CONTACT))
        .order_by("scheduled_at", "id")[:limit]
    )
    latest = {}  # the cycle's settling first: of a survey's due messages only the latest goes
    for message in due:
        latest[message.assignment_id] = message.pk
    for message in due:  # then the send's own checks, in its order
        if latest[message.assignment_id] != message.pk:
            message.would, message.would_note = Message.Status.SKIPPED, SUPERSEDED
            continue
        refused = _why_not(message, now)
        morning = None if refused else _quiet_hours_end(message, now)
        if refused:
            message.would, message.would_note = refused
        elif morning is not None:
            local = timezone.localtime(morning, ZoneInfo(message.assignment.participant.timezone))
            message.would = "wait"
            message.would_note = (
                f"quiet hours: waits until {local:%H:%M} the participant's time "
                f"({morning:%Y-%m-%d %H:%M} UTC)"
            )
        else:
            message.would, message.would_note = "send", ""
    return due


# --- Sending one message ----------------------------------------------------------------------


class RetryLater(Exception):
    """The provider said no for now: nothing went out, try again later."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MaybeSent(RetryLater):
    """The connection broke after the request may have reached the provider."""


def _why_not(message: Message, now: datetime) -> tuple[str, str] | None:
    """(status, reason) when the message must not go, checked just before sending."""
    assignment = message.assignment
    participant = assignment.participant
    if participant.status != Participant.Status.ACTIVE:
        return Message.Status.CANCELLED, "participant no longer active"
    if assignment.status == Assignment.Status.COMPLETED:
        return Message.Status.CANCELLED, "completed"
    if assignment.status == Assignment.Status.CANCELLED:
        return Message.Status.CANCELLED, "survey cancelled"
    if assignment.status == Assignment.Status.MISSED or now >= assignment.closes_at:
        return Message.Status.CANCELLED, "window closed"
    contact = getattr(participant, "contact", None)
    if message.channel == Message.Channel.EMAIL:
        if participant.email_opt_out_at:
            return Message.Status.CANCELLED, "opted out"
        if not (contact and contact.email):
            return Message.Status.SKIPPED, "no contact"
    else:
        if participant.sms_opt_out_at:
            return Message.Status.CANCELLED, "opted out"
        if not (contact and contact.phone):
            return Message.Status.SKIPPED, "no contact"
    if now - message.scheduled_at > CATCH_UP_LIMIT:
        return Message.Status.SKIPPED, TOO_LATE
    return None


def _quiet_hours_end(message: Message, now: datetime) -> datetime | None:
    """The end of the study's quiet hours when ``now`` is in them on the participant's clock."""
    participant = message.assignment.participant
    study = participant.study
    at = quiet_hours_apply(
        now, ZoneInfo(participant.timezone), study.quiet_hours_start, study.quiet_hours_end
    )
    return at if at != now else None


def message_send(*, message_id: int, now: datetime | None = None) -> str:
    """Send one claimed message, at most once. Returns its status afterwards; raises
    RetryLater for a transient provider error (the row is ready to be tried again)."""
    now = now or timezone.now()
    with transaction.atomic():
        assignment_id = (
            Message.objects.filter(pk=message_id).values_list("assignment_id", flat=True).first()
        )
        if assignment_id is None:
            return "missing"
        # The survey's row first, then the message's: a submission holds the assignment's
        # lock until it commits, so a completion in flight is waited for and then seen (the
        # message's own lock alone let the check read "open" and send after completion). The
        # same order as a submission and a re-plan (assignment, then its messages), so none
        # of them can deadlock with a send. The statement below starts after the wait and so
        # reads the assignment as it was committed.
        Assignment.objects.select_for_update(no_key=True).filter(pk=assignment_id).exists()
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related(
                "assignment__wave",
                "assignment__participant__contact",
                "assignment__participant__study",
                "rule",
            )
            .filter(pk=message_id)
            .first()
        )
        if message is None or message.status != Message.Status.SENDING:
            return message.status if message else "missing"  # already handled: idempotent
        if message.send_started_at is not None:
            # A previous run got as far as the provider and then vanished (a killed worker
            # redelivered by acks_late): it may have gone out.
            message.status = Message.Status.REVIEW
            message.reason = INTERRUPTED
            message.save(update_fields=["status", "reason", "updated_at"])
            return message.status
        refused = _why_not(message, now)
        if refused:
            message.status, message.reason = refused
            message.save(update_fields=["status", "reason", "updated_at"])
            return message.status
        morning = _quiet_hours_end(message, now)
        if morning is not None:
            # Claimed at night (planned for the day, but its turn came late): back in the
            # queue for the end of the quiet hours, where the planner would have put it.
            message.status = Message.Status.QUEUED
            message.scheduled_at = morning
            message.claimed_at = None
            message.reason = QUIET_REASON
            message.save(
                update_fields=["status", "scheduled_at", "claimed_at", "reason", "updated_at"]
            )
            return message.status
        message.send_started_at = now
        message.attempts += 1
        message.save(update_fields=["send_started_at", "attempts", "updated_at"])

    try:
        provider_id = _deliver(message, now)
    except MaybeSent as exc:
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.REVIEW,
            reason=f"provider error after sending began: {exc.reason}; it may have gone out",
            updated_at=timezone.now(),
        )
        return Message.Status.REVIEW
    except RetryLater as exc:
        if message.attempts % MAX_ATTEMPTS:
            # A retry claims the row again: the sweep requeues a claim STALE_AFTER old whose
            # send has not started, and the waits add up to more than that from the first
            # claim (1 + 2 + 4 + 8 minutes, and the attempts), so it would start a second
            # chain of tasks for a row whose retry is still to come.
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.SENDING,
                send_started_at=None,
                claimed_at=now,
                reason=f"provider error: {exc.reason} (will retry)",
                updated_at=timezone.now(),
            )
            raise
        return _round_failed(message, exc.reason, now)
    except SmsPermanentError as exc:
        Message.objects.filter(pk=message.pk).update(
            status=Message.Status.FAILED,
            reason=f"provider error: {exc.reason}",
            updated_at=timezone.now(),
        )
        return Message.Status.FAILED
    sent_at = timezone.now()
    with transaction.atomic():
        marked = (
            Message.objects.filter(pk=message.pk)
            .exclude(status=Message.Status.SENT)
            .update(
                status=Message.Status.SENT,
                provider_id=provider_id[:100],
                sent_at=sent_at,
                reason="",
                updated_at=sent_at,
            )
        )
        # Counted once, with the message, for the retention dashboard; one that arrives after
        # the participant completed (they finished while it was being sent) is not a message
        # they completed after.
        if marked:
            Assignment.objects.filter(pk=message.assignment_id, completed_at=None).update(
                messages_sent=F("messages_sent") + 1,
                first_message_at=Coalesce(F("first_message_at"), Value(sent_at)),
            )
    return Message.Status.SENT


def _round_failed(message: Message, reason: str, now: datetime) -> str:
    """After a round of attempts failed with transient errors (a provider's outage outlasts
    the quarter of an hour of one round): the row goes back to the queue for a later round,
    ``ROUND_WAIT`` after this one and twice as long after each next (on the participant's
    clock, out of the quiet hours), and fails for good after ``SEND_ROUNDS`` rounds, or where
    the survey closes before the next round."""
    rounds = message.attempts // MAX_ATTEMPTS
    at = now + ROUND_WAIT * 2 ** (rounds - 1)
    participant = message.assignment.participant
    study = participant.study
    at = quiet_hours_apply(
        at, ZoneInfo(participant.timezone), study.quiet_hours_start, study.quiet_hours_end
    )
    tried = f"provider error: {reason} (tried {message.attempts} times"
    if rounds >= SEND_ROUNDS or at >= message.assignment.closes_at:
        Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
            status=Message.Status.FAILED,
            send_started_at=None,
            reason=f"{tried}; not tried again)",
            updated_at=timezone.now(),
        )
        return Message.Status.FAILED
    Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
        status=Message.Status.QUEUED,
        send_started_at=None,
        claimed_at=None,
        scheduled_at=at,
        reason=f"{tried}; trying again at {at:%Y-%m-%d %H:%M} UTC)",
        updated_at=timezone.now(),
    )
    return Message.Status.QUEUED


def message_texts(message: Message, url: str, unsubscribe_url: str) -> dict:
    """Subject, text, HTML and SMS of a message in the participant's language."""
    assignment = message.assignment
    participant = assignment.participant
    contact = getattr(participant, "contact", None)
    with translation.override(participant.language), timezone.override(participant.timezone):
        language = translation.get_language()
        context = {
            "first_name": (contact.first_name if contact else "") or "",
            "wave": assignment.wave.name_in(language),
            "due": formats.date_format(timezone.localtime(assignment.due_at), "j F Y"),
            # The last day it can be answered (not the midnight that closes it).
            "closes": formats.date_format(assignment.last_day(), "j F Y"),
            "url": url,
            "unsubscribe_url": unsubscribe_url,
            "reminder": (
                message.rule.kind != ReminderRule.Kind.INVITATION
                if message.rule
                else message.sequence > 0
            ),
            "study": participant.study.name,
        }
        return {
            "subject": render_to_string("messages/subject.txt", context).strip(),
            "text": render_to_string("messages/email.txt", context),
            "html": render_to_string("messages/email.html", context),
            "sms": render_to_string("messages/sms.txt", context).strip(),
        }


def _deliver(message: Message, now: datetime) -> str:
    participant = message.assignment.participant
    _link, token = participant_link_create(participant=participant, now=now)
    url = participant_link_url(token)
    unsubscribe_url = settings.SITE_URL + reverse(
        "participant-unsubscribe", args=[unsubscribe_token(participant.pk)]
    )
    texts = message_texts(message, url, unsubscribe_url)
    contact = participant.contact
    if message.channel == Message.Channel.SMS:
        try:
            return sms_send(to=contact.phone, body=texts["sms"])
        except SmsTransientError as exc:
            if exc.may_have_been_sent:
                raise MaybeSent(exc.reason) from None
            raise RetryLater(exc.reason) from None
        except SmsUnavailable:
            raise SmsPermanentError("no SMS provider is configured") from None
    message_id = make_msgid(domain="recovery-study")
    email = EmailMultiAlternatives(
        subject=texts["subject"],
        body=texts["text"],
        to=[contact.email],
        headers={
            "Message-ID": message_id,
            "List-Unsubscribe": f"<{unsubscribe_url}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )
    email.attach_alternative(texts["html"], "text/html")
    mailer = mailers.default  # a new backend instance
    try:
        mailer.open()  # nothing has gone out yet: a failure here is safe to retry
    except OSError as exc:
        raise RetryLater(type(exc).__name__) from None
    try:
        mailer.send_messages([email])
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
        # The server refused the address for good. The exception's text names the address.
        raise SmsPermanentError(f"e-mail refused ({type(exc).__name__})") from None
    except ValueError:  # Django refuses a malformed address before sending
        raise SmsPermanentError("the e-mail address is not valid") from None
    except OSError as exc:
        # The message may have been accepted before the connection broke (a lost reply, an
        # error on QUIT): sending again could deliver it twice.
        raise MaybeSent(type(exc).__name__) from None
    finally:
        with contextlib.suppress(Exception):
            mailer.close()
    return message_id
