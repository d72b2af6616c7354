"""Invitations and reminders: when they are planned (each timing mode, DST, quiet hours), and
that they are sent once and never after completion, withdrawal or opt-out."""

import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from surveys import sms
from surveys.dispatch import message_send, reminders_dispatch, reminders_dry_run
from surveys.models import Assignment, Message, Participant, ReminderRule, Study, Wave
from surveys.reminders import local_moment, plan_times, quiet_hours_apply
from surveys.services import participant_status_change

NY, LONDON, TEHRAN = (ZoneInfo(z) for z in ("America/New_York", "Europe/London", "Asia/Tehran"))


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def plan(rules, *, zone, opens, closes, quiet=(time(21), time(9))):
    """Plan one unsaved assignment of an unsaved wave with these rules."""
    study = Study(quiet_hours_start=quiet[0], quiet_hours_end=quiet[1])
    wave = Wave(pk=1, name="1 month")
    assignment = Assignment(wave=wave, opens_at=opens, closes_at=closes, due_at=opens)
    for rule in rules:
        rule.wave_id = 1
        rule.is_active = True
    return [
        p.scheduled_at.astimezone(zone).replace(tzinfo=None)
        for p in plan_times(assignment=assignment, study=study, rules=rules, zone=zone)
    ]


# --- Local time and quiet hours ------------------------------------------------------------


def test_a_skipped_local_time_moves_forward_and_a_repeated_one_is_the_first():
    # New York springs forward at 02:00 on 8 March 2026; falls back at 02:00 on 1 November.
    assert local_moment(date(2026, 3, 8), time(2, 30), NY) == utc(2026, 3, 8, 7, 30)
    assert local_moment(date(2026, 3, 8), time(2, 30), NY).astimezone(NY).hour == 3
    assert local_moment(date(2026, 11, 1), time(1, 30), NY) == utc(2026, 11, 1, 5, 30)  # EDT


def test_quiet_hours_move_a_message_to_their_end_on_the_participants_clock():
    start, end = time(21), time(9)
    late = local_moment(date(2026, 6, 1), time(22, 15), LONDON)
    assert quiet_hours_apply(late, LONDON, start, end) == local_moment(
        date(2026, 6, 2), time(9), LONDON
    )
    early = local_moment(date(2026, 6, 1), time(6, 0), TEHRAN)
    assert quiet_hours_apply(early, TEHRAN, start, end) == local_moment(
        date(2026, 6, 1), time(9), TEHRAN
    )
    fine = local_moment(date(2026, 6, 1), time(12, 0), NY)
    assert quiet_hours_apply(fine, NY, start, end) == fine


def test_tehran_keeps_one_offset_all_year():
    # Iran stopped daylight saving in 2022: 09:00 in Tehran is 05:30 UTC in winter and summer.
    assert local_moment(date(2026, 1, 10), time(9), TEHRAN) == utc(2026, 1, 10, 5, 30)
    assert local_moment(date(2026, 7, 10), time(9), TEHRAN) == utc(2026, 7, 10, 5, 30)


# --- Each timing mode ----------------------------------------------------------------------


def test_every_n_hours_keeps_the_local_clock_time_across_a_dst_change():
    # Invitation Friday 6 March 2026 at 10:00 in New York, then every 48 hours, 3 times:
    # Sunday 8 March is the spring-forward day, and the reminders stay at 10:00 local.
    opens = local_moment(date(2026, 3, 6), time(10), NY)
    times = plan(
        [
            ReminderRule(kind=ReminderRule.Kind.INVITATION),
            ReminderRule(kind=ReminderRule.Kind.EVERY, every_hours=48, times=3),
        ],
        zone=NY,
        opens=opens,
        closes=opens + timedelta(days=28),
    )
    assert times == [datetime(2026, 3, d, 10, 0) for d in (6, 8, 10, 12)]


def test_the_next_given_weekday_at_a_local_time_in_london_across_the_autumn_change():
    # Window opens Thursday 22 October 2026; the clocks go back on Sunday 25 October.
    opens = local_moment(date(2026, 10, 22), time(10), LONDON)
    times = plan(
        [ReminderRule(kind=ReminderRule.Kind.WEEKDAY, weekday=0, at_time=time(18, 30))],
        zone=LONDON,
        opens=opens,
        closes=opens + timedelta(days=28),
    )
    assert times == [datetime(2026, 10, 26, 18, 30)]  # Monday, 18:30 GMT (was BST)
    any_day = plan(
        [ReminderRule(kind=ReminderRule.Kind.WEEKDAY, weekday=None, at_time=time(12))],
        zone=LONDON,
        opens=opens,
        closes=opens + timedelta(days=28),
    )
    assert any_day == [datetime(2026, 10, 23, 12, 0)]


def test_an_exact_local_date_and_time_in_tehran():
    opens = local_moment(date(2026, 5, 1), time(10), TEHRAN)
    times = plan(
        [ReminderRule(kind=ReminderRule.Kind.EXACT, on_date=date(2026, 5, 9), at_time=time(11))],
        zone=TEHRAN,
        opens=opens,
        closes=opens + timedelta(days=28),
    )
    assert times == [datetime(2026, 5, 9, 11, 0)]


def test_a_last_call_days_before_the_window_closes():
    opens = local_moment(date(2026, 3, 1), time(10), NY)
    closes = local_moment(date(2026, 3, 29), time(10), NY)
    times = plan(
        [ReminderRule(kind=ReminderRule.Kind.LAST_CALL, days_before_close=2, at_time=time(18))],
        zone=NY,
        opens=opens,
        closes=closes,
    )
    assert times == [datetime(2026, 3, 27, 18, 0)]


