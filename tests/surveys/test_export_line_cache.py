"""Kept CSV lines (``surveys.datasets.linecache``): a repeated de-identified export writes again
only the participants whose data changed, and every export is byte for byte the one the
builder alone writes (``EXPORT_LINE_CACHE = False``), whatever changed in between."""

import io
from datetime import timedelta

import pandas as pd
import pytest
from django.utils import timezone

from surveys import tasks
from surveys.consent import participant_identifiers_erase
from surveys.datasets import linecache
from surveys.datasets.builder import Dataset
from surveys.exports import (
    ExportSpec,
    _dataset_options,
    dataset_export,
    export_lines_warm,
    export_participants,
)
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import (
    Assignment,
    DatasetLine,
    DatasetLinePlan,
    Instrument,
    Participant,
    Response,
    Site,
    StaffRole,
)
from surveys.services import participant_status_change
from tests.surveys.test_dataset_options import baseline_item_add
from tests.surveys.test_datasets import (  # noqa: F401 - fixtures
    BASELINE_ANSWERS,
    BASELINE_DAY,
    ENROLLED,
    ENROLMENT,
    MONTH1_DAY,
    cohort,
    design,
    followup_answers,
    submit,
)

SPECS = [
    {"shape": "wide"},
    {"shape": "long"},
    {"shape": "wide", "labels": True},
    {"shape": "long", "labels": True, "dates": "shifted"},
]


def export_text(study, *, user=None, **spec) -> str:
    export = dataset_export(user=user, study=study, spec=ExportSpec(**spec))
    return "".join(export.chunks)


@pytest.fixture
def built_afresh(settings):
    """The same export with nothing kept: what the builder alone writes."""

    def _text(study, **options) -> str:
        settings.EXPORT_LINE_CACHE = False
        try:
            return export_text(study, **options)
        finally:
            settings.EXPORT_LINE_CACHE = True

    return _text


def stale(study, *, user=None, **spec) -> set[int]:
    """Who the next export would write again (the others' lines are read back)."""
    spec = ExportSpec(**spec)
    people = export_participants(user=user, study=study, spec=spec)
    dataset = Dataset(**_dataset_options(study=study, people=people, spec=spec))
    plan = linecache.plan_for(dataset, shape=spec.shape, labels=spec.labels)
    return set(linecache.stale_participants(dataset, plan))


def another_process():
    """A second connection to the test database (PostgreSQL): another process's session."""
    import psycopg2
    from django.db import connection

    conf = connection.settings_dict
    return psycopg2.connect(
        dbname=conf["NAME"],
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        host=conf["HOST"],
        port=conf["PORT"] or 5432,
    )


def _let_go(other) -> None:
    """End the other process's session, its advisory locks released first: a closed
    connection's server process lets them go a moment later, not by the time close returns."""
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock_all()")
    other.close()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_a_repeated_export_reuses_the_lines_and_is_the_same_text(cohort, built_afresh, spec):  # noqa: F811
    ana, ben = cohort
    study = ana.study
    expected = built_afresh(study, **spec)
    assert stale(study, **spec) == {ana.pk, ben.pk}  # nothing kept yet
    assert export_text(study, **spec) == expected
    assert DatasetLine.objects.filter(participant__in=[ana, ben]).count() == 2
    assert stale(study, **spec) == set()  # the next export writes nobody again
    assert export_text(study, **spec) == expected
    frame = pd.read_csv(io.StringIO(expected))
    assert frame["pid"].nunique() == 2 and len(frame) == (2 if spec["shape"] == "wide" else 10)


def test_the_kept_lines_are_what_a_repeated_export_sends(cohort):  # noqa: F811
    """Reuse is real: a kept line (changed here behind the app's back) is sent as kept until
    the participant's data changes, then it is written again from the data."""
    ana, _ = cohort
    first = export_text(ana.study, shape="wide")
    line = DatasetLine.objects.get(participant=ana)
    DatasetLine.objects.filter(pk=line.pk).update(lines=line.lines.replace(",-98", ",-42"))
    assert ",-42" in export_text(ana.study, shape="wide")
    submit(ana, "m3", "followup", followup_answers(craving=7), MONTH1_DAY + timedelta(days=60))
    again = export_text(ana.study, shape="wide")
    assert ",-42" not in again and again != first


