"""Planning invitations and reminders: when each message of an assignment goes.

Every time is worked out on the participant's own calendar (their time zone, with its DST
changes) and then stored in UTC. A local time that does not exist (the hour skipped when clocks
go forward) moves forward by the length of the gap; a local time that happens twice (when
clocks go back) is the first of the two. Quiet hours (the study's, e.g. 21:00–09:00) move a
message to their end, on the participant's clock.

The plan is data: one ``Message`` row per assignment × sequence (0 = the invitation) on the
participant's channel. Planning again (a rule edited) replaces the rows still queued and never
touches one that was claimed, sent or settled.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from surveys.models import (
    Assignment,
    Message,
    Participant,
    ParticipantContact,
    ReminderRule,
    Study,
    Wave,
)
from surveys.scheduling import CATCH_UP_LIMIT

UTC = ZoneInfo("UTC")
OPEN_STATUSES = (Assignment.Status.SCHEDULED, Assignment.Status.OPEN, Assignment.Status.IN_PROGRESS)
QUIET_REASON = "deferred for quiet hours"
# Messages that went out or may have: nothing is planned again at or before them.
HANDLED = (
    Message.Status.SENT,
    Message.Status.SENDING,
    Message.Status.REVIEW,
    Message.Status.FAILED,
)


# --- Local time -------------------------------------------------------------------------------


def local_moment(day: date, at: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``at`` on the clock of ``zone``, as an aware UTC datetime.

    A skipped local time (clocks going forward) is moved forward by the length of the gap
    (02:30 on a night that skips 02:00–03:00 becomes 03:30); a repeated one (clocks going back)
    is its first occurrence.
    """
    return datetime.combine(day, at).replace(tzinfo=zone, fold=0).astimezone(UTC)


