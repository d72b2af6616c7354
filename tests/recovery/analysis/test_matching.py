"""Propensity-score matching for the ATT, checked against direct computations (statsmodels,
scikit-learn, scipy and hand-written formulas on the matched pairs the result reports), a planted
effect in a synthetic cohort, every option, and the errors a researcher can run into. Pure: no
database."""

import json
import math
from datetime import date

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from benchmarks.validate_matching import COVARIATES, cohort_frame
from recovery.analysis.errors import AnalysisError
from recovery.analysis.matching import (
    _match,
    common_support,
    estimate_att,
    love_plot_data,
)
from recovery.synthetic import generate_cohort

COVS = ["x1", "x2", "x3"]
Z = stats.norm.ppf(0.975)


def _frame(
    n: int = 400,
    *,
    seed: int = 11,
    binary_outcome: bool = True,
    intercept: float = -0.3,
    strength: float = 1.0,
) -> pd.DataFrame:
    """Confounded data: a normal, a 0/1 and a 0–5 covariate drive exposure and outcome. The
    index is shuffled text, so a mix-up of positions and labels would show."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.binomial(1, 0.4, n)
    x3 = rng.integers(0, 6, n)
    lin = intercept + strength * (0.8 * x1 - 0.6 * x2 + 0.2 * (x3 - 2.5))
    t = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int)
    if binary_outcome:
        p = 1 / (1 + np.exp(-(-0.4 + 0.6 * x1 + 0.3 * x2 - 0.1 * x3 - 0.5 * t)))
        y = (rng.random(n) < p).astype(float)
    else:
        y = 1.0 + x1 + 0.5 * x2 - 0.2 * x3 - 0.4 * t + rng.normal(size=n)
    index = pd.Index([f"id{i:04d}" for i in rng.permutation(n)], name="pid")
    return pd.DataFrame({"t": t, "y": y, "x1": x1, "x2": x2, "x3": x3}, index=index)


def _att(df: pd.DataFrame, **kwargs):
    return estimate_att(df, treatment="t", outcome="y", covariates=COVS, **kwargs)


def _logit(result) -> pd.Series:
    ps = result.propensity
    return np.log(ps / (1 - ps))


def _set_differences(df: pd.DataFrame, pairs: pd.DataFrame) -> pd.Series:
    """Per matched treated row: its outcome − the weighted mean outcome of its controls."""
    y = df["y"]
    control_part = (y.loc[pairs["control_index"]].to_numpy() * pairs["weight"]).groupby(
        pairs["treated_index"].to_numpy(), sort=False
    )
    control_mean = control_part.sum()
    return y.loc[control_mean.index] - control_mean


def _stacked(df: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """The matched sample, one row per participant per matched set (built here, not by the
    module): each matched treated row with weight 1 and each of its controls with its weight."""
    sets = pairs["treated_index"].unique()
    treated = pd.DataFrame({"set": sets, "pid": sets, "t": 1.0, "w": 1.0})
    controls = pd.DataFrame(
        {
            "set": pairs["treated_index"].to_numpy(),
            "pid": pairs["control_index"].to_numpy(),
            "t": 0.0,
            "w": pairs["weight"].to_numpy(),
        }
    )
    stacked = pd.concat([treated, controls], ignore_index=True)
    stacked["y"] = df["y"].loc[stacked["pid"]].to_numpy()
    return stacked


def _codes(*columns: pd.Series) -> np.ndarray:
    return np.column_stack([pd.factorize(c)[0] for c in columns]).squeeze()


# --- Right answers -------------------------------------------------------------------------


def test_logistic_propensity_equals_statsmodels_logit_and_sklearn():
    from sklearn.linear_model import LogisticRegression

    df = _frame()
    result = _att(df)
    x = df[COVS].to_numpy(dtype=float)
    exog = sm.add_constant(x)
    logit = sm.Logit(df["t"].to_numpy(), exog).fit(disp=0)
    # No penalty (scikit-learn 1.8 spells penalty=None as C=inf).
    skl = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(x, df["t"])

    assert result.propensity.index.equals(df.index)
    assert result.propensity.to_numpy() == pytest.approx(logit.predict(exog), rel=1e-9)
    assert result.propensity.to_numpy() == pytest.approx(skl.predict_proba(x)[:, 1], abs=1e-6)
    assert (result.exposure == df["t"]).all()
    assert result.logit_sd == pytest.approx(np.std(_logit(result), ddof=1), rel=1e-12)
    assert result.caliper_width == pytest.approx(0.2 * result.logit_sd, rel=1e-12)
    assert "logistic regression" in result.ps_method


@pytest.mark.parametrize("binary_outcome", [True, False])
def test_one_to_one_without_caliper_is_mean_pair_difference_with_paired_t_interval(
    binary_outcome,
):
    df = _frame(binary_outcome=binary_outcome)
    n_treated = int(df["t"].sum())
    assert n_treated < (df["t"] == 0).sum()  # every treated row finds a control
    for caliper in (None, 1e6):
        result = _att(df, caliper=caliper, ratio=1, replace=False, seed=4)
        pairs = result.matched_pairs
        assert len(pairs) == result.n_matched_treated == result.n_treated == n_treated
        assert result.n_unmatched_treated == 0
        assert (pairs["weight"] == 1).all()

        y = df["y"]
        diffs = y.loc[pairs["treated_index"]].to_numpy() - y.loc[pairs["control_index"]].to_numpy()
        ci = stats.ttest_1samp(diffs, 0.0).confidence_interval(0.95)
        assert result.att == pytest.approx(diffs.mean(), rel=1e-12, abs=1e-15)
        assert result.att_se == pytest.approx(stats.sem(diffs), rel=1e-12)
        assert (result.ci_low, result.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-10)
        assert "paired t-interval" in result.ci_method
        assert result.mean_outcome_treated == pytest.approx(y.loc[pairs["treated_index"]].mean())
        assert result.mean_outcome_control == pytest.approx(y.loc[pairs["control_index"]].mean())
        assert result.outcome_is_binary is binary_outcome
    assert math.isinf(_att(df, caliper=None).caliper_width)


def test_caliper_bounds_every_pair_and_no_control_is_used_twice():
    df = _frame(n=500, strength=2.0)
    result = _att(df, caliper=0.2, seed=3)
    pairs = result.matched_pairs
    logit = _logit(result)

    recomputed = (
        logit.loc[pairs["treated_index"]].to_numpy() - logit.loc[pairs["control_index"]].to_numpy()
    )
    assert pairs["logit_distance"].to_numpy() == pytest.approx(np.abs(recomputed), abs=1e-12)
    assert (pairs["logit_distance"] <= result.caliper_width).all()
    assert pairs["control_index"].is_unique
    assert pairs["treated_index"].is_unique
    assert (df.loc[pairs["treated_index"], "t"] == 1).all()
    assert (df.loc[pairs["control_index"], "t"] == 0).all()
    # The strong confounding leaves some exposed rows without a control within the caliper.
    assert result.n_unmatched_treated > 0
    assert result.n_unmatched_treated == result.n_treated - len(pairs)
    assert result.n_matched_control == len(pairs)
    assert any("had no control within the caliper" in note for note in result.notes)


def _assert_greedy(logit: pd.Series, exposure: pd.Series, pairs: pd.DataFrame, width, ratio):
    """Greedy nearest-neighbour matching without replacement, checked without knowing how it is
    implemented: ``matched_pairs`` lists matched sets in the order they were formed; each set's
    controls must be ``ratio`` (or all available, if fewer) of the nearest controls not used by
    an earlier set, all within the caliper; an unmatched treated row has no unused control within
    the caliper even at the end."""
    controls = exposure.index[exposure == 0]
    used: set = set()
    for treated, chosen in pairs.groupby("treated_index", sort=False)["control_index"]:
        free = [c for c in controls if c not in used]
        distance = (logit.loc[free] - logit.loc[treated]).abs()
        within = distance[distance <= width]
        assert used.isdisjoint(chosen)
        assert set(chosen) <= set(within.index)
        assert len(chosen) == min(ratio, len(within))
        farthest = distance.loc[list(chosen)].max()
        assert (within.drop(list(chosen)) >= farthest).all()
        used.update(chosen)
    unmatched = exposure.index[(exposure == 1) & ~exposure.index.isin(pairs["treated_index"])]
    free = [c for c in controls if c not in used]
    for treated in unmatched:
        assert ((logit.loc[free] - logit.loc[treated]).abs() > width).all()


@pytest.mark.parametrize(
    ("discrete", "intercept", "ratio", "caliper"),
    [
        (True, -0.3, 1, 0.2),
        (True, -0.3, 3, 0.2),
        (True, 0.8, 2, None),  # more exposed than controls: the controls run out
        (False, -0.3, 1, 0.1),
        (False, 0.8, 3, 0.5),
    ],
)
def test_greedy_matching_takes_the_nearest_unused_controls(discrete, intercept, ratio, caliper):
    df = _frame(n=220, seed=5, intercept=intercept)
    covariates = ["x2", "x3"] if discrete else COVS  # discrete: 12 distinct scores, many ties
    result = estimate_att(
        df, treatment="t", outcome="y", covariates=covariates, ratio=ratio, caliper=caliper, seed=8
    )
    pairs = result.matched_pairs
    assert pairs.groupby("treated_index")["weight"].sum().to_numpy() == pytest.approx(1.0)
    _assert_greedy(_logit(result), result.exposure, pairs, result.caliper_width, ratio)
    if intercept > 0:
        assert result.n_control < result.n_treated
    if caliper is None:  # every control ends up used
        assert result.n_matched_control == result.n_control


def test_free_slot_search_on_many_small_random_designs():
    """The path-compressed search itself, on tiny designs that hit its edges: scores below or
    above every control, ties on both sides, the controls running out, zero and no caliper."""
    rng = np.random.default_rng(2024)
    for trial in range(250):
        n_t, n_c = rng.integers(1, 16, 2)
        t = rng.permutation(np.r_[np.ones(n_t, int), np.zeros(n_c, int)])
        if rng.random() < 0.5:
            logit = rng.integers(-3, 4, t.size) * 0.5  # ties everywhere
        else:
            logit = rng.normal(size=t.size) + t * rng.normal(0, 1.5)
        width = float(rng.choice([0.0, 0.25, 1.0, math.inf]))
        ratio = int(rng.integers(1, 4))
        pairs = _match(
            logit,
            t,
            caliper_width=width,
            ratio=ratio,
            replace=False,
            rng=np.random.default_rng(trial),
        )
        index = pd.Index(np.arange(t.size))
        frame = pd.DataFrame({"treated_index": pairs["treated"], "control_index": pairs["control"]})
        _assert_greedy(pd.Series(logit, index), pd.Series(t, index), frame, width, ratio)


def test_ties_between_equal_controls_are_broken_at_random():
    """One 0/1 covariate: two scores only, each exposed row has dozens of equally near controls.
    Which of them are used must depend on the seed, not on the row order."""
    rng = np.random.default_rng(0)
    x = np.r_[np.zeros(15), np.ones(15), np.zeros(40), np.ones(40)]
    df = pd.DataFrame(
        {"t": np.r_[np.ones(30), np.zeros(80)], "y": rng.binomial(1, 0.5, 110), "x": x}
    )
    used = []
    for seed in range(5):
        result = estimate_att(df, treatment="t", outcome="y", covariates=["x"], seed=seed)
        assert (result.matched_pairs["logit_distance"] == 0).all()
        used.append(frozenset(result.matched_pairs["control_index"]))
    first_in_row_order = frozenset(range(30, 45)) | frozenset(range(70, 85))
    assert len(set(used)) == 5
    assert first_in_row_order not in used


@pytest.mark.parametrize("ratio", [1, 2])
def test_with_replacement_weights_add_up_per_control(ratio):
    df = _frame(n=300, seed=9, intercept=0.6)  # more exposed than controls: controls are reused
    result = _att(df, replace=True, ratio=ratio, caliper=0.2, seed=1)
    pairs = result.matched_pairs
    logit = _logit(result)

    per_set = pairs.groupby("treated_index")
    k = per_set["control_index"].transform("size")
    assert (pairs["weight"] == 1 / k).all()
    assert (per_set["control_index"].nunique() == per_set.size()).all()
    assert (per_set.size() <= ratio).all()
    # Each treated row takes the nearest controls of all (used or not).
    controls = result.exposure.index[result.exposure == 0]
    for treated, chosen in per_set["control_index"]:
        distance = (logit.loc[controls] - logit.loc[treated]).abs().sort_values()
        assert distance.loc[list(chosen)].max() == pytest.approx(distance.iloc[len(chosen) - 1])
    # A control's weight adds up over the sets it serves: 1/k each.
    served = pairs.groupby("control_index")["weight"].sum()
    expected = (1 / k).groupby(pairs["control_index"].to_numpy()).sum()
    assert served.to_numpy() == pytest.approx(expected.loc[served.index].to_numpy())
    assert (pairs["control_index"].value_counts() > 1).any()
    assert result.n_matched_control == pairs["control_index"].nunique() < len(pairs)
    assert served.sum() == pytest.approx(result.n_matched_treated)
    # The ATT is still the mean of the per-set differences.
    assert result.att == pytest.approx(_set_differences(df, pairs).mean(), rel=1e-12)


def test_one_to_two_each_treated_has_at_most_two_controls_and_a_set_clustered_interval():
    df = _frame(n=500, seed=2, intercept=-1.0)
    result = _att(df, ratio=2, caliper=0.2, seed=6)
    pairs = result.matched_pairs
    sizes = pairs.groupby("treated_index").size()
    assert sizes.max() == 2
    assert set(sizes.unique()) <= {1, 2}
    assert (pairs["weight"] == 1 / pairs.groupby("treated_index")["weight"].transform("size")).all()
    assert pairs["control_index"].is_unique

    d = _set_differences(df, pairs)
    assert result.att == pytest.approx(d.mean(), rel=1e-12)
    # WLS of y on t with matching weights, clustered on the matched set: its coefficient is the
    # mean set difference d̄, each set's score is d_g − d̄, so the CR1 variance is
    # Σ(d_g − d̄)²/G² · G/(G−1) · (N−1)/(N−2): the paired SE × sqrt((N−1)/(N−2)), with G sets
    # and N stacked rows.
    g, n = d.size, int(sizes.sum() + d.size)
    closed_form = d.std(ddof=1) / math.sqrt(g) * math.sqrt((n - 1) / (n - 2))
    assert result.att_se == pytest.approx(closed_form, rel=1e-10)
    stacked = _stacked(df, pairs)
    fit = sm.WLS(stacked["y"], sm.add_constant(stacked["t"]), weights=stacked["w"]).fit(
        cov_type="cluster", cov_kwds={"groups": _codes(stacked["set"])}
    )
    assert fit.params["t"] == pytest.approx(result.att, rel=1e-10)
    assert fit.bse["t"] == pytest.approx(result.att_se, rel=1e-10)
    assert (result.ci_low, result.ci_high) == pytest.approx(
        (result.att - Z * result.att_se, result.att + Z * result.att_se), rel=1e-12
    )
    assert "cluster-robust standard errors by matched set" in result.ci_method
    # Each matched set has weight 1 on both sides, so the weighted control mean is the mean of
    # the set means.
    assert result.mean_outcome_treated - result.mean_outcome_control == pytest.approx(result.att)


def test_with_replacement_interval_is_two_way_clustered_by_set_and_participant():
    df = _frame(n=300, seed=9, intercept=0.6)
    result = _att(df, replace=True, ratio=1, seed=2)
    stacked = _stacked(df, result.matched_pairs)
    fit = sm.WLS(stacked["y"], sm.add_constant(stacked["t"]), weights=stacked["w"]).fit(
        cov_type="cluster", cov_kwds={"groups": _codes(stacked["set"], stacked["pid"])}
    )
    assert fit.params["t"] == pytest.approx(result.att, rel=1e-10)
    assert fit.bse["t"] == pytest.approx(result.att_se, rel=1e-10)
    assert "two-way cluster-robust" in result.ci_method
    # Reused controls make the two-way error larger than the matched-set one alone.
    one_way = sm.WLS(stacked["y"], sm.add_constant(stacked["t"]), weights=stacked["w"]).fit(
        cov_type="cluster", cov_kwds={"groups": _codes(stacked["set"])}
    )
    assert result.att_se > one_way.bse["t"]


def test_ipw_att_is_weighted_difference_with_hc1_standard_error():
    df = _frame(n=400, seed=13)
    result = _att(df)
    ps = result.propensity
    t = df["t"].to_numpy()
    y = df["y"].to_numpy()
    w = np.where(t == 1, 1.0, ps / (1 - ps))
    mean_t = y[t == 1].mean()
    mean_c = np.average(y[t == 0], weights=w[t == 0])
    assert result.ipw_att == pytest.approx(mean_t - mean_c, rel=1e-10)

    fit = sm.WLS(y, sm.add_constant(t.astype(float)), weights=w).fit(cov_type="HC1")
    # By hand: the sandwich of the two weighted means, with HC1's n/(n-2).
    e_t, e_c = y[t == 1] - mean_t, y[t == 0] - mean_c
    by_hand = math.sqrt(
        len(y)
        / (len(y) - 2)
        * (
            (e_t**2).sum() / (t == 1).sum() ** 2
            + (w[t == 0] ** 2 * e_c**2).sum() / w[t == 0].sum() ** 2
        )
    )
    assert fit.bse[1] == pytest.approx(by_hand, rel=1e-10)
    se = (result.ipw_ci_high - result.ipw_ci_low) / (2 * Z)
    assert se == pytest.approx(by_hand, rel=1e-10)
    assert (result.ipw_ci_low + result.ipw_ci_high) / 2 == pytest.approx(result.ipw_att)
    assert "HC1" in result.ipw_ci_method


@pytest.mark.parametrize("binary_outcome", [True, False])
def test_naive_is_difference_in_means_with_welch_interval(binary_outcome):
    df = _frame(binary_outcome=binary_outcome)
    result = _att(df)
    a, b = df.loc[df["t"] == 1, "y"], df.loc[df["t"] == 0, "y"]
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert result.naive == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert (result.naive_ci_low, result.naive_ci_high) == pytest.approx(
        (welch.low, welch.high), rel=1e-10
    )
    assert "Welch" in result.naive_ci_method


@pytest.mark.parametrize(
    "options",
    [
        {"ratio": 1, "replace": False},
        {"ratio": 2, "replace": True},
        {"ratio": 3, "replace": False, "caliper": 0.5},
    ],
)
def test_balance_before_and_after_by_hand(options):
    df = _frame(n=400, seed=21)
    result = _att(df, seed=5, **options)
    pairs = result.matched_pairs
    xt, xc = df.loc[df["t"] == 1, COVS], df.loc[df["t"] == 0, COVS]
    pooled = np.sqrt((xt.var(ddof=1) + xc.var(ddof=1)) / 2)
    smd_before = (xt.mean() - xc.mean()) / pooled

    matched_t = df.loc[pairs["treated_index"].unique(), COVS].mean()
    weight = pairs.groupby("control_index")["weight"].sum()
    matched_c = df.loc[weight.index, COVS].mul(weight, axis=0).sum() / weight.sum()
    smd_after = (matched_t - matched_c) / pooled

    balance = result.balance
    assert list(balance.index) == COVS
    assert balance.index.name == "covariate"
    assert balance["smd_before"].to_numpy() == pytest.approx(smd_before.to_numpy(), rel=1e-10)
    assert balance["smd_after"].to_numpy() == pytest.approx(
        smd_after.to_numpy(), rel=1e-10, abs=1e-14
    )
    assert balance["pooled_sd_before"].to_numpy() == pytest.approx(pooled.to_numpy(), rel=1e-12)
    assert (balance["imbalanced_after"] == (balance["smd_after"].abs() >= 0.1)).all()
    # The confounders are imbalanced before; matching removes most of it.
    assert balance["smd_before"].abs().max() > 0.3
    assert balance["smd_after"].abs().max() < balance["smd_before"].abs().max() / 2


@pytest.mark.filterwarnings("ignore:cov_type not fully supported with var_weights")
def test_matched_odds_ratio_equals_binomial_glm_on_the_matched_sample():
    df = _frame(n=500, seed=17)
    result = _att(df, seed=7)
    stacked = _stacked(df, result.matched_pairs)
    assert (stacked["w"] == 1).all()
    fit = sm.GLM(
        stacked["y"],
        sm.add_constant(stacked["t"]),
        family=sm.families.Binomial(),
        var_weights=stacked["w"],
    ).fit(cov_type="cluster", cov_kwds={"groups": _codes(stacked["set"])})
    log_or, se = fit.params["t"], fit.bse["t"]
    assert result.odds_ratio == pytest.approx(math.exp(log_or), rel=1e-8)
    assert result.odds_ratio_ci_low == pytest.approx(math.exp(log_or - Z * se), rel=1e-7)
    assert result.odds_ratio_ci_high == pytest.approx(math.exp(log_or + Z * se), rel=1e-7)
    # A one-regressor logistic fit reproduces the two risks: the OR is the cross-product ratio.
    p1 = stacked.loc[stacked["t"] == 1, "y"].mean()
    p0 = stacked.loc[stacked["t"] == 0, "y"].mean()
    assert result.odds_ratio == pytest.approx(p1 / (1 - p1) / (p0 / (1 - p0)), rel=1e-7)
    assert "logistic regression" in result.odds_ratio_method


def test_matched_odds_ratio_interval_for_one_to_two_is_the_set_clustered_sandwich():
    """The robust interval of the weighted logistic fit, written out: score per matched set,
    bread from the weighted information, CR1 correction."""
    df = _frame(n=500, seed=2, intercept=-1.0)
    result = _att(df, ratio=2, seed=6)
    s = _stacked(df, result.matched_pairs)
    t, y, w = s["t"].to_numpy(), s["y"].to_numpy(), s["w"].to_numpy()
    p1, p0 = np.average(y[t == 1], weights=w[t == 1]), np.average(y[t == 0], weights=w[t == 0])
    log_or = math.log(p1 / (1 - p1)) - math.log(p0 / (1 - p0))
    mu = np.where(t == 1, p1, p0)
    x = np.column_stack([np.ones(t.size), t])
    score = pd.DataFrame(x * (w * (y - mu))[:, None]).groupby(s["set"].to_numpy()).sum()
    bread = np.linalg.inv((x * (w * mu * (1 - mu))[:, None]).T @ x)
    g, n = len(score), t.size
    cov = bread @ (score.T @ score).to_numpy() @ bread * g / (g - 1) * (n - 1) / (n - 2)
    se = math.sqrt(cov[1, 1])
    assert result.odds_ratio == pytest.approx(math.exp(log_or), rel=1e-7)
    assert result.odds_ratio_ci_low == pytest.approx(math.exp(log_or - Z * se), rel=1e-6)
    assert result.odds_ratio_ci_high == pytest.approx(math.exp(log_or + Z * se), rel=1e-6)


def test_no_odds_ratio_for_a_continuous_outcome_or_a_group_without_events():
    continuous = _att(_frame(binary_outcome=False))
    assert continuous.odds_ratio is None and continuous.odds_ratio_method is None

    df = _frame()
    df.loc[df["t"] == 1, "y"] = 0.0
    none_exposed = _att(df)
    assert none_exposed.odds_ratio is None
    assert none_exposed.att < 0
    assert any("No odds ratio" in note for note in none_exposed.notes)


# --- A planted effect ----------------------------------------------------------------------

PLANTED = -0.15


@pytest.fixture(scope="module")
def planted():
    cohort = generate_cohort(participants=2000, seed=1, effect=PLANTED, as_of=date(2026, 11, 24))
    frame = cohort_frame(cohort)
    result = estimate_att(
        frame,
        treatment="high_involvement_m3",
        outcome="any_use_m12",
        covariates=COVARIATES,
        seed=1,
    )
    return cohort, frame, result


def test_planted_effect_is_covered_while_the_naive_difference_is_confounded(planted):
    cohort, frame, result = planted
    assert cohort.true_effect == pytest.approx(PLANTED)
    # The 12-month outcome is missing for those who did not answer (about 30 %).
    assert result.n_dropped_missing == frame["any_use_m12"].isna().sum() > 400
    assert result.ci_low <= PLANTED <= result.ci_high
    # Less severe, more ready people get involved and would use less anyway.
    assert result.naive <= PLANTED - 0.05
    assert result.naive < result.att
    balance = result.balance
    assert balance.loc["baseline_days_used", "smd_before"] < -0.5
    assert balance.loc["readiness", "smd_before"] > 0.5
    assert (balance["smd_after"].abs() < 0.1).all()
    assert not balance["imbalanced_after"].any()


# --- Options -------------------------------------------------------------------------------

OPTIONS = {
    "ratio2": ({"ratio": 2}, "cluster-robust standard errors by matched set"),
    "replace": ({"replace": True}, "two-way cluster-robust"),
    "no_caliper": ({"caliper": None}, "paired t-interval"),
    "random_forest": ({"ps_model": "random_forest"}, "paired t-interval"),
    "gradient_boosting": ({"ps_model": "gradient_boosting"}, "paired t-interval"),
}


@pytest.fixture(scope="module")
def option_frame():
    return _frame(n=300, seed=31)


@pytest.fixture(scope="module")
def option_runs(option_frame):
    """Each option twice with seed 0 and once with seed 1 (the forest takes about a second)."""
    runs = {}
    for name, (options, _) in OPTIONS.items():
        runs[name] = [_att(option_frame, seed=seed, **options) for seed in (0, 0, 1)]
    return runs


@pytest.mark.parametrize("name", OPTIONS)
def test_each_option_runs_and_names_its_interval(option_runs, name):
    options, words = OPTIONS[name]
    result = option_runs[name][0]
    assert words in result.ci_method
    assert result.ci_low < result.att < result.ci_high
    assert result.n_matched_treated >= 2
    for key, value in options.items():
        assert getattr(result, key) == value
    if name == "no_caliper":
        assert math.isinf(result.caliper_width)
        assert result.n_unmatched_treated == 0
    if name in ("random_forest", "gradient_boosting"):
        assert name.replace("_", " ") in result.ps_method
        assert "cross-fitted" in result.ps_method
        assert result.propensity.between(1e-6, 1 - 1e-6).all()
        assert (result.matched_pairs["logit_distance"] <= result.caliper_width).all()


@pytest.mark.parametrize("name", OPTIONS)
def test_same_seed_same_result(option_runs, name):
    first, again, _ = option_runs[name]
    assert again.summary() == first.summary()
    pd.testing.assert_series_equal(again.propensity, first.propensity)
    pd.testing.assert_frame_equal(again.matched_pairs, first.matched_pairs)
    pd.testing.assert_frame_equal(again.balance, first.balance)


@pytest.mark.parametrize("name", ["random_forest", "gradient_boosting"])
def test_machine_learning_scores_differ_across_seeds(option_runs, name):
    first, _, other = option_runs[name]
    assert not np.allclose(first.propensity, other.propensity)
    assert not first.matched_pairs.equals(other.matched_pairs)


def test_logistic_score_does_not_depend_on_the_seed_but_the_matching_order_does(option_runs):
    first, _, other = option_runs["ratio2"]
    pd.testing.assert_series_equal(first.propensity, other.propensity)
    assert not first.matched_pairs.equals(other.matched_pairs)


# --- Errors --------------------------------------------------------------------------------


def _separated(df):
    df["x1"] = np.where(df["t"] == 1, 1.0, -1.0) + 0.1 * df["x3"]
    return df


def _overlapping_a_little(df):
    rng = np.random.default_rng(1)
    df["x1"] = np.where(df["t"] == 1, 2.0, -2.0) + rng.normal(size=len(df))
    return df


def _too_few_treated(df):
    treated = df.index[df["t"] == 1]
    return df.drop(treated[9:])


def _too_few_after_missing(df):
    df.loc[df.index[df["t"] == 1][9:], "x1"] = np.nan
    return df


ERRORS = {
    "unknown_column": (
        lambda df: df,
        {"covariates": ["x1", "severity"]},
        "unknown_column",
        "'severity'",
    ),
    "unknown_outcome": (lambda df: df, {"outcome": "use_m12"}, "unknown_column", "'use_m12'"),
    "text_covariate": (
        lambda df: df.assign(site=np.where(df["x2"] == 1, "NYC", "CHI")),
        {"covariates": ["x1", "site"]},
        "non_numeric",
        "'site'",
    ),
    "text_outcome": (
        lambda df: df.assign(y=np.where(df["y"] == 1, "yes", "no")),
        {},
        "non_numeric",
        "'y'",
    ),
    "treatment_1_2": (lambda df: df.assign(t=df["t"] + 1), {}, "non_binary_treatment", "'t'"),
    "treatment_text": (
        lambda df: df.assign(t=np.where(df["t"] == 1, "high", "low")),
        {},
        "non_binary_treatment",
        "'t'",
    ),
    # A fraction must not be truncated to 0 (it was: 0.5 counted as unexposed).
    "treatment_fraction": (
        lambda df: df.assign(t=np.where(df.index.str.endswith("7"), 0.5, df["t"])),
        {},
        "non_binary_treatment",
        "'t'",
    ),
    "treatment_share": (
        lambda df: df.assign(t=np.linspace(0.05, 0.95, len(df))),
        {},
        "non_binary_treatment",
        "'t'",
    ),
    "no_variation": (lambda df: df.assign(t=1), {}, "no_exposure_variation", "t = 1"),
    "too_few": (_too_few_treated, {}, "too_few", "9 rows have t = 1"),
    "too_few_after_missing": (_too_few_after_missing, {}, "too_few", "9 rows have t = 1"),
    "constant_outcome": (lambda df: df.assign(y=1.0), {}, "constant_outcome", "'y'"),
    "constant_covariate": (
        lambda df: df.assign(c=3.0),
        {"covariates": ["x1", "c"]},
        "constant_covariate",
        "'c'",
    ),
    "collinear": (
        lambda df: df.assign(x1_twice=2 * df["x1"] + 1),
        {"covariates": ["x1", "x1_twice", "x2"]},
        "collinear_covariates",
        "'x1_twice'",
    ),
    "indicator_set": (
        lambda df: df.assign(not_x2=1 - df["x2"]),
        {"covariates": ["x2", "not_x2"]},
        "collinear_covariates",
        "'not_x2'",
    ),
    "perfect_separation": (_separated, {}, "perfect_separation", "'x1'"),
    "no_common_support": (
        _overlapping_a_little,
        {"caliper": 1e-9},
        "no_common_support",
        "No common support",
    ),
    "ps_model": (lambda df: df, {"ps_model": "neural_net"}, "invalid_parameter", "neural_net"),
    "caliper_zero": (lambda df: df, {"caliper": 0}, "invalid_parameter", "caliper"),
    "caliper_negative": (lambda df: df, {"caliper": -0.2}, "invalid_parameter", "caliper"),
    "caliper_text": (lambda df: df, {"caliper": "0.2"}, "invalid_parameter", "caliper"),
    "ratio_zero": (lambda df: df, {"ratio": 0}, "invalid_parameter", "ratio"),
    "ratio_fraction": (lambda df: df, {"ratio": 1.5}, "invalid_parameter", "ratio"),
    "ratio_bool": (lambda df: df, {"ratio": True}, "invalid_parameter", "ratio"),
    "no_covariates": (lambda df: df, {"covariates": []}, "invalid_parameter", "covariate"),
    "outcome_as_covariate": (
        lambda df: df,
        {"covariates": ["x1", "y"]},
        "invalid_parameter",
        "'y'",
    ),
    "duplicate_index": (
        lambda df: df.set_axis([f"p{i % 200}" for i in range(len(df))]),
        {},
        "invalid_parameter",
        "index",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_say_what_is_wrong(case):
    change, options, code, words = ERRORS[case]
    df = change(_frame(n=400, seed=23).copy())
    request = {"treatment": "t", "outcome": "y", "covariates": COVS} | options
    with pytest.raises(AnalysisError) as caught:
        estimate_att(df, **request)
    assert caught.value.code == code
    assert words in caught.value.message
    assert "Traceback" not in str(caught.value)


def test_missing_values_are_left_out_and_counted():
    df = _frame(n=400, seed=29)
    df["t"] = df["t"].astype("Int64")
    df["x3"] = df["x3"].astype(float)
    df.iloc[[0, 1, 2], df.columns.get_loc("t")] = pd.NA
    df.iloc[[2, 3], df.columns.get_loc("y")] = np.nan
    df.iloc[[4, 5, 6, 7], df.columns.get_loc("x1")] = np.nan
    df.iloc[[8], df.columns.get_loc("x3")] = np.inf
    result = _att(df, seed=3)
    assert result.n_rows == 400
    assert result.n_dropped_missing == 9
    assert result.n_used == 391 == len(result.propensity)
    assert result.n_treated + result.n_control == 391
    assert not result.propensity.index.isin(df.index[:9]).any()
    assert "9 rows with a missing value were left out." in result.notes

    complete = df.iloc[9:].astype({"t": int, "x3": int})
    same = _att(complete, seed=3)
    assert same.n_dropped_missing == 0
    assert same.att == result.att
    pd.testing.assert_frame_equal(same.matched_pairs, result.matched_pairs)


# --- What a report shows -------------------------------------------------------------------


def test_summary_is_json_and_has_the_numbers_a_report_needs():
    result = _att(_frame(), ratio=2, seed=1)
    summary = result.summary()
    parsed = json.loads(json.dumps(summary))
    for key in ("att", "ci_low", "ci_high", "naive", "ipw_att", "n_treated", "n_matched_treated"):
        assert parsed[key] == getattr(result, key)
    assert parsed["covariates"] == COVS
    assert parsed["ci_method"] == result.ci_method
    assert not {"balance", "propensity", "exposure", "matched_pairs"} & set(summary)
    assert result.ci_low < result.att < result.ci_high


def test_summary_is_json_when_ratio_and_seed_are_numpy_integers():
    """A loop over np.arange gives numpy integers, which json cannot write."""
    result = _att(_frame(), ratio=np.int64(2), seed=np.int64(4))
    summary = json.loads(json.dumps(result.summary()))
    assert summary["ratio"] == 2 and summary["seed"] == 4
    assert result.summary() == _att(_frame(), ratio=2, seed=4).summary()


def test_balance_love_plot_and_common_support_tables():
    result = _att(_frame(n=500, strength=2.0), seed=2)
    balance = result.balance
    assert balance.index.name == "covariate"
    assert {"smd_before", "smd_after", "imbalanced_before", "imbalanced_after"} <= set(balance)

    love = love_plot_data(result)
    assert list(love.columns) == ["smd_before", "smd_after", "imbalanced_after"]
    assert list(love.index) == list(balance["smd_before"].abs().sort_values(ascending=False).index)

    support = common_support(result)
    assert support.index.equals(result.propensity.index)
    assert (support["group"] == np.where(result.exposure == 1, "treated", "control")).all()
    in_pairs = set(result.matched_pairs["treated_index"]) | set(
        result.matched_pairs["control_index"]
    )
    assert set(support.index[support["matched"]]) == in_pairs
    assert support["logit_propensity"].to_numpy() == pytest.approx(_logit(result).to_numpy())