def test_quiet_hours_and_the_window_bound_every_plan():
    opens = local_moment(date(2026, 6, 1), time(20), LONDON)
    times = plan(
        [
            ReminderRule(kind=ReminderRule.Kind.INVITATION),
            ReminderRule(kind=ReminderRule.Kind.EVERY, every_hours=2, times=2),  # 22:00, 00:00
            ReminderRule(kind=ReminderRule.Kind.EXACT, on_date=date(2026, 7, 30), at_time=time(10)),
        ],
        zone=LONDON,
        opens=opens,
        closes=opens + timedelta(days=7),
    )
    # 20:00 goes; 22:00 and midnight both wait for 09:00 (one message); 30 July is too late.
    assert times == [datetime(2026, 6, 1, 20, 0), datetime(2026, 6, 2, 9, 0)]


# --- Planning in the database --------------------------------------------------------------


@pytest.fixture
def reachable(site_a, enrol):
    """A participant whose 1-month window is open now, with e-mail and phone. The window opens
    23 days after enrolment, here at New York's last midnight, so its invitation is due today
    whatever the date and hour the tests run at (enrolled 30 days ago, the invitation and
    reminders would be days old, and only one within the last day is caught up)."""
    return enrol(
        site=site_a,
        code="NYC-0042",
        enrolled_on=timezone.localdate(timezone=NY) - timedelta(days=23),
        timezone="America/New_York",
        contact={"email": "dana@example.org", "phone": "+1 555 010 4477", "first_name": "Dana"},
    )


def month1_messages(participant):
    return Message.objects.filter(assignment__participant=participant, assignment__wave__slug="m1")


def test_enrolment_plans_the_invitation_and_reminders_of_every_wave(reachable):
    messages = month1_messages(reachable).order_by("sequence")
    assert [m.sequence for m in messages] == list(range(messages.count()))
    assert {m.channel for m in messages} == {Message.Channel.EMAIL}  # the preferred channel
    for message in messages:
        local = message.scheduled_at.astimezone(NY).time()
        assert time(9) <= local < time(21), "quiet hours"
    # Every wave whose window has not closed has its messages; the baseline (closed) has none.
    open_waves = set(
        reachable.assignments.filter(closes_at__gt=timezone.now()).values_list("wave", flat=True)
    )
    planned_waves = set(
        Message.objects.filter(assignment__participant=reachable).values_list(
            "assignment__wave", flat=True
        )
    )
    assert planned_waves == open_waves and len(open_waves) == 4


def test_without_an_email_address_the_texts_go_by_sms(site_a, enrol):
    participant = enrol(
        site=site_a, code="NYC-0050", enrolled_on=timezone.localdate(),
        contact={"phone": "+1 555 010 4478"},
    )  # fmt: skip
    assert set(Message.objects.filter(assignment__participant=participant).values_list(
        "channel", flat=True
    )) == {Message.Channel.SMS}  # fmt: skip


def test_editing_a_rule_replans_only_the_unsent_messages_and_never_repeats_one(reachable):
    from surveys.reminders import wave_replan

    first = month1_messages(reachable).order_by("sequence").first()
    Message.objects.filter(pk=first.pk).update(status=Message.Status.SENT)
    ReminderRule.objects.filter(study=reachable.study, kind=ReminderRule.Kind.EVERY).update(times=4)
    wave_replan(wave=None, study=reachable.study)
    after = list(month1_messages(reachable).order_by("sequence"))
    assert after[0].pk == first.pk and after[0].status == Message.Status.SENT
    assert all(m.scheduled_at > first.scheduled_at for m in after[1:])
    assert len({m.sequence for m in after}) == len(after)


@pytest.fixture
def june_person(site_a, enrol):
    """Enrolled 1 June 2026 in New York: month 1 opens 24 June, the invitation at 09:00 EDT
    (13:00 UTC), reminders 27 and 30 June at 09:00 EDT, the last call 28 July at 18:00 EDT."""
    return enrol(
        site=site_a,
        code="NYC-0901",
        enrolled_on=date(2026, 6, 1),
        timezone="America/New_York",
        contact={"email": "jun@example.org"},
        now=utc(2026, 6, 20, 12),
    )


def sent_now(now) -> list[str]:
    """One dispatch cycle at ``now``, each claimed message sent straight away."""
    from surveys.services import assignment_statuses_refresh

    assignment_statuses_refresh(now=now)
    claimed = reminders_dispatch(now=now, enqueue=False).claimed_ids
    return [message_send(message_id=pk, now=now) for pk in claimed]


def test_a_reminder_sent_early_is_not_planned_again_by_a_later_replan(june_person):
    """Send now brings the first reminder forward from 27 June; the participant's page is
    saved later (it plans again): the reminder is not queued a second time for 27 June."""
    from surveys.reminders import reminders_plan
    from surveys.services import assignment_send_now

    assert sent_now(utc(2026, 6, 24, 13, 1)) == ["sent"]  # the invitation
    reminder = month1_messages(june_person).filter(status="queued").earliest("scheduled_at")
    assert reminder.scheduled_at == utc(2026, 6, 27, 13)
    assert assignment_send_now(assignment=reminder.assignment, now=utc(2026, 6, 24, 15)) == 1
    assert sent_now(utc(2026, 6, 24, 15)) == ["sent"]
    queued = set(month1_messages(june_person).filter(status="queued").values_list("scheduled_at"))
    reminders_plan(assignments=list(june_person.assignments.all()), now=utc(2026, 6, 24, 16))
    after = set(month1_messages(june_person).filter(status="queued").values_list("scheduled_at"))
    assert after == queued and (utc(2026, 6, 27, 13),) not in after
    # and on 27 June nothing goes
    assert sent_now(utc(2026, 6, 27, 13, 1)) == []


