"""The narrow copy of the answers the retention dashboard splits by (``SubgroupAnswer``,
PostgreSQL): kept by database triggers through every way a response is written, filled by
``migrate`` for the registered subgroups, and giving the dashboard exactly what the responses'
JSON gives. On SQLite there is no copy and the split reads the JSON (tests/surveys/
test_retention.py runs on both)."""

import json
import random
import uuid
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from surveys import retention
from surveys.models import (
    Assignment,
    Instrument,
    Response,
    SubgroupAnswer,
    SubgroupVariable,
    Wave,
)
from surveys.retention import Subgroup, retention_summary
from surveys.subgroup_copy import TRIGGERS, subgroup_copy_sync, triggers_drop, triggers_present
from surveys.submission import response_submit
from tests.surveys.test_datasets import followup_answers

ENROLLED = date(2025, 1, 6)  # every window long closed, whatever the clock
BASELINE_VARIABLES = {"race_ethnicity", "gender", "justice_involved", "mat_status"}
postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the copy is kept by PostgreSQL triggers"
)


def copied(response) -> dict[str, str | None]:
    return dict(SubgroupAnswer.objects.filter(response=response).values_list("variable", "answer"))


def write(assignment, slug, answers, *, status=Response.Status.SUBMITTED):
    instrument = Instrument.objects.get(study=assignment.participant.study, slug=slug)
    submitted = status == Response.Status.SUBMITTED
    return Response.objects.create(
        assignment=assignment,
        instrument=instrument,
        instrument_version=instrument.current_version,
        answers=answers,
        status=status,
        started_at=assignment.opens_at,
        submitted_at=assignment.opens_at + timedelta(hours=1) if submitted else None,
    )


def test_migrate_registered_every_subgroup_variable_and_the_triggers(db):
    pairs = set(SubgroupVariable.objects.values_list("instrument_slug", "variable"))
    if connection.vendor != "postgresql":
        assert pairs == set()  # no copy: the split reads the JSON
        return
    assert pairs == {(s.instrument, s.variable) for s in retention.subgroups()}
    assert ("followup", "fellowships") in pairs
    assert triggers_present(connection) == set(TRIGGERS)


@postgresql_only
def test_migrate_puts_back_triggers_a_migration_dropped(db):
    triggers_drop(connection)
    assert triggers_present(connection) == set()
    subgroup_copy_sync()
    assert triggers_present(connection) == set(TRIGGERS)


