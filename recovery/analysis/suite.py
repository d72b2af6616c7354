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

from surveys.due import DEFINITIONS as RETENTION_DEFINITIONS

from . import charts, descriptives, dose_response, longitudinal, online
from .errors import AnalysisError
from .frames import MIN_CATEGORY_PARTICIPANTS, exposure_outcome_frame, indicators
from .matching import PS_MODELS, common_support, estimate_att

ANALYSES: dict[str, str] = {
    "descriptives": "Attendance, involvement, medication and retention by wave",
    "dose_response": "Dose–response: outcomes by attendance band",
    "lagged_gee": "Lagged GEE: exposure at one wave, outcome at the next",
    "mixed_model": "Mixed model of craving over time",
    "matching": "Propensity-score matching: exposure in the early waves, outcome later",
    "online": "Online versus in-person attendance",
}
FAMILIES = ("auto", *longitudinal.FAMILIES)
# The sections that adjust for the chosen covariates.
_ADJUSTED = ("lagged_gee", "mixed_model", "matching", "online")
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
    frame, covariates, covariate_notes = _with_indicators(frame, request)
    wanted = [key for key in ANALYSES if key in request.analyses]
    sections = []
    for done, key in enumerate(wanted):
        section = Section(key=key, title=ANALYSES[key])
        if key in _ADJUSTED:
            section.notes.extend(covariate_notes)
        try:
            _RUNNERS[key](section, frame, request, covariates)
        except AnalysisError as exc:
            section.error, section.error_code = exc.message, exc.code
        sections.append(section)
        if progress is not None:
            progress((done + 1) / len(wanted))
    return sections


