"""Lagged GEE and mixed models on synthetic panels with planted effects, checked against
direct statsmodels fits of the same design. Pure: no database."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from recovery.analysis import longitudinal
from recovery.analysis.errors import AnalysisError
from recovery.analysis.longitudinal import (
    craving_trajectory,
    lagged_gee,
    lagged_pairs,
    participant_exposure,
)

WAVES = 5
SCHEDULE = np.array([0.0, 1.0, 3.0, 6.0, 12.0])
COVARIATES = ["readiness_bl", "age_bl"]
# Zeger, Liang & Albert (1988): a logit model with a normal random intercept of SD σ is, on
# average over participants, a logit model with coefficients shrunk by (1 + c²σ²)^(-1/2).
ZEGER_C2 = (16 * math.sqrt(3) / (15 * math.pi)) ** 2


def _pids(n):
    return np.repeat([f"P{i:04d}" for i in range(n)], WAVES)


def lagged_panel(*, family="binomial", n=500, beta=-0.7, gamma=-1.0, seed=0, sigma_u=1.0):
    """An analysis frame with a planted effect ``beta`` of the exposure at wave t on the outcome
    at t + 1 (log odds for a 0/1 outcome, log rate for a count), a participant random intercept
    of SD ``sigma_u``, a wave trend and a confounder (``readiness_bl``) that raises the exposure
    and changes the outcome by ``gamma`` per SD. The outcome is NaN at baseline; 5 % of the
    exposures are missing."""
    rng = np.random.default_rng(seed)
    readiness = rng.normal(size=n)
    age = rng.normal(40, 10, n)
    u = rng.normal(0, sigma_u, n)
    exposure = np.empty((n, WAVES))
    outcome = np.full((n, WAVES), np.nan)
    for w in range(WAVES):
        p = 1 / (1 + np.exp(-(-0.3 + 1.2 * readiness + 0.1 * w)))
        exposure[:, w] = rng.binomial(1, p) if family == "binomial" else rng.binomial(5, p)
    for w in range(1, WAVES):
        lin = -0.3 + beta * exposure[:, w - 1] + gamma * readiness - 0.15 * w + u
        if family == "binomial":
            outcome[:, w] = rng.binomial(1, 1 / (1 + np.exp(-lin)))
        elif family == "poisson":
            outcome[:, w] = rng.poisson(np.exp(lin + 1.5))
        else:
            outcome[:, w] = rng.poisson(np.exp(lin + 1.5) * rng.gamma(2.0, 0.5, n))
    exposure_name, outcome_name = _names(family)
    frame = pd.DataFrame(
        {
            "pid": _pids(n),
            "wave_index": np.tile(np.arange(WAVES), n),
            "months": np.tile(SCHEDULE, n),
            exposure_name: exposure.ravel(),
            outcome_name: outcome.ravel(),
            "readiness_bl": np.repeat(readiness, WAVES),
            "age_bl": np.repeat(age, WAVES),
        }
    )
    frame.loc[rng.random(len(frame)) < 0.05, exposure_name] = np.nan
    return frame


def _names(family):
    if family == "binomial":
        return "high_involvement", "any_use"
    return "involvement_index", "days_used"


def _direct_gee(pairs, family, *, covariates, naive=False):
    """statsmodels' own GEE on the lagged pairs with the documented design."""
    y = pairs["outcome_next"].to_numpy()
    columns = [np.ones(len(pairs)), pairs["exposure"].to_numpy()]
    if not naive:
        columns += [pairs[c].to_numpy() for c in covariates]
        first = pairs["wave_index"].min()
        columns += [
            (pairs["wave_index"] == t).astype(float).to_numpy()
            for t in sorted(pairs["wave_index"].unique())
            if t != first
        ]
    design = np.column_stack(columns)
    alpha = None
    if family == "binomial":
        fam = sm.families.Binomial()
    elif family == "poisson":
        fam = sm.families.Poisson()
    else:
        model = sm.NegativeBinomial(y, design, loglike_method="nb2")
        rough = model.fit(method="bfgs", maxiter=200, disp=0)
        alpha = model.fit(start_params=rough.params, method="newton", maxiter=50, disp=0).params[-1]
        fam = sm.families.NegativeBinomial(alpha=alpha)
    fit = sm.GEE(
        y,
        design,
        groups=pairs["pid"].to_numpy(),
        family=fam,
        cov_struct=sm.cov_struct.Exchangeable(),
    ).fit()
    return fit, alpha