@postgresql_only
def test_the_copy_follows_every_way_a_response_is_written(study, site_a, enrol):
    person = enrol(site=site_a, enrolled_on=ENROLLED)
    waves = {a.wave.slug: a for a in person.assignments.select_related("wave")}

    # A draft is not copied; submitting it is.
    draft = write(waves["baseline"], "baseline", {"gender": "1"}, status=Response.Status.DRAFT)
    assert copied(draft) == {}
    draft.status, draft.submitted_at = Response.Status.SUBMITTED, waves["baseline"].opens_at
    draft.save()
    row = copied(draft)
    assert set(row) >= BASELINE_VARIABLES
    assert row["gender"] == "1" and row["mat_status"] is None
    assert SubgroupAnswer.objects.filter(response=draft, participant=person).count() == len(row)

    # An update of the answers by query (as the erasure of identifying answers does), with
    # the kinds of JSON value an answer can be.
    Response.objects.filter(pk=draft.pk).update(
        answers={"gender": "2", "race_ethnicity": ["1", "4"], "justice_involved": True}
    )
    row = copied(draft)
    assert row["gender"] == "2"
    assert json.loads(row["race_ethnicity"]) == ["1", "4"]
    assert row["justice_involved"] == "true"  # ->>'s text, as KeyTextTransform gives it

    # Back to a draft (not something the app does, but the copy must not outlive it).
    Response.objects.filter(pk=draft.pk).update(status=Response.Status.DRAFT, submitted_at=None)
    assert copied(draft) == {}
    Response.objects.filter(pk=draft.pk).update(
        status=Response.Status.SUBMITTED, submitted_at=waves["baseline"].opens_at
    )
    assert copied(draft)["gender"] == "2"

    # The busiest write: the participant's submit through the service (raw SQL on PostgreSQL).
    followup = Instrument.objects.get(study=study, slug="followup")
    m1 = waves["m1"]
    Assignment.objects.filter(pk=m1.pk).update(status=Assignment.Status.OPEN)
    result = response_submit(
        assignment=m1,
        instrument=followup,
        answers=followup_answers(fellowships=["1", "6"]),
        client_id=uuid.uuid4(),
        now=m1.opens_at + timedelta(days=1),
    )
    answer = SubgroupAnswer.objects.get(response=result.response)
    assert (answer.variable, answer.wave_id, answer.participant_id) == (
        "fellowships",
        m1.wave_id,
        person.pk,
    )
    assert json.loads(answer.answer) == ["1", "6"]

    # A bulk insert (the demo's seed) is copied too; a later occurrence of a recurring
    # check-in is not (the split reads first occurrences only).
    weekly = Wave.objects.get(study=study, slug="weekly")
    later = Assignment.objects.create(
        participant=person,
        wave=weekly,
        occurrence=1,
        opens_at=m1.opens_at,
        due_at=m1.due_at,
        closes_at=m1.closes_at,
    )
    m3 = waves["m3"]
    Response.objects.bulk_create(
        [
            Response(
                assignment=assignment,
                instrument=followup,
                instrument_version=followup.current_version,
                answers={"fellowships": ["3"]},
                status=Response.Status.SUBMITTED,
                started_at=assignment.opens_at,
                submitted_at=assignment.opens_at,
            )
            for assignment in (m3, later)
        ]
    )
    assert list(
        SubgroupAnswer.objects.filter(variable="fellowships")
        .order_by("wave__position")
        .values_list("wave__slug", "answer")
    ) == [("m1", '["1", "6"]'), ("m3", '["3"]')]

    # Deleting a response deletes its copy, by the ORM (one statement: nothing to collect)
    # or by raw SQL.
    with CaptureQueriesContext(connection) as captured:
        Response.objects.filter(assignment=m3).delete()
    assert not SubgroupAnswer.objects.filter(wave__slug="m3").exists()
    assert [q["sql"].split()[0] for q in captured] == ["DELETE"]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM surveys_response WHERE assignment_id = %s", [m1.pk])
    assert not SubgroupAnswer.objects.filter(wave__slug="m1").exists()

    # An instrument renamed to a slug the registry names is copied; renamed away, forgotten.
    baseline = Instrument.objects.get(study=study, slug="baseline")
    Instrument.objects.filter(pk=baseline.pk).update(slug="intake")
    assert copied(draft) == {}
    Instrument.objects.filter(pk=baseline.pk).update(slug="baseline")
    assert copied(draft)["gender"] == "2"


def _cohort(study, site_a, site_b, enrol, n=36):
    """People with every kind of answer: codes, none, a missing key, JSON null, booleans,
    lists of one and several; some without a baseline, some whose follow-up is a draft."""
    rng = random.Random(7)
    for i in range(n):
        person = enrol(site=site_a if i % 3 else site_b, enrolled_on=ENROLLED)
        waves = {a.wave.slug: a for a in person.assignments.select_related("wave")}
        statuses = rng.choices(
            [Assignment.Status.COMPLETED, Assignment.Status.MISSED, Assignment.Status.OPEN],
            k=len(waves),
        )
        for assignment, status in zip(waves.values(), statuses, strict=True):
            Assignment.objects.filter(pk=assignment.pk).update(status=status)
        if i % 5:
            baseline = {
                "gender": rng.choice(["1", "2", "3", None]),
                "race_ethnicity": rng.choice([["1"], ["2", "5"], [], None]),
                "justice_involved": rng.choice([True, False, "1", "0"]),
                "mat_status": rng.choice(["1", "2", "3"]),
                "treatment_setting": rng.choice(["1", "2", None]),
            }
            if i % 4 == 0:
                baseline.pop("gender")
            write(waves["baseline"], "baseline", baseline)
        if i % 6:
            fellowships = rng.choice([["1"], ["1", "6"], ["6"], []])
            status = Response.Status.DRAFT if i % 7 == 0 else Response.Status.SUBMITTED
            answers = {"fellowships": fellowships, "home_group": rng.choice(["1", "0"])}
            write(waves["m1"], "followup", answers, status=status)


@postgresql_only
def test_the_split_reads_the_copy_and_gives_what_the_responses_give(
    study, site_a, site_b, enrol, researcher, coordinator_a
):
    _cohort(study, site_a, site_b, enrol)
    for user in (researcher, coordinator_a):
        for subgroup in retention.subgroups():
            with CaptureQueriesContext(connection) as captured:
                summary = retention_summary(user=user, study=study, subgroup=subgroup)
            split = [q["sql"] for q in captured if "LEFT JOIN src" in q["sql"]]
            assert len(split) == 1
            assert "surveys_subgroupanswer" in split[0] and "surveys_response" not in split[0]
            # The same dashboard with the answers read from the responses' JSON.
            SubgroupVariable.objects.filter(
                instrument_slug=subgroup.instrument, variable=subgroup.variable
            ).delete()
            with CaptureQueriesContext(connection) as captured:
                from_json = retention_summary(user=user, study=study, subgroup=subgroup)
            split = [q["sql"] for q in captured if "LEFT JOIN src" in q["sql"]]
            assert "surveys_subgroupanswer" not in split[0] and "surveys_response" in split[0]
            subgroup_copy_sync()
            assert summary.subgroup == from_json.subgroup
            assert summary.waves == from_json.waves
            assert len(summary.subgroup.values) >= 3  # a split, not everybody "Not known"


