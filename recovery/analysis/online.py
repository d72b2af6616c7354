"""Online versus in-person attendance: outcomes by the online share of a person's meetings.

Among rows with at least one meeting in the past 30 days (``meetings_total`` ≥ 1), the online
share (``meetings_online_share``: video, phone or chat meetings and 24-hour online meetings over
all meetings; hybrid meetings count as not online, as in ``recovery.measures``) and the outcome
come from the same wave: a same-wave (cross-sectional) association.

* **Groups.** By default four: "in person only" (share 0), "mostly in person" (0 < share < 0.5),
  "mostly online" (0.5 ≤ share < 1) and "online only" (share 1). A band ``(a, a)`` is the single
  value a; any other band ``(a, b)`` is a ≤ share < b, leaving out a value that a single-value
  band takes (so ``(0, 0.5)`` after ``(0, 0)`` is 0 < share < 0.5). Bands may not overlap.
* **Per group and outcome**: ``n``, the ``mean`` (a proportion for a 0/1 outcome) with a 95 %
  interval — Wilson score for a 0/1 outcome, t-interval otherwise (rows treated as
  independent) — and the mean number of meetings, because volume differs between the groups.
* **Naive and adjusted comparison**, side by side, per outcome, on the same rows: a GEE
  (exchangeable working correlation within participant, robust standard errors; the package's
  one estimator, :func:`~recovery.analysis.gee.fit_gee`, which reproduces statsmodels' ``GEE``) of
  the outcome on the online share (0–1), so the coefficient is the difference between all
  meetings online and all in person (+100 % online share). *Naive*: the online share alone.
  *Adjusted*: plus the number of meetings (linear; how many meetings people go to goes with
  both their format and their use, so volume confounds the comparison), indicators of the
  wave when more than one wave is analysed, and the chosen ``covariates`` (numeric columns,
  e.g. baseline ``<name>_bl``). A 0/1 outcome: binomial family, logit link, reported as an
  **odds ratio** per +100 % online share. Otherwise: gaussian family, identity link, reported
  as a **mean difference** per +100 % online share (days of use, craving points). 95 % Wald
  intervals and p-values. Adjustment removes measured confounding only: people choose their format.

Rows with a missing share, outcome, meeting count or covariate are left out per outcome (both
estimates use the same rows). At least ``MIN_ROWS`` (20) rows from ``MIN_PARTICIPANTS`` (10)
participants per outcome, and rows in at least two groups, are needed; otherwise, and for an
unknown column or wave or an online share without variation,
:class:`~recovery.analysis.errors.AnalysisError` says what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .descriptives import is_binary, require_columns, require_numeric, summarise_outcome
from .dose_response import (
    DEFAULT_OUTCOMES,
    check_fit,
    check_outcome_varies,
    check_rows,
    nan_to_none,
    select_waves,
)
from .errors import AnalysisError
from .gee import dependent_column, design_matrix, fit_gee

ShareBand = tuple[float, float]
DEFAULT_SHARE_BANDS: tuple[ShareBand, ...] = ((0, 0), (0, 0.5), (0.5, 1), (1, 1))
DEFAULT_LABELS = ("in person only", "mostly in person", "mostly online", "online only")


@dataclass(frozen=True, eq=False)
class OnlineResult:
    """What :func:`online_vs_inperson` found.

    ``table``: one row per outcome × group: ``outcome``, ``group`` (its label), ``group_index``,
    ``share_low``, ``share_high``, ``n``, ``mean``, ``ci_low``, ``ci_high``, ``ci_method``
    ("Wilson" or "t"), ``mean_meetings`` (mean meetings in 30 days of the group's rows).

    ``comparison``: one row per outcome, naive and adjusted side by side: ``outcome``,
    ``model``, ``scale`` ("odds ratio per +100 % online share" or "mean difference per +100 %
    online share"); ``naive_estimate``, ``naive_ci_low``, ``naive_ci_high``, ``naive_p_value``;
    ``adjusted_estimate``, ``adjusted_ci_low``, ``adjusted_ci_high``, ``adjusted_p_value``;
    ``naive_coef``, ``naive_se``, ``adjusted_coef``, ``adjusted_se`` (model scale: log odds or
    mean); ``adjusted_for``; ``n``, ``n_participants``; ``converged``.
    """

    table: pd.DataFrame
    comparison: pd.DataFrame
    share: str
    volume: str
    bands: tuple[ShareBand, ...]
    labels: tuple[str, ...]
    outcomes: tuple[str, ...]
    covariates: tuple[str, ...]
    waves: tuple[str, ...]
    n_rows: int
    notes: tuple[str, ...] = field(default=())

    def summary(self) -> dict[str, Any]:
        """The request, the naive and adjusted comparisons and the notes, JSON-safe."""
        return {
            "share": self.share,
            "volume": self.volume,
            "groups": list(self.labels),
            "outcomes": list(self.outcomes),
            "covariates": list(self.covariates),
            "waves": list(self.waves),
            "n_rows": self.n_rows,
            "association": "same wave (cross-sectional)",
            "comparison": nan_to_none(self.comparison.to_dict("records")),
            "notes": list(self.notes),
        }


def online_vs_inperson(
    frame: pd.DataFrame,
    *,
    outcomes: Sequence[str] = DEFAULT_OUTCOMES,
    bands: Sequence[ShareBand] = DEFAULT_SHARE_BANDS,
    labels: Sequence[str] | None = None,
    covariates: Sequence[str] = (),
    waves: Sequence[str] | None = None,
    share: str = "meetings_online_share",
    volume: str = "meetings_total",
) -> OnlineResult:
    """Outcomes by the online share of attendance, among rows with at least one meeting: a
    table by group with 95 % intervals, and the naive and volume-adjusted GEE comparisons per
    +100 % online share. See the module docstring for the methods."""
    if isinstance(outcomes, str):
        outcomes = (outcomes,)
    if isinstance(covariates, str):
        covariates = (covariates,)
    outcomes, covariates = tuple(outcomes), tuple(covariates)
    if not outcomes:
        raise AnalysisError("Choose at least one outcome.", code="invalid_parameter")
    require_columns(
        frame,
        ("pid", "wave", "wave_index", share, volume, *outcomes, *covariates),
        purpose="the online versus in-person comparison",
    )
    require_numeric(frame, share, role="online share")
    require_numeric(frame, volume, role="meeting count")
    for outcome in outcomes:
        require_numeric(frame, outcome, role="outcome")
    for covariate in covariates:
        require_numeric(frame, covariate, role="covariate")
    bands = _check_bands(bands)
    labels = _labels(bands, labels)
    data = select_waves(frame, waves)

    meetings = data[volume].to_numpy(dtype=float, na_value=np.nan)
    online = data[share].to_numpy(dtype=float, na_value=np.nan)
    attended = meetings >= 1
    outside = attended & ~np.isnan(online) & ((online < 0) | (online > 1))
    if outside.any():
        raise AnalysisError(
            f"The column {share!r} must be a share between 0 and 1; it also holds "
            f"{online[outside][0]:g}.",
            code="out_of_range",
        )
    group = np.where(attended, _assign(online, bands), -1)
    notes = []
    ungrouped = int((attended & ~np.isnan(online) & (group < 0)).sum())
    if ungrouped:
        notes.append(f"{ungrouped} rows with an online share outside every group were left out.")
    complete = group >= 0
    for covariate in covariates:
        complete &= data[covariate].notna().to_numpy()
    pids = data["pid"].to_numpy()
    wave_index = data["wave_index"].to_numpy()
    extra = [data[c].to_numpy(dtype=float, na_value=np.nan) for c in covariates]

    tables, comparisons = [], []
    for outcome in outcomes:
        y = data[outcome].to_numpy(dtype=float, na_value=np.nan)
        rows = complete & ~np.isnan(y)
        check_rows(
            int(rows.sum()),
            int(pd.unique(pids[rows]).size),
            outcome,
            f"at least one meeting, an online share{' and the covariates' if covariates else ''}",
        )
        if np.ptp(online[rows]) == 0:
            raise AnalysisError(
                f"No variation in the exposure: every row with {outcome!r} has {share} = "
                f"{online[rows][0]:g}, so online and in-person attendance cannot be compared.",
                code="no_exposure_variation",
            )
        binary = is_binary(y[rows])
        summary = summarise_outcome(y, np.where(rows, group, -1), len(bands), binary=binary)
        volume_mean = summarise_outcome(
            meetings, np.where(rows, group, -1), len(bands), binary=False
        )
        summary.insert(0, "share_high", [float(hi) for _, hi in bands])
        summary.insert(0, "share_low", [float(lo) for lo, _ in bands])
        summary.insert(0, "group_index", np.arange(len(bands)))
        summary.insert(0, "group", labels)
        summary.insert(0, "outcome", outcome)
        summary["ci_method"] = "Wilson" if binary else "t"
        summary["mean_meetings"] = volume_mean["mean"].to_numpy()
        tables.append(summary)
        if (summary["n"] > 0).sum() < 2:
            raise AnalysisError(
                f"No variation in the exposure: every row with {outcome!r} is in the group "
                f"{labels[int(np.flatnonzero(summary['n'])[0])]!r}; choose other groups.",
                code="no_exposure_variation",
            )
        empty = [labels[i] for i in range(len(bands)) if summary["n"].iat[i] == 0]
        if empty:
            notes.append(f"No rows with {outcome!r} in the group(s) {', '.join(empty)}.")

        yy = y[rows]
        check_outcome_varies(yy, outcome)
        family = "binomial" if binary else "gaussian"
        naive_fit = fit_gee(yy, design_matrix([online[rows]], None)[0], pids[rows], family=family)
        adjusted_x, n_waves = design_matrix(
            [online[rows], meetings[rows], *(c[rows] for c in extra)], wave_index[rows]
        )
        _check_rank(adjusted_x, covariates, volume)
        adjusted_fit = fit_gee(yy, adjusted_x, pids[rows], family=family)
        check_fit(naive_fit, outcome)
        check_fit(adjusted_fit, outcome)
        if not (naive_fit.converged and adjusted_fit.converged):
            notes.append(f"A model for {outcome!r} did not converge; read it with care.")
        naive, adjusted = naive_fit.coefficient(1), adjusted_fit.coefficient(1)
        scale = math.exp if binary else float
        adjusted_for = [f"{volume} (linear)"]
        if n_waves:
            adjusted_for.append("wave")
        adjusted_for.extend(covariates)
        comparisons.append(
            {
                "outcome": outcome,
                "model": "GEE, binomial, logit link" if binary else "GEE, gaussian, identity link",
                "scale": (
                    "odds ratio per +100 % online share"
                    if binary
                    else "mean difference per +100 % online share"
                ),
                "naive_estimate": scale(naive["coef"]),
                "naive_ci_low": scale(naive["coef_ci_low"]),
                "naive_ci_high": scale(naive["coef_ci_high"]),
                "naive_p_value": naive["p_value"],
                "adjusted_estimate": scale(adjusted["coef"]),
                "adjusted_ci_low": scale(adjusted["coef_ci_low"]),
                "adjusted_ci_high": scale(adjusted["coef_ci_high"]),
                "adjusted_p_value": adjusted["p_value"],
                "naive_coef": naive["coef"],
                "naive_se": naive["se"],
                "adjusted_coef": adjusted["coef"],
                "adjusted_se": adjusted["se"],
                "adjusted_for": ", ".join(adjusted_for),
                "n": adjusted_fit.n_rows,
                "n_participants": adjusted_fit.n_groups,
                "converged": naive_fit.converged and adjusted_fit.converged,
            }
        )
    return OnlineResult(
        table=pd.concat(tables, ignore_index=True),
        comparison=pd.DataFrame(comparisons),
        share=share,
        volume=volume,
        bands=bands,
        labels=labels,
        outcomes=outcomes,
        covariates=covariates,
        waves=tuple(str(w) for w in pd.unique(data["wave"].dropna())),
        n_rows=len(data),
        notes=tuple(notes),
    )


def _check_bands(bands: Sequence[ShareBand]) -> tuple[ShareBand, ...]:
    checked: list[ShareBand] = []
    for item in bands:
        try:
            low, high = (float(v) for v in item)
        except (TypeError, ValueError) as exc:
            raise AnalysisError(
                f"Each group must be a pair (lowest, highest) of shares from 0 to 1; got {item!r}.",
                code="invalid_parameter",
            ) from exc
        if not 0 <= low <= high <= 1:
            raise AnalysisError(
                f"The group {item!r} must lie between 0 and 1 and end at or above where it starts.",
                code="invalid_parameter",
            )
        checked.append((low, high))
    if len(checked) < 2:
        raise AnalysisError("Choose at least two groups to compare.", code="invalid_parameter")
    # Every bound and every point between two bounds must fall into at most one band.
    bounds = np.unique([v for band in checked for v in band])
    probes = np.concatenate([bounds, (bounds[:-1] + bounds[1:]) / 2])
    masks = np.vstack([_in_band(probes, band, checked) for band in checked])
    if (masks.sum(axis=0) > 1).any():
        raise AnalysisError(
            "The online-share groups overlap; each share must fall into one group at most.",
            code="invalid_parameter",
        )
    return tuple(checked)


def _in_band(x: np.ndarray, band: ShareBand, bands: Sequence[ShareBand]) -> np.ndarray:
    low, high = band
    if low == high:
        return x == low
    points = [lo for lo, hi in bands if lo == hi]
    return (x >= low) & (x < high) & ~np.isin(x, points)


def _assign(x: np.ndarray, bands: tuple[ShareBand, ...]) -> np.ndarray:
    """The group of each share (−1: missing or in no group)."""
    group = np.full(x.shape, -1)
    for i, band in enumerate(bands):
        group[_in_band(x, band, bands)] = i
    return group


def _labels(bands: tuple[ShareBand, ...], labels: Sequence[str] | None) -> tuple[str, ...]:
    if labels is None:
        if bands == tuple((float(lo), float(hi)) for lo, hi in DEFAULT_SHARE_BANDS):
            return DEFAULT_LABELS
        points = {lo for lo, hi in bands if lo == hi}
        return tuple(
            f"{lo:.0%} online"
            if lo == hi
            else f"{'over' if lo in points else 'from'} {lo:.0%} to under {hi:.0%} online"
            for lo, hi in bands
        )
    labels = tuple(str(label) for label in labels)
    if len(labels) != len(bands):
        raise AnalysisError(
            f"Give one label per group: {len(bands)} groups but {len(labels)} labels.",
            code="invalid_parameter",
        )
    return labels


def _check_rank(x: np.ndarray, covariates: Sequence[str], volume: str) -> None:
    """The adjusted model's columns must not be duplicates or sums of each other."""
    j = dependent_column(x)
    if j is None:
        return
    names = ["intercept", "online share", volume, *covariates]
    name = repr(names[j]) if j < len(names) else "The wave"
    raise AnalysisError(
        f"{name} is constant or fully determined by the variables before it (the "
        "online share, the number of meetings or another covariate), so it cannot be "
        "adjusted for; leave it out.",
        code="collinear_covariates",
    )