def test_a_last_call_moved_later_after_it_went_does_not_go_again(june_person):
    from surveys.reminders import wave_replan

    assert sent_now(utc(2026, 7, 28, 22, 1)) == ["sent"]  # the last call, 18:00 EDT
    assert month1_messages(june_person).get(status="sent").rule.kind == "last_call"
    rule = ReminderRule.objects.get(study=june_person.study, kind="last_call")
    rule.at_time = time(19)
    rule.save()
    wave_replan(wave=None, study=june_person.study, now=utc(2026, 7, 28, 22, 5))
    assert sent_now(utc(2026, 7, 28, 23, 1)) == []
    assert month1_messages(june_person).filter(status="sent").count() == 1


def test_more_reminders_after_one_went_adds_only_the_new_ones(june_person):
    """Every 72 hours, twice: the first reminder went; raised to three times, and to every
    96 hours, the first is not sent again (its time moved), and one new one is planned."""
    from surveys.reminders import wave_replan

    assert sent_now(utc(2026, 6, 27, 13, 1)) == ["sent"]  # the first reminder (and catch-up)
    before = month1_messages(june_person).filter(status="queued").count()
    rule = ReminderRule.objects.get(study=june_person.study, kind="every")
    rule.every_hours, rule.times = rule.every_hours + 24, rule.times + 1
    rule.save()
    wave_replan(wave=None, study=june_person.study, now=utc(2026, 6, 27, 14))
    keys = list(month1_messages(june_person).values_list("plan_key", "status"))
    assert (f"{rule.pk}:0", "sent") in keys
    assert (f"{rule.pk}:0", "queued") not in keys  # moved a day later, but it went
    assert month1_messages(june_person).filter(status="queued").count() == before + 1


def test_a_time_zone_change_after_the_invitation_does_not_send_it_again(june_person):
    from surveys.reminders import reminders_plan

    assert sent_now(utc(2026, 6, 24, 13, 1)) == ["sent"]
    Participant.objects.filter(pk=june_person.pk).update(timezone="America/Los_Angeles")
    reminders_plan(assignments=list(june_person.assignments.all()), now=utc(2026, 6, 24, 13, 5))
    invitations = month1_messages(june_person).filter(rule__kind="invitation")
    assert list(invitations.values_list("status", flat=True)) == ["sent"]


# --- Dispatch and sending ------------------------------------------------------------------


def due(participant, now):
    """Make the participant's month-1 invitation due now."""
    invitation = month1_messages(participant).order_by("sequence").first()
    Message.objects.filter(pk=invitation.pk).update(scheduled_at=now - timedelta(minutes=1))
    return invitation


@pytest.mark.usefixtures("no_quiet_hours")
def test_each_message_sent_is_counted_once_on_its_survey(reachable, monkeypatch):
    """What the retention dashboard reads: how many messages went before completion and when
    the first went. A message that lands after the participant completed is not counted."""
    from surveys import dispatch

    now = timezone.now()
    invitation = due(reachable, now)
    reminders_dispatch(now=now, enqueue=False)
    message_send(message_id=invitation.pk)
    message_send(message_id=invitation.pk)  # a replay counts nothing
    month1 = invitation.assignment
    month1.refresh_from_db()
    sent_at = Message.objects.get(pk=invitation.pk).sent_at
    assert (month1.messages_sent, month1.first_message_at) == (1, sent_at)
    # The next one is being sent when the participant submits.
    reminder = month1_messages(reachable).filter(status="queued").order_by("sequence").first()
    Message.objects.filter(pk=reminder.pk).update(scheduled_at=now - timedelta(minutes=1))
    reminders_dispatch(now=now, enqueue=False)
    deliver = dispatch._deliver

    def completed_meanwhile(message, at):
        Assignment.objects.filter(pk=month1.pk).update(status="completed", completed_at=at)
        return deliver(message, at)

    monkeypatch.setattr(dispatch, "_deliver", completed_meanwhile)
    assert message_send(message_id=reminder.pk) == Message.Status.SENT
    month1.refresh_from_db()
    assert (month1.messages_sent, month1.first_message_at) == (1, sent_at)


@pytest.mark.usefixtures("no_quiet_hours")
def test_a_due_invitation_is_sent_once_with_the_link_and_an_unsubscribe_header(client, reachable):
    now = timezone.now()
    invitation = due(reachable, now)
    result = reminders_dispatch(now=now, enqueue=False)
    assert result.claimed == 1
    assert message_send(message_id=invitation.pk) == Message.Status.SENT
    assert message_send(message_id=invitation.pk) == Message.Status.SENT  # a replay: no-op
    [email] = mail.outbox
    assert email.to == ["dana@example.org"]
    assert "Dana" in email.body and "1 month" in email.subject
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = [line for line in email.body.splitlines() if "/p/" in line and "unsubscribe" not in line]
    path = "/p/" + link[0].split("/p/", 1)[1].strip()
    assert client.get(path).status_code == 302  # the new personal link works
    # The one-click unsubscribe (a mail client's POST) stops the other e-mails.
    unsubscribe = email.extra_headers["List-Unsubscribe"].strip("<>").split("/p/", 1)[1]
    assert client.get(f"/p/{unsubscribe}").status_code == 200  # a GET changes nothing
    assert not Participant.objects.get(pk=reachable.pk).email_opt_out_at
    assert client.post(f"/p/{unsubscribe}").status_code == 200
    assert Participant.objects.get(pk=reachable.pk).email_opt_out_at
    assert not Message.objects.filter(
        assignment__participant=reachable, channel="email", status="queued"
    ).exists()


