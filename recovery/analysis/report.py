"""A stored run's results as one self-contained HTML report (inline CSS and SVG, no script, no
outside file) and as CSV, drawn from the JSON that ``suite.to_json`` made, so a report of the
same run is the same every time.

Nothing here imports Django: every value is escaped here, and the charts are the SVG text that
``charts`` drew (matplotlib escapes the text it writes).
"""

from __future__ import annotations

import csv
import io
import math
from html import escape
from typing import Any

# Summary fields shown first, with their labels; the rest follow under their own names.
_KEY_FIGURES = {
    "att": "Matched estimate (ATT)",
    "ratio": "Adjusted ratio",
    "ratio_name": "Scale",
    "ci_low": "95 % CI, low",
    "ci_high": "95 % CI, high",
    "ci_method": "Interval",
    "naive": "Naive difference",
    "naive_ratio": "Naive ratio",
    "ipw_att": "IPW estimate (ATT)",
    "odds_ratio": "Matched odds ratio",
    "n_treated": "Exposed",
    "n_matched_treated": "Exposed, matched",
    "n_unmatched_treated": "Exposed, unmatched",
    "n_participants": "Participants",
    "n_observations": "Observations",
}

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;
max-width:60rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #ccc}
h3{font-size:1rem;margin-top:1.2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.85rem;display:block;
overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:.2rem .45rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.error{background:#fdecea;border-left:4px solid #b00020;padding:.5rem .75rem}
.note{background:#f4f6f8;border-left:4px solid #0072B2;padding:.4rem .75rem;margin:.3rem 0}
figure{margin:1rem 0}svg{max-width:100%;height:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem}dt{font-weight:600}
"""


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        if value != 0 and abs(value) < 0.001:
            return f"{value:.2e}"
        return f"{value:,.3f}"
    return str(value)


def _cell(value: Any) -> str:
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    css = ' class="n"' if numeric else ""
    return f"<td{css}>{escape(_number(value))}</td>"


def table_html(table: dict[str, Any], *, caption: str = "") -> str:
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in table["columns"])
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table["rows"])
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary_html(summary: dict[str, Any]) -> str:
    shown = [k for k in _KEY_FIGURES if k in summary and not isinstance(summary[k], dict | list)]
    if not shown:
        return ""
    items = "".join(
        f"<dt>{escape(_KEY_FIGURES[k])}</dt><dd>{escape(_number(summary[k]))}</dd>" for k in shown
    )
    return f"<dl>{items}</dl>"


def section_html(section: dict[str, Any]) -> str:
    parts = [f'<section id="{escape(section["key"])}"><h2>{escape(section["title"])}</h2>']
    if section.get("error"):
        parts.append(f'<p class="error">Not run: {escape(section["error"])}</p></section>')
        return "".join(parts)
    parts.append(_summary_html(section.get("summary", {})))
    for note in section.get("notes", []):
        parts.append(f'<p class="note">{escape(note)}</p>')
    for name, svg in section.get("charts", {}).items():
        parts.append(f'<figure data-chart="{escape(name)}">{svg}</figure>')
    for name, table in section.get("tables", {}).items():
        if name.endswith("_detail"):  # in the CSV and JSON only
            continue
        parts.append(f"<h3>{escape(name.replace('_', ' ').capitalize())}</h3>")
        parts.append(table_html(table))
    parts.append("</section>")
    return "".join(parts)


def report_html(results: dict[str, Any], *, title: str, meta: dict[str, Any]) -> str:
    """The whole report. ``meta``: what to reproduce the run by (parameters, data hash, rows,
    code version, times), shown as a list at the top."""
    facts = "".join(
        f"<dt>{escape(str(k))}</dt><dd>{escape(_meta_value(v))}</dd>" for k, v in meta.items()
    )
    sections = "".join(section_html(s) for s in results.get("sections", []))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1><dl>{facts}</dl>{sections}</body></html>"
    )


def _meta_value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "—"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_meta_value(v)}" for k, v in value.items())
    return _number(value)


def results_csv(results: dict[str, Any]) -> str:
    """Every number of every table and summary, one per line: section, table, row, column,
    value (a tidy file to filter or pivot)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "table", "row", "column", "value"])
    for section in results.get("sections", []):
        key = section["key"]
        if section.get("error"):
            row = [key, "error", 0, section.get("error_code", ""), section["error"]]
            writer.writerow([_csv_value(v) for v in row])
            continue
        for name, value in section.get("summary", {}).items():
            if isinstance(value, list):
                value = "; ".join(map(str, value))
            writer.writerow([_csv_value(v) for v in (key, "summary", 0, name, value)])
        for name, table in section.get("tables", {}).items():
            for i, row in enumerate(table["rows"]):
                for column, value in zip(table["columns"], row, strict=True):
                    # Column names can carry wave names, which study designers write.
                    writer.writerow([_csv_value(v) for v in (key, name, i, column, value)])
    return out.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    text = repr(value) if isinstance(value, float) else str(value)
    # A cell a spreadsheet would run as a formula is quoted (labels come from study designers).
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
