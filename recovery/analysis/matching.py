"""Propensity-score matching for the effect of a binary exposure on the exposed (ATT).

The design follows the published matched analyses of mutual-help involvement (Costello et al.
2021: high involvement in the first 3 months versus moderate/low, any use at 12 months) and
Austin's recommendations for propensity-score matching:

* **Propensity score.** ``ps_model="logistic"``: a maximum-likelihood logistic regression of the
  exposure on the covariates (main effects, intercept, no penalty) fitted with statsmodels'
  ``Logit`` (Newton–Raphson). ``"random_forest"`` and ``"gradient_boosting"``: scikit-learn's
  ``RandomForestClassifier`` (200 trees, leaves of at least 1.25 % of the rows) and
  ``GradientBoostingClassifier`` (100 trees of depth 2), seeded with ``seed``; their
  scores are *cross-fitted* (each row's score comes from a model fitted on the other 4 of 5
  stratified folds), because in-sample scores of a flexible learner are overfit towards 0 and 1.
  Every score is clipped to [1e-6, 1 − 1e-6] so its logit is finite.
* **Matching.** Nearest neighbour on the logit of the score, 1:``ratio``, with or without
  replacement. The caliper is ``caliper`` × the standard deviation of the logit of the score in
  the whole analysis sample (Austin 2011 recommends 0.2). Without replacement the matching is
  greedy: treated rows are taken in a random order drawn from ``seed``; each takes its
  ``ratio`` nearest still-unused controls within the caliper. Ties between equally distant
  controls are broken at random (also from ``seed``). A treated row with no control within the
  caliper is left out (``n_unmatched_treated``); one with fewer than ``ratio`` controls keeps
  those it has. Each control of a treated row with k controls carries weight 1/k; with
  replacement a control's weight adds up over the treated rows it serves.
* **ATT** = the mean over matched treated rows of (their outcome − the mean outcome of their
  controls): a risk difference for a 0/1 outcome. Its 95 % interval, named in ``ci_method``:
  for 1:1 matching without replacement, the paired t-interval on the within-pair differences
  (it accounts for the matched design, as Austin 2011 recommends); for 1:k without replacement,
  the coefficient of a weighted least-squares regression of the outcome on the exposure in the
  matched sample with cluster-robust standard errors clustered on matched set; with replacement,
  the same regression on one row per participant per matched set with two-way cluster-robust
  errors (matched set and participant), which also accounts for controls used more than once
  (Austin & Cafri 2020; MatchIt's guidance).
* **Odds ratio** (0/1 outcome only): logistic regression of the outcome on the exposure in the
  matched sample with the matching weights (statsmodels ``GLM``, binomial, ``var_weights``) and
  the same cluster-robust errors as the ATT's regression: a marginal odds ratio in the matched
  treated. ``None`` when a matched group has no events or only events.
* **IPW-ATT**, a second estimator on the whole analysis sample (no caliper): weight 1 for the
  exposed and ps/(1 − ps) for the unexposed (normalised to sum to the number exposed); the
  difference of weighted means, i.e. a weighted least-squares regression of the outcome on the
  exposure, with an HC1 robust (sandwich) standard error. The propensity is treated as known
  (no bootstrap, so it is fast and exact): for the ATT that can make the interval a little too
  wide or too narrow (Reifeis & Hudgens 2022); on the synthetic cohorts it was about 2 % wider
  than a sandwich that accounts for the estimated score and covered 38 of 40 seeds.
* **Naive**: the unadjusted difference in mean outcome, exposed − unexposed, with a Welch
  t-interval.
* **Balance**: the standardized mean difference of each covariate, (mean exposed − mean
  unexposed) / sqrt((var exposed + var unexposed) / 2), where the denominator is the *before*
  matching pooled standard deviation both before and after matching (so that the two columns
  differ only by the means). After matching the means are weighted by the matching weights.
  ``imbalanced_after`` flags |SMD| ≥ 0.1.

Rows with a missing (or infinite) exposure, outcome or covariate are left out first
(``n_dropped_missing``). A problem with the data or the request raises
:class:`~recovery.analysis.errors.AnalysisError` with a plain-language message.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationError,
    PerfectSeparationWarning,
)

from .errors import AnalysisError

PS_MODELS = ("logistic", "random_forest", "gradient_boosting")
BALANCE_THRESHOLD = 0.1
MIN_PER_GROUP = 10
SCORE_CLIP = 1e-6
CROSS_FIT_FOLDS = 5

_PS_METHODS = {
    "logistic": "logistic regression (maximum likelihood, statsmodels Logit), main effects",
    "random_forest": (
        "random forest (scikit-learn RandomForestClassifier, 200 trees, leaves of at least "
        f"1.25 % of the rows), {CROSS_FIT_FOLDS}-fold cross-fitted scores"
    ),
    "gradient_boosting": (
        "gradient boosting (scikit-learn GradientBoostingClassifier, 100 trees of depth 2), "
        f"{CROSS_FIT_FOLDS}-fold cross-fitted scores"
    ),
}


@dataclass(frozen=True, eq=False)
class MatchResult:
    """What :func:`estimate_att` found. Risk differences for a 0/1 outcome, mean differences
    otherwise; every interval is a 95 % interval whose method is named beside it."""

    # The matched estimate.
    att: float
    ci_low: float
    ci_high: float
    ci_method: str
    att_se: float
    mean_outcome_treated: float  # in the matched treated
    mean_outcome_control: float  # in their matched controls, weighted
    # Odds ratio in the matched sample (0/1 outcome only).
    odds_ratio: float | None
    odds_ratio_ci_low: float | None
    odds_ratio_ci_high: float | None
    odds_ratio_method: str | None
    # Inverse probability weighting for the ATT, on the whole analysis sample.
    ipw_att: float
    ipw_ci_low: float
    ipw_ci_high: float
    ipw_ci_method: str
    # Unadjusted.
    naive: float
    naive_ci_low: float
    naive_ci_high: float
    naive_ci_method: str
    # Counts.
    n_rows: int
    n_dropped_missing: int
    n_used: int
    n_treated: int
    n_control: int
    n_matched_treated: int
    n_matched_control: int
    n_unmatched_treated: int
    # Diagnostics.
    balance: pd.DataFrame
    propensity: pd.Series  # the clipped score of each analysed row (input index)
    exposure: pd.Series  # 0/1 of each analysed row (input index)
    matched_pairs: pd.DataFrame
    caliper_width: float  # on the logit scale; inf without a caliper
    logit_sd: float
    ps_method: str
    outcome_is_binary: bool
    # The request.
    treatment: str
    outcome: str
    covariates: tuple[str, ...]
    ps_model: str
    caliper: float | None
    ratio: int
    replace: bool
    seed: int
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The scalar results and the request, for JSON, CSV or a table."""
        frames = {"balance", "propensity", "exposure", "matched_pairs"}
        out = {k: v for k, v in asdict(self).items() if k not in frames}
        out["covariates"] = list(self.covariates)
        out["notes"] = list(self.notes)
        return out