def _with_indicators(
    frame: pd.DataFrame, request: SuiteRequest
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Categorical covariates become 0/1 indicator columns (the most common value is the
    reference, rare values pooled); the others are used as they are. Also the notes that say
    so."""
    covariates: list[str] = []
    notes: list[str] = []
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
            notes.append(
                f"{request.label(name)}: indicators against the most common answer "
                f"({dummies.attrs['reference']})"
                + (
                    f"; answers of fewer than {MIN_CATEGORY_PARTICIPANTS} participants "
                    f"({', '.join(dummies.attrs['pooled'])}) pooled as {name}_other."
                    if dummies.attrs["pooled"]
                    else "."
                )
            )
        else:
            covariates.append(name)
    if extra:
        frame = pd.concat([frame, *extra], axis=1)
    return frame, covariates, notes


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
        exposed = treated >= cut
        said = f"at least {cut:g} (the median)"
        if exposed[treated.notna()].all():
            # The median is the least value (most attended no meeting): "at least" it would
            # make everyone exposed, and nobody to compare with (found by review).
            exposed = treated > cut
            said = f"more than {cut:g} (the median, and the least value)"
        data[exposure] = exposed.astype(float).where(treated.notna())
        section.notes.append(
            f"{request.label(exposure)} is not 0/1: exposed means {said} at the exposure waves."
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


def _descriptives(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates):
    waves = _wave_labels(frame, request)
    attendance = descriptives.attendance_by_wave(frame)
    involvement = descriptives.involvement_by_wave(frame)
    classes = descriptives.mat_mhg_by_wave(frame)
    retention = descriptives.retention_by_wave(frame)
    for table in (attendance,):
        for column in ("fellowship", "format"):
            table[column] = table[column].map(lambda v: "all" if v == "all" else request.label(v))
    section.tables["retention"] = retention
    # The same words as the coordinators' retention dashboard, which counts the same way.
    section.notes.extend(f"Retention. {term}: {text}" for term, text in RETENTION_DEFINITIONS)
    section.notes.append(
        "Retention. The coordinators' retention dashboard counts due and the completion rate "
        "the same way; its “In window now” is this table's open."
    )
    section.tables["attendance_by_fellowship"] = _by_wave(
        attendance[attendance["format"] == "all"], "fellowship", waves
    )
    section.tables["attendance_by_format"] = _by_wave(
        attendance[attendance["fellowship"] == "all"], "format", waves
    )
    # Every fellowship × format: in the CSV and JSON, too long for a page.
    section.tables["attendance_detail"] = attendance
    section.tables["involvement"] = involvement
    section.tables["mat_mhg"] = classes
    section.summary = {
        "participants": int(frame["pid"].nunique()),
        "rows": len(frame),
        "waves": [request.label(w) for w in pd.unique(frame["wave"])],
    }
    section.charts["retention"] = charts.line_plot(
        retention,
        x="wave",
        y="rate",
        ci_low="ci_low",
        ci_high="ci_high",
        xlabel="Wave",
        ylabel="Completed of those due",
        title="Retention by wave (95 % Wilson CI)",
        x_ticks_labels=waves,
        percent=True,
    )
    by_fellowship = attendance[
        (attendance["format"] == "all") & (attendance["fellowship"] != "all")
    ]
    if not by_fellowship.empty:
        # The fellowships people go to most, so the chart stays readable; the table has all.
        top = (
            by_fellowship.groupby("fellowship")["mean"]
            .mean()
            .sort_values(ascending=False)
            .index[:5]
        )
        shown = by_fellowship[by_fellowship["fellowship"].isin(top)]
        section.charts["attendance_fellowship"] = charts.line_plot(
            shown,
            x="wave",
            y="mean",
            group="fellowship",
            xlabel="Wave",
            ylabel="Meetings in the past 30 days (mean)",
            title="Attendance by fellowship (the five most attended)",
            x_ticks_labels=waves,
        )
    by_format = attendance[(attendance["fellowship"] == "all") & (attendance["format"] != "all")]
    if not by_format.empty:
        section.charts["attendance_format"] = charts.bar_plot(
            by_format.assign(wave=by_format["wave"].map(waves)),
            x="wave",
            y="mean",
            group="format",
            xlabel="Wave",
            ylabel="Meetings in the past 30 days (mean)",
            title="Attendance by format: in person, online, 24-hour online, hybrid",
        )
    section.charts["involvement"] = charts.line_plot(
        involvement,
        x="wave",
        y="mean",
        ci_low="ci_low",
        ci_high="ci_high",
        xlabel="Wave",
        ylabel="Involvement index (0–5), mean",
        title="Mutual-help involvement by wave (95 % CI)",
        x_ticks_labels=waves,
    )
    shares = classes.melt(
        id_vars=["wave"],
        value_vars=[f"share_{c}" for c in ("both", "medication_only", "mhg_only", "neither")],
        var_name="class",
        value_name="share",
    )
    shares["class"] = shares["class"].str.removeprefix("share_").map(_MAT_MHG_LABELS)
    section.charts["mat_mhg"] = charts.bar_plot(
        shares.assign(wave=shares["wave"].map(waves)),
        x="wave",
        y="share",
        group="class",
        xlabel="Wave",
        ylabel="Share of those who answered",
        title="Medication for addiction treatment and mutual-help attendance",
        percent=True,
        stacked=True,
    )


def _by_wave(table: pd.DataFrame, row: str, waves: dict[str, str]) -> pd.DataFrame:
    """One row per fellowship (or format), two columns per wave: the mean number of meetings
    and the share with any."""
    wide = table.pivot(index=row, columns="wave", values=["mean", "share_any"])
    order = [w for w in waves if w in wide.columns.get_level_values(1)]
    columns = [(stat, w) for w in order for stat in ("mean", "share_any")]
    out = wide[columns]
    out.columns = [f"{waves[w]}: {'mean' if s == 'mean' else 'any'}" for s, w in columns]
    first = list(dict.fromkeys(table[row]))
    return out.reindex(first).reset_index()


_MAT_MHG_LABELS = {
    "both": "Both",
    "medication_only": "Medication only",
    "mhg_only": "Mutual-help only",
    "neither": "Neither",
}


def _wave_labels(frame: pd.DataFrame, request: SuiteRequest) -> dict[str, str]:
    return {w: request.label(w) for w in pd.unique(frame["wave"])}


def _dose_response(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates):
    outcomes = tuple(
        o for o in (request.outcome, "any_use", "days_used", request.craving) if o in frame
    )
    result = dose_response.dose_response(
        frame, exposure="meetings_total", outcomes=tuple(dict.fromkeys(outcomes))
    )
    section.summary = result.summary()
    section.tables["by_band"] = result.table
    section.tables["trend"] = result.trend
    section.notes.extend(result.notes)
    for outcome in dict.fromkeys(outcomes):
        rows = result.table[result.table["outcome"] == outcome]
        binary = bool(rows["ci_method"].eq("Wilson").all())
        section.charts[f"band_{outcome}"] = charts.line_plot(
            rows,
            x="band",
            y="mean",
            ci_low="ci_low",
            ci_high="ci_high",
            xlabel="Meetings in the past 30 days",
            ylabel=("Share with " if binary else "Mean ") + request.label(outcome),
            title=f"{request.label(outcome)} by attendance (same wave, 95 % CI)",
            percent=binary,
        )


def _online(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates):
    outcomes = tuple(
        dict.fromkeys(
            o for o in (request.outcome, "any_use", "days_used", request.craving) if o in frame
        )
    )
    result = online.online_vs_inperson(frame, outcomes=outcomes, covariates=tuple(covariates))
    section.summary = result.summary()
    section.tables["by_online_share"] = result.table
    section.tables["comparison"] = result.comparison
    section.notes.extend(result.notes)
    rows = result.table[result.table["outcome"] == outcomes[0]]
    binary = bool(rows["ci_method"].eq("Wilson").all())
    section.charts["groups"] = charts.bar_plot(
        rows,
        x="group",
        y="mean",
        ci_low="ci_low",
        ci_high="ci_high",
        xlabel="Share of meetings attended online",
        ylabel=("Share with " if binary else "Mean ") + request.label(outcomes[0]),
        title=f"{request.label(outcomes[0])} by online attendance (95 % CI)",
        percent=binary,
    )
    forest = []
    for row in result.comparison.itertuples(index=False):
        for kind in ("naive", "adjusted"):
            forest.append(
                {
                    "label": f"{request.label(row.outcome)}: {kind}",
                    "estimate": getattr(row, f"{kind}_coef"),
                    "ci_low": getattr(row, f"{kind}_coef") - 1.959964 * getattr(row, f"{kind}_se"),
                    "ci_high": getattr(row, f"{kind}_coef") + 1.959964 * getattr(row, f"{kind}_se"),
                }
            )
    section.charts["comparison"] = charts.estimate_plot(
        pd.DataFrame(forest),
        reference=0.0,
        xlabel="Coefficient of a +100 % online share (log odds for yes/no outcomes)",
        title="Online share: naive and adjusted for meetings attended",
    )


def _family(frame: pd.DataFrame, request: SuiteRequest) -> str:
    """``auto``: binomial for a 0/1 outcome, negative binomial (over-dispersed counts) else."""
    if request.family != "auto":
        return request.family
    values = frame[request.outcome].dropna() if request.outcome in frame else pd.Series()
    return "binomial" if values.isin([0, 1]).all() else "negative_binomial"


def _lagged_gee(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates):
    family = _family(frame, request)
    # Exposure waves: those where the exposure is measured and a later wave follows (a
    # follow-up measure is not asked at baseline).
    measured = (
        frame.loc[frame[request.exposure].notna(), "wave_index"]
        if (request.exposure in frame)
        else pd.Series(dtype=int)
    )
    last = int(frame["wave_index"].max())
    waves = sorted(int(w) for w in pd.unique(measured) if w < last)
    result = longitudinal.lagged_gee(
        frame,
        exposure=request.exposure,
        outcome=request.outcome,
        covariates=tuple(covariates),
        family=family,
        waves=waves or None,
    )
    section.summary = result.summary()
    section.tables["coefficients"] = result.coefficients
    section.notes.extend(result.notes)
    label = request.label(request.exposure)
    section.charts["estimates"] = charts.estimate_plot(
        pd.DataFrame(
            [
                {
                    "label": "Naive (exposure only)",
                    "estimate": result.naive_ratio,
                    "ci_low": result.naive_ci_low,
                    "ci_high": result.naive_ci_high,
                },
                {
                    "label": "Adjusted (covariates, wave)",
                    "estimate": result.ratio,
                    "ci_low": result.ci_low,
                    "ci_high": result.ci_high,
                },
            ]
        ),
        log_scale=True,
        xlabel=f"{result.ratio_name.capitalize()} of {request.label(request.outcome)} at the "
        f"next wave per unit of {label}",
        title="Exposure at one wave, outcome at the next",
    )


def _mixed_model(section: Section, frame: pd.DataFrame, request: SuiteRequest, covariates):
    exposure = request.exposure
    data = frame
    if request.exposure_waves:
        # The participant's exposure in the early waves (its largest value there), on every
        # row: trajectories of those who were and were not involved early, baseline included.
        early = frame.loc[frame["wave"].isin(list(request.exposure_waves)), ["pid", exposure]]
        level = early.groupby("pid")[exposure].max()
        exposure = f"{request.exposure}_early"
        data = frame.assign(**{exposure: frame["pid"].map(level)})
        section.notes.append(
            f"Exposure: {request.label(request.exposure)} at "
            f"{', '.join(request.label(w) for w in request.exposure_waves)} (the largest "
            "value there), the same on every row of a participant."
        )
    result = longitudinal.craving_trajectory(
        data,
        outcome=request.craving,
        exposure=exposure,
        time="months",
        covariates=tuple(covariates),
    )
    section.summary = result.summary()
    section.tables["fixed_effects"] = result.fixed_effects
    # Predicted means on a fine time grid: in the CSV and JSON, drawn on the page.
    section.tables["trajectories_detail"] = result.trajectories
    section.notes.extend(result.notes)
    section.charts["trajectories"] = charts.trajectory_plot(
        result.trajectories,
        time="time",
        y="predicted",
        group="level",
        ci_low="ci_low",
        ci_high="ci_high",
        xlabel="Months since enrolment",
        ylabel=f"{request.label(request.craving)}, predicted mean",
        title=f"{request.label(request.craving)} over time by {request.label(request.exposure)}",
    )


_RUNNERS: dict[str, Callable[[Section, pd.DataFrame, SuiteRequest, list[str]], None]] = {
    "descriptives": _descriptives,
    "dose_response": _dose_response,
    "lagged_gee": _lagged_gee,
    "mixed_model": _mixed_model,
    "matching": _matching,
    "online": _online,
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
