"""The analysis frame: missing codes become NaN, waves get their order, a participant-level
frame for matching, categories as indicators."""

import numpy as np
import pandas as pd
import pytest

from recovery.analysis.errors import AnalysisError
from recovery.analysis.frames import analysis_frame, exposure_outcome_frame, indicators


def _long() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "pid": ["P2", "P2", "P2", "P1", "P1", "P1"],
            "site": ["NYC"] * 6,
            "wave": ["baseline", "m1", "m3"] * 2,
            "status": ["completed", "completed", "missed", "completed", "open", "not_yet_due"],
            "days_since_enrolment": pd.array([0, 30, 91, 0, 30, 91], dtype="Int64"),
            "high_involvement": pd.array([pd.NA, 1, -99, pd.NA, -95, -98], dtype="Int64"),
            "craving": pd.array([5, 3, -99, 7, -95, -98], dtype="Int64"),
            "mat_mhg_class": pd.array([None, "both", "-99", None, "-95", "-98"], dtype="string"),
            "age_bl": pd.array([30, 30, 30, 50, 50, 50], dtype="Int64"),
        }
    )


def test_missing_codes_become_nan_and_numbers_floats():
    frame = analysis_frame(_long())
    assert list(frame["pid"]) == ["P1", "P1", "P1", "P2", "P2", "P2"]  # sorted, waves in order
    assert list(frame["wave_index"]) == [0, 1, 2, 0, 1, 2]
    assert frame["craving"].dtype == np.float64
    # -99 (missed), -95 (window open) and -98 (not yet due) are gone; answers stay
    assert frame["craving"].fillna(-1).tolist() == [7.0, -1, -1, 5.0, 3.0, -1]
    assert frame["high_involvement"].fillna(-1).tolist() == [-1, -1, -1, -1, 1.0, -1]
    assert frame["mat_mhg_class"].fillna("").tolist() == ["", "", "", "", "both", ""]
    assert frame["months"].iloc[2] == pytest.approx(91 / 30.4375)
    # completed 1, missed 0, not known yet (open, not yet due) NaN
    assert frame["completed"].tolist()[3:] == [1.0, 1.0, 0.0]
    assert np.isnan(frame["completed"].iloc[1]) and np.isnan(frame["completed"].iloc[2])


def test_months_are_the_time_of_answering_where_the_wave_was_completed():
    """Found by review: the trajectories' time was the day each wave's window opened, though
    answers came about ten days later; the mixed model's time axis is now when the answers
    were given (the window's opening where there are none)."""
    long = _long().assign(
        days_since_window_opened=pd.array([0, 12, pd.NA, 2, pd.NA, pd.NA], dtype="Int64")
    )
    frame = analysis_frame(long)
    days = frame["months"] * 30.4375
    assert days.round(6).tolist() == [2.0, 30.0, 91.0, 0.0, 42.0, 91.0]


def test_waves_order_and_choose_the_rows():
    frame = analysis_frame(_long(), waves=["m3", "m1"])
    assert set(frame["wave"]) == {"m1", "m3"}
    assert frame.loc[frame["wave"] == "m3", "wave_index"].unique().tolist() == [0]


def test_a_frame_without_participant_and_wave_is_refused():
    with pytest.raises(AnalysisError, match="'wave'") as caught:
        analysis_frame(pd.DataFrame({"pid": ["P1"]}))
    assert caught.value.code == "unknown_column"


def test_the_exposure_over_early_waves_and_the_later_outcome_per_participant():
    frame = pd.DataFrame(
        {
            "pid": ["A", "A", "A", "B", "B", "B", "C", "C", "C"],
            "wave": ["m1", "m3", "m12"] * 3,
            "wave_index": [1, 2, 3] * 3,
            "high": [0, 1, np.nan, 0, 0, np.nan, np.nan, np.nan, np.nan],
            "use": [np.nan, np.nan, 1, np.nan, np.nan, 0, np.nan, np.nan, 1],
            "age_bl": [30.0] * 3 + [40.0] * 3 + [50.0] * 3,
        }
    )
    data = exposure_outcome_frame(
        frame,
        exposure="high",
        outcome="use",
        exposure_waves=["m1", "m3"],
        outcome_wave="m12",
        covariates=["age_bl"],
    )
    assert data.loc["A", "high"] == 1  # exposed at any of the early waves
    assert data.loc["B", "high"] == 0
    assert np.isnan(data.loc["C", "high"])  # answered neither early wave
    assert data["use"].tolist() == [1, 0, 1] and data["age_bl"].tolist() == [30, 40, 50]
    with pytest.raises(AnalysisError, match="must come after") as caught:
        exposure_outcome_frame(
            frame, exposure="high", outcome="use", exposure_waves=["m12"], outcome_wave="m3"
        )
    assert caught.value.code == "invalid_parameter"
    with pytest.raises(AnalysisError, match="'m24'"):
        exposure_outcome_frame(
            frame, exposure="high", outcome="use", exposure_waves=["m1"], outcome_wave="m24"
        )


def test_covariates_are_the_first_waves_values_never_a_later_waves():
    """Found by review: the covariates were each participant's first value that was not
    missing, in the order the rows came. A craving missing at baseline was filled from the
    exposure's wave; in a frame not sorted by wave, the outcome wave's value was taken."""
    frame = pd.DataFrame(
        {
            "pid": ["A", "B", "A", "B", "A", "B", "A", "B"],
            "wave": ["m12", "m12", "m1", "m1", "baseline", "baseline", "m3", "m3"],
            "wave_index": [3, 3, 1, 1, 0, 0, 2, 2],
            "high": [np.nan, np.nan, 1, 0, np.nan, np.nan, 0, 0],
            "use": [1, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan],
            "craving": [7, 6, 2, 3, np.nan, 5, 9, 4],
        }
    )
    data = exposure_outcome_frame(
        frame, exposure="high", outcome="use", exposure_waves=["m1", "m3"],
        outcome_wave="m12", covariates=["craving"],
    )  # fmt: skip
    assert np.isnan(data.loc["A", "craving"])  # missing at baseline: not m1's 2 nor m12's 7
    assert data.loc["B", "craving"] == 5


def test_a_category_becomes_indicators_against_the_most_common_with_rare_ones_pooled():
    pids = [f"P{i}" for i in range(60)]
    gender = [2] * 30 + [1] * 22 + [3] * 5 + [4] * 2 + [np.nan]
    frame = pd.DataFrame({"pid": pids * 2, "gender_bl": gender * 2})  # two waves each
    dummies = indicators(frame, "gender_bl")
    assert list(dummies.columns) == ["gender_bl_1", "gender_bl_other"]
    assert dummies.attrs["reference"] == "2" and dummies.attrs["pooled"] == ["3", "4"]
    assert dummies["gender_bl_1"].iloc[:60].sum() == 22
    assert dummies["gender_bl_other"].iloc[:60].sum() == 7  # counted per participant, not row
    assert np.isnan(dummies["gender_bl_1"].iloc[59])


def test_a_cancelled_wave_is_not_due_so_completed_is_blank():
    """surveys.due: a survey cancelled because the participant withdrew, died or finished the
    study was never owed; it is neither completed (1) nor missed (0)."""
    long_df = pd.DataFrame(
        {
            "pid": ["P1", "P1", "P1"],
            "wave": ["baseline", "m1", "m3"],
            "status": ["completed", "missed", "cancelled"],
        }
    )
    done = analysis_frame(long_df)["completed"]
    assert done.iloc[:2].tolist() == [1.0, 0.0] and np.isnan(done.iloc[2])
