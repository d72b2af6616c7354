"""Longitudinal models: lagged GEE (exposure at one wave → outcome at the next) and mixed models
of craving trajectories.

Both take the analysis frame (:func:`~recovery.analysis.frames.analysis_frame`: one row per
participant × wave, ``wave_index`` 0, 1, 2, ... with 0 the baseline, ``months`` since enrolment,
numbers as float64 with NaN for missing).

**Lagged pairs** (:func:`lagged_pairs`). Each participant's row at wave index *t* is paired with
the same participant's row at *t* + 1; both rows must be in the frame (a participant with waves
0, 1 and 3 gives the pair 0 → 1 only). The pair carries the exposure at *t*
(``exposure``), the outcome at *t* + 1 (``outcome_next``) and each covariate *from the row of
wave t* (baseline ``_bl`` columns are the same on every row; naming the outcome's own column as
a covariate adjusts for the outcome at *t*). ``waves`` restricts the exposure waves *t*. Pairs
with a missing (or infinite) exposure, outcome or covariate are left out (``n_dropped``): a
follow-up measure is NaN on the baseline row, so with such an exposure the 0 → 1 pairs drop out.

**Lagged GEE** (:func:`lagged_gee`). Generalized estimating equations (Liang & Zeger 1986)
with an exchangeable working correlation within participant, clustered on participant, robust
(sandwich) standard errors and normal (Wald) 95 % intervals and p-values. The design is an
intercept, the exposure, the caller's covariates, and one 0/1 indicator per wave pair but the
earliest (``wave_pair_1_2`` = the pair 1 → 2, ...): the indicators absorb the time trend, so a
change of both exposure and outcome over the course of the study is not taken as an effect of
the one on the other. Families: ``"binomial"`` (logit link: the exposure's odds ratio for a
0/1 outcome), ``"poisson"`` (log link: rate ratio for a count) and ``"negative_binomial"``
(log link, variance μ + αμ²: rate ratio for an overdispersed count). For the negative binomial
α is estimated first, by maximum likelihood in an NB2 regression on the same design treating
the rows as independent (statsmodels ``NegativeBinomial``: BFGS on log α from its Poisson
start, then Newton–Raphson steps from there for full precision), and then held fixed in the
GEE, as statsmodels' ``families.NegativeBinomial(alpha=...)`` requires. Each ratio is per
one-unit increase of the exposure (per point of the involvement index, yes versus no for a 0/1
exposure).

The estimator is the package's one GEE, :func:`~recovery.analysis.gee.fit_gee`: exactly
statsmodels' ``GEE(...).fit()`` with ``cov_struct=Exchangeable()`` and its defaults (start
values, correlation update, stopping rule and sandwich covariance are described in
:mod:`recovery.analysis.gee`), computed with per-participant sums. If no participant has two
pairs (more precisely: no more within-participant pairs than coefficients), the correlation
cannot be estimated and is set to 0 (a GLM with cluster-robust errors), and ``notes`` says so.
A model whose estimating equations are not solved within 60 steps raises
``did_not_converge``; one whose starting GLM finds perfect separation raises
``perfect_separation``.

**Naive estimate**, beside the adjusted one because selection into involvement is the field's
core problem: the same GEE on the same pairs with the exposure alone (no covariates, no wave
indicators; for the negative binomial its own α).

**Craving trajectories** (:func:`craving_trajectory`). A linear mixed model fitted by REML:
outcome = β0 + β1·time + β2·exposure + β3·time×exposure + covariates + b0 + b1·time + ε per
participant, with (b0, b1) normal with an unstructured 2 × 2 covariance (random intercept and
random slope of time) and ε independent normal. β2 is the difference in mean outcome at time 0
per unit of exposure; β3 the difference in slope per unit of time. All rows with the outcome
present are used, baseline included when the outcome is measured there (craving is); rows
with a missing time, exposure or covariate are left out. A follow-up measure such as
``high_involvement`` is NaN on the baseline row, so a time-varying exposure drops the baseline;
:func:`participant_exposure` copies one wave's value (e.g. high involvement at month 3) to every
row of the participant, a participant-level exposure that keeps the baseline.
The REML criterion is profiled over the fixed effects and the residual variance and maximised
over the Cholesky factor of the relative random-effects covariance (L-BFGS with the analytic
gradient, then Newton steps on a finite-difference Hessian of that gradient); it is the same
criterion and optimum as statsmodels' ``MixedLM.fit(reml=True)`` (``smf.mixedlm(...,
re_formula="~time")``), computed from per-participant sums, because statsmodels loops over
participants in Python and needs over a minute on a full cohort. Fixed-effect standard errors
are the GLS ones, σ²(X′V⁻¹X)⁻¹ at the REML estimates (as lme4 and SAS PROC MIXED report;
statsmodels inverts the joint Hessian of fixed and variance parameters instead, which differs
in the third or fourth digit); intervals and p-values are normal (Wald). When the random slope
cannot be estimated — no more rows than random effects (lme4's rule: observations ≤ 2 ×
participants), or the optimisation does not converge — the model is refitted with a random
intercept only and ``notes`` says so; if that fails too the call raises ``did_not_converge``.
The predicted mean trajectories are the fixed-effects predictions over a time grid for a few
exposure levels (0 and 1 for a 0/1 exposure, otherwise its 10th, 50th and 90th percentiles),
with the covariates at their means, and their 95 % intervals.

A problem with the data or the request raises
:class:`~recovery.analysis.errors.AnalysisError` with a plain-language message and a ``code``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize

from .descriptives import require_columns, require_numeric
from .errors import AnalysisError
from .gee import MAXITER, Z95, GeeFit, dependent_column, design_matrix, fit_gee, wald

FAMILIES = ("binomial", "poisson", "negative_binomial")
RATIO_NAMES = {"binomial": "odds ratio", "poisson": "rate ratio", "negative_binomial": "rate ratio"}
MIN_OBSERVATIONS = 30
MIN_PARTICIPANTS = 10
# The GEE's step limit (statsmodels' default), passed to fit_gee and named in its error.
GEE_MAXITER = MAXITER
# The REML optimum counts as found when the gradient of the per-row criterion is below this.
REML_GTOL = 1e-6
TRAJECTORY_POINTS = 25
PAIR_EXPOSURE = "exposure"
PAIR_OUTCOME = "outcome_next"
LAGGED_PURPOSE = "the lagged GEE"
MIXED_PURPOSE = "the craving trajectory model"


@dataclass(frozen=True, eq=False)
class LaggedResult:
    """What :func:`lagged_gee` found: the exposure's ratio at wave t on the outcome at t + 1,
    adjusted and naive, each with its 95 % interval."""

    # The adjusted estimate (covariates and wave-pair indicators).
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    coef: float  # on the link scale (log odds or log rate)
    se: float
    ratio_name: str
    # The naive estimate (exposure alone), on the same pairs.
    naive_ratio: float
    naive_ci_low: float
    naive_ci_high: float
    naive_p_value: float
    naive_coef: float
    naive_se: float
    # Counts.
    n_participants: int
    n_observations: int  # pairs used
    n_dropped: int  # pairs left out for a missing value
    wave_pairs: tuple[int, ...]  # the exposure waves t of the pairs used
    # The fit.
    coefficients: pd.DataFrame  # term, coef, se, ratio, ci_low, ci_high, p
    working_correlation: float  # the exchangeable correlation of the adjusted model
    nb_alpha: float | None  # the negative binomial's α (adjusted model)
    naive_nb_alpha: float | None
    iterations: int
    method: str
    # The request.
    exposure: str
    outcome: str
    covariates: tuple[str, ...]
    family: str
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The scalar results and the request, for JSON, CSV or a table."""
        return _summary(self, frames={"coefficients"})


