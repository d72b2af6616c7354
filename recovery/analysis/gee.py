"""The package's one GEE estimator: generalized estimating equations (Liang & Zeger 1986) with
an exchangeable working correlation within cluster (participant) and the robust (sandwich)
covariance. The dose–response and online analyses fit it with a gaussian or binomial family,
the lagged analysis with a binomial, Poisson or negative binomial one.

**Families** (:data:`FAMILIES`): ``"gaussian"`` (identity link), ``"binomial"`` (logit link),
``"poisson"`` (log link) and ``"negative_binomial"`` (log link, variance μ + αμ² with α given
and held fixed, as statsmodels' ``families.NegativeBinomial(alpha=...)`` requires; the lagged
analysis estimates α beforehand).

**The estimator** (:func:`fit_gee`) is exactly statsmodels' ``GEE(y, x, groups, family=...,
cov_struct=sm.cov_struct.Exchangeable()).fit()`` with its defaults:

* *Start*: the independence GLM of the same family (statsmodels ``GLM(y, x).fit()``).
* *Each step*: one Fisher-scoring step of the coefficients given the correlation ρ, with the
  exchangeable working correlation's inverse R_i⁻¹ = (I − c_i J) / (1 − ρ),
  c_i = ρ / (1 + ρ (n_i − 1)) for a cluster of n_i rows; then the moment update of ρ from the
  Pearson residuals r at the new coefficients: ρ = Σ_i Σ_{j<k} r_ij r_ik / φ / (P − p), with
  φ = Σ r² / (N − p), N rows, P within-cluster pairs and p coefficients (statsmodels'
  ``ddof_scale``: p degrees of freedom come off both the scale and the pair count).
* *Stopping rule*: stop when the norm of the estimating function (at the coefficients before
  the step) is below 1e-6 (:data:`CTOL`) once ρ has been updated at least once, or after 60
  steps (:data:`MAXITER`); ``converged`` says whether the last norm is below 1e-6.
* *Covariance*: the sandwich B⁻¹ M B⁻¹ at the final coefficients and ρ, with the model-based
  bread B = Σ_i D_i′ V_i⁻¹ D_i and the empirical meat M = Σ_i U_i U_i′,
  U_i = D_i′ V_i⁻¹ (y_i − μ_i) summed per cluster (statsmodels' robust covariance; the scale
  cancels).

Where statsmodels loops over clusters in Python (2–3 s per model on 10,000 participants ×
5 waves), this computes every cluster's sums at once (rows sorted by cluster,
``np.add.reduceat``): about 0.05 s, most of it the starting GLM. The tests
(``tests/recovery/analysis/test_gee.py``) check it against ``sm.GEE`` for each family, with
unequal cluster sizes, to 1e-8.

**One deviation**: when there are no more within-cluster pairs than coefficients (P ≤ p, e.g.
no cluster has two rows), the moment estimator's denominator is not positive and statsmodels
returns an infinite or meaningless ρ; here ρ stays 0 and ``correlation_estimated`` is False
(a GLM with cluster-robust standard errors).

Also here: :func:`wald` (normal 95 % intervals and two-sided p-values, also used for the mixed
model's fixed effects), :func:`design_matrix` (intercept, columns, wave indicators) and
:func:`dependent_column` (the first column of a design that the ones before it determine).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

FAMILIES = ("gaussian", "binomial", "poisson", "negative_binomial")
# statsmodels GEE.fit defaults.
MAXITER = 60
CTOL = 1e-6
Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True, eq=False)
class GeeFit:
    """A fitted GEE: coefficients on the link scale (mean, log odds or log rate), their robust
    standard errors and covariance, and the exchangeable working correlation.

    ``correlation_estimated`` is False when the correlation could not be estimated and was
    held at 0; ``separated`` when the starting GLM reported perfect separation (a binomial
    outcome that the design predicts perfectly)."""

    params: np.ndarray
    bse: np.ndarray
    cov: np.ndarray
    correlation: float
    correlation_estimated: bool
    converged: bool
    iterations: int
    n_rows: int
    n_groups: int
    family: str
    alpha: float | None
    separated: bool

    @property
    def finite(self) -> bool:
        """Whether the coefficients, their standard errors and the correlation are finite."""
        return bool(
            np.isfinite(self.params).all()
            and np.isfinite(self.bse).all()
            and math.isfinite(self.correlation)
        )

    def coefficient(self, j: int) -> dict[str, float]:
        """Coefficient ``j`` with its 95 % Wald interval and two-sided p-value."""
        coef, se = float(self.params[j]), float(self.bse[j])
        low, high, p = wald(coef, se)
        return {
            "coef": coef,
            "se": se,
            "coef_ci_low": float(low),
            "coef_ci_high": float(high),
            "p_value": float(p),
        }


def wald(coef: np.ndarray | float, se: np.ndarray | float) -> tuple[np.ndarray, ...]:
    """Normal (Wald) 95 % interval and two-sided p-value of estimates with standard errors
    ``se`` (elementwise): ``(ci_low, ci_high, p)``. A zero standard error gives p = 0 (p = 1
    for a zero estimate)."""
    coef = np.asarray(coef, dtype=float)
    se = np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se == 0, np.where(coef == 0, 0.0, np.inf), np.abs(coef) / se)
    return coef - Z95 * se, coef + Z95 * se, 2 * stats.norm.sf(z)


def _family(family: str, alpha: float | None) -> sm.families.Family:
    if family == "gaussian":
        return sm.families.Gaussian()
    if family == "binomial":
        return sm.families.Binomial()
    if family == "poisson":
        return sm.families.Poisson()
    if family == "negative_binomial":
        if alpha is None:
            raise ValueError("The negative binomial family needs its alpha.")
        return sm.families.NegativeBinomial(alpha=alpha)
    raise ValueError(f"Unknown family {family!r}; one of {', '.join(FAMILIES)}.")


def _inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse, as statsmodels takes it (the pseudo-inverse if singular); NaN if the
    matrix is not finite."""
    if not np.isfinite(matrix).all():
        return np.full_like(matrix, np.nan)
    try:
        return np.linalg.inv(matrix)
    except np.linalg.LinAlgError:
        return np.linalg.pinv(matrix)


