"""Publication charts of the analyses, drawn with matplotlib as SVG text for inlining in a page.

Every function takes a plain DataFrame (so it works on any frame with the right columns, not only
on this package's results) and returns an SVG string that starts with ``<svg``: no XML prolog, no
doctype, no date, so the same input gives the same bytes.

* **Colour-blind safe and greyscale safe.** Colours are the Okabe–Ito palette, with the same
  values and order as the app's hand-drawn charts (``surveys.charts``, not imported: this package
  stays free of Django). Series also differ by marker and dash (lines) or hatch (bars), so a
  chart still reads when printed in grey.
* **Text stays text.** ``svg.fonttype = "none"``: labels are ``<text>`` elements (selectable,
  searchable, read by screen readers) in a sans-serif family list that ends in the generic
  ``sans-serif``, so no font file is embedded. The layout is measured with matplotlib's bundled
  DejaVu Sans, wider than the usual Helvetica/Arial, so the text fits in either.
* **Accessible.** The root element has ``role="img"``, a ``<title>`` (the chart's title) and a
  ``<desc>`` (what is drawn), as in ``surveys.charts``.
* **Inline-safe.** matplotlib names its groups ``figure_1``, ``axes_1``, ... in every chart, and
  its default style rule is ``*{...}``; both would leak between charts inlined in one page. Every
  ``id`` (and every reference to one) is prefixed with the chart's own id, derived from a hash of
  the chart, and the style rule is scoped to the chart. ``svg.hashsalt`` is the title, so the
  hashed ids of markers and clip paths are deterministic too. The same chart inlined twice keeps
  the same ids (both copies then point at identical definitions).
* **Safe in a web process and a Celery worker.** Figures are ``matplotlib.figure.Figure`` objects,
  never pyplot's global figure manager; the rc settings are applied with ``rc_context``, which
  changes matplotlib's process-wide ``rcParams`` for the duration, so a lock keeps two threads
  from drawing with each other's settings.

A request that cannot be drawn (no rows, a missing column, a non-numeric value) raises
:class:`~recovery.analysis.errors.AnalysisError` with a plain message; an empty frame has code
``"empty"``. Missing values (NaN) leave gaps: a line breaks, a bar or a point is left out.
"""

from __future__ import annotations

import hashlib
import html
import io
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, PercentFormatter

from .errors import AnalysisError

# Okabe & Ito (2008), "Color Universal Design", in the order of surveys.charts.PALETTE (whose
# black is "currentColor" there; a published figure has a white background, so black here).
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DASHES: tuple[str | tuple[float, tuple[float, ...]], ...] = (
    "solid",
    (0, (5, 2)),
    (0, (1.5, 1.5)),
    (0, (6, 2, 1.5, 2)),
    (0, (3, 1.5)),
    (0, (8, 2, 1.5, 2, 1.5, 2)),
    (0, (1, 3)),
    (0, (10, 3)),
)
# Line hatches only: dotted ones ("..", "oo") are drawn as hundreds of circles in the SVG.
HATCHES = ("", "///", "---", "xx", "\\\\\\", "|||", "++", "//--")
INK = "#222222"  # axes, error bars, reference lines
MUTED = "#666666"
GRID = "#E3E3E3"

WIDTH = 6.4  # inches
HEIGHT = 4.0
SANS_SERIF = ["Arial", "Helvetica", "Liberation Sans", "DejaVu Sans"]

_LOCK = threading.RLock()
_NO_METADATA: dict[str, Any] = {"Date": None, "Creator": None, "Format": None, "Type": None}
_TAG = re.compile(r"<[^>]*>")
_ID = re.compile(r'(\s)id="([^"]*)"')
_HREF = re.compile(r'href="#([^"]*)"')
_URL = re.compile(r"url\(#([^)]*)\)")
_DEFAULT_STYLE = '<style type="text/css">*{'


# --- Public charts -------------------------------------------------------------------------