@dataclass(frozen=True, eq=False)
class MixedResult:
    """What :func:`craving_trajectory` found: fixed effects with 95 % intervals, the variance
    components and predicted mean trajectories."""

    fixed_effects: pd.DataFrame  # term, coef, se, ci_low, ci_high, p
    # The slope over time where the exposure is 0.
    time_coef: float
    time_ci_low: float
    time_ci_high: float
    # The exposure: difference at time 0 per unit of exposure.
    exposure_coef: float
    exposure_se: float
    exposure_ci_low: float
    exposure_ci_high: float
    exposure_p: float
    # Time × exposure: difference in slope per unit of exposure.
    interaction_coef: float
    interaction_se: float
    interaction_ci_low: float
    interaction_ci_high: float
    interaction_p: float
    # Variance components.
    intercept_var: float
    slope_var: float | None  # None with a random intercept only
    intercept_slope_cov: float | None
    residual_var: float
    re_structure: str  # "intercept and slope" or "intercept only"
    converged: bool
    reml_log_likelihood: float
    # Counts.
    n_participants: int
    n_observations: int
    n_dropped: int  # rows with the outcome but a missing time, exposure or covariate
    trajectories: pd.DataFrame  # time, exposure_value, level, predicted, ci_low, ci_high
    method: str
    # The request.
    outcome: str
    exposure: str
    time: str
    covariates: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The scalar results and the request, for JSON, CSV or a table."""
        return _summary(self, frames={"fixed_effects", "trajectories"})


def _summary(result: LaggedResult | MixedResult, frames: set[str]) -> dict[str, Any]:
    """A result's fields but its data frames, tuples as lists (plain JSON)."""
    return {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in asdict(result).items()
        if k not in frames
    }


# --- Lagged pairs and GEE ------------------------------------------------------------------


def lagged_pairs(
    frame: pd.DataFrame,
    exposure: str,
    outcome: str,
    covariates: Sequence[str] = (),
    *,
    waves: Sequence[int] | None = None,
    id_column: str = "pid",
    wave_column: str = "wave_index",
) -> pd.DataFrame:
    """The complete lagged pairs :func:`lagged_gee` fits: one row per participant and exposure
    wave t with the next wave's outcome. Columns ``id_column``, ``wave_column`` (t),
    ``exposure``, ``outcome_next`` and the covariates (from wave t's row), sorted by
    participant and wave; pairs with a missing value are left out."""
    covariates = _check_lagged_request(frame, exposure, outcome, covariates, id_column, wave_column)
    pairs, _ = _build_pairs(frame, exposure, outcome, covariates, waves, id_column, wave_column)
    return pairs


