"""Missing codes a real value could collide with (issue 7: distinct, documented missing codes).

The datasets' missing codes are -99 … -92. A study's own questions can hold those numbers as
answers: a choice coded -99 "Refused" (REDCap's habit), a weight change of -97, a calculation
that can go negative, a date 95 days before enrolment written as days since enrolment. In such
a column a code would read as an answer (and SPSS's missing range would hide the answer), so
the column's codes go to ``<name>_missing`` and its own empty cells stay empty. Columns whose
values cannot reach the codes (the whole built-in battery) keep their codes in place.
"""

import io
from datetime import timedelta

import pandas as pd
import pyarrow.parquet as pq
import pyreadstat
import pytest

from recovery.analysis.frames import analysis_frame
from surveys import derived
from surveys.datasets import (
    MISSING_CODES,
    NOT_ANSWERED,
    NOT_CALCULATED,
    NOT_YET_DUE,
    WAVE_MISSED,
    codebook,
    csv_rows,
    dataset_long,
    dataset_wide,
)
from surveys.datasets.codebook_html import codebook_html
from surveys.datasets.formats import write_dataset
from surveys.datasets.plan import (
    DECIMAL,
    INTEGER,
    STRING,
    _answer_ranges,
    _item_reaches_codes,
)
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import Assignment, Instrument, Item
from tests.surveys.test_datasets import (
    BASELINE_ANSWERS,
    BASELINE_DAY,
    ENROLLED,
    ENROLMENT,
    MONTH1_DAY,
    followup_answers,
    row,
    submit,
)

APART = ["refused_q", "weight_change", "swing", "last_use"]


def _study_items() -> list[dict]:
    return [
        {
            "variable": "refused_q",
            "kind": "single",
            "label": {"en": "Have you been to a meeting this week?"},
            "choices": [
                {"code": "1", "label": {"en": "Yes"}},
                {"code": "0", "label": {"en": "No"}},
                {"code": "-99", "label": {"en": "Refused"}},
            ],
        },
        {
            "variable": "weight_change",
            "kind": "integer",
            "label": {"en": "Weight change since last year (lb)"},
            "min_value": "-200",
            "max_value": "200",
        },
        {
            "variable": "swing",
            "kind": "calc",
            "label": {"en": "Weight change, halved"},
            "calculation": "[weight_change] / 2",
        },
        {"variable": "last_use", "kind": "date", "label": {"en": "Day of last use"}},
        {
            "variable": "drinks",
            "kind": "integer",
            "label": {"en": "Drinks last week"},
            "min_value": "0",
            "max_value": "100",
        },
        {
            "variable": "drinks_per_day",
            "kind": "calc",
            "label": {"en": "Drinks per day"},
            "calculation": "round([drinks] / 7, 1)",
        },
    ]


@pytest.fixture
def cohort(study, site_a, enrol):
    """Ana answered every question (values that are also codes); Ben left the weight change
    blank; Carl missed the baseline."""
    baseline = Instrument.objects.get(study=study, slug="baseline")
    items = version_items_as_dicts(baseline.current_version) + _study_items()
    for position, item in enumerate(items, start=1):
        item["position"] = position
    instrument_items_set(instrument=baseline, items=items)
    ana, ben, carl = (enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT) for _ in range(3))
    battery = {k: v for k, v in BASELINE_ANSWERS.items() if k not in ("birth_year", "story")}
    answers = {
        **battery,
        "refused_q": "-99",
        "weight_change": -97,
        "last_use": (ENROLLED - timedelta(days=95)).isoformat(),
        "drinks": 14,
    }
    submit(ana, "baseline", "baseline", answers, BASELINE_DAY)
    ben_answers = {**answers, "refused_q": "1", "weight_change": None, "drinks": None}
    submit(ben, "baseline", "baseline", ben_answers, BASELINE_DAY)
    carl.assignments.filter(wave__slug="baseline").update(status=Assignment.Status.MISSED)
    return ana, ben, carl


