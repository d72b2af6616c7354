"""Dose–response: outcomes by band of mutual-help attendance, and a test for trend.

**A same-wave (cross-sectional) association.** Attendance and the outcome come from the same
survey (meetings and drug use in the past 30 days, craving in the past week), so the table says
how outcomes differ between people attending more and less at the same time, not that meetings
lower use: people who are using may stop going. The lagged analysis (attendance at one wave,
outcome at the next) lives in its own module.

* **Bands.** By default meetings per 30 days (``meetings_total``) in six bands: 0, 1–3, 4–7,
  8–11, 12–19, 20+. 4 meetings in 30 days is about one a week, 12 about three a week, 20 about
  five a week; "90 meetings in 90 days" (30 in 30) falls in the top band. The more standard cut
  in the literature is *weekly or more* (≥ 4 in 30 days) against less than weekly and none
  (Fiorentine 1999 for people recovering from drug use; the same threshold is the attendance
  item of the involvement index and of high involvement here): :data:`WEEKLY_BANDS` gives that
  three-band version. A band ``(low, high)`` holds low ≤ x ≤ high (``high=None``: no upper
  limit); a value between two bands (e.g. 3.5 with whole-number bands) belongs to none and is
  left out, and the notes say how many.
* **Per band and outcome**: ``n`` rows, the ``mean`` (a proportion for a 0/1 outcome such as
  ``any_use``) and its 95 % interval: Wilson score interval for a 0/1 outcome, t-interval
  (mean ± t(0.975, n − 1) × SD / √n) otherwise. These treat rows as independent; when several
  waves are pooled a participant contributes a row per wave, so they are a little narrow —
  the trend test below accounts for that.
* **Test for trend**: a GEE (generalized estimating equations, Liang & Zeger 1986) of the outcome
  on the band's index (0, 1, 2, …: equally spaced scores, as in a Cochran–Armitage test), with
  indicators of the wave when more than one wave is analysed (so that the slope compares people
  within a wave, not waves with different attendance and use), an exchangeable working
  correlation within participant (``pid``) and the robust (sandwich) standard error. A 0/1
  outcome: binomial family, logit link; ``estimate`` is the odds ratio per band step. Otherwise:
  gaussian family, identity link; ``estimate`` is the difference in mean per band step. 95 %
  intervals and p-values are normal (Wald) ones, as statsmodels reports for GEE.
* **The GEE** is the package's one estimator, :func:`~recovery.analysis.gee.fit_gee`:
  statsmodels' ``GEE`` with an ``Exchangeable`` working correlation, computed with
  per-participant sums (the method is described in :mod:`recovery.analysis.gee`).

Rows with a missing exposure or outcome are left out per outcome. At least
``MIN_ROWS`` (20) rows from ``MIN_PARTICIPANTS`` (10) participants are needed per outcome, in at
least two bands; otherwise :class:`~recovery.analysis.errors.AnalysisError` says so in plain
language, as it does for an unknown column, an unknown wave or an outcome without variation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .descriptives import is_binary, require_columns, require_numeric, summarise_outcome
from .errors import AnalysisError
from .gee import GeeFit, design_matrix, fit_gee

Band = tuple[float, float | None]
DEFAULT_BANDS: tuple[Band, ...] = ((0, 0), (1, 3), (4, 7), (8, 11), (12, 19), (20, None))
WEEKLY_BANDS: tuple[Band, ...] = ((0, 0), (1, 3), (4, None))
DEFAULT_OUTCOMES = ("any_use", "days_used", "craving_derived")
MIN_ROWS = 20
MIN_PARTICIPANTS = 10


# --- Checks and helpers shared with the online analysis ------------------------------------


def check_fit(fit: GeeFit, outcome: str) -> None:
    """A fit whose coefficients are not finite (separation) cannot be reported."""
    if not fit.finite:
        raise AnalysisError(
            f"The model for {outcome!r} could not be fitted: the outcome is (almost) perfectly "
            "predicted in this data (for a 0/1 outcome, a group with no events or only events). "
            "Choose wider bands or more waves.",
            code="model_failed",
        )


def check_rows(n_rows: int, n_groups: int, outcome: str, what: str) -> None:
    if n_rows < MIN_ROWS or n_groups < MIN_PARTICIPANTS:
        raise AnalysisError(
            f"Too few observations for {outcome!r}: {n_rows} rows from {n_groups} participants "
            f"have both {what} and the outcome; at least {MIN_ROWS} rows from "
            f"{MIN_PARTICIPANTS} participants are needed.",
            code="too_few",
        )


def check_outcome_varies(y: np.ndarray, outcome: str) -> None:
    if np.ptp(y) == 0:
        raise AnalysisError(
            f"The outcome {outcome!r} is the same ({y[0]:g}) in every analysed row, so there is "
            "no difference to estimate.",
            code="constant_outcome",
        )


def select_waves(frame: pd.DataFrame, waves: Sequence[str] | None) -> pd.DataFrame:
    """The rows of the chosen waves (all when ``waves`` is None)."""
    if waves is None:
        return frame
    if isinstance(waves, str):
        waves = [waves]
    known = list(pd.unique(frame["wave"].dropna()))
    unknown = [w for w in waves if w not in known]
    if unknown:
        raise AnalysisError(
            f"The data has no wave {', '.join(repr(w) for w in unknown)}; the waves are "
            f"{', '.join(repr(w) for w in known)}.",
            code="unknown_wave",
        )
    if not waves:
        raise AnalysisError("Choose at least one wave.", code="invalid_parameter")
    return frame.loc[frame["wave"].isin(list(waves))]


def nan_to_none(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """JSON-safe records: NaN as None, numpy scalars as Python ones."""
    out = []
    for record in records:
        clean = {}
        for key, value in record.items():
            if isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and not math.isfinite(value):
                value = None
            clean[key] = value
        out.append(clean)
    return out


# --- Dose–response -------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class DoseResponseResult:
    """What :func:`dose_response` found.

    ``table``: one row per outcome × band: ``outcome``, ``band`` (its label, "4–7"),
    ``band_index``, ``band_low``, ``band_high`` (NaN: no upper limit), ``n``, ``mean``,
    ``ci_low``, ``ci_high``, ``ci_method`` ("Wilson" or "t").

    ``trend``: one row per outcome: ``outcome``, ``model`` (family and link), ``scale`` (what
    ``estimate`` is), ``estimate``, ``ci_low``, ``ci_high`` (odds ratio or mean difference per
    band step), ``coef``, ``se``, ``coef_ci_low``, ``coef_ci_high`` (model scale: log odds or
    mean), ``p_value``, ``n``, ``n_participants``, ``working_correlation``, ``converged``.
    """

    table: pd.DataFrame
    trend: pd.DataFrame
    exposure: str
    bands: tuple[Band, ...]
    band_labels: tuple[str, ...]
    outcomes: tuple[str, ...]
    waves: tuple[str, ...]
    n_rows: int
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The request, the trend tests and the notes, JSON-safe (NaN as None)."""
        return {
            "exposure": self.exposure,
            "bands": list(self.band_labels),
            "outcomes": list(self.outcomes),
            "waves": list(self.waves),
            "n_rows": self.n_rows,
            "association": "same wave (cross-sectional)",
            "trend": nan_to_none(self.trend.to_dict("records")),
            "notes": list(self.notes),
        }