def estimate_att(
    df: pd.DataFrame,
    *,
    treatment: str,
    outcome: str,
    covariates: list[str] | tuple[str, ...],
    ps_model: str = "logistic",
    caliper: float | None = 0.2,
    ratio: int = 1,
    replace: bool = False,
    seed: int = 0,
) -> MatchResult:
    """Estimate the effect of ``treatment`` (0/1) on ``outcome`` among the treated by
    propensity-score matching, beside the IPW and naive estimates and the balance table.

    ``caliper`` is in standard deviations of the logit of the score (``None``: no caliper);
    ``ratio`` is the number of controls per treated row; ``seed`` fixes the greedy matching
    order, the tie-breaks and the machine-learning models, so the same call gives the same
    result. See the module docstring for the methods and the intervals.
    """
    covariates = _check_request(df, treatment, outcome, covariates, ps_model, caliper, ratio)
    # Python numbers in the result, so that summary() stays JSON (np.int64 is not).
    ratio = int(ratio)
    if isinstance(seed, np.integer):
        seed = int(seed)
    data, n_dropped = _analysis_frame(df, treatment, outcome, covariates)

    # Checked as numbers before the cast to int, which would truncate 0.5 to 0.
    exposure = data[treatment].to_numpy(dtype=float)
    y = data[outcome].to_numpy(dtype=float)
    x = data[covariates].to_numpy(dtype=float)
    outcome_is_binary = bool(np.isin(y, (0.0, 1.0)).all())
    _check_data(exposure, y, x, treatment, outcome, covariates)
    t = exposure.astype(int)

    ps = _propensity(t, x, ps_model, treatment, covariates, seed)
    logit = np.log(ps / (1 - ps))
    logit_sd = float(np.std(logit, ddof=1))
    caliper_width = math.inf if caliper is None else float(caliper) * logit_sd

    rng = np.random.default_rng(seed)
    pairs = _match(logit, t, caliper_width=caliper_width, ratio=ratio, replace=replace, rng=rng)
    treated_pos = np.flatnonzero(t == 1)
    n_matched_treated = int(np.unique(pairs["treated"]).size)
    if n_matched_treated < 2:
        raise AnalysisError(
            f"No common support: {'only one' if n_matched_treated else 'no'} row with "
            f"{treatment} = 1 has a row with {treatment} = 0 whose propensity score is within the "
            f"caliper ({caliper} SD of the logit of the score). The two groups do not overlap "
            "on these covariates; widen the caliper, allow matching with replacement, or choose "
            "fewer or different covariates.",
            code="no_common_support",
        )

    control_weight = np.bincount(pairs["control"], weights=pairs["weight"], minlength=len(t))
    att_part = _matched_att(y, pairs, ratio=ratio, replace=replace)
    odds = _matched_odds_ratio(y, pairs, replace=replace) if outcome_is_binary else None
    ipw = _ipw_att(y, t, ps)
    naive = _welch(y[t == 1], y[t == 0])

    matched_treated = np.zeros(len(t), dtype=bool)
    matched_treated[pairs["treated"]] = True
    balance = _balance(x, t, matched_treated, control_weight, covariates)

    index = data.index
    matched_pairs = pd.DataFrame(
        {
            "treated_index": index[pairs["treated"]],
            "control_index": index[pairs["control"]],
            "weight": pairs["weight"],
            "logit_distance": np.abs(logit[pairs["treated"]] - logit[pairs["control"]]),
        }
    )
    n_unmatched = int(treated_pos.size - n_matched_treated)
    notes = _notes(
        n_dropped=n_dropped,
        n_unmatched=n_unmatched,
        n_treated=int(treated_pos.size),
        balance=balance,
        treatment=treatment,
        odds_missing=outcome_is_binary and odds is None,
    )
    return MatchResult(
        att=att_part["att"],
        ci_low=att_part["ci_low"],
        ci_high=att_part["ci_high"],
        ci_method=att_part["method"],
        att_se=att_part["se"],
        mean_outcome_treated=att_part["mean_treated"],
        mean_outcome_control=att_part["mean_control"],
        odds_ratio=None if odds is None else odds["or"],
        odds_ratio_ci_low=None if odds is None else odds["ci_low"],
        odds_ratio_ci_high=None if odds is None else odds["ci_high"],
        odds_ratio_method=None if odds is None else odds["method"],
        ipw_att=ipw["att"],
        ipw_ci_low=ipw["ci_low"],
        ipw_ci_high=ipw["ci_high"],
        ipw_ci_method=ipw["method"],
        naive=naive["diff"],
        naive_ci_low=naive["ci_low"],
        naive_ci_high=naive["ci_high"],
        naive_ci_method=naive["method"],
        n_rows=len(df),
        n_dropped_missing=n_dropped,
        n_used=len(data),
        n_treated=int(treated_pos.size),
        n_control=int((t == 0).sum()),
        n_matched_treated=n_matched_treated,
        n_matched_control=int(np.unique(pairs["control"]).size),
        n_unmatched_treated=n_unmatched,
        balance=balance,
        propensity=pd.Series(ps, index=index, name="propensity"),
        exposure=pd.Series(t, index=index, name=treatment),
        matched_pairs=matched_pairs,
        caliper_width=caliper_width,
        logit_sd=logit_sd,
        ps_method=_PS_METHODS[ps_model],
        outcome_is_binary=outcome_is_binary,
        treatment=treatment,
        outcome=outcome,
        covariates=tuple(covariates),
        ps_model=ps_model,
        caliper=caliper,
        ratio=ratio,
        replace=replace,
        seed=seed,
        notes=notes,
    )