def lagged_gee(
    frame: pd.DataFrame,
    *,
    exposure: str,
    outcome: str,
    covariates: Sequence[str] = (),
    family: str = "binomial",
    waves: Sequence[int] | None = None,
    id_column: str = "pid",
    wave_column: str = "wave_index",
) -> LaggedResult:
    """The effect of ``exposure`` at wave t on ``outcome`` at wave t + 1 by GEE clustered on
    participant, adjusted for ``covariates`` and the wave pair, beside the naive estimate.
    ``family``: ``"binomial"`` (0/1 outcome, odds ratio), ``"poisson"`` or
    ``"negative_binomial"`` (count outcome, rate ratio). See the module docstring."""
    if family not in FAMILIES:
        raise AnalysisError(
            f"Unknown family {family!r}; choose one of {', '.join(FAMILIES)}.",
            code="invalid_parameter",
        )
    covariates = _check_lagged_request(frame, exposure, outcome, covariates, id_column, wave_column)
    pairs, n_candidates = _build_pairs(
        frame, exposure, outcome, covariates, waves, id_column, wave_column
    )
    n_dropped = n_candidates - len(pairs)
    x = pairs[PAIR_EXPOSURE].to_numpy(dtype=float)
    y = pairs[PAIR_OUTCOME].to_numpy(dtype=float)
    groups = pairs[id_column].to_numpy()
    wave = pairs[wave_column].to_numpy(dtype=int)
    n_participants = int(pd.unique(groups).size)
    _check_pair_data(pairs, x, y, exposure, outcome, covariates, family, n_participants, n_dropped)

    wave_values = np.unique(wave)
    indicator_names = [f"wave_pair_{t}_{t + 1}" for t in wave_values[1:]]
    clash = [name for name in indicator_names if name in covariates]
    if clash:
        raise AnalysisError(
            f"The covariate name {clash[0]!r} is taken by the wave-pair indicator the model adds; "
            "rename the column.",
            code="invalid_parameter",
        )
    terms = ["const", exposure, *covariates, *indicator_names]
    design, _ = design_matrix([x, *(pairs[c].to_numpy(dtype=float) for c in covariates)], wave)
    _check_design(design, terms, exposure, f"the pairs with {outcome!r}")
    if family == "binomial":
        _check_separation(design, terms, y, outcome)

    adjusted = _fit(y, design, groups, family, terms, outcome)
    naive = _fit(y, design[:, :2], groups, family, terms[:2], outcome)

    coef, se = adjusted.params, adjusted.bse
    low, high, p = wald(coef, se)
    table = pd.DataFrame(
        {
            "term": terms,
            "coef": coef,
            "se": se,
            "ratio": np.exp(coef),
            "ci_low": np.exp(low),
            "ci_high": np.exp(high),
            "p": p,
        }
    )
    naive_coef = naive.coefficient(1)
    notes = []
    if n_dropped:
        notes.append(f"{n_dropped} pairs with a missing value were left out.")
    if not adjusted.correlation_estimated:
        notes.append(
            "Too few participants have two or more pairs to estimate the within-participant "
            "correlation; it is set to 0 (robust standard errors still cluster on participant)."
        )
    if family == "negative_binomial" and adjusted.alpha < 0.01:
        notes.append(
            f"The negative binomial's α is {adjusted.alpha:.2g}: the counts are hardly "
            "overdispersed, and the Poisson model gives nearly the same answer."
        )
    return LaggedResult(
        ratio=float(table["ratio"][1]),
        ci_low=float(table["ci_low"][1]),
        ci_high=float(table["ci_high"][1]),
        p_value=float(p[1]),
        coef=float(coef[1]),
        se=float(se[1]),
        ratio_name=RATIO_NAMES[family],
        naive_ratio=math.exp(naive_coef["coef"]),
        naive_ci_low=math.exp(naive_coef["coef_ci_low"]),
        naive_ci_high=math.exp(naive_coef["coef_ci_high"]),
        naive_p_value=naive_coef["p_value"],
        naive_coef=naive_coef["coef"],
        naive_se=naive_coef["se"],
        n_participants=n_participants,
        n_observations=len(y),
        n_dropped=n_dropped,
        wave_pairs=tuple(int(t) for t in wave_values),
        coefficients=table,
        working_correlation=adjusted.correlation,
        nb_alpha=adjusted.alpha,
        naive_nb_alpha=naive.alpha,
        iterations=adjusted.iterations,
        method=_gee_method(family, covariates, len(indicator_names)),
        exposure=exposure,
        outcome=outcome,
        covariates=tuple(covariates),
        family=family,
        notes=tuple(notes),
    )


def _gee_method(family: str, covariates: list[str], n_indicators: int) -> str:
    link = {
        "binomial": "binomial, logit link",
        "poisson": "Poisson, log link",
        "negative_binomial": "negative binomial (α by NB2 maximum likelihood), log link",
    }[family]
    adjusted_for = [*covariates]
    if n_indicators:
        adjusted_for.append("wave pair")
    by = f"adjusted for {', '.join(adjusted_for)}" if adjusted_for else "no adjustment"
    return (
        f"GEE ({link}), exchangeable working correlation within participant, robust (sandwich) "
        f"standard errors, normal 95 % intervals; exposure at wave t, outcome at t + 1; {by}"
    )