def test_the_header_is_kept_with_the_plan(cohort, built_afresh):  # noqa: F811
    ana, _ = cohort
    first = export_text(ana.study, shape="wide")
    plan = DatasetLinePlan.objects.get()
    assert plan.header == first.split("\r\n", 1)[0] + "\r\n"
    DatasetLinePlan.objects.filter(pk=plan.pk).update(header="kept,header\r\n")
    assert export_text(ana.study, shape="wide").startswith("kept,header\r\n")  # read back
    DatasetLinePlan.objects.filter(pk=plan.pk).update(header="")  # as before it was kept
    assert export_text(ana.study, shape="wide") == first == built_afresh(ana.study, shape="wide")


def _edit_answer(ana, ben):
    response = Response.objects.get(assignment__participant=ana, assignment__wave__slug="m1")
    response.answers = {**response.answers, "craving": 9}
    response.save()
    return ana


def _new_submission(ana, ben):
    submit(ben, "m3", "followup", followup_answers(craving=2), MONTH1_DAY + timedelta(days=60))
    return ben


def _window_closed(ana, ben):
    ana.assignments.filter(wave__slug="m6").update(status=Assignment.Status.MISSED)
    return ana


def _site_renamed(ana, ben):
    Site.objects.filter(pk=ben.site_id).update(code="LON")
    return ben


def _moved_time_zone(ana, ben):
    Participant.objects.filter(pk=ana.pk).update(timezone="Pacific/Auckland")
    return ana


def _enrolment_corrected(ana, ben):
    Participant.objects.filter(pk=ben.pk).update(enrolled_on=ENROLLED - timedelta(days=5))
    return ben


def _withdrawn(ana, ben):
    participant_status_change(participant=ben, status="withdrawn", reason="moved away")
    return ben


def _erased_identifier_answer(ana, ben):
    # a bulk update (no save): the answers' own hash must notice it
    response = Response.objects.get(assignment__participant=ana, assignment__wave__slug="m1")
    Response.objects.filter(pk=response.pk).update(answers={**response.answers, "craving": 1})
    return ana