def common_support(result: MatchResult) -> pd.DataFrame:
    """One row per analysed row, for a common-support (overlap) histogram: the propensity and
    its logit, the group (``"treated"``/``"control"``), and whether the row is in the matched
    sample."""
    pairs = result.matched_pairs
    ps = result.propensity
    matched = ps.index.isin(pairs["treated_index"]) | ps.index.isin(pairs["control_index"])
    return pd.DataFrame(
        {
            "group": np.where(result.exposure.to_numpy() == 1, "treated", "control"),
            "propensity": ps,
            "logit_propensity": np.log(ps / (1 - ps)),
            "matched": matched,
        },
        index=ps.index,
    )


def love_plot_data(result: MatchResult) -> pd.DataFrame:
    """The balance table for a Love plot: SMD before and after per covariate, the covariate
    with the largest imbalance before matching first. The reference lines are ±0.1
    (``BALANCE_THRESHOLD``)."""
    balance = result.balance[["smd_before", "smd_after", "imbalanced_after"]].copy()
    order = balance["smd_before"].abs().sort_values(ascending=False, kind="stable").index
    return balance.loc[order]


# --- Checks --------------------------------------------------------------------------------


def _check_request(
    df: pd.DataFrame,
    treatment: str,
    outcome: str,
    covariates: list[str] | tuple[str, ...],
    ps_model: str,
    caliper: float | None,
    ratio: int,
) -> list[str]:
    if not isinstance(df, pd.DataFrame):
        raise AnalysisError("The data must be a pandas DataFrame.", code="invalid_parameter")
    if ps_model not in PS_MODELS:
        raise AnalysisError(
            f"Unknown propensity model {ps_model!r}; choose one of {', '.join(PS_MODELS)}.",
            code="invalid_parameter",
        )
    if caliper is not None and not (isinstance(caliper, int | float) and caliper > 0):
        raise AnalysisError(
            "The caliper must be a positive number of standard deviations (or None for none).",
            code="invalid_parameter",
        )
    if isinstance(ratio, bool) or not isinstance(ratio, int | np.integer) or ratio < 1:
        raise AnalysisError(
            "The ratio must be a whole number of controls per treated row, at least 1.",
            code="invalid_parameter",
        )
    if isinstance(covariates, str):
        covariates = [covariates]
    covariates = list(covariates)
    if not covariates:
        raise AnalysisError(
            "Choose at least one covariate for the propensity score.", code="invalid_parameter"
        )
    chosen = [treatment, outcome, *covariates]
    missing = [c for c in dict.fromkeys(chosen) if c not in df.columns]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        raise AnalysisError(
            f"The data has no column {listed}. Check the spelling, or export the dataset again "
            "with that variable.",
            code="unknown_column",
        )
    repeated = sorted({c for c in chosen if chosen.count(c) > 1}, key=chosen.index)
    if repeated:
        raise AnalysisError(
            f"{', '.join(repr(c) for c in repeated)} is chosen more than once (as exposure, "
            "outcome or covariate); each column may play one role only.",
            code="invalid_parameter",
        )
    if not df.index.is_unique:
        raise AnalysisError(
            "The rows' index has repeated labels, so matched rows could not be told apart; "
            "reset it first (df.reset_index(drop=True)).",
            code="invalid_parameter",
        )
    return covariates


