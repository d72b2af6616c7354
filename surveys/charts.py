"""Small charts drawn on the server as inline SVG: a line chart and a grouped bar chart.

No JavaScript and no plotting library: the page stays light and works without scripts. Each
chart is an image to assistive technology (``role="img"`` named by its ``<title>`` and
``<desc>``); the page always puts a table with the same numbers next to it. Colours are the
Okabe–Ito palette, which stays distinguishable with the common colour-vision deficiencies, and
lines also differ by dash and marker so that they can be told apart in grey or print. Text and
axes use ``currentColor``, so the chart follows the admin's light or dark theme. Every label is
escaped.
"""

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Okabe & Ito (2008), "Color Universal Design". Black is drawn in the text colour (dark themes)
# and kept for an emphasised line; yellow, the weakest on white, comes last.
PALETTE = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "currentColor",  # black
    "#F0E442",  # yellow
)
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "triangle", "diamond")

WIDTH = 720
PLOT_HEIGHT = 240
LEFT, RIGHT, TOP = 64, 16, 40
CHAR_WIDTH = 6.6  # average width of a 12 px sans-serif character, for laying out text


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float | None]  # one per category; None leaves a gap
    # Shown when pointing at a point or bar (and read by some screen readers), one per value.
    notes: list[str] | None = None
    # A reference line (the whole group against its parts): thicker, in the text colour.
    emphasis: bool = False


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _nice_max(value: float) -> tuple[float, float]:
    """An axis maximum at or above ``value`` and its tick step (1, 2 or 5 × 10^k)."""
    if value <= 0:
        return 1.0, 0.2
    raw = value / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(value / step - 1e-9), step