@pytest.mark.parametrize(
    "change",
    [
        _edit_answer,
        _new_submission,
        _window_closed,
        _site_renamed,
        _moved_time_zone,
        _enrolment_corrected,
        _withdrawn,
        _erased_identifier_answer,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
@pytest.mark.parametrize("shape", ["wide", "long"])
def test_a_change_writes_again_only_the_participant_it_touches(cohort, built_afresh, change, shape):  # noqa: F811
    ana, ben = cohort
    study = ana.study
    before = export_text(study, shape=shape)
    touched = change(ana, ben)
    assert stale(study, shape=shape) == {touched.pk}
    after = export_text(study, shape=shape)
    assert after != before  # the export shows the change
    assert after == built_afresh(study, shape=shape)
    assert stale(study, shape=shape) == set()


def test_a_new_participant_appears_in_the_next_export(cohort, built_afresh, site_a, enrol):  # noqa: F811
    ana, _ = cohort
    export_text(ana.study, shape="wide")
    cal = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    assert stale(ana.study, shape="wide") == {cal.pk}
    text = export_text(ana.study, shape="wide")
    assert len(pd.read_csv(io.StringIO(text))) == 3
    assert text == built_afresh(ana.study, shape="wide")


def test_a_change_of_design_or_options_writes_every_line_again(cohort, built_afresh, settings):  # noqa: F811
    ana, ben = cohort
    study = ana.study
    export_text(study, shape="wide")
    plans = DatasetLinePlan.objects.count()
    baseline_item_add(study, {"variable": "pets", "kind": "integer", "label": {"en": "Pets?"}})
    assert stale(study, shape="wide") == {ana.pk, ben.pk}
    text = export_text(study, shape="wide")
    assert "pets_baseline" in text.splitlines()[0]
    assert text == built_afresh(study, shape="wide")
    study.export_id = "study_id"
    study.save()
    assert stale(study, shape="wide") == {ana.pk, ben.pk}
    assert export_text(study, shape="wide") == built_afresh(study, shape="wide")
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40  # pids and date shifts change
    study.export_id = "pseudonym"
    study.save()
    assert stale(study, shape="wide") == {ana.pk, ben.pk}
    assert export_text(study, shape="wide") == built_afresh(study, shape="wide")
    assert DatasetLinePlan.objects.count() == plans + 3


def test_a_line_break_in_a_label_is_kept_whole(cohort, built_afresh, monkeypatch):  # noqa: F811
    ana, _ = cohort
    split = []  # whether each batch's text could be split by lines
    whole = linecache._blocks
    monkeypatch.setattr(linecache, "_blocks", lambda *a: split.append(whole(*a)) or split[-1])
    followup = Instrument.objects.get(study=ana.study, slug="followup")
    items = version_items_as_dicts(followup.current_version)
    for item in items:
        for choice in item.get("choices") or ():
            choice["label"] = {**choice["label"], "en": choice["label"]["en"] + "\r\n(2)"}
    instrument_items_set(instrument=followup, items=items)
    expected = built_afresh(ana.study, shape="long", labels=True)
    assert "\r\n(2)" in expected  # the cell really holds a line break
    assert export_text(ana.study, shape="long", labels=True) == expected
    assert split == [None]  # written a participant at a time
    assert export_text(ana.study, shape="long", labels=True) == expected


def test_a_coordinator_gets_only_their_sites_from_lines_a_researcher_left(
    cohort,  # noqa: F811
    built_afresh,
    researcher,
    coordinator_a,
):
    ana, _ = cohort
    export_text(ana.study, user=researcher, shape="long")  # keeps both people's lines
    text = export_text(ana.study, user=coordinator_a, shape="long")
    assert set(pd.read_csv(io.StringIO(text))["site"]) == {"NYC"}
    assert text == built_afresh(ana.study, user=coordinator_a, shape="long")


def test_an_identified_export_keeps_nothing(cohort, staff_user):  # noqa: F811
    ana, _ = cohort
    pi = staff_user(study=ana.study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    text = export_text(ana.study, user=pi, shape="wide", identified=True, reason="Linking files.")
    assert ana.code in text
    assert not DatasetLine.objects.exists() and not DatasetLinePlan.objects.exists()


def test_erasing_identifiers_deletes_the_participants_kept_lines(cohort, built_afresh):  # noqa: F811
    ana, ben = cohort
    export_text(ana.study, shape="wide")
    export_text(ana.study, shape="long")
    assert DatasetLine.objects.filter(participant=ben).count() == 2
    participant_status_change(participant=ben, status="withdrawn", reason="asked to")
    counts = participant_identifiers_erase(participant=ben)
    assert counts["dataset_lines"] == 2
    assert not DatasetLine.objects.filter(participant=ben).exists()
    assert DatasetLine.objects.filter(participant=ana).count() == 2
    assert export_text(ana.study, shape="wide") == built_afresh(ana.study, shape="wide")


def test_plans_no_export_used_for_two_weeks_go_with_their_lines(cohort):  # noqa: F811
    ana, _ = cohort
    export_text(ana.study, shape="wide")
    wide = DatasetLinePlan.objects.get()
    export_text(ana.study, shape="long")
    now = timezone.now()
    DatasetLinePlan.objects.filter(pk=wide.pk).update(
        used_at=now - timedelta(days=linecache.PLAN_UNUSED_DAYS, hours=1)
    )
    assert linecache.plans_expire(now=now) == 1
    assert not DatasetLinePlan.objects.filter(pk=wide.pk).exists()
    assert DatasetLinePlan.objects.count() == 1 and DatasetLine.objects.count() == 2
    export_text(ana.study, shape="wide")  # made again, the same key
    assert DatasetLinePlan.objects.filter(key=wide.key).exists()
    assert DatasetLine.objects.count() == 4


def test_an_answer_retyped_from_whole_to_decimal_is_noticed(cohort, built_afresh):  # noqa: F811
    # 3 and 3.0 are equal numbers (jsonb hashes them alike) but not the same stored answer: a
    # bulk update that leaves updated_at must still have the line written again.
    ana, _ = cohort
    export_text(ana.study, shape="long")
    response = Response.objects.get(assignment__participant=ana, assignment__wave__slug="m1")
    retyped = {**response.answers, "steps_completed": 3.0, "has_sponsor": 1.0}
    Response.objects.filter(pk=response.pk).update(answers=retyped)
    assert stale(ana.study, shape="long") == {ana.pk}
    assert export_text(ana.study, shape="long") == built_afresh(ana.study, shape="long")


def test_other_software_writes_every_line_again(cohort, built_afresh, monkeypatch):  # noqa: F811
    ana, ben = cohort
    export_text(ana.study, shape="wide")
    assert stale(ana.study, shape="wide") == set()
    monkeypatch.setattr(linecache, "software_fingerprint", lambda: "pandas of next year")
    assert stale(ana.study, shape="wide") == {ana.pk, ben.pk}
    assert export_text(ana.study, shape="wide") == built_afresh(ana.study, shape="wide")


def test_a_whole_number_is_written_alike_whether_its_batch_made_the_column_decimal():
    # An integer column holding a fraction in one batch is decimal in that batch only
    # (builder._typed); kept lines from batches of either kind must still read the same.
    from surveys.datasets.writers import csv_lines

    as_integer = pd.DataFrame({"x": pd.array([3, None, -99], dtype="Int64")})
    as_decimal = pd.DataFrame({"x": pd.array([3.0, None, -99.0], dtype="Float64")})
    assert csv_lines(as_integer) == csv_lines(as_decimal) == "3\r\n\r\n-99\r\n"


# --- Kept current between exports (export_lines_warm, from the beat) ---------------------------


@pytest.fixture
def recent_only(settings):
    """Only the plans of recent exports are kept current (not every study's ready ones)."""
    settings.EXPORT_LINES_READY = False


@pytest.mark.usefixtures("recent_only")
def test_the_beat_keeps_a_recent_exports_lines_current(cohort, built_afresh, researcher):  # noqa: F811
    ana, ben = cohort
    study = ana.study
    export_text(study, user=researcher, shape="wide")
    plan = DatasetLinePlan.objects.get()
    assert plan.recipe["spec"]["shape"] == "wide" and plan.recipe["sites"] is not None
    _edit_answer(ana, ben)
    assert stale(study, user=researcher, shape="wide") == {ana.pk}
    assert tasks.export_lines_warm() == {"plans": 1, "participants": 1, "failed": 0, "skipped": 0}
    # the next export reads every line back, and it shows the change
    assert stale(study, user=researcher, shape="wide") == set()
    text = export_text(study, user=researcher, shape="wide")
    assert text == built_afresh(study, user=researcher, shape="wide")
    assert pd.read_csv(io.StringIO(text)).set_index("pid")["craving_m1"].tolist().count(9) == 1
    # nothing changed since: nothing built; warming is not a use of the plan
    assert tasks.export_lines_warm()["participants"] == 0
    warmed = DatasetLinePlan.objects.get()
    assert warmed.used_at == plan.used_at and warmed.warmed_at is not None


@pytest.mark.usefixtures("recent_only")
def test_a_coordinators_export_is_kept_current_for_their_sites_only(
    cohort,  # noqa: F811
    built_afresh,
    coordinator_a,
):
    ana, ben = cohort
    study = ana.study
    export_text(study, user=coordinator_a, shape="long")
    assert set(DatasetLine.objects.values_list("participant_id", flat=True)) == {ana.pk}
    _edit_answer(ana, ben)
    _new_submission(ana, ben)  # at the other site
    assert export_lines_warm()["participants"] == 1
    assert set(DatasetLine.objects.values_list("participant_id", flat=True)) == {ana.pk}
    assert stale(study, user=coordinator_a, shape="long") == set()
    assert export_text(study, user=coordinator_a, shape="long") == built_afresh(
        study, user=coordinator_a, shape="long"
    )


@pytest.mark.usefixtures("recent_only")
def test_after_a_design_change_the_new_plan_is_built_and_kept_current(cohort, built_afresh):  # noqa: F811
    ana, _ = cohort
    study = ana.study
    export_text(study, shape="wide", waves=["baseline", "m1"])
    old = DatasetLinePlan.objects.get()
    baseline_item_add(study, {"variable": "pets", "kind": "integer", "label": {"en": "Pets?"}})
    assert export_lines_warm() == {"plans": 1, "participants": 2, "failed": 0, "skipped": 0}
    old.refresh_from_db()
    new = DatasetLinePlan.objects.exclude(pk=old.pk).get()
    assert old.recipe == {} and new.recipe["spec"]["waves"] == ["baseline", "m1"]
    assert new.used_at == old.used_at  # expires when the old one would have, unless used
    assert stale(study, shape="wide", waves=["baseline", "m1"]) == set()
    text = export_text(study, shape="wide", waves=["baseline", "m1"])
    assert "pets_baseline" in text.splitlines()[0]
    assert text == built_afresh(study, shape="wide", waves=["baseline", "m1"])
    assert export_lines_warm()["plans"] == 1  # the old plan is left to expire


@pytest.mark.usefixtures("recent_only")
def test_what_is_not_kept_current(cohort, staff_user, settings):  # noqa: F811
    ana, _ = cohort
    study = ana.study
    pi = staff_user(study=study, role=StaffRole.Role.PRINCIPAL_INVESTIGATOR)
    export_text(study, user=pi, shape="wide", identified=True, reason="Linking files.")
    assert export_lines_warm()["plans"] == 0  # identified: nothing kept, nothing warmed
    export_text(study, shape="wide")
    export_text(study, shape="long", waves=["m6"])
    wide = DatasetLinePlan.objects.get(recipe__spec__shape="wide")
    now = timezone.now()
    DatasetLinePlan.objects.filter(pk=wide.pk).update(
        used_at=now - timedelta(days=linecache.PLAN_UNUSED_DAYS, hours=1)
    )
    study.waves.filter(slug="m6").update(slug="month-6")  # the recipe's wave is gone
    assert export_lines_warm(now=now) == {"plans": 0, "participants": 0, "failed": 0, "skipped": 0}
    assert not DatasetLinePlan.objects.exclude(recipe={}).exclude(pk=wide.pk).exists()
    settings.EXPORT_LINE_CACHE = False
    DatasetLinePlan.objects.filter(pk=wide.pk).update(used_at=now)
    assert export_lines_warm(now=now)["plans"] == 0


@pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="advisory locks are PostgreSQL's",
)
@pytest.mark.usefixtures("recent_only")
def test_a_plan_another_process_is_refreshing_is_left_to_it(cohort, built_afresh):  # noqa: F811

    ana, ben = cohort
    export_text(ana.study, shape="wide")
    plan = DatasetLinePlan.objects.get()
    _edit_answer(ana, ben)
    other = another_process()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [linecache._LOCK_CLASS, plan.pk])
        assert export_lines_warm()["plans"] == 0
        assert stale(ana.study, shape="wide") == {ana.pk}
    finally:
        _let_go(other)
    assert export_lines_warm()["participants"] == 1


@pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="advisory locks are PostgreSQL's",
)
@pytest.mark.usefixtures("recent_only")
def test_a_warm_up_that_finds_another_running_does_nothing(cohort):  # noqa: F811
    ana, ben = cohort
    export_text(ana.study, shape="wide")
    _edit_answer(ana, ben)
    other = another_process()
    try:
        with other.cursor() as cursor:  # a warm-up still running (the beat's last run)
            cursor.execute("SELECT pg_advisory_lock(%s, 0)", [linecache._LOCK_CLASS])
        assert export_lines_warm() == {"plans": 0, "participants": 0, "failed": 0, "skipped": 1}
    finally:
        _let_go(other)
    assert export_lines_warm()["participants"] == 1


