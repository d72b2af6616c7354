from datetime import UTC, date, datetime, timedelta

from surveys.models import Assignment, Participant, Wave
from surveys.services import assignment_statuses_refresh, recurring_assignments_extend

NOW = datetime(2026, 3, 5, 15, tzinfo=UTC)


def _weekly(study) -> Wave:
    wave = study.waves.get(slug="weekly")
    wave.is_active = True
    wave.save(update_fields=["is_active"])
    return wave


def test_switched_off_check_ins_create_nothing(site_a, enrol):
    enrol(site=site_a, enrolled_on=date(2026, 2, 13), now=NOW)
    assert recurring_assignments_extend(now=NOW) == 0


def test_weekly_check_ins_are_created_ahead_and_never_twice(study, site_a, enrol):
    _weekly(study)
    participant = enrol(site=site_a, enrolled_on=date(2026, 2, 13), now=NOW)
    # Due 20 Feb, 27 Feb, 6 Mar, 13 Mar, 20 Mar...; 20 Feb's window (to 23 Feb) has closed.
    created = recurring_assignments_extend(now=NOW)
    weekly = participant.assignments.filter(wave__slug="weekly").order_by("occurrence")
    assert created == weekly.count() == 2
    local_due = [a.due_at.astimezone(a.local_window()[1].tzinfo).date() for a in weekly]
    assert local_due == [date(2026, 3, 6), date(2026, 3, 13)]
    assert [a.status for a in weekly] == ["scheduled", "scheduled"]
    assert recurring_assignments_extend(now=NOW) == 0
    later = NOW + timedelta(days=7)
    assert recurring_assignments_extend(now=later) == 1
    assert participant.assignments.filter(wave__slug="weekly").count() == 3


def test_check_ins_keep_local_midnight_across_the_dst_change(study, site_a, enrol):
    _weekly(study)
    participant = enrol(site=site_a, enrolled_on=date(2026, 2, 22), now=NOW)
    recurring_assignments_extend(now=NOW)
    recurring_assignments_extend(now=NOW + timedelta(days=7))
    dues = list(
        participant.assignments.filter(wave__slug="weekly")
        .order_by("occurrence")
        .values_list("due_at", flat=True)
    )
    # 8 March 2026: New York moves from EST (UTC-5) to EDT (UTC-4).
    assert datetime(2026, 3, 8, 5, tzinfo=UTC) in dues
    assert datetime(2026, 3, 15, 4, tzinfo=UTC) in dues


def test_check_ins_stop_at_the_end_of_the_study_and_for_withdrawn_participants(
    study, site_a, enrol
):
    wave = _weekly(study)
    wave.recurrence_until_days = 21
    wave.save(update_fields=["recurrence_until_days"])
    stays = enrol(site=site_a, code="NYC-1", enrolled_on=date(2026, 2, 26), now=NOW)
    leaves = enrol(site=site_a, code="NYC-2", enrolled_on=date(2026, 2, 26), now=NOW)
    Participant.objects.filter(pk=leaves.pk).update(status=Participant.Status.WITHDRAWN)
    recurring_assignments_extend(now=NOW + timedelta(days=60))
    recurring_assignments_extend(now=NOW)
    recurring_assignments_extend(now=NOW + timedelta(days=7))
    occurrences = set(stays.assignments.filter(wave=wave).values_list("occurrence", flat=True))
    assert occurrences == {0, 1, 2}  # due days 7, 14, 21
    assert not leaves.assignments.filter(wave=wave).exists()


def test_check_ins_open_and_close_like_any_wave(study, site_a, enrol):
    _weekly(study)
    participant = enrol(site=site_a, enrolled_on=date(2026, 2, 13), now=NOW)
    recurring_assignments_extend(now=NOW)
    first = participant.assignments.filter(wave__slug="weekly").order_by("occurrence").first()
    assignment_statuses_refresh(now=first.opens_at + timedelta(hours=1))
    first.refresh_from_db()
    assert first.status == Assignment.Status.OPEN
    assignment_statuses_refresh(now=first.closes_at)
    first.refresh_from_db()
    assert first.status == Assignment.Status.MISSED