def dose_response(
    frame: pd.DataFrame,
    *,
    exposure: str = "meetings_total",
    bands: Sequence[Band] | None = None,
    outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    waves: Sequence[str] | None = None,
) -> DoseResponseResult:
    """Outcomes by band of ``exposure`` (meetings in the past 30 days by default) at the same
    wave, with 95 % intervals, and a GEE test for trend across the bands per outcome. See the
    module docstring for the bands and the methods."""
    if isinstance(outcomes, str):
        outcomes = (outcomes,)
    outcomes = tuple(outcomes)
    if not outcomes:
        raise AnalysisError("Choose at least one outcome.", code="invalid_parameter")
    require_columns(
        frame,
        ("pid", "wave", "wave_index", exposure, *outcomes),
        purpose="the dose–response analysis",
    )
    require_numeric(frame, exposure, role="exposure")
    for outcome in outcomes:
        require_numeric(frame, outcome, role="outcome")
    bands = _check_bands(DEFAULT_BANDS if bands is None else bands)
    labels = tuple(_band_label(b) for b in bands)
    data = select_waves(frame, waves)

    x = data[exposure].to_numpy(dtype=float, na_value=np.nan)
    band = _assign_bands(x, bands)
    notes = []
    between = int((~np.isnan(x) & (band < 0)).sum())
    if between:
        notes.append(f"{between} rows with a value of {exposure} outside every band were left out.")
    pids = data["pid"].to_numpy()
    wave_index = data["wave_index"].to_numpy()

    tables, trends = [], []
    pooled = False
    for outcome in outcomes:
        y = data[outcome].to_numpy(dtype=float, na_value=np.nan)
        rows = (band >= 0) & ~np.isnan(y)
        n_groups = int(pd.unique(pids[rows]).size)
        check_rows(int(rows.sum()), n_groups, outcome, f"{exposure} (in a band)")
        used_bands = np.unique(band[rows])
        if used_bands.size < 2:
            raise AnalysisError(
                f"No variation in the exposure: every row with {outcome!r} has {exposure} in "
                f"the band {labels[int(used_bands[0])]}, so there is nothing to compare. Choose "
                "other bands or more waves.",
                code="no_exposure_variation",
            )
        binary = is_binary(y[rows])
        summary = summarise_outcome(y, np.where(rows, band, -1), len(bands), binary=binary)
        summary.insert(0, "band_high", [np.nan if h is None else float(h) for _, h in bands])
        summary.insert(0, "band_low", [float(lo) for lo, _ in bands])
        summary.insert(0, "band_index", np.arange(len(bands)))
        summary.insert(0, "band", labels)
        summary.insert(0, "outcome", outcome)
        summary["ci_method"] = "Wilson" if binary else "t"
        tables.append(summary)
        empty = [labels[i] for i in range(len(bands)) if summary["n"].iat[i] == 0]
        if empty:
            notes.append(f"No rows with {outcome!r} in the band(s) {', '.join(empty)}.")

        yy = y[rows]
        check_outcome_varies(yy, outcome)
        design, n_waves = design_matrix([band[rows].astype(float)], wave_index[rows])
        fit = fit_gee(yy, design, pids[rows], family="binomial" if binary else "gaussian")
        check_fit(fit, outcome)
        if not fit.converged:
            notes.append(f"The trend model for {outcome!r} did not converge; read it with care.")
        coef = fit.coefficient(1)
        to_scale = math.exp if binary else float
        pooled |= n_waves > 0
        trends.append(
            {
                "outcome": outcome,
                "model": "GEE, binomial, logit link" if binary else "GEE, gaussian, identity link",
                "scale": "odds ratio per band" if binary else "mean difference per band",
                "estimate": to_scale(coef["coef"]),
                "ci_low": to_scale(coef["coef_ci_low"]),
                "ci_high": to_scale(coef["coef_ci_high"]),
                **coef,
                "n": fit.n_rows,
                "n_participants": fit.n_groups,
                "working_correlation": fit.correlation,
                "converged": fit.converged,
            }
        )
    if pooled:
        notes.append(
            "Waves are pooled: each participant contributes a row per wave. The band intervals "
            "treat rows as independent; the trend test is clustered on participant and adjusted "
            "for wave."
        )
    return DoseResponseResult(
        table=pd.concat(tables, ignore_index=True),
        trend=pd.DataFrame(trends),
        exposure=exposure,
        bands=bands,
        band_labels=labels,
        outcomes=outcomes,
        waves=tuple(str(w) for w in pd.unique(data["wave"].dropna())),
        n_rows=len(data),
        notes=tuple(notes),
    )


