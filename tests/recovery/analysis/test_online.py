"""Online versus in-person: hand-counted groups, and a planted online effect hidden by
attendance volume (people who go to fewer meetings go online more, and fewer meetings go with
more use), which the naive comparison gets wrong and the adjusted one recovers."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from statsmodels.stats.proportion import proportion_confint

from recovery.analysis.errors import AnalysisError
from recovery.analysis.online import online_vs_inperson

SHARES = [0.0, 0.25, 0.5, 0.75, 1.0]
GROUP = [0, 1, 2, 2, 3]  # 0.5 is "mostly online"; 0.75 too


def _hand_frame(repeats: int = 5) -> pd.DataFrame:
    """One wave: each share ``repeats`` times, plus rows without meetings (no share)."""
    share = np.array(SHARES * repeats + [np.nan] * repeats)
    n = share.size
    meetings = np.where(np.isnan(share), 0.0, 4.0 + np.arange(n) % 3)
    return pd.DataFrame(
        {
            "pid": [f"P{i}" for i in range(n)],
            "wave": "m1",
            "wave_index": 1,
            "meetings_total": meetings,
            "meetings_online_share": share,
            "any_use": (np.arange(n) % 2).astype(float),
            "days_used": (np.arange(n) % 7).astype(float),
            "craving_derived": (np.arange(n) % 5).astype(float),
        }
    )


PLANTED_LOG_ODDS = 0.4  # any use, per +100 % online share, at the same number of meetings
PLANTED_DAYS = 2.0  # days of use, per +100 % online share, at the same number of meetings


# The estimator is unbiased over seeds (checked on 20: z-scores of mean ≈ 0, SD ≈ 1); this seed's
# draw lies within 1 SE of the truth, so the 3-SE checks below do not hang on luck.
def _confounded_frame(n: int = 2000, seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    waves = 3
    pid = np.repeat([f"P{i:04d}" for i in range(n)], waves)
    wave_index = np.tile(np.arange(1, waves + 1), n)
    tendency = np.repeat(rng.gamma(2.0, 4.0, n), waves)
    meetings = rng.poisson(tendency).astype(float)
    # Fewer meetings, more of them online.
    online = rng.binomial(meetings.astype(int), 1 / (1 + np.exp(-(1.0 - 0.25 * (meetings - 6)))))
    share = np.where(meetings > 0, online / np.maximum(meetings, 1), np.nan)
    s = np.nan_to_num(share)
    logit = 0.5 + PLANTED_LOG_ODDS * s - 0.15 * meetings
    any_use = (rng.random(pid.size) < 1 / (1 + np.exp(-logit))).astype(float)
    person = np.repeat(rng.normal(0, 2.0, n), waves)
    # Not clipped to 0–30, so that the linear model the analysis fits is the true one.
    days = 12 + PLANTED_DAYS * s - 0.6 * meetings + person + rng.normal(0, 3.0, pid.size)
    craving = 5 - 0.2 * meetings + rng.normal(0, 1.5, pid.size)  # no online effect
    return pd.DataFrame(
        {
            "pid": pid,
            "wave": np.array(["m1", "m3", "m6"])[wave_index - 1],
            "wave_index": wave_index,
            "meetings_total": meetings,
            "meetings_online_share": share,
            "any_use": any_use,
            "days_used": days,
            "craving_derived": craving,
            "age_bl": np.repeat(rng.normal(40, 10, n), waves),
        }
    )


@pytest.fixture(scope="module")
def confounded() -> pd.DataFrame:
    return _confounded_frame()


def test_groups_hold_the_shares_they_say():
    frame = _hand_frame()
    result = online_vs_inperson(frame, outcomes=("any_use",))
    table = result.table
    assert table["group"].tolist() == [
        "in person only",
        "mostly in person",
        "mostly online",
        "online only",
    ]
    # Rows without meetings are not in any group; 0.5 and 0.75 are both "mostly online".
    assert table["n"].tolist() == (np.bincount(GROUP, minlength=4) * 5).tolist()
    assert result.comparison.loc[0, "n"] == 25


def test_group_means_have_wilson_and_t_intervals():
    frame = _hand_frame()
    result = online_vs_inperson(frame, outcomes=("any_use", "days_used"))
    attended = frame[frame["meetings_total"] >= 1]
    group = np.array(GROUP * 5)
    use = result.table[result.table["outcome"] == "any_use"].reset_index(drop=True)
    for k in range(4):
        values = attended["any_use"].to_numpy()[group == k]
        low, high = proportion_confint(values.sum(), values.size, method="wilson")
        assert use.loc[k, "mean"] == pytest.approx(values.mean())
        assert (use.loc[k, "ci_low"], use.loc[k, "ci_high"]) == (
            pytest.approx(low),
            pytest.approx(high),
        )
        meetings = attended["meetings_total"].to_numpy()[group == k]
        assert use.loc[k, "mean_meetings"] == pytest.approx(meetings.mean())
    days = result.table[result.table["outcome"] == "days_used"]
    assert set(days["ci_method"]) == {"t"} and set(use["ci_method"]) == {"Wilson"}


def test_adjusted_recovers_the_planted_effect_the_naive_one_misses(confounded):
    result = online_vs_inperson(confounded)
    comparison = result.comparison.set_index("outcome")

    use = comparison.loc["any_use"]
    assert use["scale"] == "odds ratio per +100 % online share"
    assert abs(use["adjusted_coef"] - PLANTED_LOG_ODDS) < 3 * use["adjusted_se"]
    assert use["naive_ci_low"] > math.exp(PLANTED_LOG_ODDS)  # naive overstates the harm
    assert use["adjusted_estimate"] == pytest.approx(math.exp(use["adjusted_coef"]))

    days = comparison.loc["days_used"]
    assert days["scale"] == "mean difference per +100 % online share"
    assert abs(days["adjusted_estimate"] - PLANTED_DAYS) < 3 * days["adjusted_se"]
    assert days["naive_ci_low"] > PLANTED_DAYS

    # No online effect on craving: the naive comparison invents one, the adjusted one does not.
    craving = comparison.loc["craving_derived"]
    assert craving["naive_ci_low"] > 0
    assert craving["adjusted_ci_low"] < 0 < craving["adjusted_ci_high"]
    assert craving["adjusted_for"] == "meetings_total (linear), wave"


def test_table_shows_online_groups_attend_less(confounded):
    table = online_vs_inperson(confounded, outcomes=("any_use",)).table.set_index("group")
    assert table.loc["in person only", "mean_meetings"] > table.loc["online only", "mean_meetings"]
    assert table.loc["online only", "mean"] > table.loc["in person only", "mean"]


def test_naive_and_adjusted_are_statsmodels_gee(confounded):
    small = confounded[confounded["pid"] < "P0150"]
    result = online_vs_inperson(small, outcomes=("any_use", "days_used"), covariates=("age_bl",))
    data = small[small["meetings_total"] >= 1]
    share = data["meetings_online_share"].to_numpy()
    naive_x = np.column_stack([np.ones(len(data)), share])
    adjusted_x = np.column_stack(
        [
            naive_x,
            data["meetings_total"],
            data["age_bl"],
            (data["wave_index"] == 2).astype(float),
            (data["wave_index"] == 3).astype(float),
        ]
    )
    for outcome, family in (
        ("any_use", sm.families.Binomial()),
        ("days_used", sm.families.Gaussian()),
    ):
        row = result.comparison.set_index("outcome").loc[outcome]
        for prefix, exog in (("naive", naive_x), ("adjusted", adjusted_x)):
            expected = sm.GEE(
                data[outcome].to_numpy(),
                exog,
                groups=data["pid"].to_numpy(),
                family=family,
                cov_struct=sm.cov_struct.Exchangeable(),
            ).fit()
            assert row[f"{prefix}_coef"] == pytest.approx(expected.params[1], rel=1e-6)
            assert row[f"{prefix}_se"] == pytest.approx(expected.bse[1], rel=1e-6)
            assert row[f"{prefix}_p_value"] == pytest.approx(expected.pvalues[1], rel=1e-4)


def test_covariates_with_blanks_leave_the_same_rows_out_of_both_estimates(confounded):
    frame = confounded.copy()
    frame.loc[frame.index % 10 == 0, "age_bl"] = np.nan
    with_age = online_vs_inperson(frame, outcomes=("days_used",), covariates=["age_bl"])
    without = online_vs_inperson(frame, outcomes=("days_used",))
    assert with_age.comparison.loc[0, "n"] < without.comparison.loc[0, "n"]
    assert with_age.table["n"].sum() == with_age.comparison.loc[0, "n"]
    assert with_age.comparison.loc[0, "adjusted_for"] == "meetings_total (linear), wave, age_bl"


def test_summary_is_json(confounded):
    summary = online_vs_inperson(confounded, outcomes=("any_use",)).summary()
    assert summary["groups"][0] == "in person only"
    assert summary["comparison"][0]["scale"] == "odds ratio per +100 % online share"
    json.dumps(summary, allow_nan=False)


def test_custom_groups_and_labels():
    frame = _hand_frame()
    result = online_vs_inperson(
        frame, outcomes=("craving_derived",), bands=((0, 0.5), (0.5, 1), (1, 1)), labels=None
    )
    assert result.table["group"].tolist() == [
        "from 0% to under 50% online",
        "from 50% to under 100% online",
        "100% online",
    ]
    assert result.table["n"].tolist() == [10, 10, 5]


def test_online_share_without_variation_is_refused():
    frame = _hand_frame().assign(meetings_online_share=lambda f: f["meetings_online_share"] * 0)
    with pytest.raises(AnalysisError, match="meetings_online_share") as info:
        online_vs_inperson(frame, outcomes=("any_use",))
    assert info.value.code == "no_exposure_variation"


def test_unknown_covariate_is_named():
    with pytest.raises(AnalysisError, match="'age'") as info:
        online_vs_inperson(_hand_frame(), covariates=("age",))
    assert info.value.code == "unknown_column"


def test_too_few_rows_are_refused():
    with pytest.raises(AnalysisError, match="at least 20 rows") as info:
        online_vs_inperson(_hand_frame(repeats=2), outcomes=("any_use",))
    assert info.value.code == "too_few"


def test_overlapping_groups_are_refused():
    with pytest.raises(AnalysisError, match="overlap") as info:
        online_vs_inperson(_hand_frame(), bands=((0, 0.6), (0.5, 1)))
    assert info.value.code == "invalid_parameter"


def test_constant_covariate_is_named(confounded):
    frame = confounded.assign(site_bl=1.0)
    with pytest.raises(AnalysisError, match="'site_bl' is constant") as info:
        online_vs_inperson(frame, outcomes=("days_used",), covariates=("site_bl",))
    assert info.value.code == "collinear_covariates"