def _check_lagged_request(
    frame: pd.DataFrame,
    exposure: str,
    outcome: str,
    covariates: Sequence[str],
    id_column: str,
    wave_column: str,
) -> list[str]:
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError("The data must be a pandas DataFrame.", code="invalid_parameter")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    require_columns(
        frame, [id_column, wave_column, exposure, outcome, *covariates], purpose=LAGGED_PURPOSE
    )
    roles = [exposure, *covariates]
    repeated = sorted({c for c in roles if roles.count(c) > 1}, key=roles.index)
    if repeated:
        raise AnalysisError(
            f"{repeated[0]!r} is chosen more than once (as exposure or covariate); each column "
            "may play one role only.",
            code="invalid_parameter",
        )
    # The pair frame names its columns by participant, wave, "exposure", "outcome_next" and the
    # covariates, so a covariate may not take one of the first four names.
    taken = [c for c in covariates if c in {id_column, wave_column, PAIR_EXPOSURE, PAIR_OUTCOME}]
    taken += [c for c in (exposure, outcome) if c in {id_column, wave_column}]
    if taken:
        name = taken[0]
        raise AnalysisError(
            f"{name!r} cannot be a model variable here: it names the participant, the wave or a "
            "column of the lagged pairs. Choose another column or rename it.",
            code="invalid_parameter",
        )
    require_numeric(frame, exposure, role="exposure")
    require_numeric(frame, outcome, role="outcome")
    for column in covariates:
        require_numeric(frame, column, role="covariate")
    waves = frame[wave_column]
    if not pd.api.types.is_numeric_dtype(waves) or not np.all(np.mod(_floats(waves), 1) == 0):
        raise AnalysisError(
            f"The wave column {wave_column!r} must hold whole numbers (0 = baseline, 1, 2, ... "
            "in wave order), as the analysis frame's wave_index does.",
            code="invalid_parameter",
        )
    if frame.duplicated([id_column, wave_column]).any():
        raise AnalysisError(
            f"Some participants have more than one row for the same {wave_column}; the data "
            "needs one row per participant and wave.",
            code="duplicate_rows",
        )
    return covariates


def _build_pairs(
    frame: pd.DataFrame,
    exposure: str,
    outcome: str,
    covariates: list[str],
    waves: Sequence[int] | None,
    id_column: str,
    wave_column: str,
) -> tuple[pd.DataFrame, int]:
    """The complete pairs and the number of pairs before leaving out missing values."""
    now = pd.DataFrame(
        {
            id_column: frame[id_column].to_numpy(),
            wave_column: _floats(frame[wave_column]).astype("int64"),
            PAIR_EXPOSURE: _floats(frame[exposure]),
            **{c: _floats(frame[c]) for c in covariates},
        }
    )
    later = pd.DataFrame(
        {
            id_column: frame[id_column].to_numpy(),
            wave_column: _floats(frame[wave_column]).astype("int64") - 1,
            PAIR_OUTCOME: _floats(frame[outcome]),
        }
    )
    if waves is not None:
        chosen = [waves] if isinstance(waves, int | np.integer) else list(waves)
        now = now[now[wave_column].isin(chosen)]
    pairs = now.merge(later, on=[id_column, wave_column], how="inner", sort=False)
    pairs = pairs[[id_column, wave_column, PAIR_EXPOSURE, PAIR_OUTCOME, *covariates]]
    values = pairs[[PAIR_EXPOSURE, PAIR_OUTCOME, *covariates]].to_numpy(dtype=float)
    complete = pairs[np.isfinite(values).all(axis=1)]
    complete = complete.sort_values([id_column, wave_column], kind="stable")
    return complete.reset_index(drop=True), len(pairs)


def _check_pair_data(
    pairs: pd.DataFrame,
    x: np.ndarray,
    y: np.ndarray,
    exposure: str,
    outcome: str,
    covariates: list[str],
    family: str,
    n_participants: int,
    n_dropped: int,
) -> None:
    if len(y) < MIN_OBSERVATIONS or n_participants < MIN_PARTICIPANTS:
        dropped = f" ({n_dropped} more were left out for a missing value)" if n_dropped else ""
        raise AnalysisError(
            f"Too few observations: {len(y)} complete pairs of {exposure!r} at one wave and "
            f"{outcome!r} at the next, from {n_participants} participants{dropped}; at least "
            f"{MIN_OBSERVATIONS} pairs from {MIN_PARTICIPANTS} participants are needed.",
            code="too_few",
        )
    if np.ptp(x) == 0:
        raise AnalysisError(
            f"No variation in the exposure: {exposure!r} is {x[0]:g} in every one of the "
            f"{len(x)} complete pairs, so there is nothing to compare.",
            code="no_exposure_variation",
        )
    if family == "binomial" and not np.isin(y, (0.0, 1.0)).all():
        raise AnalysisError(
            f"The outcome {outcome!r} must be 0/1 for the binomial family; it holds "
            f"{_few_values(y)}. Choose family='poisson' or 'negative_binomial' for a count.",
            code="non_binary_outcome",
        )
    if family != "binomial" and ((y < 0).any() or (np.mod(y, 1) != 0).any()):
        raise AnalysisError(
            f"The outcome {outcome!r} must be a count (whole numbers, 0 or more) for the "
            f"{family} family; it holds {_few_values(y)}.",
            code="invalid_count_outcome",
        )
    if np.ptp(y) == 0:
        raise AnalysisError(
            f"The outcome {outcome!r} is {y[0]:g} at every next wave of the {len(y)} complete "
            "pairs, so there is no difference to estimate.",
            code="constant_outcome",
        )
    for column in covariates:
        values = pairs[column].to_numpy(dtype=float)
        if np.ptp(values) == 0:
            raise AnalysisError(
                f"The covariate {column!r} has the same value ({values[0]:g}) in every complete "
                "pair, so it cannot be adjusted for; leave it out.",
                code="constant_covariate",
            )