def _check_bands(bands: Sequence[Band]) -> tuple[Band, ...]:
    checked: list[Band] = []
    for item in bands:
        try:
            low, high = item
            low = float(low)
            high = None if high is None else float(high)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(
                "Each band must be a pair (lowest, highest) of numbers, highest None for no "
                f"upper limit; got {item!r}.",
                code="invalid_parameter",
            ) from exc
        if high is not None and high < low:
            raise AnalysisError(
                f"The band {item!r} ends below where it starts.", code="invalid_parameter"
            )
        checked.append((low, high))
    if len(checked) < 2:
        raise AnalysisError("Choose at least two bands to compare.", code="invalid_parameter")
    for (_, high), (next_low, _) in itertools.pairwise(checked):
        if high is None or next_low <= high:
            raise AnalysisError(
                "The bands must be in increasing order without overlapping (each starts above "
                "where the one before ends; only the last may be open-ended).",
                code="invalid_parameter",
            )
    return tuple(checked)


def _assign_bands(x: np.ndarray, bands: tuple[Band, ...]) -> np.ndarray:
    """The band of each value (−1: missing or in no band)."""
    lows = np.array([lo for lo, _ in bands])
    highs = np.array([math.inf if hi is None else hi for _, hi in bands])
    found = np.searchsorted(lows, np.nan_to_num(x, nan=-math.inf), side="right") - 1
    inside = (found >= 0) & ~np.isnan(x)
    inside[inside] &= x[inside] <= highs[found[inside]]
    return np.where(inside, found, -1)


def _band_label(band: Band) -> str:
    low, high = band
    if high is None:
        return f"{low:g}+"
    if high == low:
        return f"{low:g}"
    return f"{low:g}–{high:g}"