def test_a_survey_completed_between_claim_and_send_gets_no_message(reachable):
    now = timezone.now()
    invitation = due(reachable, now)
    reminders_dispatch(now=now, enqueue=False)
    Assignment.objects.filter(pk=invitation.assignment_id).update(
        status=Assignment.Status.COMPLETED
    )
    assert message_send(message_id=invitation.pk) == Message.Status.CANCELLED
    invitation.refresh_from_db()
    assert invitation.reason == "completed"
    assert not mail.outbox


def test_completion_withdrawal_and_opt_out_cancel_queued_messages_with_the_reason(
    site_a, enrol, reachable
):
    now = timezone.now()
    Assignment.objects.filter(participant=reachable, wave__slug="m1").update(
        status=Assignment.Status.COMPLETED
    )
    reminders_dispatch(now=now, enqueue=False)
    assert set(month1_messages(reachable).values_list("status", "reason")) == {
        ("cancelled", "completed")
    }
    participant_status_change(
        participant=reachable, status=Participant.Status.WITHDRAWN, reason="asked to stop"
    )
    reminders_dispatch(now=now, enqueue=False)
    assert not Message.objects.filter(assignment__participant=reachable, status="queued").exists()


# --- Opting out of one channel moves the messages to the other -----------------------------


@pytest.fixture
def texter(site_a, enrol):
    """Prefers texts, has an e-mail address too; enrolled 1 June 2026 in New York."""
    return enrol(
        site=site_a,
        code="NYC-0801",
        enrolled_on=date(2026, 6, 1),
        timezone="America/New_York",
        preferred_channel="sms",
        contact={"phone": "+1 212 555 0142", "email": "tex@example.org"},
        now=utc(2026, 6, 2, 15),
    )


def queued(participant, channel):
    return Message.objects.filter(
        assignment__participant=participant, channel=channel, status=Message.Status.QUEUED
    ).count()


def test_after_a_stop_reply_the_reminders_go_by_email(texter):
    from surveys.optout import sms_opt_out

    before = queued(texter, "sms")
    assert before > 0 and queued(texter, "email") == 0
    sms_opt_out(phone="+1 212 555 0142", now=utc(2026, 6, 3, 15))
    # Every future invitation and reminder goes by e-mail instead (it was simply gone).
    assert queued(texter, "sms") == 0
    assert queued(texter, "email") == before


def test_a_stop_or_unsubscribe_repeated_adds_nothing(site_a, enrol):
    """Someone with a phone only: a STOP leaves their messages on record as not sent; a
    second STOP (and an unsubscribe pressed twice) adds no second set of them."""
    from surveys.optout import sms_opt_out
    from surveys.unsubscribe import email_opt_out

    phone_only = enrol(
        site=site_a, code="NYC-0804", enrolled_on=date(2026, 6, 1), timezone="America/New_York",
        contact={"phone": "+1 212 555 0145"}, now=utc(2026, 6, 2, 15),
    )  # fmt: skip
    sms_opt_out(phone="+1 212 555 0145", now=utc(2026, 6, 3, 15))
    rows = Message.objects.filter(assignment__participant=phone_only).count()
    sms_opt_out(phone="+1 212 555 0145", now=utc(2026, 6, 3, 16))
    email_opt_out(participant=phone_only, now=utc(2026, 6, 3, 17))
    email_opt_out(participant=phone_only, now=utc(2026, 6, 3, 18))
    assert Message.objects.filter(assignment__participant=phone_only).count() == rows


def test_after_start_the_texts_resume(texter):
    from surveys.optout import sms_opt_in, sms_opt_out

    before = queued(texter, "sms")
    sms_opt_out(phone="+1 212 555 0142", now=utc(2026, 6, 3, 15))
    sms_opt_in(phone="+1 212 555 0142", now=utc(2026, 6, 3, 16))
    # "Resume texts": the invitations and reminders to come are texts again (they were gone).
    assert queued(texter, "sms") == before and queued(texter, "email") == 0


def test_after_an_email_unsubscribe_the_reminders_go_by_text(site_a, enrol):
    from surveys.unsubscribe import email_opt_out

    participant = enrol(
        site=site_a, code="NYC-0803", enrolled_on=date(2026, 6, 1), timezone="America/New_York",
        contact={"phone": "+1 212 555 0144", "email": "em@example.org"}, now=utc(2026, 6, 2, 15),
    )  # fmt: skip
    assert queued(participant, "email") > 0 and queued(participant, "sms") == 0
    email_opt_out(participant=participant, now=utc(2026, 6, 3, 15))
    assert queued(participant, "email") == 0
    assert queued(participant, "sms") > 0  # the other channel, while it may be used


def test_a_persian_text_names_the_wave_in_persian(site_a, enrol):
    from surveys import sms
    from surveys.dispatch import message_send, reminders_dispatch

    sms.outbox.clear()
    enrol(
        site=site_a, code="NYC-0802", enrolled_on=date(2026, 6, 1), timezone="America/New_York",
        language="fa", contact={"phone": "+1 212 555 0143"}, now=utc(2026, 6, 1, 15),
    )  # fmt: skip
    at = utc(2026, 6, 24, 13, 1)  # 09:01 EDT, 24 June: the 1-month invitation
    claimed = reminders_dispatch(now=at, enqueue=False).claimed_ids
    assert [message_send(message_id=pk, now=at) for pk in claimed] == ["sent"]
    [text] = sms.outbox
    assert "پرسشنامهٔ یک‌ماهه شما آماده است" in text["body"]
    assert "1 month" not in text["body"]  # it named the wave in English
    sms.outbox.clear()