def _floats(values: pd.Series | pd.DataFrame) -> np.ndarray:
    """float64 with NaN for a missing value (also from nullable integer or boolean columns)."""
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _few_values(values: np.ndarray) -> str:
    distinct = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in distinct[:5])
    return shown + (", …" if distinct.size > 5 else "")


def _check_design(design: np.ndarray, terms: list[str], exposure: str, where: str) -> None:
    """Every column must add information: find the first one that the columns before it
    determine (a duplicate, a sum, an indicator of one wave pair only)."""
    j = dependent_column(design)
    if j is None:
        return
    name = terms[j]
    what = f"The exposure {name!r}" if name == exposure else f"The term {name!r}"
    raise AnalysisError(
        f"{what} is fully determined by the terms before it "
        f"({', '.join(repr(t) for t in terms[1:j])}) in {where}: a duplicate, a sum, "
        "or one of a full set of indicators. Leave it out.",
        code="collinear_covariates",
    )


def _check_separation(design: np.ndarray, terms: list[str], y: np.ndarray, outcome: str) -> None:
    """A single term that gives the 0/1 outcome away makes its odds ratio infinite: one value
    of a yes/no term with only one outcome, or a number whose values do not overlap between
    the outcomes."""
    for j in range(1, design.shape[1]):
        column = design[:, j]
        culprit = None
        if np.unique(column).size <= 2:
            for value in np.unique(column):
                seen = np.unique(y[column == value])
                if seen.size == 1:
                    culprit = (
                        f"where {_term_words(terms[j])} is {value:g}, {outcome!r} at the next "
                        f"wave is always {seen[0]:g}"
                    )
                    break
        else:
            yes, no = column[y == 1], column[y == 0]
            if yes.min() > no.max() or no.min() > yes.max():
                culprit = f"{_term_words(terms[j])} separates {outcome!r} = 1 from 0 completely"
        if culprit:
            raise AnalysisError(
                f"Perfect separation: {culprit}, so its odds ratio is infinite and the model "
                f"cannot be fitted ({terms[j]!r}). Leave it out, coarsen it, or choose waves or "
                "an outcome with events on both sides.",
                code="perfect_separation",
            )


def _term_words(term: str) -> str:
    if term.startswith("wave_pair_"):
        return f"the wave-pair indicator {term!r}"
    return repr(term)


def _fit(
    y: np.ndarray,
    design: np.ndarray,
    groups: np.ndarray,
    family: str,
    terms: list[str],
    outcome: str,
) -> GeeFit:
    """The GEE (:func:`~recovery.analysis.gee.fit_gee`), for the negative binomial with its α
    estimated first; a fit that cannot be reported raises a plain error."""
    alpha = _nb_alpha(y, design, outcome) if family == "negative_binomial" else None
    fit = fit_gee(y, design, groups, family=family, alpha=alpha, maxiter=GEE_MAXITER)
    if fit.separated:
        raise _separation_error(outcome, terms)
    if not (fit.converged and fit.finite):
        raise _convergence_error(outcome, terms, family)
    return fit


def _nb_alpha(y: np.ndarray, design: np.ndarray, outcome: str) -> float:
    """α of an NB2 regression on the design by maximum likelihood (rows independent): BFGS on
    log α from statsmodels' Poisson start, then Newton–Raphson from there for precision (Newton
    from the Poisson start can step to α < 0)."""
    model = sm.NegativeBinomial(y, design, loglike_method="nb2")
    alpha = None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            rough = model.fit(method="bfgs", maxiter=200, disp=0)
            if rough.mle_retvals.get("converged", False) and np.isfinite(rough.params).all():
                alpha = float(rough.params[-1])
                fine = model.fit(
                    start_params=np.asarray(rough.params), method="newton", maxiter=50, disp=0
                )
                if (
                    fine.mle_retvals.get("converged", False)
                    and np.isfinite(fine.params).all()
                    and fine.params[-1] > 0
                ):
                    alpha = float(fine.params[-1])
        except (np.linalg.LinAlgError, ValueError):
            alpha = None
    if alpha is None or not alpha > 0:
        raise AnalysisError(
            f"The negative binomial model of {outcome!r} could not be fitted (its dispersion α "
            "could not be estimated). The counts may not be overdispersed: try "
            "family='poisson'.",
            code="did_not_converge",
        )
    return alpha


def _separation_error(outcome: str, terms: list[str]) -> AnalysisError:
    return AnalysisError(
        f"Perfect separation: together, the terms ({', '.join(repr(t) for t in terms[1:])}) "
        f"predict {outcome!r} at the next wave perfectly, so the odds ratios are infinite and "
        "the model cannot be fitted. Leave out or coarsen a covariate.",
        code="perfect_separation",
    )