def test_every_studys_whole_wide_and_long_csv_are_ready_before_anyone_exports(
    cohort,  # noqa: F811
    built_afresh,
    coordinator_a,
):
    ana, ben = cohort
    study = ana.study
    assert export_lines_warm() == {"plans": 2, "participants": 4, "failed": 0, "skipped": 0}
    for shape in ("wide", "long"):
        assert stale(study, shape=shape) == set()  # the first export reads every line back
        assert export_text(study, shape=shape) == built_afresh(study, shape=shape)
    # a coordinator's export of the same columns reads the same lines (their sites only)
    assert stale(study, user=coordinator_a, shape="wide") == set()
    _edit_answer(ana, ben)
    assert export_lines_warm()["participants"] == 2  # ana, in the wide and the long plan
    assert stale(study, shape="long") == set()
    # kept ready, these plans do not expire however long nobody exports
    DatasetLinePlan.objects.update(used_at=timezone.now() - timedelta(days=30))
    export_lines_warm()
    assert linecache.plans_expire() == 0
    # other options are not made ready: only once exported
    assert stale(study, shape="wide", labels=True) == {ana.pk, ben.pk}


def test_keeping_lines_current_is_in_the_beat_schedule(settings):
    entries = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "surveys.tasks.export_lines_warm" in entries
    assert tasks.export_lines_warm.name == "surveys.tasks.export_lines_warm"