def _in_quiet(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end  # wraps midnight


def quiet_hours_apply(moment: datetime, zone: ZoneInfo, start: time, end: time) -> datetime:
    """``moment``, or the end of the quiet hours it falls in (participant's clock)."""
    local = moment.astimezone(zone)
    if not _in_quiet(local.time(), start, end):
        return moment
    day = local.date()
    if start > end and local.time() >= start:
        day += timedelta(days=1)  # late evening: the quiet hours end tomorrow morning
    return local_moment(day, end, zone)


# --- The plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    sequence: int
    scheduled_at: datetime
    rule: ReminderRule | None
    deferred: bool  # moved by quiet hours
    # "<rule id>:<n>" of every rule message that landed on this minute (Message.plan_key)
    keys: tuple[str, ...] = ()


def rules_for(wave: Wave, rules: list[ReminderRule]) -> list[ReminderRule]:
    """The wave's own active rules, or else the study's defaults."""
    own = [r for r in rules if r.wave_id == wave.pk and r.is_active]
    if own:
        return own
    return [r for r in rules if r.wave_id is None and r.is_active]


def _rule_times(rule: ReminderRule, assignment: Assignment, zone: ZoneInfo) -> list[datetime]:
    opens, closes = assignment.opens_at, assignment.closes_at
    kind = ReminderRule.Kind
    if rule.kind == kind.INVITATION:
        return [opens]
    if rule.kind == kind.EVERY:
        if not rule.every_hours or not rule.times:
            return []
        # Hours on the participant's clock: "every 48 hours" from a 10:00 invitation stays at
        # 10:00 across a DST change.
        local_open = opens.astimezone(zone)
        found = []
        for n in range(1, rule.times + 1):
            step = local_open.replace(tzinfo=None) + timedelta(hours=rule.every_hours * n)
            found.append(local_moment(step.date(), step.time(), zone))
        return found
    if rule.kind == kind.WEEKDAY:
        at = rule.at_time or time(10, 0)
        local_open = opens.astimezone(zone)
        day = local_open.date() + timedelta(days=1)
        if rule.weekday is not None:
            while day.weekday() != rule.weekday:
                day += timedelta(days=1)
        return [local_moment(day, at, zone)]
    if rule.kind == kind.EXACT:
        if rule.on_date is None:
            return []
        return [local_moment(rule.on_date, rule.at_time or time(10, 0), zone)]
    if rule.kind == kind.LAST_CALL:
        if rule.days_before_close is None:
            return []
        local_close = closes.astimezone(zone)
        day = local_close.date() - timedelta(days=rule.days_before_close)
        return [local_moment(day, rule.at_time or local_close.time(), zone)]
    return []


def plan_times(
    *, assignment: Assignment, study: Study, rules: list[ReminderRule], zone: ZoneInfo
) -> list[Planned]:
    """Every message of one assignment in time order, numbered from 0 (the invitation when
    there is one), each inside the window and outside quiet hours. Two rules landing on the
    same minute give one message."""
    moments: dict[datetime, tuple[ReminderRule, bool, list[str]]] = {}
    for rule in rules_for(assignment.wave, rules):
        for n, raw in enumerate(_rule_times(rule, assignment, zone)):
            moved = quiet_hours_apply(raw, zone, study.quiet_hours_start, study.quiet_hours_end)
            if moved < assignment.opens_at or moved >= assignment.closes_at:
                continue  # outside the window (a study default's exact date, say)
            minute = moved.replace(second=0, microsecond=0)
            if minute not in moments:
                moments[minute] = (rule, moved != raw, [])
            moments[minute][2].append(f"{rule.pk}:{n}")
    return [
        Planned(sequence, moment, rule, deferred, tuple(keys))
        for sequence, (moment, (rule, deferred, keys)) in enumerate(sorted(moments.items()))
    ]


def channel_for(participant: Participant, contact: ParticipantContact | None) -> tuple[str, str]:
    """(channel, reason): the preferred channel, else the other one; '' with a reason when
    neither can be used."""
    has = {
        Message.Channel.EMAIL: bool(contact and contact.email) and not participant.email_opt_out_at,
        Message.Channel.SMS: bool(contact and contact.phone) and not participant.sms_opt_out_at,
    }
    preferred = participant.preferred_channel
    other = Message.Channel.EMAIL if preferred == Message.Channel.SMS else Message.Channel.SMS
    for channel in (preferred, other):
        if has[channel]:
            return channel, ""
    if participant.email_opt_out_at or participant.sms_opt_out_at:
        return "", "opted out"
    return "", "no contact"


def assignments_locked(participants) -> list[Assignment]:
    """The participants' assignments, their rows locked in pk order, for a change of theirs
    (an opt-out) that touches their messages and then re-plans them: assignment, then its
    messages, the order ``reminders_plan`` and the dispatcher follow, so such a change during
    a reminder rule's re-plan waits instead of deadlocking."""
    return list(
        Assignment.objects.select_for_update()
        .filter(participant__in=participants)
        .order_by("pk")
        .only("pk")
    )


@transaction.atomic
def reminders_plan(*, assignments, now: datetime | None = None) -> int:
    """(Re)plan the messages of these assignments; returns how many rows were queued.

    Rows still queued are replaced (and those planned as not going whose time has not come);
    rows claimed, sent or settled stay, and neither a message
    that went (by its rule and place in the rule, wherever it was moved) nor anything planned
    at or before the last of them is planned again (so an edit never repeats a message). Of the
    moments already past, only the latest (within a day) is kept: a late plan sends one
    catch-up message, not a backlog.
    """
    now = now or timezone.now()
    assignments = list(
        Assignment.objects.filter(pk__in=[a.pk for a in assignments], status__in=OPEN_STATUSES)
        .select_related("wave", "participant__study")
        .order_by("pk")
    )
    if not assignments:
        return 0
    # Each participant's contact once, and only the two fields that decide the channel
    # (decrypting is the cost here, not the query).
    contacts = {
        contact.participant_id: contact
        for contact in ParticipantContact.objects.filter(
            participant__in={a.participant_id for a in assignments}
        ).only("participant", "email", "phone")
    }
    studies = {a.participant.study_id for a in assignments}
    rules = list(ReminderRule.objects.filter(study_id__in=studies))
    # One re-plan of an assignment at a time (two admin saves at once would plan twice).
    list(
        Assignment.objects.select_for_update()
        .filter(pk__in=[a.pk for a in assignments])
        .values_list("pk", flat=True)
    )
    # Rows still queued are replaced, and so are those planned as not going (no channel, opted
    # out) whose time has not come: a re-plan of someone unreachable leaves one set of them, not
    # one more each time. Those of moments past stay, the record of what did not go.
    # A row queued again after a round of failed attempts (a provider's outage) is kept: it is
    # waiting for its next round, and planned anew it would go at once and start the rounds
    # over (found by review).
    Message.objects.filter(
        Q(status=Message.Status.QUEUED, attempts=0)
        | Q(status=Message.Status.SKIPPED, scheduled_at__gt=now),
        assignment__in=assignments,
    ).delete()
    # New rows are numbered after every row kept (history stays), but only messages that went
    # or may have gone out block their times: cancelled or skipped ones (a participant back
    # from lost to follow-up, a contact added later) are planned again.
    # A message that went (or may have) is known by its rule and place in the rule
    # (``plan_key``) wherever it went: sent early by "send now", or moved by an edit, it is
    # not planned again.
    last_sequences: dict[int, int] = {}
    handled_until: dict[int, datetime] = {}
    handled_keys: dict[int, set[str]] = {}
    for assignment_id, sequence, scheduled_at, status, plan_key, attempts in Message.objects.filter(
        assignment__in=assignments
    ).values_list("assignment_id", "sequence", "scheduled_at", "status", "plan_key", "attempts"):
        last_sequences[assignment_id] = max(last_sequences.get(assignment_id, -1), sequence)
        if status in HANDLED or (status == Message.Status.QUEUED and attempts):
            handled_until[assignment_id] = max(
                handled_until.get(assignment_id, scheduled_at), scheduled_at
            )
            if plan_key:
                handled_keys.setdefault(assignment_id, set()).update(plan_key.split(","))
    rows = []
    for assignment in assignments:
        participant = assignment.participant
        if participant.status != Participant.Status.ACTIVE:
            continue
        zone = ZoneInfo(participant.timezone)
        channel, why_not = channel_for(participant, contacts.get(participant.pk))
        last_sequence = last_sequences.get(assignment.pk, -1)
        last_at = handled_until.get(assignment.pk)
        went = handled_keys.get(assignment.pk, set())
        planned = [
            p
            for p in plan_times(
                assignment=assignment,
                study=participant.study,
                rules=[r for r in rules if r.study_id == participant.study_id],
                zone=zone,
            )
            if (last_at is None or p.scheduled_at > last_at) and not went.intersection(p.keys)
        ]
        past = [p for p in planned if p.scheduled_at <= now]
        planned = [p for p in planned if p.scheduled_at > now]
        if past and past[-1].scheduled_at > now - CATCH_UP_LIMIT:
            # One catch-up message, now or (at night) when the quiet hours end.
            catch_up = past[-1]
            at = quiet_hours_apply(
                now, zone, participant.study.quiet_hours_start, participant.study.quiet_hours_end
            )
            if at < assignment.closes_at and (not planned or at < planned[0].scheduled_at):
                planned.insert(
                    0, Planned(catch_up.sequence, at, catch_up.rule, at != now, catch_up.keys)
                )
        for offset, item in enumerate(planned, start=1):
            rows.append(
                Message(
                    assignment=assignment,
                    sequence=last_sequence + offset,
                    channel=channel or participant.preferred_channel,
                    rule=item.rule,
                    plan_key=",".join(item.keys)[:200],
                    scheduled_at=item.scheduled_at,
                    status=Message.Status.QUEUED if channel else Message.Status.SKIPPED,
                    reason=why_not or (QUIET_REASON if item.deferred else ""),
                )
            )
    Message.objects.bulk_create(rows, batch_size=2000)
    return sum(1 for row in rows if row.status == Message.Status.QUEUED)


def wave_replan(*, wave: Wave | None, study: Study, now: datetime | None = None) -> int:
    """After a rule changed: re-plan the unsent messages of the wave (every wave of the study
    for a study default)."""
    assignments = Assignment.objects.filter(
        participant__study=study, status__in=OPEN_STATUSES
    ).filter(Q(wave=wave) if wave is not None else Q())
    return reminders_plan(assignments=list(assignments.only("pk")), now=now)