def love_plot(
    balance: pd.DataFrame,
    *,
    threshold: float = 0.1,
    title: str = "Covariate balance",
    absolute: bool = False,
) -> str:
    """A Love plot: the standardized mean difference (SMD) of each covariate before matching
    (open circles) and after (filled diamonds), one row per covariate, the covariate with the
    largest |SMD| before matching at the top. Dashed reference lines at ±``threshold`` (at
    ``threshold`` with ``absolute``, which plots |SMD|).

    ``balance`` is indexed by covariate with columns ``smd_before`` and ``smd_after``, as
    :attr:`MatchResult.balance <recovery.analysis.matching.MatchResult>` and
    :func:`~recovery.analysis.matching.love_plot_data` give. A covariate whose SMD is missing
    (a constant covariate) keeps its row, at the bottom, without a point."""
    _require_frame(balance, ["smd_before", "smd_after"], "Love plot")
    if not (isinstance(threshold, int | float) and math.isfinite(threshold) and threshold > 0):
        raise AnalysisError(
            "The balance threshold must be a positive number.", code="invalid_parameter"
        )
    before = _numbers(balance, "smd_before")
    after = _numbers(balance, "smd_after")
    if absolute:
        before, after = np.abs(before), np.abs(after)
    if before.size == 0 or not np.isfinite(np.concatenate([before, after])).any():
        raise _empty("balance table")
    labels = [_label(v) for v in balance.index]
    # Largest |SMD| before matching first; missing values last; ties keep the table's order.
    key = np.where(np.isfinite(before), -np.abs(before), np.inf)
    order = np.argsort(key, kind="stable")
    n = len(order)
    y = np.arange(n)[::-1].astype(float)  # the first covariate at the top
    before, after = before[order], after[order]
    labels = [labels[i] for i in order]
    still = int((np.abs(after) >= threshold).sum())

    def draw(fig: Figure, ax: Axes) -> None:
        ax.grid(axis="y", color=GRID, linewidth=0.6, zorder=0)
        both = np.isfinite(before) & np.isfinite(after)
        ax.hlines(y[both], before[both], after[both], color="#AAAAAA", linewidth=1.0, zorder=1)
        if not absolute:
            ax.axvline(0, color=INK, linewidth=0.8, zorder=1)
        for side in (-1, 1) if not absolute else (1,):
            ax.axvline(
                side * threshold,
                color=MUTED,
                linestyle=(0, (4, 3)),
                linewidth=1.0,
                zorder=1,
                label=(f"±{threshold:g} threshold" if not absolute else f"{threshold:g} threshold")
                if side == 1
                else None,
            )
        ax.plot(
            before,
            y,
            linestyle="none",
            marker="o",
            markersize=7,
            markerfacecolor="white",
            markeredgecolor=PALETTE[1],
            markeredgewidth=1.6,
            label="Before matching",
            zorder=3,
        )
        ax.plot(
            after,
            y,
            linestyle="none",
            marker="D",
            markersize=6,
            color=PALETTE[0],
            markeredgecolor="white",
            markeredgewidth=0.6,
            label="After matching",
            zorder=4,
        )
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(-0.7, n - 0.3)
        finite = np.abs(np.concatenate([before, after]))
        reach = max(float(np.nanmax(finite)), threshold) * 1.12
        ax.set_xlim((0, reach) if absolute else (-reach, reach))
        for row in np.flatnonzero(~np.isfinite(before) & ~np.isfinite(after)):
            # A constant covariate has no SMD (its standard deviation is 0).
            ax.annotate(
                "no SMD",
                (0.0, y[row]),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                ha="left",
                fontsize=9,
                fontstyle="italic",
                color=MUTED,
                bbox={"facecolor": "white", "edgecolor": "none", "pad": 1.0},
                zorder=5,
            )
        ax.set_xlabel(
            "Absolute standardized mean difference" if absolute else "Standardized mean difference"
        )
        handles, names = ax.get_legend_handles_labels()
        # Before, after, then the threshold.
        _legend(fig, [handles[1], handles[2], handles[0]], [names[1], names[2], names[0]])

    kind = "absolute standardized mean differences" if absolute else "standardized mean differences"
    description = (
        f"Dot plot of the {kind} of {n} covariates before matching (open circles) and after "
        f"matching (filled diamonds), largest imbalance before matching at the top; dashed lines "
        f"at ±{threshold:g}. {still} covariate{'s' if still != 1 else ''} at or beyond "
        f"{threshold:g} after matching."
    )
    return _render(title, description, draw, height=max(HEIGHT, 1.5 + 0.3 * n))