# --- Lagged GEE ----------------------------------------------------------------------------


def test_binomial_gee_recovers_the_planted_odds_ratio_and_the_naive_one_is_confounded():
    frame = lagged_panel()
    result = lagged_gee(
        frame, exposure="high_involvement", outcome="any_use", covariates=COVARIATES
    )
    # The planted effect is conditional on the random intercept; GEE estimates the
    # population-averaged one.
    planted = math.exp(-0.7 / math.sqrt(1 + ZEGER_C2 * 1.0**2))

    assert result.ratio_name == "odds ratio"
    assert result.ci_low < planted < result.ci_high
    assert result.ci_low < result.ratio < result.ci_high
    # Readiness raises involvement and lowers use: unadjusted, involvement looks more
    # protective than it is.
    assert result.naive_ci_high < planted
    assert result.naive_ratio < result.ci_low
    assert result.n_participants == 500
    assert result.n_observations + result.n_dropped == 500 * (WAVES - 1)
    assert result.n_dropped > 0
    assert result.wave_pairs == (0, 1, 2, 3)


def test_binomial_gee_equals_statsmodels_gee_on_the_lagged_pairs():
    frame = lagged_panel(seed=1)
    result = lagged_gee(
        frame, exposure="high_involvement", outcome="any_use", covariates=COVARIATES
    )
    pairs = lagged_pairs(frame, "high_involvement", "any_use", COVARIATES)
    direct, _ = _direct_gee(pairs, "binomial", covariates=COVARIATES)
    naive, _ = _direct_gee(pairs, "binomial", covariates=COVARIATES, naive=True)

    table = result.coefficients
    assert list(table["term"]) == [
        "const",
        "high_involvement",
        *COVARIATES,
        "wave_pair_1_2",
        "wave_pair_2_3",
        "wave_pair_3_4",
    ]
    np.testing.assert_allclose(table["coef"], direct.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["se"], direct.bse, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(table["p"], direct.pvalues, rtol=1e-6, atol=1e-12)
    low, high = np.asarray(direct.conf_int()).T
    np.testing.assert_allclose(table["ci_low"], np.exp(low), rtol=1e-8)
    np.testing.assert_allclose(table["ci_high"], np.exp(high), rtol=1e-8)
    assert result.working_correlation == pytest.approx(direct.cov_struct.dep_params, abs=1e-10)
    assert result.coef == pytest.approx(direct.params[1], abs=1e-8)
    assert result.ratio == pytest.approx(math.exp(direct.params[1]), rel=1e-8)
    assert result.naive_coef == pytest.approx(naive.params[1], abs=1e-8)
    assert result.naive_se == pytest.approx(naive.bse[1], rel=1e-8)
    assert result.n_observations == len(pairs)


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_gee_recovers_the_planted_rate_ratio(family):
    exposure, outcome = _names(family)
    frame = lagged_panel(family=family, beta=-0.2, gamma=-0.5, seed=0)
    result = lagged_gee(
        frame, exposure=exposure, outcome=outcome, covariates=COVARIATES, family=family
    )

    # A log link keeps a random intercept out of the slopes: the planted rate ratio is also
    # the population-averaged one.
    assert result.ratio_name == "rate ratio"
    assert result.ci_low < math.exp(-0.2) < result.ci_high
    assert not result.naive_ci_low < math.exp(-0.2) < result.naive_ci_high
    assert (result.nb_alpha is not None) == (family == "negative_binomial")


@pytest.mark.parametrize("family", ["poisson", "negative_binomial"])
def test_count_gee_equals_statsmodels_gee_on_the_lagged_pairs(family):
    exposure, outcome = _names(family)
    frame = lagged_panel(family=family, beta=-0.2, gamma=-0.5, seed=3)
    result = lagged_gee(
        frame, exposure=exposure, outcome=outcome, covariates=COVARIATES, family=family
    )
    pairs = lagged_pairs(frame, exposure, outcome, COVARIATES)
    direct, alpha = _direct_gee(pairs, family, covariates=COVARIATES)
    naive, naive_alpha = _direct_gee(pairs, family, covariates=COVARIATES, naive=True)

    np.testing.assert_allclose(result.coefficients["coef"], direct.params, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result.coefficients["se"], direct.bse, rtol=1e-8, atol=1e-10)
    assert result.naive_coef == pytest.approx(naive.params[1], abs=1e-8)
    assert result.naive_se == pytest.approx(naive.bse[1], rel=1e-8)
    if family == "negative_binomial":
        assert result.nb_alpha == pytest.approx(alpha, rel=1e-10)
        assert result.naive_nb_alpha == pytest.approx(naive_alpha, rel=1e-10)
        assert result.naive_nb_alpha > result.nb_alpha


def test_lagged_pairs_join_consecutive_waves_of_the_same_participant_only():
    frame = pd.DataFrame(
        {
            "pid": ["A", "A", "A", "B", "B", "B"],
            "wave_index": [0, 1, 3, 0, 1, 2],
            "x": [1.0, 0.0, 1.0, 0.0, np.nan, 1.0],
            "y": [np.nan, 1.0, 0.0, np.nan, 0.0, 1.0],
            "c": [5.0, 6.0, 7.0, 8.0, 8.0, 8.0],
        }
    )
    pairs = lagged_pairs(frame, "x", "y", ["c"])

    # A: 0 → 1 only (wave 2 is absent, so 1 and 3 are not consecutive). B: 0 → 1; 1 → 2 has a
    # missing exposure.
    assert pairs.to_dict("records") == [
        {"pid": "A", "wave_index": 0, "exposure": 1.0, "outcome_next": 1.0, "c": 5.0},
        {"pid": "B", "wave_index": 0, "exposure": 0.0, "outcome_next": 0.0, "c": 8.0},
    ]
    only_later = lagged_pairs(frame, "x", "y", ["c"], waves=[1])
    assert only_later.empty


def test_waves_restrict_the_exposure_waves_and_their_indicators():
    frame = lagged_panel(seed=4)
    result = lagged_gee(
        frame,
        exposure="high_involvement",
        outcome="any_use",
        covariates=COVARIATES,
        waves=[1, 2],
    )
    pairs = lagged_pairs(frame, "high_involvement", "any_use", COVARIATES, waves=[1, 2])

    assert result.wave_pairs == (1, 2)
    assert result.n_observations == len(pairs)
    assert list(result.coefficients["term"])[-1] == "wave_pair_2_3"
    assert "wave_pair_1_2" not in set(result.coefficients["term"])


def test_lagged_summary_is_plain_json():
    result = lagged_gee(
        lagged_panel(seed=5), exposure="high_involvement", outcome="any_use", covariates=["age_bl"]
    )
    summary = json.loads(json.dumps(result.summary()))

    assert summary["ratio"] == result.ratio
    assert summary["naive_ratio"] == result.naive_ratio
    assert summary["covariates"] == ["age_bl"]
    assert "coefficients" not in summary


def _small_binary_frame():
    frame = lagged_panel(n=200, seed=6)
    frame["site"] = np.where(frame.index % 2, "NYC", "LDN")
    return frame


@pytest.mark.parametrize(
    ("change", "kwargs", "code", "named"),
    [
        (None, {"covariates": ["no_such_column"]}, "unknown_column", "no_such_column"),
        (None, {"covariates": ["site"]}, "non_numeric", "site"),
        ("few", {}, "too_few", "high_involvement"),
        ("constant_exposure", {}, "no_exposure_variation", "high_involvement"),
        ("outcome_two", {}, "non_binary_outcome", "any_use"),
        ("outcome_negative", {"family": "poisson"}, "invalid_count_outcome", "any_use"),
        ("outcome_fraction", {"family": "negative_binomial"}, "invalid_count_outcome", "any_use"),
        (
            "constant_covariate",
            {"covariates": ["prior_mhg_bl"]},
            "constant_covariate",
            "prior_mhg_bl",
        ),
        ("separation", {}, "perfect_separation", "high_involvement"),
        ("duplicate", {"covariates": ["age_bl", "age_twice"]}, "collinear_covariates", "age_twice"),
        (None, {"family": "gaussian"}, "invalid_parameter", "gaussian"),
    ],
)
def test_lagged_gee_explains_what_is_wrong(change, kwargs, code, named):
    frame = _small_binary_frame()
    if change == "few":
        frame = frame[frame["pid"].isin(frame["pid"].unique()[:6])]
    elif change == "constant_exposure":
        frame["high_involvement"] = 1.0
    elif change == "outcome_two":
        frame.loc[frame["any_use"] == 1, "any_use"] = 2.0
    elif change == "outcome_negative":
        frame.loc[frame["any_use"] == 1, "any_use"] = -1.0
    elif change == "outcome_fraction":
        frame.loc[frame["any_use"] == 1, "any_use"] = 0.5
    elif change == "constant_covariate":
        frame["prior_mhg_bl"] = 1.0
    elif change == "separation":
        # The outcome at t + 1 is the exposure at t.
        following = frame.groupby("pid")["high_involvement"].shift(1)
        frame["any_use"] = following.where(frame["wave_index"] > 0)
    elif change == "duplicate":
        frame["age_twice"] = 2 * frame["age_bl"]
    with pytest.raises(AnalysisError) as raised:
        lagged_gee(frame, exposure="high_involvement", outcome="any_use", **kwargs)

    assert raised.value.code == code
    assert repr(named) in str(raised.value)
    assert "Traceback" not in str(raised.value)


def test_lagged_gee_that_does_not_converge_says_so(monkeypatch):
    # Two steps: the first only moves off the independence start once the correlation is
    # estimated, so the estimating equations are not yet solved.
    monkeypatch.setattr(longitudinal, "GEE_MAXITER", 2)
    with pytest.raises(AnalysisError) as raised:
        lagged_gee(
            lagged_panel(seed=7),
            exposure="high_involvement",
            outcome="any_use",
            covariates=COVARIATES,
        )

    assert raised.value.code == "did_not_converge"
    assert "'any_use'" in str(raised.value)


# --- Mixed model ---------------------------------------------------------------------------

PLANTED = {"months": -0.25, "exposure": 0.8, "interaction": -0.1, "age_bl": 0.03}


def trajectory_panel(*, n=300, seed=0, slope_sd=0.15, waves=WAVES):
    """Craving 0–10-ish over months 0–12 (each wave a little late, as in real windows), with a
    random intercept and slope per participant and planted fixed effects (``PLANTED``) of
    high involvement at month 3 (wave 2), which is NaN on the other rows, and of age. 5 % of
    the craving values are missing."""
    rng = np.random.default_rng(seed)
    high = rng.binomial(1, 0.4, n).astype(float)
    age = rng.normal(40, 10, n)
    u = rng.normal(0, 1.2, n)
    b = rng.normal(0, slope_sd, n)
    months = SCHEDULE[None, :waves] + rng.uniform(0, 0.5, (n, waves)) * (SCHEDULE[:waves] > 0)
    craving = (
        6
        + u[:, None]
        + (PLANTED["months"] + b[:, None]) * months
        + PLANTED["exposure"] * high[:, None]
        + PLANTED["interaction"] * high[:, None] * months
        + PLANTED["age_bl"] * (age[:, None] - 40)
        + rng.normal(0, 1, (n, waves))
    )
    involvement = np.full((n, waves), np.nan)
    if waves > 2:
        involvement[:, 2] = high
    involvement[:, 1] = rng.binomial(1, 0.4, n)
    frame = pd.DataFrame(
        {
            "pid": np.repeat([f"P{i:04d}" for i in range(n)], waves),
            "wave_index": np.tile(np.arange(waves), n),
            "months": months.ravel(),
            "craving_derived": craving.ravel(),
            "high_involvement": involvement.ravel(),
            "age_bl": np.repeat(age, waves),
        }
    )
    frame.loc[rng.random(len(frame)) < 0.05, "craving_derived"] = np.nan
    return frame


def _fit_trajectory(frame, **kwargs):
    frame = participant_exposure(frame, "high_involvement", 2, name="high_m3")
    return frame, craving_trajectory(frame, exposure="high_m3", covariates=["age_bl"], **kwargs)


def test_mixed_model_recovers_the_planted_slope_and_interaction():
    frame, result = _fit_trajectory(trajectory_panel())

    assert result.re_structure == "intercept and slope"
    assert result.converged
    assert result.time_ci_low < PLANTED["months"] < result.time_ci_high
    assert result.exposure_ci_low < PLANTED["exposure"] < result.exposure_ci_high
    assert result.interaction_ci_low < PLANTED["interaction"] < result.interaction_ci_high
    assert result.interaction_p < 0.05
    age = result.fixed_effects.set_index("term").loc["age_bl"]
    assert age["ci_low"] < PLANTED["age_bl"] < age["ci_high"]
    assert result.slope_var == pytest.approx(0.15**2, rel=0.5)
    assert result.intercept_var == pytest.approx(1.2**2, rel=0.3)
    assert result.residual_var == pytest.approx(1.0, rel=0.15)
    assert result.n_participants == 300
    assert result.n_observations == frame["craving_derived"].notna().sum()
    assert result.n_dropped == 0


def test_mixed_model_equals_statsmodels_mixedlm_on_the_same_rows():
    frame, result = _fit_trajectory(trajectory_panel(seed=1))
    rows = frame.dropna(subset=["craving_derived", "months", "high_m3", "age_bl"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = smf.mixedlm(
            "craving_derived ~ months * high_m3 + age_bl",
            rows,
            groups=rows["pid"],
            re_formula="~months",
        ).fit(reml=True)

    table = result.fixed_effects
    assert list(table["term"]) == list(direct.fe_params.index)
    # statsmodels stops its optimiser at a gradient of 1e-5; this one polishes to ~1e-12.
    np.testing.assert_allclose(table["coef"], direct.fe_params, rtol=1e-6, atol=1e-6)
    # GLS standard errors versus statsmodels' joint-Hessian ones: the same to ~0.5 %.
    np.testing.assert_allclose(table["se"], direct.bse_fe, rtol=5e-3)
    cov_re = np.asarray(direct.cov_re)
    assert result.intercept_var == pytest.approx(cov_re[0, 0], rel=1e-4)
    assert result.slope_var == pytest.approx(cov_re[1, 1], rel=1e-4)
    assert result.intercept_slope_cov == pytest.approx(cov_re[0, 1], rel=1e-3)
    assert result.residual_var == pytest.approx(direct.scale, rel=1e-5)
    assert result.reml_log_likelihood == pytest.approx(direct.llf, rel=1e-9)


def test_mixed_model_with_two_rows_per_participant_has_a_random_intercept_only():
    frame = trajectory_panel(n=200, seed=2, waves=2)
    frame["high_involvement"] = frame.groupby("pid")["high_involvement"].transform("max")
    result = craving_trajectory(frame, exposure="high_involvement", covariates=["age_bl"])
    rows = frame.dropna(subset=["craving_derived"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = smf.mixedlm(
            "craving_derived ~ months * high_involvement + age_bl", rows, groups=rows["pid"]
        ).fit(reml=True)

    assert result.re_structure == "intercept only"
    assert result.slope_var is None
    assert result.intercept_slope_cov is None
    assert any("random slope" in note for note in result.notes)
    np.testing.assert_allclose(result.fixed_effects["coef"], direct.fe_params, atol=1e-6)
    assert result.intercept_var == pytest.approx(float(direct.cov_re.iloc[0, 0]), rel=1e-4)


def test_mixed_model_falls_back_to_a_random_intercept_when_the_slope_fails(monkeypatch):
    real_fit = longitudinal._fit_reml

    def slope_fails(*args, random_slope):
        return None if random_slope else real_fit(*args, random_slope=random_slope)

    monkeypatch.setattr(longitudinal, "_fit_reml", slope_fails)
    _, result = _fit_trajectory(trajectory_panel(n=100, seed=3))

    assert result.re_structure == "intercept only"
    assert any("did not converge" in note for note in result.notes)


def test_mixed_model_that_never_converges_says_so(monkeypatch):
    monkeypatch.setattr(longitudinal, "_fit_reml", lambda *args, random_slope: None)
    with pytest.raises(AnalysisError) as raised:
        _fit_trajectory(trajectory_panel(n=100, seed=3))

    assert raised.value.code == "did_not_converge"
    assert "'craving_derived'" in str(raised.value)


def test_trajectories_give_the_predicted_means_for_each_exposure_level():
    _, result = _fit_trajectory(trajectory_panel(seed=4))
    curves = result.trajectories

    assert list(curves["level"].unique()) == ["high_m3 = 0", "high_m3 = 1"]
    assert len(curves) == 2 * longitudinal.TRAJECTORY_POINTS
    low, high = (curves[curves["exposure_value"] == v].reset_index() for v in (0.0, 1.0))
    expected = result.exposure_coef + result.interaction_coef * low["time"]
    np.testing.assert_allclose(high["predicted"] - low["predicted"], expected, atol=1e-10)
    assert (curves["ci_low"] < curves["predicted"]).all()
    assert (curves["predicted"] < curves["ci_high"]).all()


def test_trajectories_of_a_graded_exposure_use_its_percentiles():
    frame = trajectory_panel(n=200, seed=5)
    rng = np.random.default_rng(5)
    frame["involvement_index"] = np.repeat(rng.integers(0, 6, 200), WAVES).astype(float)
    result = craving_trajectory(frame, exposure="involvement_index")

    levels = list(result.trajectories["level"].unique())
    assert levels[0].startswith("10th percentile (involvement_index = ")
    assert len(levels) == 3


def test_participant_exposure_copies_one_wave_to_every_row_of_the_participant():
    frame = pd.DataFrame(
        {
            "pid": ["A", "A", "A", "B", "B"],
            "wave_index": [0, 1, 2, 0, 2],
            "high_involvement": [np.nan, 1.0, 0.0, np.nan, np.nan],
        }
    )
    out = participant_exposure(frame, "high_involvement", 1)

    assert out["high_involvement_w1"].tolist()[:3] == [1.0, 1.0, 1.0]
    assert out["high_involvement_w1"].iloc[3:].isna().all()
    assert "high_involvement_w1" not in frame.columns


def test_mixed_summary_is_plain_json():
    _, result = _fit_trajectory(trajectory_panel(n=100, seed=6))
    summary = json.loads(json.dumps(result.summary()))

    assert summary["interaction_coef"] == result.interaction_coef
    assert summary["re_structure"] == result.re_structure
    assert "trajectories" not in summary


@pytest.mark.parametrize(
    ("change", "kwargs", "code", "named"),
    [
        (None, {"covariates": ["no_such_column"]}, "unknown_column", "no_such_column"),
        (None, {"covariates": ["site"]}, "non_numeric", "site"),
        ("few", {}, "too_few", "craving_derived"),
        ("constant_exposure", {}, "no_exposure_variation", "high_m3"),
        (
            "constant_covariate",
            {"covariates": ["prior_mhg_bl"]},
            "constant_covariate",
            "prior_mhg_bl",
        ),
        ("one_row", {}, "too_few", "craving_derived"),
        (None, {"covariates": ["months"]}, "invalid_parameter", "months"),
    ],
)
def test_craving_trajectory_explains_what_is_wrong(change, kwargs, code, named):
    frame = participant_exposure(
        trajectory_panel(n=60, seed=7), "high_involvement", 2, name="high_m3"
    )
    frame["site"] = "NYC"
    if change == "few":
        frame = frame[frame["pid"].isin(frame["pid"].unique()[:5])]
    elif change == "constant_exposure":
        frame["high_m3"] = 1.0
    elif change == "constant_covariate":
        frame["prior_mhg_bl"] = 0.0
    elif change == "one_row":
        frame = frame[frame["wave_index"] == 1]
    with pytest.raises(AnalysisError) as raised:
        craving_trajectory(frame, exposure="high_m3", **kwargs)

    assert raised.value.code == code
    assert repr(named) in str(raised.value)