def test_an_sms_opt_out_between_claim_and_send_cancels_the_text(settings, site_a, enrol):
    participant = enrol(
        site=site_a, code="NYC-0051", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4479"},
    )  # fmt: skip
    now = timezone.now()
    text = due(participant, now)
    reminders_dispatch(now=now, enqueue=False)
    Participant.objects.filter(pk=participant.pk).update(sms_opt_out_at=now)
    assert message_send(message_id=text.pk) == Message.Status.CANCELLED
    assert not sms.outbox


class OutageSms(sms.BaseSmsBackend):
    """A provider down (HTTP 503) until ``up`` is set; then it takes each text."""

    up = False
    sent: list[str] = []

    def send(self, *, to, body):
        if not OutageSms.up:
            raise sms.SmsTransientError("HTTP 503")
        OutageSms.sent.append(to)
        return f"SM{len(OutageSms.sent)}"


@pytest.fixture
def outage(settings, site_a, enrol, no_quiet_hours):
    """A participant whose month-1 text is due now and the only message of its survey, and a
    provider that is down."""
    settings.SMS_BACKEND = "tests.surveys.test_reminders.OutageSms"
    OutageSms.up, OutageSms.sent = False, []
    participant = enrol(
        site=site_a, code="NYC-0052", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"phone": "+1 555 010 4480"},
    )  # fmt: skip
    now = timezone.now()
    text = due(participant, now)
    Message.objects.filter(assignment=text.assignment).exclude(pk=text.pk).delete()
    return text, now


def _round(text, at):
    """One round: the dispatcher claims the text at ``at``, four attempts raise for their
    retries (the task's), and the fifth's outcome is returned."""
    from surveys.dispatch import RetryLater

    assert text.pk in reminders_dispatch(now=at, enqueue=False).claimed_ids
    for _ in range(4):
        with pytest.raises(RetryLater):
            message_send(message_id=text.pk, now=at)
    return message_send(message_id=text.pk, now=at)


def test_a_text_failing_through_a_long_outage_is_tried_again_in_rounds_then_fails(outage):
    """A provider down for hours outlasts one round of five attempts (about a quarter of an
    hour): the text goes back to the queue an hour later, then two, then four, and fails
    after the fourth round, with how often it was tried. Nothing is claimed in between."""
    text, at = outage
    for round_, wait in enumerate((1, 2, 4), start=1):
        assert _round(text, at) == Message.Status.QUEUED
        text.refresh_from_db()
        assert text.attempts == 5 * round_
        assert text.scheduled_at == at + timedelta(hours=wait)
        assert text.reason.startswith(f"provider error: HTTP 503 (tried {5 * round_} times; ")
        assert "trying again at" in text.reason
        early = reminders_dispatch(now=at + timedelta(hours=wait, minutes=-1), enqueue=False)
        assert text.pk not in early.claimed_ids
        at += timedelta(hours=wait)
    assert _round(text, at) == Message.Status.FAILED
    text.refresh_from_db()
    assert text.reason == "provider error: HTTP 503 (tried 20 times; not tried again)"
    assert text.attempts == 20
    assert text.pk not in reminders_dispatch(now=at + timedelta(days=1), enqueue=False).claimed_ids
    assert OutageSms.sent == []


def test_a_text_whose_provider_comes_back_goes_once_in_a_later_round(outage):
    text, at = outage
    assert _round(text, at) == Message.Status.QUEUED
    OutageSms.up = True
    at += timedelta(hours=1)
    assert text.pk in reminders_dispatch(now=at, enqueue=False).claimed_ids
    assert message_send(message_id=text.pk, now=at) == Message.Status.SENT
    assert message_send(message_id=text.pk, now=at) == Message.Status.SENT  # idempotent
    assert OutageSms.sent == ["+1 555 010 4480"]
    text.refresh_from_db()
    assert (text.attempts, text.reason) == (6, "")


def test_a_re_plan_keeps_a_text_waiting_for_its_next_round(outage):
    """Found by the diff's review: a re-plan (a rule edited, a contact saved) deleted the
    text queued for its next round and planned it anew as a catch-up at once, starting its
    rounds over. It stays as it was, and nothing is planned twice for its place."""
    from surveys.reminders import reminders_plan

    text, at = outage
    assert _round(text, at) == Message.Status.QUEUED
    text.refresh_from_db()
    waiting = (text.pk, text.scheduled_at, text.attempts, text.plan_key)
    reminders_plan(assignments=[text.assignment], now=at + timedelta(minutes=20))
    text.refresh_from_db()
    assert (text.pk, text.scheduled_at, text.attempts, text.plan_key) == waiting
    keys = Message.objects.filter(assignment=text.assignment, status="queued").values_list(
        "plan_key", flat=True
    )
    assert list(keys).count(text.plan_key) == 1


def test_no_later_round_after_the_survey_closes(outage):
    text, at = outage
    Assignment.objects.filter(pk=text.assignment_id).update(  # whatever the hour of the run
        opens_at=at - timedelta(days=1),
        due_at=at - timedelta(hours=1),
        closes_at=at + timedelta(minutes=30),
    )
    assert _round(text, at) == Message.Status.FAILED
    text.refresh_from_db()
    assert text.reason == "provider error: HTTP 503 (tried 5 times; not tried again)"