def common_support_plot(
    frame: pd.DataFrame, *, title: str = "Common support", bins: int = 20
) -> str:
    """Mirrored histograms of the propensity score: treated rows above the axis, control rows
    below, in ``bins`` bins over 0–1. With a boolean ``matched`` column (as
    :func:`~recovery.analysis.matching.common_support` gives), the treated rows left out of the
    matched sample are overlaid, hatched, at the top of the treated bars.

    ``frame`` has a column ``group`` (``"treated"``/``"control"``, or 1/0) and ``propensity``
    (0–1). Rows with a missing score are left out."""
    _require_frame(frame, ["group", "propensity"], "common-support plot")
    if isinstance(bins, bool) or not isinstance(bins, int) or not 2 <= bins <= 200:
        raise AnalysisError(
            "The number of bins must be a whole number from 2 to 200.", code="invalid_parameter"
        )
    score = _numbers(frame, "propensity")
    treated = _treated(frame["group"])
    matched = _matched(frame) if "matched" in frame.columns else None
    keep = np.isfinite(score)
    if not keep.any():
        raise _empty("propensity-score table")
    if ((score[keep] < 0) | (score[keep] > 1)).any():
        raise AnalysisError(
            "A propensity score must be between 0 and 1; the 'propensity' column has values "
            "outside that range.",
            code="invalid_parameter",
        )
    edges = np.linspace(0.0, 1.0, bins + 1)
    t_counts = np.histogram(score[keep & treated], bins=edges)[0]
    c_counts = np.histogram(score[keep & ~treated], bins=edges)[0]
    n_t, n_c = int((keep & treated).sum()), int((keep & ~treated).sum())
    unmatched = (
        None if matched is None else np.histogram(score[keep & treated & ~matched], bins=edges)[0]
    )
    width = 1.0 / bins

    def draw(fig: Figure, ax: Axes) -> None:
        ax.bar(
            edges[:-1],
            t_counts,
            width=width,
            align="edge",
            color=PALETTE[0],
            edgecolor="white",
            linewidth=0.5,
            label=f"Treated (n = {n_t})",
            zorder=2,
        )
        ax.bar(
            edges[:-1],
            -c_counts,
            width=width,
            align="edge",
            color=PALETTE[1],
            edgecolor="white",
            linewidth=0.5,
            label=f"Control (n = {n_c})",
            zorder=2,
        )
        if unmatched is not None:
            ax.bar(
                edges[:-1],
                unmatched,
                bottom=t_counts - unmatched,
                width=width,
                align="edge",
                facecolor="white",
                edgecolor=PALETTE[0],
                hatchcolor=PALETTE[0],
                hatch="////",
                linewidth=0.8,
                label=f"Treated, not matched (n = {int(unmatched.sum())})",
                zorder=3,
            )
        ax.axhline(0, color=INK, linewidth=0.8, zorder=4)
        top, bottom = max(int(t_counts.max()), 1), max(int(c_counts.max()), 1)
        # Room for the "Treated"/"Control" labels in the corners.
        ax.set_ylim(-bottom * 1.2, top * 1.2)
        ax.set_xlim(0, 1)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, symmetric=False))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{abs(v):g}"))
        ax.text(
            0.01,
            0.98,
            "Treated",
            transform=ax.transAxes,
            va="top",
            ha="left",
            color=PALETTE[0],
            fontweight="bold",
            fontsize=9,
        )
        ax.text(
            0.01,
            0.02,
            "Control",
            transform=ax.transAxes,
            va="bottom",
            ha="left",
            color=PALETTE[1],
            fontweight="bold",
            fontsize=9,
        )
        ax.set_xlabel("Propensity score")
        ax.set_ylabel("Number of participants")
        _legend(fig, *ax.get_legend_handles_labels())

    description = (
        f"Mirrored histograms of the propensity score in {bins} bins from 0 to 1: {n_t} treated "
        f"above the axis, {n_c} control below."
        + (
            ""
            if unmatched is None
            else f" {int(unmatched.sum())} treated not matched, hatched at the top of the bars."
        )
    )
    return _render(title, description, draw)