def _analysis_frame(
    df: pd.DataFrame, treatment: str, outcome: str, covariates: list[str]
) -> tuple[pd.DataFrame, int]:
    columns = [treatment, outcome, *covariates]
    data = df[columns]
    treat = data[treatment]
    if not (pd.api.types.is_numeric_dtype(treat) or pd.api.types.is_bool_dtype(treat)):
        values = ", ".join(repr(v) for v in pd.unique(treat.dropna())[:5])
        raise AnalysisError(
            f"The exposure {treatment!r} must be coded 0/1; it holds text ({values}).",
            code="non_binary_treatment",
        )
    for column in [outcome, *covariates]:
        series = data[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            role = "outcome" if column == outcome else "covariate"
            raise AnalysisError(
                f"The {role} {column!r} is not numeric. Code a category as 0/1 indicator "
                "columns, or choose a numeric variable.",
                code="non_numeric",
            )
    numeric = data.astype(float)
    keep = np.isfinite(numeric.to_numpy()).all(axis=1)
    return numeric.loc[keep], int((~keep).sum())


def _check_data(
    t: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    treatment: str,
    outcome: str,
    covariates: list[str],
) -> None:
    if len(t) and not np.isin(t, (0, 1)).all():
        raise AnalysisError(
            f"The exposure {treatment!r} must be 0/1 (1 = exposed); it holds {_few_values(t)}.",
            code="non_binary_treatment",
        )
    n_treated, n_control = int((t == 1).sum()), int((t == 0).sum())
    if len(t) and (n_treated == 0 or n_control == 0):
        value = 1 if n_control == 0 else 0
        raise AnalysisError(
            f"No variation in the exposure: every one of the {len(t)} complete rows has "
            f"{treatment} = {value}, so there is no one to compare with.",
            code="no_exposure_variation",
        )
    if n_treated < MIN_PER_GROUP or n_control < MIN_PER_GROUP:
        raise AnalysisError(
            f"Too few observations: after leaving out rows with a missing value, {n_treated} "
            f"rows have {treatment} = 1 and {n_control} have {treatment} = 0; at least "
            f"{MIN_PER_GROUP} of each are needed.",
            code="too_few",
        )
    if np.ptp(y) == 0:
        raise AnalysisError(
            f"The outcome {outcome!r} is the same ({y[0]:g}) for every complete row, so there "
            "is no difference to estimate.",
            code="constant_outcome",
        )
    for j, name in enumerate(covariates):
        if np.ptp(x[:, j]) == 0:
            raise AnalysisError(
                f"The covariate {name!r} has the same value ({x[0, j]:g}) for every complete "
                "row, so it cannot be adjusted for; leave it out.",
                code="constant_covariate",
            )
    design = np.column_stack([np.ones(len(t)), x])
    if np.linalg.matrix_rank(design) < design.shape[1]:
        rank = 1
        for j, name in enumerate(covariates):
            if np.linalg.matrix_rank(design[:, : j + 2]) == rank:
                raise AnalysisError(
                    f"The covariate {name!r} is fully determined by the covariates before it "
                    "(a duplicate, a sum, or one of a full set of indicators); leave it out.",
                    code="collinear_covariates",
                )
            rank += 1


def _few_values(values: np.ndarray) -> str:
    distinct = np.unique(values)
    shown = ", ".join(f"{v:g}" for v in distinct[:5])
    return shown + (", …" if distinct.size > 5 else "")


# --- Propensity ----------------------------------------------------------------------------


def _propensity(
    t: np.ndarray, x: np.ndarray, ps_model: str, treatment: str, covariates: list[str], seed: int
) -> np.ndarray:
    if ps_model == "logistic":
        ps = _logistic_scores(t, x, treatment, covariates)
    else:
        ps = _cross_fitted_scores(t, x, ps_model, seed)
    near_edge = (ps < SCORE_CLIP) | (ps > 1 - SCORE_CLIP)
    if near_edge.all():
        raise _separation_error(t, x, treatment, covariates)
    return np.clip(ps, SCORE_CLIP, 1 - SCORE_CLIP)


def _logistic_scores(
    t: np.ndarray, x: np.ndarray, treatment: str, covariates: list[str]
) -> np.ndarray:
    exog = sm.add_constant(x, has_constant="add")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(t, exog).fit(disp=0, maxiter=100)
        except (np.linalg.LinAlgError, PerfectSeparationError) as exc:
            raise _separation_error(t, x, treatment, covariates) from exc
    trouble = any(
        issubclass(w.category, PerfectSeparationWarning | ConvergenceWarning) for w in caught
    )
    if trouble or not fit.mle_retvals.get("converged", False) or not np.isfinite(fit.params).all():
        raise _separation_error(t, x, treatment, covariates)
    return np.asarray(fit.predict(exog), dtype=float)


def _cross_fitted_scores(t: np.ndarray, x: np.ndarray, ps_model: str, seed: int) -> np.ndarray:
    # Only these two models need scikit-learn, which takes a moment to import.
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    if ps_model == "random_forest":
        model = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=_forest_leaf(t.size), random_state=seed
        )
    else:
        model = GradientBoostingClassifier(
            n_estimators=100, max_depth=2, learning_rate=0.1, random_state=seed
        )
    folds = StratifiedKFold(n_splits=CROSS_FIT_FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_predict(model, x, t, cv=folds, method="predict_proba")
    return np.asarray(scores[:, 1], dtype=float)


def _forest_leaf(n: int) -> int:
    """Leaves of at least 1.25 % of the rows (5 to 50): smaller leaves give noisy, overfit
    probabilities whose matched samples stay imbalanced (measured on the synthetic cohorts)."""
    return int(min(50, max(5, round(0.0125 * n))))


def _separation_error(
    t: np.ndarray, x: np.ndarray, treatment: str, covariates: list[str]
) -> AnalysisError:
    culprits = []
    for j, name in enumerate(covariates):
        xt, xc = x[t == 1, j], x[t == 0, j]
        if xt.max() <= xc.min() or xc.max() <= xt.min():
            culprits.append(name)
        elif np.unique(x[:, j]).size <= 2:
            # A yes/no covariate: is one answer given only by one group?
            for value in np.unique(x[:, j]):
                if np.unique(t[x[:, j] == value]).size == 1:
                    culprits.append(name)
                    break
    hint = (
        f" {', '.join(repr(c) for c in culprits)} on its own separates the two groups."
        if culprits
        else ""
    )
    return AnalysisError(
        f"Perfect separation: the covariates predict {treatment!r} (almost) perfectly, so the "
        "propensity model cannot be fitted and there are no comparable rows to match."
        f"{hint} Leave out or coarsen the covariate(s) that give the exposure away.",
        code="perfect_separation",
    )


# --- Matching ------------------------------------------------------------------------------


def _match(
    logit: np.ndarray,
    t: np.ndarray,
    *,
    caliper_width: float,
    ratio: int,
    replace: bool,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Nearest-neighbour matching on ``logit``. Returns positions of treated and control rows
    (one entry per pair) and the weight of each pair (1 / the treated row's number of
    controls)."""
    treated_pos = np.flatnonzero(t == 1)
    control_pos = np.flatnonzero(t == 0)
    # Controls sorted by score, equal scores in a random order (the seed's tie-break).
    order = np.lexsort((rng.random(control_pos.size), logit[control_pos]))
    sorted_pos = control_pos[order]
    sorted_logit = logit[sorted_pos]
    m = sorted_pos.size

    # Greedy matching takes treated rows in a random order; with replacement the order does
    # not matter, but drawing it anyway keeps the random stream the same for both.
    visit = treated_pos[rng.permutation(treated_pos.size)]

    # Available controls as two "next free slot" forests (path-compressed): left[i] leads to
    # the nearest free slot at or below i, right[i] at or above. Slot 0 and m + 1 are guards.
    left = np.arange(m + 2)
    right = np.arange(m + 2)

    def free_left(i: int) -> int:
        root = i
        while left[root] != root:
            root = left[root]
        while left[i] != root:
            left[i], i = root, left[i]
        return root

    def free_right(i: int) -> int:
        root = i
        while right[root] != root:
            root = right[root]
        while right[i] != root:
            right[i], i = root, right[i]
        return root

    pair_t: list[int] = []
    pair_c: list[int] = []
    pair_w: list[float] = []
    for tp in visit:
        score = logit[tp]
        # Slots are 1-based; slot s holds sorted control s - 1.
        pos = int(np.searchsorted(sorted_logit, score))
        lo = free_left(pos) if not replace else pos
        hi = free_right(pos + 1) if not replace else pos + 1
        chosen: list[int] = []
        while len(chosen) < ratio:
            d_lo = score - sorted_logit[lo - 1] if lo >= 1 else math.inf
            d_hi = sorted_logit[hi - 1] - score if hi <= m else math.inf
            if min(d_lo, d_hi) > caliper_width or (lo < 1 and hi > m):
                break
            if d_lo <= d_hi:
                slot, lo = lo, lo - 1
            else:
                slot, hi = hi, hi + 1
            chosen.append(slot)
            if not replace:
                left[slot] = slot - 1
                right[slot] = slot + 1
                lo = free_left(lo) if lo >= 1 else lo
                hi = free_right(hi) if hi <= m else hi
        for slot in chosen:
            pair_t.append(int(tp))
            pair_c.append(int(sorted_pos[slot - 1]))
            pair_w.append(1.0 / len(chosen))
    return {
        "treated": np.asarray(pair_t, dtype=int),
        "control": np.asarray(pair_c, dtype=int),
        "weight": np.asarray(pair_w, dtype=float),
    }


# --- Estimates -----------------------------------------------------------------------------

_Z = float(stats.norm.ppf(0.975))


def _matched_att(
    y: np.ndarray, pairs: dict[str, np.ndarray], *, ratio: int, replace: bool
) -> dict[str, Any]:
    treated, control, weight = pairs["treated"], pairs["control"], pairs["weight"]
    # A matched set is identified by its treated row.
    set_ids = np.unique(treated)
    set_of_pair = np.searchsorted(set_ids, treated)
    control_mean = np.bincount(set_of_pair, weights=weight * y[control])
    diffs = y[set_ids] - control_mean
    att = float(diffs.mean())
    mean_treated = float(y[set_ids].mean())
    mean_control = float(control_mean.mean())
    n = diffs.size

    if ratio == 1 and not replace:
        se = float(diffs.std(ddof=1) / math.sqrt(n))
        q = float(stats.t.ppf(0.975, n - 1))
        return {
            "att": att,
            "se": se,
            "ci_low": att - q * se,
            "ci_high": att + q * se,
            "mean_treated": mean_treated,
            "mean_control": mean_control,
            "method": (
                "paired t-interval on the within-pair differences "
                "(1:1 matching without replacement; Austin 2011)"
            ),
        }

    endog, exog, w, groups = _stacked(y, pairs, replace=replace)
    fit = sm.WLS(endog, exog, weights=w).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=False
    )
    # The regression's coefficient is the ATT itself (difference of weighted means).
    se = float(fit.bse[1])
    return {
        "att": att,
        "se": se,
        "ci_low": att - _Z * se,
        "ci_high": att + _Z * se,
        "mean_treated": mean_treated,
        "mean_control": mean_control,
        "method": "weighted least squares of the outcome on the exposure in the matched sample "
        f"(matching weights), {_cluster_words(replace)} (normal 95 % interval)",
    }


def _stacked(
    y: np.ndarray, pairs: dict[str, np.ndarray], *, replace: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The matched sample as one row per participant per matched set: each matched treated row
    (weight 1) and each of its controls (weight 1/k). Groups: the matched set, and with
    replacement also the participant (a control may serve several sets)."""
    treated, control, weight = pairs["treated"], pairs["control"], pairs["weight"]
    set_ids = np.unique(treated)
    rows = np.concatenate([set_ids, control])
    sets = np.concatenate([set_ids, treated])
    endog = y[rows]
    exog = np.column_stack(
        [np.ones(rows.size), np.concatenate([np.ones(set_ids.size), np.zeros(control.size)])]
    )
    w = np.concatenate([np.ones(set_ids.size), weight])
    groups = np.column_stack([sets, rows]) if replace else sets
    return endog, exog, w, groups


def _cluster_words(replace: bool) -> str:
    if replace:
        return (
            "two-way cluster-robust standard errors by matched set and participant "
            "(Austin & Cafri 2020)"
        )
    return "cluster-robust standard errors by matched set"


def _matched_odds_ratio(
    y: np.ndarray, pairs: dict[str, np.ndarray], *, replace: bool
) -> dict[str, Any] | None:
    endog, exog, w, groups = _stacked(y, pairs, replace=replace)
    for group in (1.0, 0.0):
        risk = np.average(endog[exog[:, 1] == group], weights=w[exog[:, 1] == group])
        if risk <= 0 or risk >= 1:
            return None
    with warnings.catch_warnings():
        # statsmodels flags robust covariances with var_weights as "not fully supported"; for
        # this model (one binary regressor) the sandwich is the textbook one.
        warnings.simplefilter("ignore")
        fit = sm.GLM(endog, exog, family=sm.families.Binomial(), var_weights=w).fit(
            cov_type="cluster", cov_kwds={"groups": groups}, use_t=False
        )
    log_or, se = float(fit.params[1]), float(fit.bse[1])
    return {
        "or": math.exp(log_or),
        "ci_low": math.exp(log_or - _Z * se),
        "ci_high": math.exp(log_or + _Z * se),
        "method": "logistic regression of the outcome on the exposure in the matched sample "
        f"(matching weights), {_cluster_words(replace)} (normal 95 % interval on the log scale)",
    }


def _ipw_att(y: np.ndarray, t: np.ndarray, ps: np.ndarray) -> dict[str, Any]:
    odds = ps / (1 - ps)
    w = np.where(t == 1, 1.0, odds)
    w[t == 0] *= (t == 1).sum() / w[t == 0].sum()
    exog = np.column_stack([np.ones(t.size), t.astype(float)])
    fit = sm.WLS(y, exog, weights=w).fit(cov_type="HC1", use_t=False)
    att, se = float(fit.params[1]), float(fit.bse[1])
    return {
        "att": att,
        "ci_low": att - _Z * se,
        "ci_high": att + _Z * se,
        "method": "weighted least squares with ATT weights (1 for the exposed, ps/(1 − ps) for "
        "the unexposed, normalised), HC1 robust standard error, propensity treated as known "
        "(normal 95 % interval)",
    }


def _welch(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    if se == 0:
        low = high = diff
    else:
        dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
        q = float(stats.t.ppf(0.975, dof))
        low, high = diff - q * se, diff + q * se
    return {
        "diff": diff,
        "ci_low": float(low),
        "ci_high": float(high),
        "method": "difference in means with a Welch t-interval (unequal variances)",
    }


def _balance(
    x: np.ndarray,
    t: np.ndarray,
    matched_treated: np.ndarray,
    control_weight: np.ndarray,
    covariates: list[str],
) -> pd.DataFrame:
    xt, xc = x[t == 1], x[t == 0]
    mean_t, mean_c = xt.mean(axis=0), xc.mean(axis=0)
    pooled_sd = np.sqrt((xt.var(axis=0, ddof=1) + xc.var(axis=0, ddof=1)) / 2)
    after_t = x[matched_treated].mean(axis=0)
    after_c = np.average(x, axis=0, weights=control_weight)
    with np.errstate(divide="ignore", invalid="ignore"):
        smd_before = (mean_t - mean_c) / pooled_sd
        smd_after = (after_t - after_c) / pooled_sd
    frame = pd.DataFrame(
        {
            "mean_treated_before": mean_t,
            "mean_control_before": mean_c,
            "mean_treated_after": after_t,
            "mean_control_after": after_c,
            "pooled_sd_before": pooled_sd,
            "smd_before": smd_before,
            "smd_after": smd_after,
        },
        index=pd.Index(covariates, name="covariate"),
    )
    frame["imbalanced_before"] = frame["smd_before"].abs() >= BALANCE_THRESHOLD
    frame["imbalanced_after"] = frame["smd_after"].abs() >= BALANCE_THRESHOLD
    return frame


def _notes(
    *,
    n_dropped: int,
    n_unmatched: int,
    n_treated: int,
    balance: pd.DataFrame,
    treatment: str,
    odds_missing: bool,
) -> tuple[str, ...]:
    notes = []
    if n_dropped:
        notes.append(f"{n_dropped} rows with a missing value were left out.")
    if n_unmatched:
        share = n_unmatched / n_treated
        notes.append(
            f"{n_unmatched} of {n_treated} rows with {treatment} = 1 ({share:.0%}) had no "
            "control within the caliper and were left out: the estimate describes the matched "
            "exposed only."
        )
    imbalanced = list(balance.index[balance["imbalanced_after"]])
    if imbalanced:
        notes.append(
            "Still imbalanced after matching (|SMD| ≥ 0.1): "
            + ", ".join(imbalanced)
            + ". Consider a narrower caliper, another propensity model, or adjusting for them."
        )
    if odds_missing:
        notes.append("No odds ratio: in the matched sample one group had no events or only events.")
    return tuple(notes)
