"""The analyses a study runs, as one call: an analysis frame and a request in, sections out.

Each section holds what a researcher reads: scalar estimates (``summary``), tables (tidy
DataFrames), charts (SVG text) and notes. A section whose analysis cannot be run on this data
(too few rows, no variation, separation, ...) carries the plain-language error instead, and the
other sections still run. ``to_json`` turns the sections into what an ``AnalysisRun`` stores
(and the report is drawn from), so a stored run is rendered the same way every time.

Nothing here imports Django.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import charts
from .errors import AnalysisError
from .frames import exposure_outcome_frame, indicators
from .matching import PS_MODELS, common_support, estimate_att

ANALYSES: dict[str, str] = {
    "descriptives": "Attendance, involvement, medication and retention by wave",
    "dose_response": "Dose–response: outcomes by attendance band",
    "lagged_gee": "Lagged GEE: exposure at one wave, outcome at the next",
    "mixed_model": "Mixed model of craving over time",
    "matching": "Propensity-score matching: exposure in the early waves, outcome later",
    "online": "Online versus in-person attendance",
}
FAMILIES = ("auto", "binomial", "poisson", "negative_binomial", "gaussian")
__all__ = ("ANALYSES", "FAMILIES", "PS_MODELS", "Section", "SuiteRequest", "run_suite", "to_json")


@dataclass(frozen=True)
class SuiteRequest:
    analyses: tuple[str, ...] = tuple(ANALYSES)
    exposure: str = "high_involvement"
    outcome: str = "any_use"
    covariates: tuple[str, ...] = ()  # columns of the frame (baseline: ``<item>_bl``)
    categorical: tuple[str, ...] = ()  # covariates that are categories: 0/1 indicators
    exposure_waves: tuple[str, ...] = ()
    outcome_wave: str = ""
    family: str = "auto"
    ps_model: str = "logistic"
    caliper: float | None = 0.2
    ratio: int = 1
    replace: bool = False
    seed: int = 0
    craving: str = "craving_derived"
    labels: dict[str, str] = field(default_factory=dict)  # column or wave → label

    def label(self, name: str) -> str:
        return self.labels.get(name, name)


@dataclass
class Section:
    key: str
    title: str
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    charts: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str = ""
    error_code: str = ""


def run_suite(
    frame: pd.DataFrame,
    request: SuiteRequest,
    *,
    progress: Callable[[float], None] | None = None,
) -> list[Section]:
    """Run the requested analyses in a fixed order. ``progress`` gets the share done (0–1)."""
    unknown = [a for a in request.analyses if a not in ANALYSES]
    if unknown:
        raise AnalysisError(
            f"Unknown analysis {', '.join(map(repr, unknown))}; choose from {', '.join(ANALYSES)}.",
            code="invalid_parameter",
        )
    frame, covariates = _with_indicators(frame, request)
    wanted = [key for key in ANALYSES if key in request.analyses]
    sections = []
    for done, key in enumerate(wanted):
        section = Section(key=key, title=ANALYSES[key])
        try:
            _RUNNERS[key](section, frame, request, covariates)
        except AnalysisError as exc:
            section.error, section.error_code = exc.message, exc.code
        sections.append(section)
        if progress is not None:
            progress((done + 1) / len(wanted))
    return sections


def _with_indicators(frame: pd.DataFrame, request: SuiteRequest) -> tuple[pd.DataFrame, list[str]]:
    """Categorical covariates become 0/1 indicator columns (the most common value is the
    reference); the others are used as they are."""
    covariates: list[str] = []
    extra = []
    for name in request.covariates:
        if name not in frame.columns:
            raise AnalysisError(
                f"The data has no column {name!r}; choose another covariate.",
                code="unknown_column",
            )
        if name in request.categorical:
            dummies = indicators(frame, name)
            extra.append(dummies)
            covariates.extend(dummies.columns)
        else:
            covariates.append(name)
    if extra:
        frame = pd.concat([frame, *extra], axis=1)
    return frame, covariates


# --- Sections ------------------------------------------------------------------------------


def _matching(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates: list[str]):
    exposure, outcome = request.exposure, request.outcome
    data = exposure_outcome_frame(
        frame,
        exposure=exposure,
        outcome=outcome,
        exposure_waves=request.exposure_waves,
        outcome_wave=request.outcome_wave,
        covariates=covariates,
    ).reset_index(drop=True)
    treated = data[exposure]
    if treated.notna().any() and not treated.dropna().isin([0, 1]).all():
        # A count or score: exposed = at or above the median, said in the notes.
        cut = float(treated.median())
        data[exposure] = (treated >= cut).astype(float).where(treated.notna())
        section.notes.append(
            f"{request.label(exposure)} is not 0/1: exposed means at least {cut:g} (the "
            "median) at the exposure waves."
        )
    result = estimate_att(
        data,
        treatment=exposure,
        outcome=outcome,
        covariates=covariates,
        ps_model=request.ps_model,
        caliper=request.caliper,
        ratio=request.ratio,
        replace=request.replace,
        seed=request.seed,
    )
    section.summary = result.summary()
    section.summary["exposure_waves"] = list(request.exposure_waves)
    section.summary["outcome_wave"] = request.outcome_wave
    scale = "risk difference" if result.outcome_is_binary else "mean difference"
    estimates = pd.DataFrame(
        [
            {
                "estimator": "Naive (unadjusted)",
                "estimate": result.naive,
                "ci_low": result.naive_ci_low,
                "ci_high": result.naive_ci_high,
                "method": result.naive_ci_method,
                "n": result.n_used,
            },
            {
                "estimator": "Matched (ATT)",
                "estimate": result.att,
                "ci_low": result.ci_low,
                "ci_high": result.ci_high,
                "method": result.ci_method,
                "n": result.n_matched_treated + result.n_matched_control,
            },
            {
                "estimator": "Inverse probability weighting (ATT)",
                "estimate": result.ipw_att,
                "ci_low": result.ipw_ci_low,
                "ci_high": result.ipw_ci_high,
                "method": result.ipw_ci_method,
                "n": result.n_used,
            },
        ]
    )
    if result.odds_ratio is not None:
        estimates = pd.concat(
            [
                estimates,
                pd.DataFrame(
                    [
                        {
                            "estimator": "Matched odds ratio",
                            "estimate": result.odds_ratio,
                            "ci_low": result.odds_ratio_ci_low,
                            "ci_high": result.odds_ratio_ci_high,
                            "method": result.odds_ratio_method,
                            "n": result.n_matched_treated + result.n_matched_control,
                        }
                    ]
                ),
            ],
            ignore_index=True,
        )
    section.tables["estimates"] = estimates
    balance = result.balance.reset_index()
    balance["covariate"] = balance["covariate"].map(request.label)
    section.tables["balance"] = balance
    section.tables["counts"] = pd.DataFrame(
        [
            {"what": "rows in the data", "n": result.n_rows},
            {"what": "left out for a missing value", "n": result.n_dropped_missing},
            {"what": "exposed", "n": result.n_treated},
            {"what": "not exposed", "n": result.n_control},
            {"what": "exposed, matched", "n": result.n_matched_treated},
            {
                "what": "exposed, unmatched (no control within the caliper)",
                "n": result.n_unmatched_treated,
            },
            {"what": "controls used", "n": result.n_matched_control},
        ]
    )
    forest = estimates.iloc[:3].rename(columns={"estimator": "label"})
    section.charts["estimates"] = charts.estimate_plot(
        forest,
        reference=0.0,
        xlabel=f"{scale} in {request.label(outcome)}",
        title="Naive, matched and weighted estimates",
    )
    section.charts["love"] = charts.love_plot(
        result.balance.rename(index=request.label), title="Covariate balance (Love plot)"
    )
    section.charts["support"] = charts.common_support_plot(
        common_support(result), title="Common support of the propensity score"
    )
    section.notes.extend(result.notes)


_RUNNERS: dict[str, Callable[[Section, pd.DataFrame, SuiteRequest, list[str]], None]] = {
    "matching": _matching,
}


# --- Storage -------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def table_json(table: pd.DataFrame) -> dict[str, Any]:
    columns = [str(c) for c in table.columns]
    rows = [[_plain(v) for v in row] for row in table.itertuples(index=False, name=None)]
    return {"columns": columns, "rows": rows}


def to_json(sections: list[Section]) -> dict[str, Any]:
    return {
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "summary": _plain(s.summary),
                "tables": {name: table_json(t) for name, t in s.tables.items()},
                "charts": dict(s.charts),
                "notes": list(s.notes),
                "error": s.error,
                "error_code": s.error_code,
            }
            for s in sections
        ]
    }