def _convergence_error(outcome: str, terms: list[str], family: str) -> AnalysisError:
    hint = (
        " An outcome that is (almost) always the same in some group of pairs can cause this; "
        "leave out or coarsen a covariate."
        if family == "binomial"
        else " Very large counts or a covariate on a very large scale can cause this."
    )
    return AnalysisError(
        f"The GEE model of {outcome!r} on {', '.join(repr(t) for t in terms[1:])} did not "
        f"converge within {GEE_MAXITER} steps.{hint}",
        code="did_not_converge",
    )


# --- Mixed model of trajectories -----------------------------------------------------------


def participant_exposure(
    frame: pd.DataFrame,
    column: str,
    wave_index: int,
    *,
    name: str | None = None,
    id_column: str = "pid",
    wave_column: str = "wave_index",
) -> pd.DataFrame:
    """A copy of ``frame`` with a new column (``name``, default ``<column>_w<wave_index>``)
    holding each participant's value of ``column`` at ``wave_index`` on all of their rows (NaN
    for a participant without that wave or value): a participant-level exposure."""
    require_columns(frame, [id_column, wave_column, column], purpose="a participant-level exposure")
    name = name or f"{column}_w{wave_index}"
    at_wave = frame.loc[frame[wave_column] == wave_index, [id_column, column]]
    if at_wave.empty:
        raise AnalysisError(
            f"No rows have {wave_column} = {wave_index}, so {column!r} cannot be taken from "
            "that wave.",
            code="unknown_wave",
        )
    if at_wave[id_column].duplicated().any():
        raise AnalysisError(
            f"Some participants have more than one row with {wave_column} = {wave_index}; the "
            "data needs one row per participant and wave.",
            code="duplicate_rows",
        )
    out = frame.copy()
    out[name] = frame[id_column].map(at_wave.set_index(id_column)[column])
    return out


