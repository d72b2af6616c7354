"""Descriptive tables by wave, on a hand-made cohort whose every number can be counted."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from recovery.analysis.descriptives import (
    attendance_by_wave,
    involvement_by_wave,
    mat_mhg_by_wave,
    retention_by_wave,
    summarise_outcome,
    t_interval,
    wilson_interval,
)
from recovery.analysis.errors import AnalysisError
from recovery.analysis.frames import analysis_frame

NAN = np.nan
MISSED, NOT_DUE, OPEN, CANCELLED = -99, -98, -95, -94
CELLS = ("mtg_na_inperson", "mtg_na_online", "mtg_aa_inperson", "mtg_aa_online")

# pid, wave, status, attended_any, mtg cells (as CELLS), involvement_index, high_involvement,
# mat_mhg_class. Follow-up measures are missing codes at baseline and at waves not completed.
ROWS = [
    ("P1", "baseline", "completed", NAN, (NAN,) * 4, NAN, NAN, None),
    ("P2", "baseline", "completed", NAN, (NAN,) * 4, NAN, NAN, None),
    ("P3", "baseline", "completed", NAN, (NAN,) * 4, NAN, NAN, None),
    ("P4", "baseline", "completed", NAN, (NAN,) * 4, NAN, NAN, None),
    ("P5", "baseline", "completed", NAN, (NAN,) * 4, NAN, NAN, None),
    # m1: P1 went to NA in person and online; P2 to AA in person (NA cells blank: not asked);
    # P3 went to none (a stale 7 in a cell must count 0); P4 skipped the attendance question;
    # P5 missed the wave.
    ("P1", "m1", "completed", 1, (4, 2, NAN, NAN), 5, 1, "both"),
    ("P2", "m1", "completed", 1, (NAN, NAN, 10, NAN), 3, 0, "mhg_only"),
    ("P3", "m1", "completed", 0, (7, NAN, NAN, NAN), 0, 0, "neither"),
    ("P4", "m1", "completed", NAN, (NAN,) * 4, NAN, 1, None),
    ("P5", "m1", "missed", MISSED, (MISSED,) * 4, MISSED, MISSED, "-99"),
    # m3: P5's window is open with a half-saved answer, which must not count.
    ("P1", "m3", "completed", 1, (1, 0, NAN, NAN), 4, 1, "both"),
    ("P2", "m3", "completed", 0, (NAN,) * 4, 1, 0, "neither"),
    ("P3", "m3", "cancelled", CANCELLED, (CANCELLED,) * 4, CANCELLED, CANCELLED, "-94"),
    ("P4", "m3", "not_yet_due", NOT_DUE, (NOT_DUE,) * 4, NOT_DUE, NOT_DUE, "-98"),
    ("P5", "m3", "open", 1, (20, NAN, NAN, NAN), NAN, NAN, None),
]


def _long_frame() -> pd.DataFrame:
    records = []
    for pid, wave, status, attended, cells, index, high, mat in ROWS:
        record = {"pid": pid, "site": "A", "wave": wave, "status": status}
        record["attended_any"] = attended
        record.update(dict(zip(CELLS, cells, strict=True)))
        record["involvement_index"] = index
        record["high_involvement"] = high
        record["mat_mhg_class"] = mat
        records.append(record)
    return pd.DataFrame(records)


@pytest.fixture
def frame() -> pd.DataFrame:
    return analysis_frame(_long_frame(), waves=["baseline", "m1", "m3"])


def _cell(table: pd.DataFrame, wave: str, fellowship: str, fmt: str) -> pd.Series:
    rows = table[(table["wave"] == wave) & (table["fellowship"] == fellowship)]
    rows = rows[rows["format"] == fmt]
    assert len(rows) == 1
    return rows.iloc[0]


# --- Attendance ----------------------------------------------------------------------------


def test_attendance_table_has_the_counted_numbers(frame):
    table = attendance_by_wave(frame)
    assert list(table.columns) == [
        "wave",
        "wave_index",
        "fellowship",
        "format",
        "n",
        "mean",
        "median",
        "share_any",
    ]
    # m1 answers: P1 (NA 4 in person + 2 online), P2 (AA 10 in person), P3 (none).
    na_inperson = _cell(table, "m1", "na", "inperson")
    assert na_inperson["n"] == 3
    assert na_inperson["mean"] == pytest.approx(4 / 3)
    assert na_inperson["median"] == 0
    assert na_inperson["share_any"] == pytest.approx(1 / 3)
    na_all = _cell(table, "m1", "na", "all")
    assert (na_all["mean"], na_all["median"]) == (pytest.approx(2.0), 0)
    in_person = _cell(table, "m1", "all", "inperson")
    assert in_person["mean"] == pytest.approx(14 / 3)
    assert in_person["median"] == 4
    assert in_person["share_any"] == pytest.approx(2 / 3)
    total = _cell(table, "m1", "all", "all")
    assert total["mean"] == pytest.approx(16 / 3)
    assert total["median"] == 6
    assert total["share_any"] == pytest.approx(2 / 3)
    assert _cell(table, "m1", "aa", "online")["mean"] == 0


def test_attendance_counts_only_completed_waves_that_answered(frame):
    table = attendance_by_wave(frame)
    # Baseline has no attendance answers; at m3 only P1 (1 meeting) and P2 (none) count, not
    # P5's half-saved 20 in an open window.
    assert list(pd.unique(table["wave"])) == ["m1", "m3"]
    total = _cell(table, "m3", "all", "all")
    assert total["n"] == 2
    assert total["mean"] == pytest.approx(0.5)
    assert total["median"] == pytest.approx(0.5)
    assert total["share_any"] == pytest.approx(0.5)


def test_attendance_rows_cover_every_fellowship_format_and_total(frame):
    table = attendance_by_wave(frame)
    m1 = table[table["wave"] == "m1"]
    assert list(zip(m1["fellowship"], m1["format"], strict=True)) == [
        ("na", "inperson"),
        ("na", "online"),
        ("na", "all"),
        ("aa", "inperson"),
        ("aa", "online"),
        ("aa", "all"),
        ("all", "inperson"),
        ("all", "online"),
        ("all", "all"),
    ]
    assert (m1["wave_index"] == 1).all()


def test_attendance_without_meeting_columns_names_them(frame):
    with pytest.raises(AnalysisError, match="mtg_<fellowship>_<format>") as info:
        attendance_by_wave(frame.drop(columns=list(CELLS)))
    assert info.value.code == "unknown_column"


def test_attendance_without_the_attendance_question_says_which_column(frame):
    with pytest.raises(AnalysisError, match="'attended_any'") as info:
        attendance_by_wave(frame.drop(columns=["attended_any"]))
    assert info.value.code == "unknown_column"


# --- Involvement ---------------------------------------------------------------------------


def test_involvement_mean_interval_and_distribution(frame):
    table = involvement_by_wave(frame).set_index("wave")
    m1 = table.loc["m1"]
    values = np.array([5.0, 3.0, 0.0])
    assert m1["n"] == 3
    assert m1["mean"] == pytest.approx(values.mean())
    low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
    assert (m1["ci_low"], m1["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    shares = [m1[f"share_{k}"] for k in range(6)]
    assert shares == pytest.approx([1 / 3, 0, 0, 1 / 3, 0, 1 / 3])
    assert sum(shares) == pytest.approx(1.0)


def test_high_involvement_share_has_a_wilson_interval(frame):
    m1 = involvement_by_wave(frame).set_index("wave").loc["m1"]
    # P4 answered the high-involvement items but not the whole index: 4 rows, 2 high.
    assert (m1["high_n"], m1["high_count"]) == (4, 2)
    assert m1["high_share"] == pytest.approx(0.5)
    low, high = proportion_confint(2, 4, alpha=0.05, method="wilson")
    assert (m1["high_ci_low"], m1["high_ci_high"]) == (pytest.approx(low), pytest.approx(high))


def test_involvement_index_out_of_range_is_refused(frame):
    frame.loc[(frame["pid"] == "P1") & (frame["wave"] == "m1"), "involvement_index"] = 7
    with pytest.raises(AnalysisError, match="'involvement_index'") as info:
        involvement_by_wave(frame)
    assert info.value.code == "out_of_range"


# --- Medication × mutual-help --------------------------------------------------------------


def test_mat_mhg_cross_classification_by_wave(frame):
    table = mat_mhg_by_wave(frame).set_index("wave")
    assert list(table.index) == ["m1", "m3"]
    m1 = table.loc["m1"]
    assert m1[["n", "both", "medication_only", "mhg_only", "neither"]].tolist() == [3, 1, 0, 1, 1]
    assert m1["share_both"] == pytest.approx(1 / 3)
    m3 = table.loc["m3"]
    assert m3[["n", "both", "neither"]].tolist() == [2, 1, 1]
    shares = m3[["share_both", "share_medication_only", "share_mhg_only", "share_neither"]]
    assert shares.sum() == pytest.approx(1.0)


def test_mat_mhg_unknown_class_is_refused(frame):
    frame.loc[0, "mat_mhg_class"] = "sometimes"
    frame.loc[0, "completed"] = 1.0
    with pytest.raises(AnalysisError, match="'sometimes'") as info:
        mat_mhg_by_wave(frame)
    assert info.value.code == "out_of_range"


# --- Retention -----------------------------------------------------------------------------


def test_retention_counts_due_completed_and_not_yet_known(frame):
    table = retention_by_wave(frame).set_index("wave")
    assert list(table.index) == ["baseline", "m1", "m3"]
    m1 = table.loc["m1"]
    assert m1[["participants", "due", "completed", "missed", "cancelled"]].tolist() == [
        5,
        5,
        4,
        1,
        0,
    ]
    assert m1["rate"] == pytest.approx(0.8)
    low, high = proportion_confint(4, 5, alpha=0.05, method="wilson")
    assert (m1["ci_low"], m1["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    # m3: P1 and P2 completed; P3 cancelled, P4 not yet due and P5 open are not due.
    m3 = table.loc["m3"]
    assert m3[["due", "completed", "missed", "cancelled", "not_yet_due", "open"]].tolist() == [
        2,
        2,
        0,
        1,
        1,
        1,
    ]
    assert m3["rate"] == 1.0
    assert table.loc["baseline", "rate"] == 1.0


def test_retention_rate_is_blank_while_nothing_is_due(frame):
    later = frame[frame["wave"] == "m3"].assign(
        wave="m6", wave_index=3, status="not_yet_due", completed=np.nan
    )
    table = retention_by_wave(pd.concat([frame, later], ignore_index=True)).set_index("wave")
    m6 = table.loc["m6"]
    assert (m6["due"], m6["not_yet_due"]) == (0, 5)
    assert math.isnan(m6["rate"]) and math.isnan(m6["ci_low"])


def test_retention_needs_the_status(frame):
    with pytest.raises(AnalysisError, match="'status'") as info:
        retention_by_wave(frame.drop(columns=["status"]))
    assert info.value.code == "unknown_column"


# --- Interval helpers ----------------------------------------------------------------------


def test_wilson_interval_matches_statsmodels_and_blanks_empty_groups():
    low, high = wilson_interval(np.array([0, 3, 10, 0]), np.array([10, 7, 10, 0]))
    expected = proportion_confint(np.array([0, 3, 10]), np.array([10, 7, 10]), method="wilson")
    assert low[:3] == pytest.approx(expected[0])
    assert high[:3] == pytest.approx(expected[1])
    assert low[0] == pytest.approx(0.0) and high[2] == pytest.approx(1.0)
    assert math.isnan(low[3]) and math.isnan(high[3])


def test_t_interval_matches_scipy():
    values = np.array([2.0, 4.0, 9.0, 1.0, 5.0])
    low, high = t_interval(values.mean(), values.std(ddof=1), len(values))
    expected = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    assert (low[0], high[0]) == (pytest.approx(expected[0]), pytest.approx(expected[1]))
    single = t_interval(3.0, np.nan, 1)
    assert math.isnan(single[0][0])


def test_summarise_outcome_by_group_leaves_out_missing_values():
    values = np.array([1.0, 0.0, 1.0, np.nan, 1.0, 0.0])
    groups = np.array([0, 0, 0, 0, 2, -1])
    table = summarise_outcome(values, groups, 3, binary=True)
    assert table["n"].tolist() == [3, 0, 1]
    assert table.loc[0, "mean"] == pytest.approx(2 / 3)
    assert math.isnan(table.loc[1, "mean"])
    low, high = proportion_confint(2, 3, method="wilson")
    assert (table.loc[0, "ci_low"], table.loc[0, "ci_high"]) == (
        pytest.approx(low),
        pytest.approx(high),
    )