# --- Data that changes while lines are built -----------------------------------------------


@pytest.fixture
def while_building(monkeypatch):
    """Runs ``during()`` the first time(s) a batch's lines have been built from the data and
    before they are stored: a participant submitting, or erasing, meanwhile."""

    def _install(during, *, times: int = 1):
        from surveys import exports

        real = exports._lines_of
        left = [times]

        def lines_of(dataset, spec):
            build = real(dataset, spec)

            def built_then_changed(batch):
                result = build(batch)
                if left[0] > 0:
                    left[0] -= 1
                    during()
                return result

            return built_then_changed

        monkeypatch.setattr(exports, "_lines_of", lines_of)

    return _install


@pytest.mark.usefixtures("recent_only")
def test_lines_built_from_data_that_changed_meanwhile_never_overwrite_newer_ones(
    cohort,  # noqa: F811
    built_afresh,
    settings,
    while_building,
):
    """The warm-up builds ana's lines; meanwhile her answer changes and an export writes (and
    keeps) her new lines. The warm-up's lines, of her old answer, are not stored over them:
    her lines are built again from the new answer, and what is kept is her data now."""
    ana, ben = cohort
    study = ana.study
    export_text(study, shape="wide")
    _new_submission(ana, ben)  # ben: something for the warm-up to build
    _edit_answer(ana, ben)
    Response.objects.filter(assignment__participant=ana, assignment__wave__slug="m1").update(
        answers={**BASELINE_ANSWERS, **followup_answers(craving=5)}
    )  # ana's answer changed behind the builder, to be changed again while it builds
    exported = []

    def ana_answers_then_someone_exports():
        response = Response.objects.get(assignment__participant=ana, assignment__wave__slug="m1")
        response.answers = {**response.answers, "craving": 8}
        response.save()
        exported.append(export_text(study, shape="wide"))

    while_building(ana_answers_then_someone_exports)
    result = export_lines_warm()
    assert result["failed"] == 0
    assert pd.read_csv(io.StringIO(exported[0])).set_index("pid")["craving_m1"].tolist().count(8)
    assert stale(study, shape="wide") == set()  # what is kept is everyone's data now
    kept = export_text(study, shape="wide")
    assert kept == built_afresh(study, shape="wide") == exported[0]
    assert pd.read_csv(io.StringIO(kept))["craving_m1"].tolist().count(5) == 0