def test_send_now_queues_a_failed_text_again_and_leaves_one_to_review_alone(
    client, outage, coordinator_a
):
    """A coordinator who hears the provider is back (or corrects a phone number) sends the
    failed text again; a text that may have gone out (to review) is never resent by it."""
    text, at = outage
    Message.objects.filter(pk=text.pk).update(
        status=Message.Status.FAILED, reason="provider error: HTTP 400 invalid number"
    )
    review = Message.objects.create(
        assignment=text.assignment, sequence=9, channel=text.channel, scheduled_at=at,
        status=Message.Status.REVIEW, reason="interrupted while sending",
    )  # fmt: skip
    client.force_login(coordinator_a)
    client.post(
        "/admin/surveys/message/",
        {"action": "send_now", "_selected_action": [text.pk, review.pk]},
    )
    text.refresh_from_db()
    review.refresh_from_db()
    assert text.status == Message.Status.QUEUED and text.scheduled_at <= timezone.now()
    assert review.status == Message.Status.REVIEW
    OutageSms.up = True
    claimed = reminders_dispatch(enqueue=False).claimed_ids
    assert claimed == [text.pk]
    assert message_send(message_id=text.pk) == Message.Status.SENT
    assert OutageSms.sent == ["+1 555 010 4480"]


def test_a_send_interrupted_after_it_began_is_never_resent(reachable):
    now = timezone.now()
    invitation = due(reachable, now)
    reminders_dispatch(now=now, enqueue=False)
    # A worker marked the send as begun, then was killed; acks_late redelivers the task.
    Message.objects.filter(pk=invitation.pk).update(send_started_at=now)
    assert message_send(message_id=invitation.pk) == Message.Status.REVIEW
    assert not mail.outbox


