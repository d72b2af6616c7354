"""The package's one GEE estimator against statsmodels' own GEE with an exchangeable working
correlation, for every family, on small data with clusters of unequal size. Pure: no database."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm

from recovery.analysis.gee import FAMILIES, dependent_column, design_matrix, fit_gee, wald

NB_ALPHA = 0.7


def _data(family: str, seed: int = 5, n_clusters: int = 70):
    """Clusters of 1 to 6 rows with a cluster effect, an intercept and two covariates."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, n_clusters)
    groups = np.repeat(np.arange(n_clusters), sizes)
    n = groups.size
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.binomial(1, 0.4, n)])
    lin = x @ np.array([0.2, 0.5, -0.4]) + rng.normal(0, 0.6, n_clusters)[groups]
    if family == "gaussian":
        y = lin + rng.normal(0, 1.0, n)
    elif family == "binomial":
        y = rng.binomial(1, 1 / (1 + np.exp(-lin))).astype(float)
    elif family == "poisson":
        y = rng.poisson(np.exp(lin)).astype(float)
    else:
        y = rng.poisson(np.exp(lin) * rng.gamma(1 / NB_ALPHA, NB_ALPHA, n)).astype(float)
    return y, x, groups


def _statsmodels(y, x, groups, family):
    fam = {
        "gaussian": sm.families.Gaussian(),
        "binomial": sm.families.Binomial(),
        "poisson": sm.families.Poisson(),
        "negative_binomial": sm.families.NegativeBinomial(alpha=NB_ALPHA),
    }[family]
    return sm.GEE(y, x, groups=groups, family=fam, cov_struct=sm.cov_struct.Exchangeable()).fit()


def _fit(y, x, groups, family, **kwargs):
    alpha = NB_ALPHA if family == "negative_binomial" else None
    return fit_gee(y, x, groups, family=family, alpha=alpha, **kwargs)


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_equals_statsmodels_gee_with_unequal_cluster_sizes(family):
    y, x, groups = _data(family)
    ours = _fit(y, x, groups, family)
    theirs = _statsmodels(y, x, groups, family)

    assert ours.params == pytest.approx(theirs.params, rel=1e-8, abs=1e-12)
    assert ours.bse == pytest.approx(theirs.bse, rel=1e-8, abs=1e-12)
    assert ours.cov == pytest.approx(theirs.cov_params(), rel=1e-8, abs=1e-14)
    assert ours.correlation == pytest.approx(theirs.cov_struct.dep_params, rel=1e-8, abs=1e-12)
    assert ours.correlation != 0 and ours.correlation_estimated
    assert ours.converged is bool(theirs.converged) is True
    assert ours.iterations == len(theirs.fit_history["params"])
    assert (ours.n_rows, ours.n_groups) == (len(y), len(np.unique(groups)))
    assert ours.finite and not ours.separated


def test_row_order_and_group_labels_do_not_matter():
    y, x, groups = _data("binomial")
    labels = np.array([f"P{g:03d}" for g in groups])
    shuffle = np.random.default_rng(1).permutation(len(y))
    ours = fit_gee(y[shuffle], x[shuffle], labels[shuffle], family="binomial")
    theirs = _statsmodels(y[shuffle], x[shuffle], labels[shuffle], "binomial")

    assert ours.params == pytest.approx(theirs.params, rel=1e-8)
    assert ours.bse == pytest.approx(theirs.bse, rel=1e-8)
    assert ours.correlation == pytest.approx(theirs.cov_struct.dep_params, rel=1e-8)


def test_without_a_cluster_of_two_rows_the_correlation_is_zero_and_flagged():
    # One row per cluster: a GLM with robust (HC0) standard errors.
    y, x, _ = _data("binomial")
    fit = fit_gee(y, x, np.arange(len(y)), family="binomial")
    glm = sm.GLM(y, x, family=sm.families.Binomial()).fit(cov_type="HC0")

    assert fit.correlation == 0 and not fit.correlation_estimated
    assert fit.converged
    assert fit.params == pytest.approx(glm.params, rel=1e-8)
    assert fit.bse == pytest.approx(glm.bse, rel=1e-8)


def test_the_step_limit_and_convergence_are_statsmodels():
    # The first step starts from the independence GLM, which solves the equations with ρ = 0;
    # the second is the first with the estimated correlation, which leaves them unsolved.
    y, x, groups = _data("poisson")
    for maxiter, converged in ((1, True), (2, False)):
        ours = _fit(y, x, groups, "poisson", maxiter=maxiter)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # statsmodels' IterationLimitWarning at 2 steps
            theirs = sm.GEE(
                y,
                x,
                groups=groups,
                family=sm.families.Poisson(),
                cov_struct=sm.cov_struct.Exchangeable(),
            ).fit(maxiter=maxiter)
        assert ours.iterations == maxiter
        assert ours.converged is bool(theirs.converged) is converged
        assert ours.params == pytest.approx(theirs.params, rel=1e-8)


def test_a_separated_start_is_flagged():
    y, x, groups = _data("binomial")
    y = (x[:, 1] > 0).astype(float)
    assert fit_gee(y, x, groups, family="binomial").separated


def test_negative_binomial_needs_its_alpha():
    y, x, groups = _data("poisson")
    with pytest.raises(ValueError, match="alpha"):
        fit_gee(y, x, groups, family="negative_binomial")


def test_coefficient_is_the_wald_interval_and_p_value():
    y, x, groups = _data("gaussian")
    ours = fit_gee(y, x, groups)
    theirs = _statsmodels(y, x, groups, "gaussian")
    coefficient = ours.coefficient(1)
    low, high = theirs.conf_int()[1]
    assert coefficient["coef_ci_low"] == pytest.approx(low, rel=1e-8)
    assert coefficient["coef_ci_high"] == pytest.approx(high, rel=1e-8)
    assert coefficient["p_value"] == pytest.approx(theirs.pvalues[1], rel=1e-6)


def test_wald_with_a_zero_standard_error():
    low, high, p = wald(np.array([0.5, 0.0]), np.array([0.0, 0.0]))
    assert low.tolist() == high.tolist() == [0.5, 0.0]
    assert p.tolist() == [0.0, 1.0]


def test_design_matrix_adds_an_indicator_per_later_wave():
    column = np.array([1.0, 2.0, 3.0, 4.0])
    design, n_waves = design_matrix([column], np.array([2, 1, 3, 1]))
    assert n_waves == 2
    assert design.tolist() == [[1, 1, 1, 0], [1, 2, 0, 0], [1, 3, 0, 1], [1, 4, 0, 0]]
    assert design_matrix([column], np.array([1, 1, 1, 1]))[1] == 0


def test_dependent_column_is_the_first_the_others_determine():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=10), rng.normal(size=10)
    assert dependent_column(np.column_stack([np.ones(10), a, b])) is None
    assert dependent_column(np.column_stack([np.ones(10), a, b, a + b, a])) == 3
    assert dependent_column(np.column_stack([np.ones(10), np.full(10, 2.0), a])) == 1