def _line_styles(series: list[Series]) -> list[tuple[str, str, str, float]]:
    """(colour, dash, marker, width) per series: an emphasised one solid, thick and in the text
    colour; the others through the palette (without black), each with its own dash and marker
    so that no two lines look alike even in grey."""
    colours = [c for c in PALETTE if c != "currentColor"]
    styles, n = [], 0
    for one in series:
        if one.emphasis:
            styles.append(("currentColor", "", "circle", 3.5))
            continue
        dash = DASHES[(n + n // len(colours)) % len(DASHES)]
        styles.append((colours[n % len(colours)], dash, MARKERS[(n + 1) % len(MARKERS)], 2.0))
        n += 1
    return styles


def _marker(kind: str, x: float, y: float, colour: str, note: str) -> str:
    tip = f"<title>{escape(note)}</title>" if note else ""
    if kind == "square":
        shape = f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{colour}">'
        return f"{shape}{tip}</rect>"
    if kind == "triangle":
        points = f"{x:.1f},{y - 5:.1f} {x - 5:.1f},{y + 4:.1f} {x + 5:.1f},{y + 4:.1f}"
        return f'<polygon points="{points}" fill="{colour}">{tip}</polygon>'
    if kind == "diamond":
        points = f"{x:.1f},{y - 5:.1f} {x + 5:.1f},{y:.1f} {x:.1f},{y + 5:.1f} {x - 5:.1f},{y:.1f}"
        return f'<polygon points="{points}" fill="{colour}">{tip}</polygon>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}">{tip}</circle>'


class _Frame:
    """The common parts: the title, the axes with their ticks and labels, the legend."""

    def __init__(
        self,
        *,
        chart_id: str,
        title: str,
        description: str,
        categories: list[str],
        y_label: str,
        x_label: str,
        y_max: float,
        y_step: float,
        percent: bool,
        legend: list[str],
    ):
        self.chart_id, self.title, self.description = chart_id, title, description
        self.categories, self.percent = categories, percent
        self.y_label, self.x_label = y_label, x_label
        self.y_max, self.y_step = y_max, y_step
        self.plot_width = WIDTH - LEFT - RIGHT
        self.band = self.plot_width / max(1, len(categories))
        longest = max((len(c) for c in categories), default=0)
        # Category labels turn when they would run into each other.
        self.turn = longest * CHAR_WIDTH > self.band - 6
        self.x_label_height = (min(longest, 28) * CHAR_WIDTH * 0.6 + 14) if self.turn else 18
        self.legend = legend
        self.legend_columns, self.legend_rows = self._legend_layout()
        self.bottom = TOP + PLOT_HEIGHT
        self.height = self.bottom + self.x_label_height + 30 + self.legend_rows * 20 + 8

    def _legend_layout(self) -> tuple[int, int]:
        if len(self.legend) <= 1:
            return 1, 0
        widest = max(len(name) for name in self.legend) * CHAR_WIDTH + 34
        columns = max(1, min(len(self.legend), int((WIDTH - LEFT) // widest)))
        return columns, math.ceil(len(self.legend) / columns)

    def y(self, value: float) -> float:
        return self.bottom - (value / self.y_max) * PLOT_HEIGHT

    def x_centre(self, index: int) -> float:
        return LEFT + self.band * (index + 0.5)

    def open(self) -> list[str]:
        cid = escape(self.chart_id)
        return [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} {self.height:.0f}" width="100%" '
            f'aria-labelledby="{cid}-title {cid}-desc" font-size="12">',
            f'<title id="{cid}-title">{escape(self.title)}</title>',
            f'<desc id="{cid}-desc">{escape(self.description)}</desc>',
            f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold" fill="currentColor">'
            f"{escape(self.title)}</text>",
        ]

    def axes(self) -> list[str]:
        parts = []
        ticks = round(self.y_max / self.y_step)
        for i in range(ticks + 1):
            value = i * self.y_step
            y = self.y(value)
            parts.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                f'stroke="currentColor" stroke-opacity="{0.5 if i == 0 else 0.15}"/>'
            )
            parts.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="currentColor">'
                f"{escape(_fmt(value, self.percent))}</text>"
            )
        for index, category in enumerate(self.categories):
            x, y = self.x_centre(index), self.bottom + 16
            if self.turn:
                parts.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" fill="currentColor" '
                    f'transform="rotate(-35 {x:.1f} {y:.1f})">{escape(category)}</text>'
                )
            else:
                parts.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="currentColor">'
                    f"{escape(category)}</text>"
                )
        middle = TOP + PLOT_HEIGHT / 2
        parts.append(
            f'<text x="14" y="{middle:.1f}" text-anchor="middle" fill="currentColor" '
            f'transform="rotate(-90 14 {middle:.1f})">{escape(self.y_label)}</text>'
        )
        x_title_y = self.bottom + self.x_label_height + 16
        parts.append(
            f'<text x="{LEFT + self.plot_width / 2:.1f}" y="{x_title_y:.1f}" '
            f'text-anchor="middle" fill="currentColor">{escape(self.x_label)}</text>'
        )
        return parts

    def legend_items(self, swatch) -> list[str]:
        if self.legend_rows == 0:
            return []
        parts = []
        top = self.bottom + self.x_label_height + 34
        column_width = (WIDTH - LEFT) / self.legend_columns
        for index, name in enumerate(self.legend):
            row, column = divmod(index, self.legend_columns)
            x, y = LEFT + column * column_width, top + row * 20
            parts.append(swatch(index, x, y))
            parts.append(
                f'<text x="{x + 28:.1f}" y="{y + 4:.1f}" fill="currentColor">{escape(name)}</text>'
            )
        return parts


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: list[str],
    series: list[Series],
    y_label: str,
    x_label: str,
    percent: bool = True,
    y_max: float | None = None,
) -> SafeString:
    """Lines over categories (waves, days), one per series; with ``percent`` values are shares
    (0–1) on a 0–100 % axis."""
    if y_max is None:
        top = max((v for s in series for v in s.values if v is not None), default=0)
        y_max, y_step = (1.0, 0.2) if percent else _nice_max(top)
    else:
        y_step = _nice_max(y_max)[1]
    frame = _Frame(
        chart_id=chart_id,
        title=title,
        description=description,
        categories=categories,
        y_label=y_label,
        x_label=x_label,
        y_max=y_max,
        y_step=y_step,
        percent=percent,
        legend=[s.name for s in series],
    )
    parts = frame.open() + frame.axes()
    styles = _line_styles(series)
    for index, one in enumerate(series):
        colour, dash, marker, width = styles[index]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        segment: list[str] = []
        segments = [segment]
        for i, value in enumerate(one.values):
            if value is None:
                segment = []
                segments.append(segment)
                continue
            segment.append(f"{frame.x_centre(i):.1f},{frame.y(value):.1f}")
        group = [f'<g class="series" data-series="{escape(one.name)}">']
        for points in segments:
            if len(points) > 1:
                group.append(
                    f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" '
                    f'stroke-width="{width}"{dash_attr}/>'
                )
        for i, value in enumerate(one.values):
            if value is None:
                continue
            note = one.notes[i] if one.notes else f"{one.name}, {categories[i]}: "
            if not one.notes:
                note += _fmt(value, percent)
            group.append(_marker(marker, frame.x_centre(i), frame.y(value), colour, note))
        group.append("</g>")
        parts.extend(group)

    def swatch(index: int, x: float, y: float) -> str:
        colour, dash, marker, width = styles[index]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        return (
            f'<line x1="{x:.1f}" x2="{x + 22:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}" '
            f'stroke-width="{width}"{dash_attr}/>' + _marker(marker, x + 11, y, colour, "")
        )

    parts.extend(frame.legend_items(swatch))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text in it went through escape()


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    categories: list[str],
    series: list[Series],
    y_label: str,
    x_label: str,
    percent: bool = False,
) -> SafeString:
    """Grouped bars: for each category one bar per series, labelled with its value."""
    top = max((v for s in series for v in s.values if v is not None), default=0)
    y_max, y_step = (1.0, 0.2) if percent else _nice_max(top)
    frame = _Frame(
        chart_id=chart_id,
        title=title,
        description=description,
        categories=categories,
        y_label=y_label,
        x_label=x_label,
        y_max=y_max,
        y_step=y_step,
        percent=percent,
        legend=[s.name for s in series],
    )
    parts = frame.open() + frame.axes()
    inner = frame.band * 0.8
    bar = inner / max(1, len(series))
    show_values = bar >= 22
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(f'<g class="series" data-series="{escape(one.name)}">')
        for i, value in enumerate(one.values):
            if value is None:
                continue
            x = LEFT + frame.band * i + frame.band * 0.1 + bar * index
            y = frame.y(value)
            note = one.notes[i] if one.notes else f"{one.name}, {categories[i]}: "
            if not one.notes:
                note += _fmt(value, percent)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar - 2, 1):.1f}" '
                f'height="{frame.bottom - y:.1f}" fill="{colour}"><title>{escape(note)}</title>'
                "</rect>"
            )
            if show_values:
                parts.append(
                    f'<text x="{x + (bar - 2) / 2:.1f}" y="{y - 4:.1f}" text-anchor="middle" '
                    f'font-size="11" fill="currentColor">{escape(_fmt(value, percent))}</text>'
                )
        parts.append("</g>")

    def swatch(index: int, x: float, y: float) -> str:
        colour = PALETTE[index % len(PALETTE)]
        return f'<rect x="{x + 4:.1f}" y="{y - 6:.1f}" width="14" height="12" fill="{colour}"/>'

    parts.extend(frame.legend_items(swatch))
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 — every text in it went through escape()