def test_an_answer_that_is_also_a_code_stays_an_answer_and_codes_go_apart(cohort):
    ana, ben, carl = cohort
    frame = dataset_long(study=ana.study)
    columns = list(frame.columns)
    for name in APART:  # the codes' column right after its own
        assert columns[columns.index(name) + 1] == f"{name}_missing"
    # bounded away from the codes: codes in place, no column apart
    assert "drinks_missing" not in columns and "drinks_per_day_missing" not in columns
    assert "craving_missing" not in columns and "involvement_index_missing" not in columns

    mine = row(frame, ana, "baseline")
    assert mine["refused_q"] == -99  # "Refused", not "wave missed"
    assert mine["weight_change"] == -97  # not "shown but not answered"
    assert mine["swing"] == -48.5
    assert mine["last_use"] == -95  # not "window open"
    assert all(pd.isna(mine[f"{name}_missing"]) for name in APART)
    assert mine["drinks_per_day"] == 2.0

    blank = row(frame, ben, "baseline")
    assert pd.isna(blank["weight_change"]) and blank["weight_change_missing"] == NOT_ANSWERED
    assert pd.isna(blank["swing"]) and blank["swing_missing"] == NOT_CALCULATED
    assert blank["drinks"] == NOT_ANSWERED  # in place
    assert blank["drinks_per_day"] == NOT_CALCULATED

    missed = row(frame, carl, "baseline")
    for name in APART:
        assert pd.isna(missed[name]) and missed[f"{name}_missing"] == WAVE_MISSED
    assert missed["drinks"] == WAVE_MISSED
    later = row(frame, ana, "m1")  # another instrument: neither column has anything there
    assert pd.isna(later["weight_change"]) and pd.isna(later["weight_change_missing"])
    assert row(frame, ana, "m3")["craving"] == NOT_YET_DUE


def test_every_format_reads_the_answer_back_not_a_missing_value(cohort, tmp_path):
    ana, _ben, carl = cohort
    frame = dataset_long(study=ana.study)
    mine = frame["pid"] == row(frame, ana, "baseline")["pid"]
    first = (mine & (frame["wave"] == "baseline")).to_numpy().nonzero()[0][0]

    write_dataset(frame, tmp_path / "long.sav", "sav")
    read, meta = pyreadstat.read_sav(str(tmp_path / "long.sav"))  # user-missing as NaN
    assert read.loc[first, "weight_change"] == -97  # SPSS's missing range used to hide it
    assert read.loc[first, "refused_q"] == -99
    assert read.loc[first, "last_use"] == -95
    _, declared = pyreadstat.read_sav(str(tmp_path / "long.sav"), user_missing=True)
    assert "weight_change" not in declared.missing_ranges
    assert declared.missing_ranges["drinks"] == [{"lo": -99.0, "hi": -92.0}]  # codes in place
    assert meta.variable_value_labels["refused_q"][-99.0] == "Refused"
    assert (
        meta.variable_value_labels["weight_change_missing"][float(WAVE_MISSED)]
        == (MISSING_CODES[WAVE_MISSED])
    )

    write_dataset(frame, tmp_path / "long.dta", "dta")
    stata, _ = pyreadstat.read_dta(str(tmp_path / "long.dta"))
    assert stata.loc[first, "weight_change"] == -97
    pd.testing.assert_series_equal(
        stata["weight_change_missing"],
        frame["weight_change_missing"].astype("float64"),
        check_names=False,
    )

    write_dataset(frame, tmp_path / "long.parquet", "parquet")
    table = pq.read_table(tmp_path / "long.parquet").to_pandas()
    assert str(table["weight_change_missing"].dtype) == "Int64"
    assert table.loc[first, "weight_change"] == -97

    labelled = pd.read_csv(io.StringIO("".join(csv_rows(frame, labels=True))), dtype=str)
    assert labelled.loc[first, "refused_q"] == "Refused"
    codes = pd.read_csv(io.StringIO("".join(csv_rows(frame))))
    assert codes.loc[first, "weight_change"] == -97
    carl_row = codes.index[codes["pid"] == row(frame, carl, "baseline")["pid"]][0]
    assert labelled.loc[carl_row, "weight_change_missing"] == MISSING_CODES[WAVE_MISSED]
    assert pd.isna(labelled.loc[carl_row, "weight_change"])


