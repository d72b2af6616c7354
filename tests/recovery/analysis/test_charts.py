"""The analysis charts: inline SVG that parses, names itself, reads in the right order, stays
the same for the same data, and can share a page with other charts."""

import re
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from recovery.analysis.charts import (
    bar_plot,
    common_support_plot,
    estimate_plot,
    line_plot,
    love_plot,
    trajectory_plot,
)
from recovery.analysis.errors import AnalysisError

SVG = "{http://www.w3.org/2000/svg}"
WAVES = ["Baseline", "3 months", "6 months", "9 months", "12 months"]
GROUPS = ["MHG only", "MAT only", "MHG + MAT"]


def balance_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "smd_before": [0.05, -0.42, 0.31, np.nan, 0.62],
            "smd_after": [0.02, -0.04, 0.12, np.nan, 0.08],
            "imbalanced_after": [False, False, True, False, False],
        },
        index=pd.Index(
            ["age", "female", "baseline ASI", "constant", "days using"], name="covariate"
        ),
    )


def support_frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "group": ["treated"] * 60 + ["control"] * 90,
            "propensity": np.concatenate([rng.beta(4, 3, 60), rng.beta(2, 5, 90)]),
            "matched": np.concatenate([rng.random(60) > 0.2, rng.random(90) > 0.5]),
        }
    )


def estimates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": ["Naive", "Matched", "IPW"],
            "estimate": [-0.18, -0.11, -0.12],
            "ci_low": [-0.26, -0.20, -0.21],
            "ci_high": [-0.10, -0.02, -0.03],
        }
    )


def wave_frame() -> pd.DataFrame:
    rows = [
        {"wave": wave, "group": group, "share": 0.6 - 0.05 * i - 0.03 * j}
        for j, group in enumerate(GROUPS)
        for i, wave in enumerate(WAVES)
    ]
    frame = pd.DataFrame(rows)
    frame["low"], frame["high"] = frame["share"] - 0.05, frame["share"] + 0.05
    return frame


def trajectories() -> pd.DataFrame:
    months = np.linspace(0, 12, 25)
    return pd.DataFrame(
        [
            {"months": m, "group": group, "mean": 9 - slope * m}
            for group, slope in (("High involvement", 0.3), ("Low involvement", 0.05))
            for m in months
        ]
    )


# (chart, the title it was given, labels that must appear as text)
CHARTS = {
    "love": (lambda: love_plot(balance_table()), "Covariate balance", ["age", "days using"]),
    "common_support": (
        lambda: common_support_plot(support_frame(), title="Overlap of the scores"),
        "Overlap of the scores",
        ["Treated (n = 60)", "Control (n = 90)"],
    ),
    "estimates": (
        lambda: estimate_plot(estimates(), xlabel="Risk difference", title="Any use at 12 months"),
        "Any use at 12 months",
        ["Naive", "Matched", "IPW", "Risk difference"],
    ),
    "ratios": (
        lambda: estimate_plot(
            estimates().assign(
                estimate=[0.6, 0.8, 1.3], ci_low=[0.5, 0.7, 1.1], ci_high=[0.7, 0.9, 1.6]
            ),
            log_scale=True,
            xlabel="Rate ratio",
            title="GEE rate ratios",
        ),
        "GEE rate ratios",
        ["Naive", "Rate ratio", "1"],
    ),
    "line": (
        lambda: line_plot(
            wave_frame(),
            x="wave",
            y="share",
            group="group",
            ci_low="low",
            ci_high="high",
            xlabel="Wave",
            ylabel="Any drug use",
            title="Any drug use by wave",
            percent=True,
        ),
        "Any drug use by wave",
        [*GROUPS, *WAVES, "Any drug use", "50%"],
    ),
    "bar": (
        lambda: bar_plot(
            wave_frame(),
            x="wave",
            y="share",
            group="group",
            ci_low="low",
            ci_high="high",
            xlabel="Wave",
            ylabel="Any drug use",
            title="Any drug use, bars",
            percent=True,
        ),
        "Any drug use, bars",
        [*GROUPS, *WAVES],
    ),
    "stacked": (
        lambda: bar_plot(
            wave_frame(),
            x="wave",
            y="share",
            group="group",
            xlabel="Wave",
            ylabel="Share",
            title="MAT × MHG by wave",
            stacked=True,
        ),
        "MAT × MHG by wave",
        [*GROUPS, *WAVES],
    ),
    "trajectory": (
        lambda: trajectory_plot(
            trajectories(),
            time="months",
            y="mean",
            group="group",
            xlabel="Months since enrolment",
            ylabel="Days using (past 30)",
            title="Predicted days using",
        ),
        "Predicted days using",
        ["High involvement", "Low involvement", "Months since enrolment"],
    ),
}


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 — the charts' own output, not untrusted input


def texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in parse(svg).iter(f"{SVG}text")]


def text_elements(svg: str) -> dict[str, list[ET.Element]]:
    found: dict[str, list[ET.Element]] = {}
    for element in parse(svg).iter(f"{SVG}text"):
        found.setdefault("".join(element.itertext()), []).append(element)
    return found


def number(text: str) -> float:
    return float(text.replace("\u2212", "-"))


@pytest.mark.parametrize("name", CHARTS)
def test_chart_is_inline_svg_named_by_its_title_with_its_labels_as_text(name):
    make, title, labels = CHARTS[name]
    svg = make()

    assert svg.startswith("<svg")
    assert "<?xml" not in svg and "DOCTYPE" not in svg
    root = parse(svg)
    assert root.get("role") == "img"
    assert root[0].tag == f"{SVG}title" and root[0].text == title
    assert root[1].tag == f"{SVG}desc" and root[1].text
    shown = texts(svg)
    assert title in shown
    for label in labels:
        assert label in shown, label
    assert not re.search(r"\bnan\b", svg, flags=re.IGNORECASE)


def test_love_plot_puts_the_largest_imbalance_before_matching_at_the_top():
    svg = love_plot(balance_table())

    found = text_elements(svg)
    heights = {name: float(found[name][0].get("y")) for name in balance_table().index}
    top_to_bottom = sorted(heights, key=heights.get)
    # |SMD before| 0.62, 0.42, 0.31, 0.05, then the covariate without one.
    assert top_to_bottom == ["days using", "female", "baseline ASI", "age", "constant"]
    assert "no SMD" in found


def test_love_plot_draws_dashed_reference_lines_at_plus_and_minus_the_threshold():
    svg = love_plot(balance_table(), threshold=0.25)

    # The x axis's tick labels give the scale from data to drawing units.
    ticks = sorted(
        (float(e[0].get("x")), number(t))
        for t, e in text_elements(svg).items()
        if re.fullmatch(r"[\u2212-]?\d+\.\d+", t)
    )
    assert len(ticks) >= 3
    (x0, v0), (x1, v1) = ticks[0], ticks[-1]

    def to_data(x: float) -> float:
        return v0 + (x - x0) * (v1 - v0) / (x1 - x0)

    dashed_vertical = []
    for path in parse(svg).iter(f"{SVG}path"):
        if "stroke-dasharray" not in (path.get("style") or ""):
            continue
        coords = [float(c) for c in re.findall(r"-?\d+(?:\.\d+)?", path.get("d"))]
        xs, ys = coords[0::2], coords[1::2]
        if len(set(xs)) == 1 and max(ys) - min(ys) > 50:
            dashed_vertical.append(round(to_data(xs[0]), 3))
    assert sorted(dashed_vertical) == [-0.25, 0.25]
    assert "±0.25 threshold" in texts(svg)


def test_the_same_input_gives_the_same_bytes():
    for make, _title, _labels in CHARTS.values():
        assert make() == make()


def test_charts_inlined_in_one_page_share_no_ids_and_each_uses_only_its_own():
    other_balance = balance_table().assign(smd_after=[0.01, 0.02, 0.03, np.nan, 0.04])
    charts = [make() for make, _title, _labels in CHARTS.values()]
    charts.append(love_plot(other_balance))  # the same title as the first one
    page = "<div>" + "".join(charts) + "</div>"

    root = parse(page)
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    duplicates = [i for i, count in Counter(ids).items() if count > 1]
    assert duplicates == []
    for svg in root:
        own = {e.get("id") for e in svg.iter() if e.get("id")}
        chart = ET.tostring(svg, encoding="unicode")
        references = re.findall(r'href="#([^"]+)"', chart) + re.findall(r"url\(#([^)]+)\)", chart)
        assert references  # markers and clip paths are referenced
        assert set(references) <= own
        # matplotlib's global style rule applies to this chart only.
        style = next(svg.iter(f"{SVG}style")).text
        assert style.startswith(f"#{svg.get('id')} *")


def test_labels_with_markup_characters_stay_text():
    rows = estimates().assign(label=["A < B", "C & D", '"E"'])

    svg = estimate_plot(rows, title="Ratios <draft> & notes")

    assert {"A < B", "C & D", '"E"', "Ratios <draft> & notes"} <= set(texts(svg))