def craving_trajectory(
    frame: pd.DataFrame,
    *,
    outcome: str = "craving_derived",
    exposure: str = "involvement_index",
    time: str = "months",
    covariates: Sequence[str] = (),
    id_column: str = "pid",
) -> MixedResult:
    """A linear mixed model (REML) of ``outcome`` on ``time``, ``exposure``, their product and
    ``covariates``, with a random intercept and slope of time per participant (an intercept only
    if the slope cannot be estimated). See the module docstring."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError("The data must be a pandas DataFrame.", code="invalid_parameter")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    require_columns(frame, [id_column, outcome, exposure, time, *covariates], purpose=MIXED_PURPOSE)
    roles = [outcome, exposure, time, *covariates]
    repeated = sorted({c for c in roles if roles.count(c) > 1}, key=roles.index)
    if repeated or id_column in roles:
        name = repeated[0] if repeated else id_column
        raise AnalysisError(
            f"{name!r} is chosen for more than one role (participant, outcome, exposure, time or "
            "covariate); each column may play one role only.",
            code="invalid_parameter",
        )
    for column, role in [(outcome, "outcome"), (exposure, "exposure"), (time, "time")]:
        require_numeric(frame, column, role=role)
    for column in covariates:
        require_numeric(frame, column, role="covariate")

    values = _floats(frame[roles])
    with_outcome = np.isfinite(values[:, 0])
    keep = with_outcome & np.isfinite(values).all(axis=1)
    n_dropped = int(with_outcome.sum() - keep.sum())
    ids = frame[id_column].to_numpy()[keep]
    order = np.argsort(pd.factorize(ids)[0], kind="stable")
    codes = pd.factorize(ids[order])[0]
    data = values[keep][order]
    y, x, t = data[:, 0], data[:, 1], data[:, 2]
    cov_values = data[:, 3:]
    n_obs = len(y)
    n_participants = int(codes.max() + 1) if n_obs else 0
    _check_mixed_data(
        y, t, x, cov_values, outcome, exposure, time, covariates, n_participants, n_dropped
    )

    terms = ["Intercept", time, exposure, f"{time}:{exposure}", *covariates]
    design = np.column_stack([np.ones(n_obs), t, x, t * x, cov_values])
    _check_design(design, terms, exposure, f"the rows with {outcome!r}")

    notes: list[str] = []
    if n_dropped:
        notes.append(
            f"{n_dropped} rows with {outcome!r} but a missing {time!r}, {exposure!r} or "
            "covariate were left out."
        )
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    fit = None
    if n_obs > 2 * n_participants:
        fit = _fit_reml(y, design, t, starts, random_slope=True)
        if fit is None:
            notes.append(
                "The model with a random slope of time did not converge; it was refitted with a "
                "random intercept only."
            )
    else:
        notes.append(
            f"With {n_obs} rows from {n_participants} participants (no more rows than random "
            "effects) the random slope of time cannot be estimated; the model has a random "
            "intercept only."
        )
    if fit is None:
        fit = _fit_reml(y, design, t, starts, random_slope=False)
    if fit is None:
        raise AnalysisError(
            f"The mixed model of {outcome!r} on {time!r} and {exposure!r} did not converge, "
            "even with a random intercept only. Check for extreme values, or use fewer "
            "covariates.",
            code="did_not_converge",
        )
    if fit["slope"] and fit["cov_re"][1, 1] < 1e-8 * max(fit["scale"], 1e-300):
        notes.append(
            "The variance of the random slope is estimated at (nearly) zero: participants' "
            "trajectories hardly differ in slope beyond what the fixed effects explain."
        )

    coef, cov = fit["beta"], fit["cov_beta"]
    se = np.sqrt(np.diag(cov))
    low, high, p = wald(coef, se)
    table = pd.DataFrame(
        {"term": terms, "coef": coef, "se": se, "ci_low": low, "ci_high": high, "p": p}
    )
    trajectories = _trajectories(t, x, cov_values, coef, cov, exposure)
    cov_re = fit["cov_re"]
    re_structure = "intercept and slope" if fit["slope"] else "intercept only"
    return MixedResult(
        fixed_effects=table,
        time_coef=float(coef[1]),
        time_ci_low=float(table["ci_low"][1]),
        time_ci_high=float(table["ci_high"][1]),
        exposure_coef=float(coef[2]),
        exposure_se=float(se[2]),
        exposure_ci_low=float(table["ci_low"][2]),
        exposure_ci_high=float(table["ci_high"][2]),
        exposure_p=float(p[2]),
        interaction_coef=float(coef[3]),
        interaction_se=float(se[3]),
        interaction_ci_low=float(table["ci_low"][3]),
        interaction_ci_high=float(table["ci_high"][3]),
        interaction_p=float(p[3]),
        intercept_var=float(cov_re[0, 0]),
        slope_var=float(cov_re[1, 1]) if fit["slope"] else None,
        intercept_slope_cov=float(cov_re[0, 1]) if fit["slope"] else None,
        residual_var=float(fit["scale"]),
        re_structure=re_structure,
        converged=True,
        reml_log_likelihood=float(fit["llf"]),
        n_participants=n_participants,
        n_observations=n_obs,
        n_dropped=n_dropped,
        trajectories=trajectories,
        method=(
            f"linear mixed model (REML), random {re_structure} of {time!r} per participant, "
            f"fixed effects {', '.join(terms[1:])}; GLS standard errors, normal 95 % intervals"
        ),
        outcome=outcome,
        exposure=exposure,
        time=time,
        covariates=tuple(covariates),
        notes=tuple(notes),
    )


def _check_mixed_data(
    y: np.ndarray,
    t: np.ndarray,
    x: np.ndarray,
    cov_values: np.ndarray,
    outcome: str,
    exposure: str,
    time: str,
    covariates: list[str],
    n_participants: int,
    n_dropped: int,
) -> None:
    n = len(y)
    if n < MIN_OBSERVATIONS or n_participants < MIN_PARTICIPANTS:
        dropped = f" ({n_dropped} more were left out for a missing value)" if n_dropped else ""
        raise AnalysisError(
            f"Too few observations: {n} complete rows of {outcome!r} from {n_participants} "
            f"participants{dropped}; at least {MIN_OBSERVATIONS} rows from {MIN_PARTICIPANTS} "
            "participants are needed.",
            code="too_few",
        )
    if n <= n_participants:
        raise AnalysisError(
            f"Each participant has a single complete row of {outcome!r}, so change over "
            f"{time!r} cannot be told from differences between participants; a trajectory "
            "needs participants with two or more rows.",
            code="too_few",
        )
    if np.ptp(x) == 0:
        raise AnalysisError(
            f"No variation in the exposure: {exposure!r} is {x[0]:g} on every complete row, so "
            "there is nothing to compare.",
            code="no_exposure_variation",
        )
    if np.ptp(t) == 0:
        raise AnalysisError(
            f"The time {time!r} is {t[0]:g} on every complete row, so there is no trajectory.",
            code="no_time_variation",
        )
    if np.ptp(y) == 0:
        raise AnalysisError(
            f"The outcome {outcome!r} is {y[0]:g} on every complete row.",
            code="constant_outcome",
        )
    for j, column in enumerate(covariates):
        if np.ptp(cov_values[:, j]) == 0:
            raise AnalysisError(
                f"The covariate {column!r} has the same value ({cov_values[0, j]:g}) on every "
                "complete row, so it cannot be adjusted for; leave it out.",
                code="constant_covariate",
            )


def _fit_reml(
    y: np.ndarray, design: np.ndarray, t: np.ndarray, starts: np.ndarray, *, random_slope: bool
) -> dict[str, Any] | None:
    """Maximise the profiled REML criterion; None if it does not converge."""
    z = np.column_stack([np.ones(len(y)), t]) if random_slope else np.ones((len(y), 1))
    q = z.shape[1]
    n, p = design.shape
    # Per-participant sums: Z'Z (q × q), Z'X (q × p), Z'y (q).
    gram = np.add.reduceat(z[:, :, None] * z[:, None, :], starts, axis=0)
    zx = np.add.reduceat(z[:, :, None] * design[:, None, :], starts, axis=0)
    zy = np.add.reduceat(z * y[:, None], starts, axis=0)
    xtx, xty, yty = design.T @ design, design.T @ y, float(y @ y)
    eye = np.eye(q)
    lower = np.tril_indices(q)

    def evaluate(theta: np.ndarray, gradient: bool) -> tuple[float, np.ndarray | None, dict]:
        chol = np.zeros((q, q))
        chol[lower] = theta
        psi = chol @ chol.T
        inner = eye + gram @ psi  # I + Z'Z Ψ per participant
        p_inv = np.linalg.inv(inner)
        sign, logdet_w = np.linalg.slogdet(inner)
        pzx = p_inv @ zx  # (I + Z'ZΨ)⁻¹ Z'X
        pzy = np.einsum("gij,gj->gi", p_inv, zy)
        a_mat = xtx - np.einsum("gqp,qr,grs->ps", zx, psi, pzx)
        xwy = xty - np.einsum("gqp,qr,gr->p", zx, psi, pzy)
        ywy = yty - float(np.einsum("gq,qr,gr->", zy, psi, pzy))
        a_chol = np.linalg.cholesky(a_mat)
        beta = np.linalg.solve(a_mat, xwy)
        rss = ywy - float(beta @ xwy)
        if rss <= 0 or (sign <= 0).any():
            raise np.linalg.LinAlgError("not positive definite")
        logdet_a = 2 * float(np.log(np.diag(a_chol)).sum())
        value = 0.5 / n * ((n - p) * math.log(rss) + float(logdet_w.sum()) + logdet_a)
        state = {"beta": beta, "rss": rss, "a_mat": a_mat, "psi": psi, "logdet": logdet_w.sum()}
        state["logdet_a"] = logdet_a
        if not gradient:
            return value, None, state
        v = pzy - pzx @ beta
        a_inv = np.linalg.inv(a_mat)
        s_mat = (
            0.5
            / n
            * (
                -(n - p) / rss * np.einsum("gq,gr->qr", v, v)
                + np.einsum("gqr,grs->qs", p_inv, gram)
                - np.einsum("gqp,ps,grs->qr", pzx, a_inv, pzx)
            )
        )
        s_mat = (s_mat + s_mat.T) / 2
        grad = (2 * s_mat @ chol)[lower]
        return value, grad, state

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        try:
            value, grad, _ = evaluate(theta, True)
        except np.linalg.LinAlgError:
            return math.inf, np.zeros_like(theta)
        return value, grad

    t_sd = float(np.std(t)) or 1.0
    start = np.array([1.0, 0.0, 0.3 / t_sd]) if random_slope else np.array([1.0])
    with np.errstate(all="ignore"):
        found = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": 500, "gtol": 1e-12, "ftol": 1e-15},
        )
        theta = np.asarray(found.x, dtype=float)
        value, grad = objective(theta)
        # Newton steps on a finite-difference Hessian of the analytic gradient: the optimum to
        # (nearly) machine precision, so the fixed effects do not depend on the optimiser.
        for _ in range(20):
            if not np.isfinite(value) or np.max(np.abs(grad)) < 1e-12:
                break
            hess = np.empty((theta.size, theta.size))
            for k in range(theta.size):
                h = 1e-6 * max(1.0, abs(theta[k]))
                up, down = theta.copy(), theta.copy()
                up[k] += h
                down[k] -= h
                hess[:, k] = (objective(up)[1] - objective(down)[1]) / (2 * h)
            hess = (hess + hess.T) / 2
            try:
                step = np.linalg.solve(hess, grad)
            except np.linalg.LinAlgError:
                break
            if not np.isfinite(step).all():
                break
            new_value, new_grad = objective(theta - step)
            if not (new_value <= value + 1e-15 and np.isfinite(new_value)):
                break
            if np.max(np.abs(new_grad)) >= np.max(np.abs(grad)) and new_value >= value:
                break
            theta, value, grad = theta - step, new_value, new_grad
    if not np.isfinite(value) or np.max(np.abs(grad)) > REML_GTOL:
        return None
    try:
        _, _, state = evaluate(theta, False)
    except np.linalg.LinAlgError:
        return None
    scale = state["rss"] / (n - p)
    cov_beta = scale * np.linalg.inv(state["a_mat"])
    llf = -0.5 * ((n - p) * (math.log(2 * math.pi * scale) + 1) + state["logdet"])
    llf -= 0.5 * state["logdet_a"]
    if not (np.isfinite(cov_beta).all() and np.isfinite(state["beta"]).all()):
        return None
    return {
        "beta": state["beta"],
        "cov_beta": cov_beta,
        "cov_re": scale * state["psi"],
        "scale": scale,
        "llf": llf,
        "slope": random_slope,
    }


def _trajectories(
    t: np.ndarray,
    x: np.ndarray,
    cov_values: np.ndarray,
    coef: np.ndarray,
    cov: np.ndarray,
    exposure: str,
) -> pd.DataFrame:
    if np.isin(x, (0.0, 1.0)).all():
        levels = [(0.0, f"{exposure} = 0"), (1.0, f"{exposure} = 1")]
    else:
        levels = []
        for q in (10, 50, 90):
            value = float(np.percentile(x, q))
            if all(value != v for v, _ in levels):
                levels.append((value, f"{q}th percentile ({exposure} = {value:g})"))
    grid = np.linspace(float(t.min()), float(t.max()), TRAJECTORY_POINTS)
    means = cov_values.mean(axis=0)
    rows = []
    for value, label in levels:
        design = np.column_stack(
            [
                np.ones_like(grid),
                grid,
                np.full_like(grid, value),
                grid * value,
                np.tile(means, (grid.size, 1)),
            ]
        )
        predicted = design @ coef
        se = np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))
        rows.append(
            pd.DataFrame(
                {
                    "time": grid,
                    "exposure_value": value,
                    "level": label,
                    "predicted": predicted,
                    "ci_low": predicted - Z95 * se,
                    "ci_high": predicted + Z95 * se,
                }
            )
        )
    return pd.concat(rows, ignore_index=True)
