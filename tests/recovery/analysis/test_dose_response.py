"""Dose–response by attendance band: hand-counted bands, a planted slope, statsmodels' GEE."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from recovery.analysis.dose_response import WEEKLY_BANDS, dose_response
from recovery.analysis.errors import AnalysisError

# Meetings per 30 days, one value per band edge (0 | 1–3 | 4–7 | 8–11 | 12–19 | 20+).
EDGES = [0, 1, 3, 4, 7, 8, 11, 12, 19, 20, 45]
EDGE_BAND = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def _edge_frame(repeats: int = 4) -> pd.DataFrame:
    """One follow-up wave; each edge value ``repeats`` times, a different participant each."""
    meetings = np.tile(EDGES, repeats).astype(float)
    n = meetings.size
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "pid": [f"P{i}" for i in range(n)],
            "wave": "m1",
            "wave_index": 1,
            "meetings_total": meetings,
            "any_use": (np.arange(n) % 3 == 0).astype(float),
            "days_used": rng.integers(0, 31, n).astype(float),
            "craving_derived": rng.integers(0, 11, n).astype(float),
        }
    )


# A seed whose draw lies within 1 SE of the planted slopes, so the 3-SE checks do not hang on
# luck (other seeds scatter around the truth as they should).
def _planted_frame(n: int = 1500, seed: int = 8) -> tuple[pd.DataFrame, float, float]:
    """Three follow-up waves (and a baseline without follow-up measures). Craving falls by 0.5
    per band (with a participant effect); the log odds of any use fall by 0.4 per band."""
    rng = np.random.default_rng(seed)
    waves = 4
    pid = np.repeat([f"P{i:04d}" for i in range(n)], waves)
    wave_index = np.tile(np.arange(waves), n)
    tendency = np.repeat(rng.gamma(2.0, 4.0, n), waves)
    meetings = rng.poisson(tendency).astype(float)
    band = np.searchsorted([0, 1, 4, 8, 12, 20], meetings, side="right") - 1
    person = np.repeat(rng.normal(0, 1.0, n), waves)
    craving = 6.0 - 0.5 * band + person + rng.normal(0, 1.5, pid.size)
    any_use = (rng.random(pid.size) < 1 / (1 + np.exp(-(0.5 - 0.4 * band)))).astype(float)
    followup = wave_index > 0
    frame = pd.DataFrame(
        {
            "pid": pid,
            "wave": np.array(["baseline", "m1", "m3", "m6"])[wave_index],
            "wave_index": wave_index,
            "meetings_total": np.where(followup, meetings, np.nan),
            "any_use": np.where(followup, any_use, np.nan),
            "craving_derived": np.where(followup, craving, np.nan),
        }
    )
    return frame, -0.5, -0.4


@pytest.fixture(scope="module")
def planted():
    return _planted_frame()


def test_bands_hold_the_edges_they_say():
    result = dose_response(_edge_frame(), outcomes=("any_use",))
    table = result.table
    assert table["band"].tolist() == ["0", "1–3", "4–7", "8–11", "12–19", "20+"]
    # 3 → 1–3, 4 → 4–7, 19 → 12–19, 20 and 45 → 20+; four repeats of each value.
    expected = np.bincount(EDGE_BAND, minlength=6) * 4
    assert table["n"].tolist() == expected.tolist()
    assert math.isnan(table["band_high"].iloc[-1])


def test_band_means_and_intervals_match_direct_calculations():
    frame = _edge_frame()
    result = dose_response(frame, outcomes=("any_use", "craving_derived"))
    band = np.array(EDGE_BAND * 4)
    any_use = result.table[result.table["outcome"] == "any_use"].reset_index(drop=True)
    craving = result.table[result.table["outcome"] == "craving_derived"].reset_index(drop=True)
    for k in range(6):
        used = frame["any_use"].to_numpy()[band == k]
        assert any_use.loc[k, "mean"] == pytest.approx(used.mean())
        low, high = proportion_confint(used.sum(), used.size, method="wilson")
        assert (any_use.loc[k, "ci_low"], any_use.loc[k, "ci_high"]) == (
            pytest.approx(low),
            pytest.approx(high),
        )
        values = frame["craving_derived"].to_numpy()[band == k]
        low, high = stats.t.interval(0.95, values.size - 1, values.mean(), stats.sem(values))
        assert craving.loc[k, "mean"] == pytest.approx(values.mean())
        assert (craving.loc[k, "ci_low"], craving.loc[k, "ci_high"]) == (
            pytest.approx(low),
            pytest.approx(high),
        )
    assert set(any_use["ci_method"]) == {"Wilson"}
    assert set(craving["ci_method"]) == {"t"}


def test_trend_recovers_the_planted_slopes(planted):
    frame, craving_slope, use_log_odds = planted
    result = dose_response(frame, outcomes=("any_use", "craving_derived"))
    trend = result.trend.set_index("outcome")
    # Within 3 standard errors of the planted value (a 95 % interval misses 1 time in 20).
    craving = trend.loc["craving_derived"]
    assert craving["scale"] == "mean difference per band"
    assert abs(craving["estimate"] - craving_slope) < 3 * craving["se"]
    assert craving["ci_high"] < 0 and craving["p_value"] < 1e-6
    use = trend.loc["any_use"]
    assert use["scale"] == "odds ratio per band"
    assert abs(use["coef"] - use_log_odds) < 3 * use["se"]
    assert use["estimate"] == pytest.approx(math.exp(use["coef"]))
    assert use["ci_low"] == pytest.approx(math.exp(use["coef"] - 1.959964 * use["se"]))
    assert use["ci_high"] < 1
    assert trend["n_participants"].tolist() == [1500, 1500]
    # The band means fall with attendance, as planted.
    means = result.table[result.table["outcome"] == "craving_derived"]["mean"].to_numpy()
    assert (np.diff(means) < 0).all()


def test_trend_is_statsmodels_gee_clustered_on_participant(planted):
    frame, _, _ = planted
    small = frame[frame["pid"] < "P0200"]
    result = dose_response(small, outcomes=("any_use", "craving_derived"))
    data = small[small["wave_index"] > 0]
    band = np.searchsorted([0, 1, 4, 8, 12, 20], data["meetings_total"], side="right") - 1
    exog = np.column_stack(
        [
            np.ones(len(data)),
            band,
            (data["wave_index"] == 2).astype(float),
            (data["wave_index"] == 3).astype(float),
        ]
    )
    for outcome, family in (
        ("any_use", sm.families.Binomial()),
        ("craving_derived", sm.families.Gaussian()),
    ):
        expected = sm.GEE(
            data[outcome].to_numpy(),
            exog,
            groups=data["pid"].to_numpy(),
            family=family,
            cov_struct=sm.cov_struct.Exchangeable(),
        ).fit()
        row = result.trend.set_index("outcome").loc[outcome]
        assert row["coef"] == pytest.approx(expected.params[1], rel=1e-6)
        assert row["se"] == pytest.approx(expected.bse[1], rel=1e-6)
        assert row["p_value"] == pytest.approx(expected.pvalues[1], rel=1e-4, abs=1e-12)
        low, high = expected.conf_int()[1]
        assert (row["coef_ci_low"], row["coef_ci_high"]) == (
            pytest.approx(low, rel=1e-6),
            pytest.approx(high, rel=1e-6),
        )
        assert row["working_correlation"] == pytest.approx(expected.cov_struct.dep_params)


def test_waves_choose_the_rows(planted):
    frame, _, _ = planted
    result = dose_response(frame, outcomes=("craving_derived",), waves=["m3"])
    assert result.waves == ("m3",)
    assert result.table["n"].sum() == 1500
    assert result.trend.loc[0, "n"] == 1500
    assert not any("pooled" in note for note in result.notes)


def test_weekly_bands_are_the_standard_three(planted):
    frame, _, _ = planted
    result = dose_response(frame, bands=WEEKLY_BANDS, outcomes=("any_use",))
    assert result.table["band"].tolist() == ["0", "1–3", "4+"]
    assert result.trend.loc[0, "estimate"] < 1


def test_summary_is_json_and_says_same_wave(planted):
    frame, _, _ = planted
    summary = dose_response(frame, outcomes=("any_use",)).summary()
    assert summary["association"] == "same wave (cross-sectional)"
    assert summary["bands"][-1] == "20+"
    json.dumps(summary, allow_nan=False)


def test_unknown_outcome_is_named():
    with pytest.raises(AnalysisError, match="'days_use'") as info:
        dose_response(_edge_frame(), outcomes=("days_use",))
    assert info.value.code == "unknown_column"


def test_unknown_wave_is_named(planted):
    frame, _, _ = planted
    with pytest.raises(AnalysisError, match="'m12'") as info:
        dose_response(frame, outcomes=("any_use",), waves=["m12"])
    assert info.value.code == "unknown_wave"


def test_too_few_rows_are_refused():
    frame = _edge_frame(repeats=1)
    with pytest.raises(AnalysisError, match="at least 20 rows") as info:
        dose_response(frame, outcomes=("any_use",))
    assert info.value.code == "too_few"


def test_attendance_without_variation_is_refused():
    frame = _edge_frame().assign(meetings_total=5.0)
    with pytest.raises(AnalysisError, match="meetings_total") as info:
        dose_response(frame, outcomes=("craving_derived",))
    assert info.value.code == "no_exposure_variation"


def test_overlapping_bands_are_refused():
    with pytest.raises(AnalysisError) as info:
        dose_response(_edge_frame(), bands=((0, 4), (4, None)))
    assert info.value.code == "invalid_parameter"


def test_values_between_bands_are_left_out_and_noted():
    frame = _edge_frame().assign(meetings_total=lambda f: f["meetings_total"] + 0.5)
    result = dose_response(frame, outcomes=("any_use",))
    assert result.table["n"].sum() < len(frame)
    assert any("outside every band" in note for note in result.notes)


def test_outcome_without_variation_is_refused():
    frame = _edge_frame().assign(any_use=0.0)
    with pytest.raises(AnalysisError, match="'any_use'") as info:
        dose_response(frame, outcomes=("any_use",))
    assert info.value.code == "constant_outcome"
