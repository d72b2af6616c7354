from datetime import UTC, date, datetime

import pytest

from surveys.scheduling import wave_window


def test_window_keeps_local_midnight_across_the_spring_dst_change_in_new_york():
    # Enrolled in winter (EST, UTC-5); the 3-month wave is due after the March change (EDT).
    window = wave_window(
        enrolled_on=date(2026, 1, 10),
        timezone_name="America/New_York",
        offset_days=91,
        window_before_days=7,
        window_after_days=28,
    )
    assert window.due_at == datetime(2026, 4, 11, 4, 0, tzinfo=UTC)  # midnight EDT
    assert window.opens_at == datetime(2026, 4, 4, 4, 0, tzinfo=UTC)
    assert window.closes_at == datetime(2026, 5, 10, 4, 0, tzinfo=UTC)


def test_window_spanning_the_autumn_change_in_london_opens_in_summer_time_and_closes_in_winter():
    window = wave_window(
        enrolled_on=date(2026, 9, 20),
        timezone_name="Europe/London",
        offset_days=30,
        window_before_days=7,
        window_after_days=28,
    )
    assert window.opens_at == datetime(2026, 10, 12, 23, 0, tzinfo=UTC)  # 00:00 BST
    assert window.due_at == datetime(2026, 10, 19, 23, 0, tzinfo=UTC)
    assert window.closes_at == datetime(2026, 11, 18, 0, 0, tzinfo=UTC)  # 00:00 GMT


def test_window_in_tehran_uses_its_half_hour_offset():
    window = wave_window(
        enrolled_on=date(2026, 6, 1),
        timezone_name="Asia/Tehran",
        offset_days=0,
        window_before_days=0,
        window_after_days=14,
    )
    assert window.opens_at == datetime(2026, 5, 31, 20, 30, tzinfo=UTC)
    assert window.closes_at == datetime(2026, 6, 15, 20, 30, tzinfo=UTC)


def test_same_enrolment_day_gives_different_instants_in_different_time_zones():
    kwargs = dict(
        enrolled_on=date(2026, 3, 1), offset_days=30, window_before_days=7, window_after_days=28
    )
    new_york = wave_window(timezone_name="America/New_York", **kwargs)
    los_angeles = wave_window(timezone_name="America/Los_Angeles", **kwargs)
    assert (los_angeles.due_at - new_york.due_at).total_seconds() == 3 * 3600


def test_recurring_check_in_occurrences_are_a_week_apart_in_local_time():
    first = wave_window(
        enrolled_on=date(2026, 3, 1),
        timezone_name="America/New_York",
        offset_days=7,
        window_before_days=0,
        window_after_days=2,
        recurrence_days=7,
        occurrence=0,
    )
    second = wave_window(
        enrolled_on=date(2026, 3, 1),
        timezone_name="America/New_York",
        offset_days=7,
        window_before_days=0,
        window_after_days=2,
        recurrence_days=7,
        occurrence=1,
    )
    # 8 March 2026 is the DST change: a local week is 167 hours there.
    assert (second.due_at - first.due_at).total_seconds() == 7 * 24 * 3600 - 3600


def test_a_recurring_wave_repeats_at_least_every_day(study):
    """Found by review: a wave saved with "every 0 days" (the study admin's wave form took
    it) divided by zero in the check-ins' periodic task, which then stopped for every study.
    The form refuses it; the database too."""
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    from surveys.models import Wave

    wave = Wave(
        study=study, slug="checkin", name="Check-in", position=9, offset_days=7,
        window_before_days=0, window_after_days=2, recurrence_days=0,
    )  # fmt: skip
    with pytest.raises(ValidationError) as refused:
        wave.full_clean()
    assert "recurrence_days" in refused.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        wave.save()
    wave.recurrence_days = 1
    wave.full_clean()
    wave.save()


def test_a_participant_who_moves_gets_windows_and_messages_on_the_new_clock(
    client, site_a, enrol, coordinator_a
):
    """Noticed in review: a participant's time zone could not be changed after enrolment, so
    one who moved from New York to Los Angeles had every window and reminder on New York's
    clock (midnights at 21:00, reminders three hours early). Changed on their page: surveys
    not yet open move to the new clock; an open one keeps its window (it could otherwise
    close under someone answering it); queued messages are planned again there."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from django.utils import timezone

    from surveys.models import Message
    from surveys.scheduling import local_midnight
    from tests.surveys.test_contact_log import form_fields

    la = ZoneInfo("America/Los_Angeles")
    person = enrol(
        site=site_a, code="NYC-0950", timezone="America/New_York",
        enrolled_on=timezone.localdate() - timedelta(days=25),
        contact={"email": "mo@example.org"},
    )  # fmt: skip
    month1 = person.assignments.get(wave__slug="m1")
    month3 = person.assignments.get(wave__slug="m3")
    assert month1.status == "open" and month3.status == "scheduled"
    m1_window = (month1.opens_at, month1.due_at, month1.closes_at)

    client.force_login(coordinator_a)
    page = f"/admin/surveys/participant/{person.pk}/change/"
    data = form_fields(client.get(page).text)
    data.pop("_saveasnew", None)
    data["timezone"] = "America/Los_Angeles"
    reply = client.post(page, data)
    assert reply.status_code == 302, reply.text[:2000]

    person.refresh_from_db()
    month1.refresh_from_db()
    month3.refresh_from_db()
    assert person.timezone == "America/Los_Angeles"
    assert (month1.opens_at, month1.due_at, month1.closes_at) == m1_window
    assert month3.due_at == local_midnight(month3.due_day(), la)
    assert month3.due_at.astimezone(la).time().hour == 0
    queued = Message.objects.filter(assignment__participant=person, status="queued")
    assert queued.exists()
    for message in queued:
        local = message.scheduled_at.astimezone(la).time()
        assert (local.hour, local.minute) >= (9, 0) and local.hour < 21, local  # quiet hours