def test_the_sweep_requeues_claims_that_never_started_and_reviews_those_that_did(reachable):
    now = timezone.now()
    first, second = month1_messages(reachable).order_by("sequence")[:2]
    long_ago = now - timedelta(hours=1)
    Message.objects.filter(pk=first.pk).update(
        status="sending", claimed_at=long_ago, scheduled_at=now + timedelta(hours=1)
    )
    Message.objects.filter(pk=second.pk).update(
        status="sending", claimed_at=long_ago, send_started_at=long_ago
    )
    result = reminders_dispatch(now=now, enqueue=False)
    assert (result.requeued, result.to_review) == (1, 1)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "queued" and second.status == "review"


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_at_once_claim_each_row_once(study, site_a, enrol):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (CI sets DATABASE_URL)")
    now = timezone.now()
    for n in range(40):
        enrol(
            site=site_a, code=f"NYC-{n:04d}", enrolled_on=timezone.localdate() - timedelta(days=30),
            contact={"email": f"p{n}@example.org"},
        )  # fmt: skip
    # One due message per survey (an older overdue one would be skipped by the settle step).
    Message.objects.filter(status="queued").update(scheduled_at=now + timedelta(days=1))
    firsts = {}
    for pk, assignment_id in Message.objects.filter(status="queued").order_by(
        "sequence"
    ).values_list("pk", "assignment_id"):  # fmt: skip
        firsts.setdefault(assignment_id, pk)
    Message.objects.filter(pk__in=firsts.values()).update(scheduled_at=now - timedelta(minutes=1))
    total = len(firsts)
    # Dispatcher A has claimed a batch and not yet committed when dispatcher B runs a whole
    # cycle: B must skip A's locked rows, claim all the others, and never wait for A.
    from surveys.dispatch import _claim_batch

    a_claimed: list[int] = []
    a_holds, b_done = threading.Event(), threading.Event()

    def dispatcher_a():
        from django.db import connections, transaction

        with transaction.atomic():
            a_claimed.extend(_claim_batch(now=now, size=total // 2))
            a_holds.set()
            b_done.wait(timeout=30)
        connections.close_all()

    thread = threading.Thread(target=dispatcher_a)
    thread.start()
    assert a_holds.wait(timeout=30)
    b_claimed = reminders_dispatch(now=now, batch_size=7, enqueue=False).claimed_ids
    b_done.set()
    thread.join()
    assert len(a_claimed) == total // 2 and b_claimed
    assert not set(a_claimed) & set(b_claimed), "a row claimed by both dispatchers"
    assert sorted(a_claimed + b_claimed) == sorted(firsts.values())
    assert Message.objects.filter(status="sending").count() == total


@pytest.mark.usefixtures("no_quiet_hours")
def test_messages_are_in_the_participants_language(site_a, enrol):
    participant = enrol(
        site=site_a, code="NYC-0060", enrolled_on=timezone.localdate() - timedelta(days=30),
        language="es", contact={"email": "ana@example.org", "phone": "+1 555 010 4481"},
    )  # fmt: skip
    now = timezone.now()
    invitation = due(participant, now)
    reminders_dispatch(now=now, enqueue=False)
    message_send(message_id=invitation.pk)
    [email] = mail.outbox
    assert "1 mes" in email.subject and "encuesta" in email.subject
    assert "Por favor, respóndala" in email.body
    html = email.alternatives[0][0]
    assert 'lang="es"' in html and "Abrir mi encuesta" in html


# --- For coordinators ----------------------------------------------------------------------


def test_a_coordinator_sees_the_history_the_outbox_and_the_dry_run_of_their_sites_only(
    client, reachable, site_b, enrol, coordinator_a
):
    other = enrol(
        site=site_b, code="LDN-0001", enrolled_on=timezone.localdate() - timedelta(days=30),
        contact={"email": "lee@example.org"},
    )  # fmt: skip
    now = timezone.now()
    due(reachable, now)
    due(other, now)
    client.force_login(coordinator_a)
    page = client.get(f"/admin/surveys/participant/{reachable.pk}/change/").text
    assert "Invitations and reminders" in page and "Queued" in page
    outbox = client.get("/admin/surveys/message/").text
    assert "NYC-0042" in outbox and "LDN-0001" not in outbox
    dry = client.get("/admin/surveys/message/dry-run/")
    assert dry.status_code == 200
    assert "NYC-0042" in dry.text and "LDN-0001" not in dry.text
    assert "1 message(s)" in dry.text
    assert "1 would go now" in dry.text or "1 wait for the end of quiet hours" in dry.text
    assert Message.objects.filter(status="queued").count() > 2  # the dry run changed nothing


def test_the_dry_run_says_which_due_messages_wait_for_the_morning_or_would_not_go(reachable):
    """The dry run shows what the send would do now, not only what is due: a message whose
    turn comes in the participant's night waits for 09:00 their time (the study's default
    quiet hours), and one whose participant opted out would be cancelled."""
    today = timezone.localdate(timezone=NY)
    night = datetime.combine(today, time(3), tzinfo=NY).astimezone(UTC)
    invitation = due(reachable, night)
    [message] = reminders_dry_run(now=night)
    assert message.pk == invitation.pk and message.would == "wait"
    assert "waits until 09:00 the participant's time" in message.would_note
    day = datetime.combine(today, time(11), tzinfo=NY).astimezone(UTC)
    due(reachable, day)
    [message] = reminders_dry_run(now=day)
    assert (message.would, message.would_note) == ("send", "")
    Participant.objects.filter(pk=reachable.pk).update(email_opt_out_at=day, sms_opt_out_at=day)
    [message] = reminders_dry_run(now=day)
    assert (message.would, message.would_note) == (Message.Status.CANCELLED, "opted out")
    # What the send then does is what the dry run said.
    Message.objects.filter(pk=message.pk).update(status=Message.Status.SENDING)
    assert message_send(message_id=message.pk, now=day) == Message.Status.CANCELLED
    assert Message.objects.filter(status="queued").exists()  # the dry runs changed nothing


@pytest.mark.usefixtures("no_quiet_hours")
def test_the_dry_run_shows_that_only_the_latest_overdue_message_of_a_survey_goes(reachable):
    """After an outage two messages of one survey are due: the cycle skips the older one, and
    the dry run says so, as the cycle then does."""
    now = timezone.now()
    older, later = month1_messages(reachable).order_by("sequence")[:2]
    Message.objects.filter(pk=older.pk).update(scheduled_at=now - timedelta(hours=3))
    Message.objects.filter(pk=later.pk).update(scheduled_at=now - timedelta(hours=1))
    listed = reminders_dry_run(now=now)
    shown = {m.pk: (m.would, m.would_note) for m in listed}
    # Names and notes are not decrypted for it: only e-mail and phone are read.
    deferred = listed[0].assignment.participant.contact.get_deferred_fields()
    assert {"first_name", "locator_notes"} <= deferred and "email" not in deferred
    assert shown == {
        older.pk: (Message.Status.SKIPPED, "overdue; a later message of this survey goes instead"),
        later.pk: ("send", ""),
    }
    result = reminders_dispatch(now=now, enqueue=False)
    assert result.claimed_ids == [later.pk]
    older.refresh_from_db()
    assert (older.status, older.reason) == shown[older.pk]


def test_the_dry_run_command_lists_what_each_due_message_would_do(reachable):
    from io import StringIO

    from django.core.management import call_command

    due(reachable, timezone.now())
    Participant.objects.filter(pk=reachable.pk).update(
        email_opt_out_at=timezone.now(), sms_opt_out_at=timezone.now()
    )
    out = StringIO()
    call_command("dispatch_reminders", "--dry-run", stdout=out)
    assert "NYC-0042" in out.getvalue() and "cancelled: opted out" in out.getvalue()
    assert out.getvalue().endswith("1 message(s) due; 0 would be sent now.\n")
    assert not Message.objects.filter(status=Message.Status.CANCELLED).exists()


def test_send_now_brings_a_queued_message_of_an_open_survey_forward(
    client, reachable, coordinator_a
):
    later = month1_messages(reachable).order_by("-sequence").first()
    assert later.scheduled_at > timezone.now()
    client.force_login(coordinator_a)
    client.post("/admin/surveys/message/", {"action": "send_now", "_selected_action": [later.pk]})
    later.refresh_from_db()
    assert later.scheduled_at <= timezone.now()
    assert later.pk in reminders_dispatch(enqueue=False).claimed_ids


def test_saving_a_rule_in_the_admin_replans_the_unsent_messages(client, reachable, staff_user):
    from surveys.models import StaffRole

    pi = staff_user(study=reachable.study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    client.force_login(pi)
    before = month1_messages(reachable).count()
    rule = ReminderRule.objects.get(study=reachable.study, kind="last_call")
    reply = client.post(
        f"/admin/surveys/reminderrule/{rule.pk}/change/",
        {"study": reachable.study.pk, "wave": "", "kind": "last_call", "position": 2,
         "days_before_close": 2, "at_time": "18:00", "is_active": ""},
    )  # fmt: skip
    assert reply.status_code == 302, reply.content[:2000]
    assert month1_messages(reachable).count() == before - 1


# --- Review findings -------------------------------------------------------------------------


def test_an_evening_enrolment_gets_its_first_message_when_the_quiet_hours_end(site_a, enrol):
    # 22:30 in New York on 10 June 2026: the baseline window opened today.
    evening = local_moment(date(2026, 6, 10), time(22, 30), NY)
    participant = enrol(
        site=site_a, code="NYC-0070", enrolled_on=date(2026, 6, 10), timezone="America/New_York",
        contact={"email": "eve@example.org"}, now=evening,
    )  # fmt: skip
    first = Message.objects.filter(
        assignment__participant=participant, assignment__wave__slug="baseline"
    ).order_by("scheduled_at").first()  # fmt: skip
    assert first.scheduled_at == local_moment(date(2026, 6, 11), time(9), NY)
    assert first.reason == "deferred for quiet hours"


def test_a_participant_back_from_lost_to_follow_up_is_planned_again(reachable):
    from surveys.reminders import reminders_plan

    queued = Message.objects.filter(assignment__participant=reachable, status="queued").count()
    participant_status_change(participant=reachable, status=Participant.Status.LOST_TO_FOLLOW_UP)
    reminders_dispatch(enqueue=False)
    assert not Message.objects.filter(assignment__participant=reachable, status="queued").exists()
    Participant.objects.filter(pk=reachable.pk).update(status=Participant.Status.ACTIVE)
    assert reminders_plan(assignments=list(reachable.assignments.all())) == queued


def test_a_contact_added_after_enrolment_gets_the_messages(client, site_a, enrol, coordinator_a):
    participant = enrol(
        site=site_a, code="NYC-0071", enrolled_on=timezone.localdate() - timedelta(days=30)
    )  # fmt: skip
    from surveys.models import ParticipantContact
    from surveys.reminders import reminders_plan

    reminders_plan(assignments=list(participant.assignments.all()))
    assert set(Message.objects.filter(assignment__participant=participant).values_list(
        "status", "reason"
    )) == {("skipped", "no contact")}  # fmt: skip
    ParticipantContact.objects.create(participant=participant, email="late@example.org")
    assert reminders_plan(assignments=list(participant.assignments.all())) > 0


def test_invalid_contact_details_are_refused_at_enrolment(site_a, enrol):
    from django.core.exceptions import ValidationError

    for contact in ({"email": "dana@@example.org, x"}, {"phone": "12"}):
        with pytest.raises(ValidationError):
            enrol(site=site_a, code="NYC-0072", enrolled_on=timezone.localdate(), contact=contact)
    assert not Participant.objects.filter(code="NYC-0072").exists()


class DisconnectAfterSending:
    """An SMTP server that takes the message and then drops the connection."""

    def __init__(self, *args, **kwargs):
        pass

    def open(self):
        return True

    def close(self):
        pass

    def send_messages(self, messages):
        mail.outbox.extend(messages)
        import smtplib

        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.mark.usefixtures("no_quiet_hours")
def test_an_email_that_may_have_gone_out_is_reviewed_not_retried(settings, reachable):
    settings.MAILERS = {
        "default": {"BACKEND": "tests.surveys.test_reminders.DisconnectAfterSending"}
    }
    now = timezone.now()
    invitation = due(reachable, now)
    reminders_dispatch(now=now, enqueue=False)
    assert message_send(message_id=invitation.pk) == Message.Status.REVIEW
    assert message_send(message_id=invitation.pk) == Message.Status.REVIEW
    assert len(mail.outbox) == 1


def test_after_an_outage_only_the_latest_overdue_message_of_a_survey_goes(reachable):
    now = timezone.now()
    first, second = month1_messages(reachable).order_by("sequence")[:2]
    Message.objects.filter(pk=first.pk).update(scheduled_at=now - timedelta(days=2))
    Message.objects.filter(pk=second.pk).update(scheduled_at=now - timedelta(hours=1))
    result = reminders_dispatch(now=now, enqueue=False)
    assert result.claimed_ids == [second.pk]
    first.refresh_from_db()
    assert first.status == "skipped"


def test_send_now_moves_only_messages_of_people_the_user_may_contact(
    client, study, reachable, enrol, staff_user
):
    """A PI of one study who is a researcher in another sends nothing to the other's people:
    neither from the outbox nor from the call list, where their rows have no button."""
    from recovery.services import study_create_from_template
    from surveys.models import StaffRole
    from surveys.services import staff_role_assign
    from tests.surveys.test_contact_log import overdue

    other = study_create_from_template(
        slug="other", name="Other study", sites=[("OTH", "Other site", "America/New_York")]
    )
    theirs = enrol(
        site=other.sites.get(),
        code="OTH-0042",
        enrolled_on=timezone.localdate(timezone=NY) - timedelta(days=23),
        timezone="America/New_York",
        contact={"email": "kim@example.org", "phone": "+1 555 010 9911"},
    )
    user = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR, username="mixed")
    staff_role_assign(user=user, study=other, role=StaffRole.Role.RESEARCHER)
    overdue(reachable)
    overdue(theirs)

    def planned(participant):
        return list(month1_messages(participant).order_by("pk").values_list("scheduled_at"))

    untouched = planned(theirs)
    client.force_login(user)
    outbox = "/admin/surveys/message/"
    later = month1_messages(theirs).order_by("-sequence").first()
    assert later.scheduled_at > timezone.now()
    client.post(outbox, {"action": "send_now", "_selected_action": [later.pk]})
    assert planned(theirs) == untouched
    calls = client.get("/admin/surveys/assignment/call-list/").text
    their_month1 = theirs.assignments.get(wave__slug="m1")
    my_month1 = reachable.assignments.get(wave__slug="m1")
    assert "OTH-0042" in calls and "NYC-0042" in calls  # both on the list to follow
    assert f"/admin/surveys/assignment/{their_month1.pk}/send-now/" not in calls
    assert f"/admin/surveys/assignment/{my_month1.pk}/send-now/" in calls
    refused = client.post(f"/admin/surveys/assignment/{their_month1.pk}/send-now/")
    assert refused.status_code == 403
    assert planned(theirs) == untouched

    # In the study they lead, both still act.
    mine = month1_messages(reachable).order_by("-sequence").first()
    client.post(outbox, {"action": "send_now", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.scheduled_at <= timezone.now()
    before = planned(reachable)
    assert client.post(f"/admin/surveys/assignment/{my_month1.pk}/send-now/").status_code == 302
    assert planned(reachable) != before