@pytest.mark.usefixtures("recent_only")
def test_answers_erased_while_their_lines_are_built_are_not_kept(
    cohort,  # noqa: F811
    built_afresh,
    while_building,
):
    """An erasure of ana's answers while the warm-up builds her lines from them: the lines of
    the erased answers are not stored after the erasure dropped her kept lines."""
    from surveys.consent import participant_answers_erase

    ana, _ = cohort
    study = ana.study
    export_text(study, shape="long")
    Response.objects.filter(assignment__participant=ana, assignment__wave__slug="m1").update(
        answers={**BASELINE_ANSWERS, **followup_answers(craving=6)}
    )
    participant_status_change(participant=ana, status="withdrawn", reason="asked to leave")

    def erased():
        participant_answers_erase(participant=Participant.objects.get(pk=ana.pk))

    while_building(erased)
    assert export_lines_warm()["failed"] == 0
    assert not Response.objects.filter(assignment__participant=ana).exists()
    line = DatasetLine.objects.get(participant=ana)
    afresh = built_afresh(study, shape="long")
    frame = pd.read_csv(io.StringIO(afresh))
    hers = frame[frame["pid"] == line.sort_key]
    assert len(hers) == 5 and (hers["craving"] < 0).all()  # missing codes: no answer left
    assert line.lines in afresh  # what is kept of her is her data now
    assert pd.read_csv(io.StringIO(afresh.splitlines()[0] + "\r\n" + line.lines)).equals(
        hers.reset_index(drop=True)
    )
    assert export_text(study, shape="long") == afresh