def test_the_codebook_says_where_the_codes_went(cohort):
    frame = dataset_long(study=cohort[0].study)
    book = codebook(cohort[0].study, frame).set_index("name")
    assert book.loc["weight_change", "missing_codes"].startswith("in weight_change_missing: ")
    assert book.loc["drinks", "missing_codes"].startswith("(-99) Wave missed")
    assert "(-99) Wave missed" not in book.loc["weight_change", "missing_codes"]
    assert f"-99 = {MISSING_CODES[WAVE_MISSED]}" in book.loc["weight_change_missing", "values"]

    page = codebook_html(book.reset_index(), title="Codebook", missing_codes=MISSING_CODES)
    weight_row = page.split('<tr id="weight_change">')[1].split("</tr>")[0]
    assert 'href="#weight_change_missing"' in weight_row and "codes apart" in weight_row
    assert 'href="#missing-codes"' not in weight_row
    drinks_row = page.split('<tr id="drinks">')[1].split("</tr>")[0]
    assert 'href="#missing-codes"' in drinks_row and "codes apart" not in drinks_row

    wide = dataset_wide(frame)
    assert "weight_change_missing_baseline" in wide.columns
    wide_book = codebook(cohort[0].study, wide).set_index("name")
    assert (
        "weight_change_missing_baseline"
        in (wide_book.loc["weight_change_baseline", "missing_codes"])
    )


def test_a_renumbered_wide_column_points_at_its_own_codes_column(cohort):
    """Found by the diff's review: of two waves whose slugs give one suffix ("b-1", "b_1",
    from before such slugs were refused), the second's columns are numbered ``__2``, and the
    codebook sent the second's answers to the first's column of codes."""
    from surveys.models import Wave, WaveInstrument
    from surveys.services import assignment_build

    study = cohort[0].study
    first = Wave.objects.get(study=study, slug="baseline")
    Wave.objects.filter(pk=first.pk).update(slug="b-1")
    second = Wave.objects.create(
        study=study, slug="b_1", name="Again", position=99, offset_days=400,
        window_before_days=0, window_after_days=14,
    )  # fmt: skip
    for link in WaveInstrument.objects.filter(wave=first):
        WaveInstrument.objects.create(wave=second, instrument=link.instrument)
    for person in cohort:
        assignment_build(participant=person, wave=second, now=ENROLMENT).save()
    wide = dataset_wide(dataset_long(study=study))
    book = codebook(study, wide).set_index("name")
    assert book.loc["weight_change_b_1", "missing_codes"].startswith(
        "in weight_change_missing_b_1: "
    )
    assert book.loc["weight_change_b_1__2", "missing_codes"].startswith(
        "in weight_change_missing_b_1__2: "
    )
    assert "weight_change_missing_b_1__2" in wide.columns


def test_analyses_keep_the_answer_and_drop_the_codes(cohort):
    long_df = dataset_long(study=cohort[0].study, covariates=["weight_change", "drinks"])
    exported = pd.read_csv(io.StringIO("".join(csv_rows(long_df))))  # no metadata: by name
    frames = [analysis_frame(source) for source in (long_df, exported)]
    for frame in frames:
        baseline = frame[frame["wave"] == "baseline"]
        assert sorted(baseline["weight_change"].dropna()) == [-97.0]  # Ana's, not a code
        assert sorted(baseline["drinks"].dropna()) == [14.0]  # Ben's -96, Carl's -99: NaN
        # the covariate on every row of each participant: Ana's answer five times
        assert frame["weight_change_bl"].dropna().tolist() == [-97.0] * 5
        assert frame["drinks_bl"].dropna().tolist() == [14.0] * 5
        assert sorted(baseline["weight_change_missing"].dropna()) == [WAVE_MISSED, NOT_ANSWERED]
    columns = ["weight_change", "weight_change_missing", "weight_change_bl", "drinks_bl"]
    pd.testing.assert_frame_equal(frames[0][columns], frames[1][columns])