@postgresql_only
def test_migrate_fills_a_new_subgroup_and_forgets_an_old_one(
    study, site_a, site_b, enrol, researcher, monkeypatch
):
    _cohort(study, site_a, site_b, enrol, n=12)
    before = set(SubgroupAnswer.objects.values_list("response_id", "variable", "answer"))
    assert {v for _, v, _ in before} == BASELINE_VARIABLES | {"treatment_setting", "fellowships"}

    # As a database migrated before the copy existed: migrate copies every submitted answer.
    SubgroupAnswer.objects.all().delete()
    SubgroupVariable.objects.all().delete()
    subgroup_copy_sync()
    assert set(SubgroupAnswer.objects.values_list("response_id", "variable", "answer")) == before

    # A subgroup registered by a new release: read from the JSON until migrate has copied it.
    monkeypatch.setitem(
        retention._SUBGROUPS,
        "home_group",
        Subgroup(
            name="home_group", label="Home group", instrument="followup", variable="home_group"
        ),
    )
    uncopied = retention_summary(user=researcher, study=study, subgroup="home_group")
    assert [v.code for v in uncopied.subgroup.values] == ["1", "0", retention.NOT_KNOWN]
    subgroup_copy_sync()
    assert SubgroupVariable.objects.filter(variable="home_group").exists()
    now_copied = retention_summary(user=researcher, study=study, subgroup="home_group")
    assert now_copied.subgroup == uncopied.subgroup and now_copied.waves == uncopied.waves

    # Unregistered again: its pair and its answers go.
    monkeypatch.delitem(retention._SUBGROUPS, "home_group")
    person = enrol(site=site_a, enrolled_on=ENROLLED)
    answered = write(person.assignments.get(wave__slug="m1"), "followup", {"home_group": "1"})
    assert "home_group" in copied(answered)
    subgroup_copy_sync()
    assert not SubgroupVariable.objects.filter(variable="home_group").exists()
    assert not SubgroupAnswer.objects.filter(variable="home_group").exists()
    assert set(SubgroupAnswer.objects.values_list("response_id", "variable", "answer")) >= before


@postgresql_only
def test_migrate_keeps_writers_out_while_it_copies_and_waits_for_none(
    study, site_a, enrol, researcher, caplog
):
    """The copy is made under a lock that keeps out writers and a second migrate; a long write
    holding the responses makes it give up after the timeout, changing nothing."""
    from tests.surveys.test_export_line_cache import another_process

    person = enrol(site=site_a, enrolled_on=ENROLLED)
    answered = write(person.assignments.get(wave__slug="baseline"), "baseline", {"gender": "2"})
    SubgroupVariable.objects.filter(variable="gender").delete()
    SubgroupAnswer.objects.filter(variable="gender").delete()

    # Another session holds a write on the responses past the timeout. (First: the lock
    # taken below is held until the test's transaction ends.)
    other = another_process()
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")
            cursor.execute("LOCK TABLE surveys_response IN ROW EXCLUSIVE MODE")
            with caplog.at_level("WARNING", logger="surveys.subgroup_copy"):
                subgroup_copy_sync(lock_timeout_ms=200)
    finally:
        other.rollback()
        other.close()
    assert "not brought up to date" in caplog.text
    assert not SubgroupVariable.objects.filter(variable="gender").exists()  # nothing changed
    assert "gender" not in copied(answered)
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"  # as it was
    # The split still gives the answer, from the JSON.
    split = retention_summary(user=researcher, study=study, subgroup="gender").subgroup
    assert "2" in [value.code for value in split.values]

    # Without the other session: locked, then copied.
    with CaptureQueriesContext(connection) as captured:
        subgroup_copy_sync()
    sql = [q["sql"] for q in captured]
    lock = sql.index("LOCK TABLE surveys_response IN SHARE ROW EXCLUSIVE MODE")
    copy = next(i for i, s in enumerate(sql) if s.startswith("INSERT INTO surveys_subgroupanswer"))
    assert lock < copy
    assert copied(answered)["gender"] == "2"
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"