def test_a_missing_wave_breaks_the_line_and_leaves_out_the_bar():
    frame = wave_frame()
    gap = (frame["group"] == "MAT only") & (frame["wave"] == "6 months")
    frame.loc[gap, "share"] = np.nan
    orange = "stroke: #d55e00"

    svg = line_plot(
        frame, x="wave", y="share", group="group", xlabel="Wave", ylabel="Use", title="Use"
    )

    lines = [
        p.get("d")
        for p in parse(svg).iter(f"{SVG}path")
        if orange in (p.get("style") or "") and "stroke-width: 1.8" in p.get("style")
    ]
    data_line = max(lines, key=lambda d: d.count("L"))
    # Baseline–3 months and 9–12 months: two pieces, not one line across the gap.
    assert data_line.count("M") == 2
    assert "nan" not in svg

    bars = bar_plot(
        frame, x="wave", y="share", group="group", xlabel="Wave", ylabel="Use", title="Use"
    )
    filled = [p for p in parse(bars).iter(f"{SVG}path") if "fill: url(#" in (p.get("style") or "")]
    orange_pattern = [
        pattern.get("id")
        for pattern in parse(bars).iter(f"{SVG}pattern")
        if pattern[0].get("fill") == "#d55e00"
    ]
    orange_bars = [p for p in filled if orange_pattern[0] in p.get("style")]
    assert len(orange_bars) == len(WAVES) - 1 + 1  # three bars and the legend's swatch


def test_missing_estimates_and_smds_are_marked_not_drawn():
    rows = estimates()
    rows.loc[1, ["estimate", "ci_low", "ci_high"]] = np.nan

    svg = estimate_plot(rows)

    assert "not estimable" in texts(svg)
    assert "Matched" in texts(svg)


def test_groups_keep_the_order_of_the_waves_given():
    frame = wave_frame()
    frame["wave"] = pd.Categorical(frame["wave"], categories=WAVES, ordered=True)
    shuffled = frame.sample(frac=1, random_state=1)

    svg = line_plot(
        shuffled, x="wave", y="share", group="group", xlabel="Wave", ylabel="Use", title="t"
    )

    found = text_elements(svg)
    lefts = [float(found[wave][0].get("x")) for wave in WAVES]
    assert lefts == sorted(lefts)


def test_x_tick_labels_rename_numeric_waves():
    frame = wave_frame().assign(wave=lambda f: f["wave"].map({w: i for i, w in enumerate(WAVES)}))

    svg = line_plot(
        frame,
        x="wave",
        y="share",
        group="group",
        xlabel="Wave",
        ylabel="Use",
        title="t",
        x_ticks_labels={0: "Start", 4: "End"},
    )

    assert {"Start", "1", "2", "3", "End"} <= set(texts(svg))


EMPTY = {
    "love": lambda frame: love_plot(frame),
    "common_support": lambda frame: common_support_plot(frame),
    "estimates": lambda frame: estimate_plot(frame),
    "line": lambda frame: line_plot(frame, x="x", y="y", xlabel="x", ylabel="y", title="t"),
    "bar": lambda frame: bar_plot(frame, x="x", y="y", xlabel="x", ylabel="y", title="t"),
    "trajectory": lambda frame: trajectory_plot(
        frame, time="x", y="y", group="group", xlabel="x", ylabel="y", title="t"
    ),
}
COLUMNS = [
    "smd_before", "smd_after", "group", "propensity", "label", "estimate", "ci_low", "ci_high",
    "x", "y",
]  # fmt: skip


@pytest.mark.parametrize("name", EMPTY)
def test_empty_input_is_a_plain_analysis_error(name):
    with pytest.raises(AnalysisError) as caught:
        EMPTY[name](pd.DataFrame({c: pd.Series(dtype=float) for c in COLUMNS}))

    assert caught.value.code == "empty"
    assert "nothing to draw" in caught.value.message


@pytest.mark.parametrize("name", EMPTY)
def test_only_missing_values_is_empty_too(name):
    frame = pd.DataFrame({c: [np.nan, np.nan] for c in COLUMNS})
    frame["group"] = ["treated", "control"]
    frame["x"] = [1.0, 2.0]
    frame["label"] = ["a", "b"]

    with pytest.raises(AnalysisError) as caught:
        EMPTY[name](frame)

    assert caught.value.code == "empty"


def test_a_missing_column_is_named():
    with pytest.raises(AnalysisError, match="'propensity'") as caught:
        common_support_plot(pd.DataFrame({"group": ["treated"]}))

    assert caught.value.code == "unknown_column"


def test_a_log_scale_refuses_values_that_are_not_ratios():
    with pytest.raises(AnalysisError) as caught:
        estimate_plot(estimates(), log_scale=True)

    assert caught.value.code == "invalid_parameter"