def estimate_plot(
    rows: pd.DataFrame,
    *,
    reference: float | None = None,
    log_scale: bool = False,
    xlabel: str = "Estimate (95 % CI)",
    title: str = "Estimates",
    digits: int = 2,
) -> str:
    """A forest plot: one row per estimate (columns ``label``, ``estimate``, ``ci_low``,
    ``ci_high``), the first row at the top, a point and its interval as a horizontal line, the
    numbers written at the right, and a dashed vertical line at ``reference`` (default 0, or 1
    with ``log_scale``, for ratios). The height grows with the number of rows. A row with a
    missing estimate is marked "not estimable"; a missing bound leaves the interval out."""
    _require_frame(rows, ["label", "estimate", "ci_low", "ci_high"], "forest plot")
    estimate = _numbers(rows, "estimate")
    low = _numbers(rows, "ci_low")
    high = _numbers(rows, "ci_high")
    if estimate.size == 0 or not np.isfinite(estimate).any():
        raise _empty("table of estimates")
    if reference is None:
        reference = 1.0 if log_scale else 0.0
    values = np.concatenate([estimate, low, high])
    values = values[np.isfinite(values)]
    if log_scale and ((values <= 0).any() or reference <= 0):
        raise AnalysisError(
            "A log scale needs positive values (ratios); an estimate, an interval bound or the "
            "reference is zero or negative.",
            code="invalid_parameter",
        )
    labels = [_label(v) for v in rows["label"]]
    n = len(labels)
    y = np.arange(n)[::-1].astype(float)

    def text(i: int) -> str:
        if not np.isfinite(estimate[i]):
            return "not estimable"
        point = _number(estimate[i], digits)
        if np.isfinite(low[i]) and np.isfinite(high[i]):
            return f"{point} ({_number(low[i], digits)} to {_number(high[i], digits)})"
        return point

    def draw(fig: Figure, ax: Axes) -> None:
        ax.axvline(reference, color=MUTED, linestyle=(0, (4, 3)), linewidth=1.0, zorder=1)
        both = np.isfinite(low) & np.isfinite(high)
        ax.hlines(y[both], low[both], high[both], color=PALETTE[0], linewidth=1.8, zorder=2)
        ax.plot(
            estimate,
            y,
            linestyle="none",
            marker="s",
            markersize=7,
            color=PALETTE[0],
            markeredgecolor="white",
            markeredgewidth=0.6,
            zorder=3,
        )
        if log_scale:
            ax.set_xscale("log")
        span = np.append(values, reference)
        lo, hi = float(span.min()), float(span.max())
        if log_scale:
            pad = (math.log(hi) - math.log(lo)) * 0.08 or 0.1
            ax.set_xlim(math.exp(math.log(lo) - pad), math.exp(math.log(hi) + pad))
            ticks = _log_ticks(*ax.get_xlim())
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(FixedLocator([]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        else:
            pad = (hi - lo) * 0.08 or 0.1
            ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks(y, labels)
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_ylim(-0.6, n - 0.4)
        ax.set_xlabel(xlabel)
        numbers = ax.get_yaxis_transform()  # x in axes fraction, y in data
        for i in range(n):
            ax.text(
                1.03,
                y[i],
                text(i),
                transform=numbers,
                va="center",
                ha="left",
                fontsize=9,
                color=INK if np.isfinite(estimate[i]) else MUTED,
            )
        ax.text(
            1.03,
            1.0,
            "Estimate (95 % CI)",
            transform=ax.transAxes,
            va="bottom",
            ha="left",
            fontsize=9,
            fontweight="bold",
        )

    shown = "; ".join(f"{labels[i]}: {text(i)}" for i in range(n))
    description = (
        f"Forest plot of {n} estimate{'s' if n != 1 else ''} with 95 % intervals"
        f"{' on a log scale' if log_scale else ''}, reference line at {reference:g}. {shown}."
    )
    return _render(title, description, draw, height=max(2.4, 1.35 + 0.42 * n))


def line_plot(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str | None = None,
    ci_low: str | None = None,
    ci_high: str | None = None,
    xlabel: str,
    ylabel: str,
    title: str,
    x_ticks_labels: Mapping[Any, str] | Sequence[str] | None = None,
    percent: bool = False,
    ci_style: str = "bars",
) -> str:
    """Lines over ``x`` (waves, months), one per value of ``group``, with the interval
    ``ci_low``–``ci_high`` as error bars (``ci_style="bars"``, the points nudged apart so that
    the bars do not overlap) or shaded bands (``"band"``).

    A text or categorical ``x`` is categorical, in the categorical's order or else in the order
    of first appearance; a wave missing for a group leaves a gap. A numeric ``x`` is placed at
    its value. ``x_ticks_labels`` renames the ticks: a mapping from ``x`` value to label, or one
    label per ``x`` value in order. ``percent``: ``y`` holds shares (0–1), shown as %."""
    return _series_chart(
        frame,
        x=x,
        y=y,
        group=group,
        ci_low=ci_low,
        ci_high=ci_high,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        x_ticks_labels=x_ticks_labels,
        percent=percent,
        ci_style=ci_style,
        what="line chart",
        trajectory=False,
    )


def trajectory_plot(
    frame: pd.DataFrame,
    *,
    time: str,
    y: str,
    group: str,
    xlabel: str,
    ylabel: str,
    title: str,
    ci_low: str | None = None,
    ci_high: str | None = None,
    percent: bool = False,
) -> str:
    """Predicted means over (numeric) ``time``, one line per ``group``, as a mixed model's
    predictions give: lines of their own colour and dash, a few markers on each so that they
    can be told apart in grey, and the interval ``ci_low``–``ci_high`` as a shaded band."""
    return _series_chart(
        frame,
        x=time,
        y=y,
        group=group,
        ci_low=ci_low,
        ci_high=ci_high,
        xlabel=xlabel,
        ylabel=ylabel,
        title=title,
        x_ticks_labels=None,
        percent=percent,
        ci_style="band",
        what="trajectory chart",
        trajectory=True,
    )


def bar_plot(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str | None = None,
    ci_low: str | None = None,
    ci_high: str | None = None,
    xlabel: str,
    ylabel: str,
    title: str,
    percent: bool = False,
    stacked: bool = False,
) -> str:
    """Bars of ``y`` for each ``x`` (in the categorical's order, numeric order, or order of
    first appearance), one bar per ``group`` side by side, or with ``stacked`` one bar per
    ``x`` with the groups stacked (shares of a whole, e.g. MAT × mutual-help attendance per
    wave; the share is written in each segment tall enough for it). Error bars from
    ``ci_low``–``ci_high`` on side-by-side bars only. Groups differ by colour and hatch. A
    missing value leaves its bar (or segment) out."""
    needed = [x, y] + [c for c in (group, ci_low, ci_high) if c is not None]
    _require_frame(frame, needed, "bar chart")
    if stacked and (ci_low is not None or ci_high is not None):
        raise AnalysisError(
            "Error bars are not drawn on stacked bars (an interval of one segment does not read "
            "against the others); draw them side by side instead (stacked=False).",
            code="invalid_parameter",
        )
    if (ci_low is None) != (ci_high is None):
        raise _one_bound()
    table = _table(frame, x=x, y=y, group=group, ci_low=ci_low, ci_high=ci_high, what="bar chart")
    categories, groups = table.categories, table.groups
    k, m = len(groups), len(categories)
    positions = np.arange(m, dtype=float)
    width = 0.8 / (1 if stacked else k)

    def draw(fig: Figure, ax: Axes) -> None:
        ax.grid(axis="y", color=GRID, linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        bottom = np.zeros(m)
        for j, name in enumerate(groups):
            values = table.y[j]
            ok = np.isfinite(values)
            colour = PALETTE[j % len(PALETTE)]
            where = positions if stacked else positions - 0.4 + width * (j + 0.5)
            ax.bar(
                where[ok],
                values[ok],
                width=width * (0.96 if stacked else 0.92),
                bottom=bottom[ok] if stacked else 0.0,
                color=colour,
                edgecolor="white",
                hatchcolor=_hatch_colour(colour),
                hatch=HATCHES[j % len(HATCHES)],
                linewidth=0.6,
                label=name if group is not None else None,
                zorder=2,
            )
            if stacked:
                _segment_labels(ax, where[ok], bottom[ok], values[ok], colour, percent)
                bottom = bottom + np.where(ok, values, 0.0)
            elif table.low is not None and table.high is not None:
                _error_bars(ax, where, table.low[j], table.high[j], INK)
        _category_axis(ax, categories)
        ax.set_xlim(-0.6, m - 0.4)
        ax.axhline(0, color=INK, linewidth=0.8, zorder=3)
        ax.spines["bottom"].set_visible(False)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if percent:
            totals = bottom if stacked else np.nan_to_num(table.y, nan=0.0).max(axis=0)
            tops = [totals.max()] + (
                [np.nan_to_num(table.high).max()] if table.high is not None else []
            )
            _percent_axis(ax, full=stacked and float(max(tops)) <= 1.0 + 1e-9)
        if group is not None:
            _legend(fig, *ax.get_legend_handles_labels())

    kind = "Stacked bar chart" if stacked else "Grouped bar chart" if group else "Bar chart"
    description = (
        f"{kind} of {ylabel} by {xlabel}"
        + (f" for {k} groups: {'; '.join(groups)}" if group is not None else "")
        + (", with 95 % error bars" if ci_low is not None else "")
        + "."
    )
    return _render(title, description, draw)


# --- Lines ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """The series of a chart: one row per group, one column per x value (NaN where missing)."""

    categories: list[str]  # the x values as labels
    xs: np.ndarray  # their positions: 0, 1, 2, ... when categorical, else the values
    groups: list[str]
    y: np.ndarray
    low: np.ndarray | None
    high: np.ndarray | None
    present: np.ndarray  # whether the group has a row at that x
    categorical: bool


def _series_chart(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str | None,
    ci_low: str | None,
    ci_high: str | None,
    xlabel: str,
    ylabel: str,
    title: str,
    x_ticks_labels: Mapping[Any, str] | Sequence[str] | None,
    percent: bool,
    ci_style: str,
    what: str,
    trajectory: bool,
) -> str:
    needed = [x, y] + [c for c in (group, ci_low, ci_high) if c is not None]
    _require_frame(frame, needed, what)
    if ci_style not in ("bars", "band"):
        raise AnalysisError(
            'The interval style must be "bars" or "band".', code="invalid_parameter"
        )
    if (ci_low is None) != (ci_high is None):
        raise _one_bound()
    numeric_x = _is_numeric(frame[x])
    if trajectory and not numeric_x:
        raise AnalysisError(
            f"The time column {x!r} must hold numbers (months, days) for a trajectory chart.",
            code="non_numeric",
        )
    table = _table(
        frame,
        x=x,
        y=y,
        group=group,
        ci_low=ci_low,
        ci_high=ci_high,
        what=what,
        categorical=not numeric_x,
    )
    tick_labels = _tick_labels(table, x_ticks_labels)
    k = len(table.groups)
    xs = table.xs
    spacing = float(np.diff(xs).min()) if xs.size > 1 else 1.0
    bars = ci_style == "bars" and table.low is not None
    nudge = spacing * min(0.08, 0.3 / max(k, 1)) if bars and k > 1 else 0.0

    def draw(fig: Figure, ax: Axes) -> None:
        ax.grid(axis="y", color=GRID, linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)
        for j, name in enumerate(table.groups):
            colour = PALETTE[j % len(PALETTE)]
            # A categorical x keeps every position, so a missing wave breaks the line; a
            # numeric x only the group's own (the groups need not share their x values).
            own = slice(None) if table.categorical else table.present[j]
            where = (xs + nudge * (j - (k - 1) / 2))[own]
            values = table.y[j][own]
            if table.low is not None and table.high is not None:
                low, high = table.low[j][own], table.high[j][own]
                if bars:
                    _error_bars(ax, where, low, high, colour)
                else:
                    ax.fill_between(
                        where,
                        low,
                        high,
                        color=colour,
                        alpha=0.16,
                        linewidth=0,
                        zorder=1,
                    )
            ax.plot(
                where,
                values,
                color=colour,
                linestyle=DASHES[j % len(DASHES)],
                marker=MARKERS[j % len(MARKERS)],
                markersize=5 if trajectory else 6,
                markevery=_mark_every(values) if trajectory else None,
                markeredgecolor="white",
                markeredgewidth=0.6,
                linewidth=1.8,
                label=name if group is not None else None,
                zorder=3,
            )
        if table.categorical:
            _category_axis(ax, tick_labels)
            ax.set_xlim(-0.4, len(xs) - 0.6)
        elif tick_labels is not None:
            ax.set_xticks(xs, tick_labels)
        elif xs.size <= 12 and not trajectory:
            ax.set_xticks(xs, [_label(v) for v in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if percent:
            _percent_axis(ax, full=False)
        if group is not None:
            _legend(fig, *ax.get_legend_handles_labels())

    kind = "Trajectory chart of predicted" if trajectory else "Line chart of"
    description = (
        f"{kind} {ylabel} by {xlabel}"
        + (f", one line per group: {'; '.join(table.groups)}" if group is not None else "")
        + (
            f", with 95 % intervals as {'error bars' if bars else 'shaded bands'}"
            if table.low is not None
            else ""
        )
        + "."
    )
    return _render(title, description, draw)


def _table(
    frame: pd.DataFrame,
    *,
    x: str,
    y: str,
    group: str | None,
    ci_low: str | None,
    ci_high: str | None,
    what: str,
    categorical: bool = True,
) -> _Table:
    """The frame as one row per group and one column per x value (NaN where a group has no
    value), checking that each (group, x) has at most one row."""
    data = frame.loc[frame[x].notna()]
    if group is not None:
        data = data.loc[data[group].notna()]
    if data.empty:
        raise _empty(what)
    values = {name: _numbers(data, name) for name in (y, ci_low, ci_high) if name is not None}
    if not np.isfinite(values[y]).any():
        raise _empty(what)
    if categorical:
        order = _order(data[x])
        xs = np.arange(len(order), dtype=float)
        position = {value: i for i, value in enumerate(order)}
        column = np.array([position[v] for v in data[x]], dtype=int)
        categories = [_label(v) for v in order]
    else:
        numbers = _numbers(data, x)
        order = sorted(set(numbers[np.isfinite(numbers)].tolist()))
        xs = np.asarray(order, dtype=float)
        position = {value: i for i, value in enumerate(order)}
        column = np.array([position.get(v, -1) for v in numbers], dtype=int)
        categories = [_label(v) for v in order]
    if group is not None:
        group_order = _order(data[group])
        group_position = {value: i for i, value in enumerate(group_order)}
        row = np.array([group_position[v] for v in data[group]], dtype=int)
        groups = [_label(v) for v in group_order]
    else:
        row = np.zeros(len(data), dtype=int)
        groups = [_label(y)]
    cells = pd.Series(row * len(xs) + column)
    if cells[column >= 0].duplicated().any():
        where = f" and {group!r}" if group is not None else ""
        raise AnalysisError(
            f"The {what} needs one row per value of {x!r}{where}; the data has several rows for "
            "the same one. Summarise it first (one mean or share per wave and group).",
            code="invalid_parameter",
        )

    ok = column >= 0
    present = np.zeros((len(groups), len(xs)), dtype=bool)
    present[row[ok], column[ok]] = True

    def grid(name: str) -> np.ndarray:
        out = np.full((len(groups), len(xs)), np.nan)
        out[row[ok], column[ok]] = values[name][ok]
        return out

    return _Table(
        categories=categories,
        xs=xs,
        groups=groups,
        y=grid(y),
        low=grid(ci_low) if ci_low is not None else None,
        high=grid(ci_high) if ci_high is not None else None,
        present=present,
        categorical=categorical,
    )


def _order(series: pd.Series) -> list[Any]:
    """A categorical's categories (those present), numbers in numeric order, anything else in
    the order of first appearance."""
    present = series.dropna()
    if isinstance(series.dtype, pd.CategoricalDtype):
        seen = set(present)
        return [c for c in series.cat.categories if c in seen]
    values = list(pd.unique(present))
    if _is_numeric(present):
        return sorted(values)
    return values


def _tick_labels(
    table: _Table, x_ticks_labels: Mapping[Any, str] | Sequence[str] | None
) -> list[str] | None:
    if x_ticks_labels is None:
        return table.categories if table.categorical else None
    if isinstance(x_ticks_labels, Mapping):
        by_text = {_label(k): str(v) for k, v in x_ticks_labels.items()}
        return [by_text.get(c, c) for c in table.categories]
    labels = [str(v) for v in x_ticks_labels]
    if len(labels) != len(table.categories):
        raise AnalysisError(
            f"There are {len(labels)} tick labels for {len(table.categories)} x values; give one "
            "label per value (or a mapping from value to label).",
            code="invalid_parameter",
        )
    return labels


def _mark_every(values: np.ndarray) -> int:
    """About six markers on a line of many predicted points: enough to tell lines apart."""
    return max(1, int(np.isfinite(values).sum()) // 6)


def _error_bars(
    ax: Axes, where: np.ndarray, low: np.ndarray, high: np.ndarray, colour: str
) -> None:
    # Drawn from the bounds (not as ± around the point) so that an interval that does not
    # contain its point (a percentile bootstrap) is still drawn where it is.
    ok = np.isfinite(low) & np.isfinite(high)
    if not ok.any():
        return
    lo, hi = np.minimum(low[ok], high[ok]), np.maximum(low[ok], high[ok])
    ax.errorbar(
        where[ok],
        (lo + hi) / 2,
        yerr=(hi - lo) / 2,
        fmt="none",
        ecolor=colour,
        elinewidth=1.1,
        capsize=3,
        capthick=1.1,
        zorder=2,
    )


def _segment_labels(
    ax: Axes, where: np.ndarray, bottom: np.ndarray, values: np.ndarray, colour: str, percent: bool
) -> None:
    """The value of each stacked segment tall enough to hold it, in a colour that reads on it."""
    top = max(float(np.nanmax(bottom + values)) if values.size else 0.0, 1e-12)
    dark = _dark_reads_better(colour)
    for xi, b, v in zip(where, bottom, values, strict=True):
        if v / top < 0.07:
            continue
        text = f"{v * 100:.0f}%" if percent else f"{v:,.3g}"
        ax.text(
            xi,
            b + v / 2,
            text,
            ha="center",
            va="center",
            fontsize=9,
            color="black" if dark else "white",
            fontweight="bold",
            zorder=4,
            bbox={"boxstyle": "round,pad=0.15", "facecolor": colour, "edgecolor": "none"},
        )


# --- Axes and rendering --------------------------------------------------------------------


def _category_axis(ax: Axes, labels: Sequence[str] | None) -> None:
    labels = list(labels or [])
    ax.set_xticks(np.arange(len(labels)), labels)
    ax.tick_params(axis="x", length=0)
    # Turn the labels when they would run into each other (about 7 characters per 0.9 inch).
    room = WIDTH * 0.85 / max(len(labels), 1)
    if max((len(s) for s in labels), default=0) * 0.075 > room:
        for text in ax.get_xticklabels():
            text.set_rotation(30)
            text.set_horizontalalignment("right")
            text.set_rotation_mode("anchor")


def _percent_axis(ax: Axes, *, full: bool) -> None:
    low, high = ax.get_ylim()
    if full:
        ax.set_ylim(0, 1)
    else:
        ax.set_ylim(min(0.0, low), min(high, 1.0) if high > 1.0 else high)
    span = ax.get_ylim()[1] - ax.get_ylim()[0]
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0 if span >= 0.05 else 1))


def _legend(fig: Figure, handles: list[Any], labels: list[str]) -> None:
    if not handles:
        return
    longest = max(len(s) for s in labels)
    columns = max(1, min(len(labels), 4, int(70 // (longest + 6))))
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=columns,
        handlelength=2.6,
        columnspacing=1.6,
    )


def _log_ticks(low: float, high: float) -> list[float]:
    """Round ratios (…, 0.5, 1, 2, …) inside the axis: the coarsest set that gives four."""
    for mantissas in (
        (1.0,),
        (1.0, 2.0, 5.0),
        (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
        (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0),
    ):
        ticks = [
            round(m * 10.0**e, 10)
            for e in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
            for m in mantissas
            if low <= m * 10.0**e <= high
        ]
        if len(ticks) >= 4:
            return ticks
    return ticks


def _rc(title: str) -> dict[str, Any]:
    return {
        "svg.fonttype": "none",
        "svg.hashsalt": title,
        "svg.id": None,
        "font.family": "sans-serif",
        "font.sans-serif": SANS_SERIF,
        "font.size": 10,
        "text.parse_math": False,  # a "$" in a label is a dollar, not mathematics
        "text.color": INK,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
        "axes.titlepad": 10,
        "axes.labelsize": 10,
        "axes.labelcolor": INK,
        "axes.edgecolor": INK,
        "axes.linewidth": 0.8,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "xtick.color": INK,
        "ytick.color": INK,
        "legend.fontsize": 9,
        "legend.frameon": False,
        "figure.facecolor": "white",
        "axes.facecolor": "white",
        "hatch.linewidth": 0.7,
        "lines.solid_capstyle": "butt",
        "figure.constrained_layout.h_pad": 0.06,
        "figure.constrained_layout.w_pad": 0.06,
    }


def _render(
    title: str,
    description: str,
    draw: Callable[[Figure, Axes], None],
    *,
    height: float = HEIGHT,
) -> str:
    title = str(title)
    with _LOCK, matplotlib.rc_context(_rc(title)):
        fig = Figure(figsize=(WIDTH, height), layout="constrained")
        ax = fig.add_subplot()
        draw(fig, ax)
        ax.set_title(title)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata=_NO_METADATA)
    return _inline(buffer.getvalue(), title, description)


def _inline(svg: str, title: str, description: str) -> str:
    """matplotlib's SVG made fit to inline: no prolog, ids of its own, a scoped style rule, a
    title and a description."""
    svg = svg[svg.index("<svg") :].strip()
    chart_id = "chart-" + hashlib.sha256(svg.encode("utf-8")).hexdigest()[:12]

    def tag(match: re.Match[str]) -> str:
        text = _ID.sub(lambda m: f'{m.group(1)}id="{chart_id}-{m.group(2)}"', match.group(0))
        text = _HREF.sub(lambda m: f'href="#{chart_id}-{m.group(1)}"', text)
        return _URL.sub(lambda m: f"url(#{chart_id}-{m.group(1)})", text)

    # Text never holds a raw "<" (matplotlib escapes it), so tags are exactly the <...> runs.
    svg = _TAG.sub(tag, svg)
    svg = svg.replace(_DEFAULT_STYLE, f'<style type="text/css">#{chart_id} *{{', 1)
    root_end = svg.index(">") + 1
    root = svg[: root_end - 1].rstrip("/")
    root = root.replace(
        "<svg ",
        f'<svg id="{chart_id}" class="analysis-chart" role="img" '
        f'aria-labelledby="{chart_id}-title" aria-describedby="{chart_id}-desc" ',
        1,
    )
    head = (
        f'<title id="{chart_id}-title">{html.escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{html.escape(description)}</desc>'
    )
    return f"{root}>{head}{svg[root_end:]}"


# --- Checks and small helpers --------------------------------------------------------------


def _require_frame(frame: Any, columns: Sequence[str], what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError(
            f"The data for the {what} must be a pandas DataFrame.", code="invalid_parameter"
        )
    missing = list(dict.fromkeys(c for c in columns if c not in frame.columns))
    if missing:
        raise AnalysisError(
            f"The data for the {what} has no {' or '.join(repr(c) for c in missing)} column.",
            code="unknown_column",
        )
    if frame.empty:
        raise _empty(what)


def _empty(what: str) -> AnalysisError:
    return AnalysisError(f"There is nothing to draw: the {what} has no values.", code="empty")


def _one_bound() -> AnalysisError:
    return AnalysisError(
        "Give both interval columns (ci_low and ci_high) or neither.", code="invalid_parameter"
    )


def _is_numeric(series: pd.Series) -> bool:
    return bool(
        pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
    )


def _numbers(frame: pd.DataFrame, column: str) -> np.ndarray:
    series = frame[column]
    if pd.api.types.is_bool_dtype(series.dtype) or not pd.api.types.is_numeric_dtype(series.dtype):
        converted = pd.to_numeric(series, errors="coerce")
        if (converted.isna() & series.notna()).any():
            raise AnalysisError(
                f"The column {column!r} must hold numbers; it has text or other values.",
                code="non_numeric",
            )
        series = converted
    values = series.to_numpy(dtype="float64", na_value=np.nan).copy()
    values[~np.isfinite(values)] = np.nan
    return values


def _treated(groups: pd.Series) -> np.ndarray:
    words = {"treated": True, "control": False, "1": True, "0": False, "true": True, "false": False}
    texts = groups.map(lambda v: _label(v).strip().lower() if pd.notna(v) else "")
    unknown = sorted(set(texts) - set(words))
    if unknown:
        raise AnalysisError(
            "The 'group' column must say 'treated' or 'control' (or 1/0); it also has "
            f"{', '.join(repr(u) for u in unknown[:3])}.",
            code="invalid_parameter",
        )
    return texts.map(words).to_numpy(dtype=bool)


def _matched(frame: pd.DataFrame) -> np.ndarray:
    try:
        flags = frame["matched"].astype("boolean")
    except (TypeError, ValueError) as exc:
        raise AnalysisError(
            "The 'matched' column must hold true/false values.", code="invalid_parameter"
        ) from exc
    # Unknown counts as matched: only rows known to be left out are marked.
    return flags.fillna(True).to_numpy(dtype=bool)


def _label(value: Any) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _number(value: float, digits: int) -> str:
    """A number with a real minus sign, as on the axes."""
    return f"{value:.{digits}f}".replace("-", "\u2212")


def _luminance(colour: str) -> float:
    """WCAG relative luminance of an ``#RRGGBB`` colour."""
    channels = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _dark_reads_better(colour: str) -> bool:
    """Whether black has more contrast than white on ``colour``."""
    light = _luminance(colour)
    return (light + 0.05) / 0.05 >= 1.05 / (light + 0.05)


def _hatch_colour(colour: str) -> str:
    """Hatch lines that show on the bar's colour (and in grey): dark on light fills."""
    return "#00000066" if _dark_reads_better(colour) else "#FFFFFF99"