def fit_gee(
    y: np.ndarray,
    x: np.ndarray,
    groups: np.ndarray,
    *,
    family: str = "gaussian",
    alpha: float | None = None,
    maxiter: int = MAXITER,
    ctol: float = CTOL,
) -> GeeFit:
    """GEE of ``y`` on ``x`` (which includes the intercept column) with an exchangeable working
    correlation within ``groups`` (any labels, in any row order) and the robust covariance:
    ``sm.GEE(y, x, groups, family=..., cov_struct=sm.cov_struct.Exchangeable()).fit()``
    computed with per-cluster sums. ``family`` is one of :data:`FAMILIES`; ``alpha`` is the
    negative binomial's. See the module docstring."""
    fam = _family(family, alpha)
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    codes, uniques = pd.factorize(np.asarray(groups))
    if (np.diff(codes) < 0).any():
        order = np.argsort(codes, kind="stable")
        y, x, codes = y[order], x[order], codes[order]
    n_rows, p = x.shape
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sizes = np.diff(np.r_[starts, n_rows]).astype(float)
    n_pairs = float((sizes * (sizes - 1) / 2).sum())
    correlation_estimated = n_pairs > p
    link, variance = fam.link, fam.variance

    def standardised(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """D / sd (the mean's derivative over its SD, per row) and the Pearson residuals."""
        lin = x @ beta
        mu = link.inverse(lin)
        sd = np.sqrt(variance(mu))
        return x * (link.inverse_deriv(lin) / sd)[:, None], (y - mu) / sd

    def weights(rho: float) -> np.ndarray:
        """c_i of R_i⁻¹ = (I − c_i J) / (1 − ρ)."""
        return rho / (1 - rho) / (1 + rho * (sizes - 1))

    def correlation(e: np.ndarray) -> float:
        if not correlation_estimated:
            return 0.0
        scale = float(e @ e) / (n_rows - p)
        by_group = np.add.reduceat(e, starts) ** 2 - np.add.reduceat(e * e, starts)
        return float(by_group.sum() / 2 / scale / (n_pairs - p))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        beta = np.asarray(sm.GLM(y, x, family=fam).fit().params, dtype=float).copy()
    separated = any(issubclass(w.category, PerfectSeparationWarning) for w in caught)

    rho = 0.0
    score_norm = math.inf
    iterations = 0
    with np.errstate(all="ignore"):
        a, e = standardised(beta)
        for iteration in range(maxiter if np.isfinite(beta).all() else 0):
            iterations = iteration + 1
            c = weights(rho)
            sum_a, sum_e = np.add.reduceat(a, starts, axis=0), np.add.reduceat(e, starts)
            bmat = a.T @ a / (1 - rho) - (sum_a * c[:, None]).T @ sum_a
            score = a.T @ e / (1 - rho) - sum_a.T @ (c * sum_e)
            if not (np.isfinite(bmat).all() and np.isfinite(score).all()):
                break
            try:
                beta = beta + np.linalg.solve(bmat, score)
            except np.linalg.LinAlgError:
                beta = beta + np.linalg.pinv(bmat) @ score
            score_norm = float(np.sqrt(score @ score))
            a, e = standardised(beta)
            # As statsmodels: stop only once the correlation has been estimated at least once.
            if score_norm < ctol and iteration > 0:
                break
            rho = correlation(e)

        c = weights(rho)
        sum_a, sum_e = np.add.reduceat(a, starts, axis=0), np.add.reduceat(e, starts)
        bread = _inverse(a.T @ a / (1 - rho) - (sum_a * c[:, None]).T @ sum_a)
        scores = np.add.reduceat(a * e[:, None], starts, axis=0) / (1 - rho)
        scores -= sum_a * (c * sum_e)[:, None]
        cov = bread @ (scores.T @ scores) @ bread
        bse = np.sqrt(np.diag(cov))
    return GeeFit(
        params=beta,
        bse=bse,
        cov=cov,
        correlation=float(rho),
        correlation_estimated=correlation_estimated,
        converged=bool(score_norm < ctol) and bool(np.isfinite(beta).all()),
        iterations=iterations,
        n_rows=n_rows,
        n_groups=len(uniques),
        family=family,
        alpha=alpha,
        separated=separated,
    )


def design_matrix(
    columns: Sequence[np.ndarray], wave_index: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """Intercept, the given columns and, when ``wave_index`` has more than one value, a 0/1
    indicator for each wave but the first. Returns the matrix and the number of wave
    indicators."""
    parts = [np.ones(len(columns[0])), *columns]
    n_waves = 0
    if wave_index is not None:
        for wave in np.unique(wave_index)[1:]:
            parts.append((wave_index == wave).astype(float))
            n_waves += 1
    return np.column_stack(parts), n_waves


def dependent_column(x: np.ndarray) -> int | None:
    """The first column of ``x`` that the columns before it determine (a constant after the
    intercept, a duplicate, a sum, one of a full set of indicators); None if ``x`` has full
    column rank."""
    if np.linalg.matrix_rank(x) == x.shape[1]:
        return None
    for j in range(x.shape[1]):
        if np.linalg.matrix_rank(x[:, : j + 1]) <= j:
            return j
    return None  # not reached: a rank-deficient matrix has such a column