def test_derived_measures_keep_to_their_range(study, site_a, enrol):
    """A study lets a count of days be negative: the item's column gets its codes apart; the
    measure, declared 0 or more, leaves a negative result blank rather than hand out a -95
    that reads as "window open"."""
    followup = Instrument.objects.get(study=study, slug="followup")
    items = version_items_as_dicts(followup.current_version)
    days = [item["variable"] for item in items if item["variable"].startswith("days_")]
    for item in items:
        if item["variable"] in days:
            item["min_value"] = "-200"
    instrument_items_set(instrument=followup, items=items)
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    answers = followup_answers(**dict.fromkeys(days, -95))
    submit(ana, "m1", "followup", answers, MONTH1_DAY)
    frame = dataset_long(study=study)
    month1 = row(frame, ana, "m1")
    assert month1["days_alcohol"] == -95 and pd.isna(month1["days_alcohol_missing"])
    assert pd.isna(month1["days_used"])  # max of the days: -95, below its minimum 0
    assert "days_used_missing" not in frame.columns
    assert row(frame, ana, "m3")["days_used"] == NOT_YET_DUE


def test_which_columns_keep_their_codes_apart():
    def item(variable, kind, **fields):
        return Item(variable=variable, kind=kind, **fields)

    odd = item("odd", "single", choices=[{"code": "nan"}, {"code": "1"}])
    calc = item("calc", "calc", calculation="[odd] - 96")
    counted = item("count", "integer", min_value="0", max_value="30")
    total = item("total", "calc", calculation="sum([count], 1)")
    ahead = item("ahead", "calc", calculation="[after] + 1")
    early = item("early", "calc", calculation="[late] - 50")
    after = item("after", "integer", min_value="0")
    late = item("late", "calc", calculation="[count] * 2")
    items = [odd, calc, counted, total, ahead, early, after, late]
    ranges = _answer_ranges(items)
    assert ranges["total"] == (0.0, 31.0)
    reach = {i.variable: _item_reaches_codes(i, INTEGER, ranges=ranges) for i in items}
    assert reach == {
        "odd": False,
        "calc": True,  # a "nan" code is no number: [odd] - 96 can be -95
        "count": False,
        "total": False,
        "ahead": False,  # an answer further on is there when it is calculated
        "early": True,  # a calculation further on is not yet: read as any number
        "after": False,
        "late": False,
    }
    assert _item_reaches_codes(item("d", "date"), INTEGER, ranges={})  # days since enrolment
    assert not _item_reaches_codes(item("d", "date"), STRING, ranges={})  # a shifted date
    refused = item("r", "single", choices=[{"code": "1"}, {"code": " -99 "}])
    assert _item_reaches_codes(refused, INTEGER, ranges={})
    exponent = item("e", "single", choices=[{"code": "1"}, {"code": "-9.9e1"}])
    assert _item_reaches_codes(exponent, STRING, ranges={})  # a CSV reader reads -99
    # a code given as a number (a Python caller) counts like its text
    numbered = item("n", "single", choices=[{"code": "1"}, {"code": 100}])
    minus = item("m", "calc", calculation="[n] - 199")
    assert _answer_ranges([numbered, minus])["m"] == (-198.0, -99.0)
    assert _item_reaches_codes(minus, DECIMAL, ranges=_answer_ranges([numbered, minus]))


def test_a_measure_outside_its_declared_range_is_blank():
    measure = derived.DerivedMeasure(
        "x", "X", "x", "integer", ("followup",), lambda f: f["x"], minimum=0, maximum=10
    )
    values = derived.in_range(measure, pd.Series([-95.0, 3.0, None, 11.0, 10.0]))
    assert (values[1], values[4]) == (3.0, 10.0)
    assert values.isna().tolist() == [True, False, True, True, False]
    category = derived.DerivedMeasure("c", "C", "c", "category", ("followup",), lambda f: f["c"])
    assert derived.in_range(category, pd.Series(["-95"])).tolist() == ["-95"]


def test_a_variable_named_like_a_codes_column_is_refused_with_its_names(study):
    baseline = Instrument.objects.get(study=study, slug="baseline")
    taken = {"variable": "weight_change_missing", "kind": "integer", "label": {"en": "Taken"}}
    items = version_items_as_dicts(baseline.current_version) + _study_items()[1:2] + [taken]
    for position, item in enumerate(items, start=1):
        item["position"] = position
    instrument_items_set(instrument=baseline, items=items)
    with pytest.raises(ValueError, match=r"'weight_change_missing'.*rename one of them"):
        dataset_long(study=study)