@pytest.mark.usefixtures("recent_only")
def test_data_that_keeps_changing_is_not_kept_and_the_warm_up_says_so(
    cohort,  # noqa: F811
    while_building,
    caplog,
):
    ana, ben = cohort
    study = ana.study
    export_text(study, shape="wide")
    _edit_answer(ana, ben)
    kept = DatasetLine.objects.get(participant=ana).lines
    craving = iter(range(10, 20))

    def answers_again():
        Response.objects.filter(assignment__participant=ana, assignment__wave__slug="m1").update(
            answers={**BASELINE_ANSWERS, **followup_answers(craving=next(craving))},
            updated_at=timezone.now(),
        )

    while_building(answers_again, times=10)
    with caplog.at_level("INFO", logger="surveys.exports"):
        assert export_lines_warm()["failed"] == 1
    assert "LinesKeptChanging" in caplog.text
    assert DatasetLine.objects.get(participant=ana).lines == kept  # nothing stored over it
    assert DatasetLinePlan.objects.exclude(recipe={}).count() == 1  # still kept current


@pytest.mark.usefixtures("recent_only")
def test_a_failed_warm_up_logs_no_data_keeps_the_recipe_and_the_next_run_builds(
    cohort,  # noqa: F811
    built_afresh,
    monkeypatch,
    caplog,
):
    """A builder's error can quote a cell: only its type is logged. The plan is not dropped
    (the recipe still fits), its lock is let go, and the next run builds what changed."""
    from surveys import exports

    ana, ben = cohort
    study = ana.study
    export_text(study, shape="wide")
    _edit_answer(ana, ben)
    real = exports._lines_of

    def failing(dataset, spec):
        def lines_of(batch):
            cell = " ".join(["I used on", "Friday"])  # an answer, as a builder's error quotes it
            raise ValueError(f"cell {cell!r} cannot be written")

        return lines_of

    monkeypatch.setattr(exports, "_lines_of", failing)
    with caplog.at_level("INFO", logger="surveys.exports"):
        assert export_lines_warm() == {"plans": 0, "participants": 0, "failed": 1, "skipped": 0}
    assert "ValueError" in caplog.text and "Friday" not in caplog.text
    assert DatasetLinePlan.objects.exclude(recipe={}).count() == 1
    monkeypatch.setattr(exports, "_lines_of", real)
    assert export_lines_warm() == {"plans": 1, "participants": 1, "failed": 0, "skipped": 0}
    assert export_text(study, shape="wide") == built_afresh(study, shape="wide")


def test_a_recipe_keeps_only_the_options_that_shape_the_dataset(cohort):  # noqa: F811
    ana, _ = cohort
    export_text(ana.study, shape="long", waves=["m1"], dates="shifted", labels=True)
    (plan,) = DatasetLinePlan.objects.filter(recipe__spec__shape="long")
    assert set(plan.recipe["spec"]) == {
        "shape",
        "labels",
        "sites",
        "waves",
        "instruments",
        "statuses",
        "enrolled_from",
        "enrolled_to",
        "covariates",
        "dates",
    }
    assert plan.recipe["spec"]["waves"] == ["m1"] and plan.recipe["spec"]["dates"] == "shifted"


def test_an_export_whose_data_keeps_changing_builds_every_line_itself(
    cohort,  # noqa: F811
    built_afresh,
    while_building,
):
    """If someone's data changed each time their lines were built, the export is not cut off
    after its header: it builds every line itself, as the builder alone would."""
    ana, ben = cohort
    study = ana.study
    export_text(study, shape="wide")
    _edit_answer(ana, ben)
    craving = iter(range(10, 30))

    def answers_again():
        Response.objects.filter(assignment__participant=ana, assignment__wave__slug="m1").update(
            answers={**BASELINE_ANSWERS, **followup_answers(craving=next(craving))},
            updated_at=timezone.now(),
        )

    while_building(answers_again, times=3)  # each of the 3 rounds of building ana's lines
    text = export_text(study, shape="wide")
    frame = pd.read_csv(io.StringIO(text)).set_index("pid")
    # ana as she was when the export built her line (the change after it came too late)
    assert frame["craving_m1"].max() == 12
    assert text.count("\r\n") == 3  # the header and both participants' lines
    assert text == built_afresh(study, shape="wide").replace(",13,", ",12,")


@pytest.mark.skipif(
    "postgresql" not in __import__("django.db").db.connection.vendor,
    reason="row locks between two connections: PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("recent_only")
def test_an_erasure_in_another_process_while_lines_are_built_leaves_nothing_behind(
    cohort,  # noqa: F811
    built_afresh,
    while_building,
):
    """Another process erases ana's answers as the erasure does (her row locked FOR UPDATE,
    her answers and kept lines deleted) while the warm-up builds her lines, and commits a
    moment later. The warm-up waits for her row, sees her data changed, and keeps her lines
    as they are now: no line of the erased answers is stored after the erasure."""
    import threading

    ana, _ = cohort
    study = ana.study
    export_text(study, shape="long")
    Response.objects.filter(assignment__participant=ana, assignment__wave__slug="m1").update(
        answers={**BASELINE_ANSWERS, **followup_answers(craving=6)}
    )
    other = another_process()
    committed = threading.Event()

    def erasure_in_another_process():
        with other.cursor() as cursor:
            cursor.execute("SELECT id FROM surveys_participant WHERE id = %s FOR UPDATE", [ana.pk])
            cursor.execute(
                "DELETE FROM surveys_response WHERE assignment_id IN "
                "(SELECT id FROM surveys_assignment WHERE participant_id = %s)",
                [ana.pk],
            )
            cursor.execute("DELETE FROM surveys_datasetline WHERE participant_id = %s", [ana.pk])

        def commit():
            other.commit()
            committed.set()

        threading.Timer(1.0, commit).start()

    while_building(erasure_in_another_process)
    try:
        assert export_lines_warm()["failed"] == 0
    finally:
        committed.wait(5)
        other.close()
    line = DatasetLine.objects.get(participant=ana)
    afresh = built_afresh(study, shape="long")
    hers = pd.read_csv(io.StringIO(afresh)).query("pid == @line.sort_key")
    assert len(hers) == 5 and (hers["craving"] < 0).all()  # no answer of hers is left
    assert line.lines in afresh
    assert export_text(study, shape="long") == afresh
