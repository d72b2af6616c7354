"""The codebook as one HTML page: self-contained (inline style, no script, no outside asset),
readable on a laptop and printable, one table row per variable with an anchor (``#variable``).

It is rendered from a codebook frame (``writers.codebook``), by a Django template with
autoescaping on: labels, choices and formulas are typed by study staff or imported, and are
shown as text, never as markup. The codebook of a wide frame is grouped by wave (the wave its
``source`` names); any other codebook is one table, in the frame's order.
"""

import re
from dataclasses import dataclass, field

import pandas as pd
from django.template.loader import render_to_string
from django.utils import timezone

from surveys.datasets.writers import missing_apart

TEMPLATE = "datasets/codebook.html"
# "baseline v1; followup v1 (wave m1)", "derived from followup (wave m1)", "wave m1"
_WAVE = re.compile(r"^(?:(?P<rest>.*?)\s*\(wave (?P<wave>[^()]+)\)|wave (?P<only>\S+))$")
# "1 = Woman; 2 = Man; 3 = Non-binary": split only before "<code> = ", so that a label holding
# "; " stays whole.
_VALUE_SPLIT = re.compile(r"; (?=[^\s;=]+ = )")
_NAME_PARTS = re.compile(r"[^_]*_+|[^_]+")


@dataclass
class _Row:
    name: str
    name_parts: list[str]  # the name cut after each "_", where a narrow column may break it
    label: str
    type: str
    values: list[tuple[str, str, str]]  # code, label, its number in a .sav or .dta ("": same)
    source: str
    formula: str
    branching: str
    range: str
    missing_codes: bool
    missing_apart: str  # the column holding its codes, when they are not in its own cells
    file_names: list[tuple[str, str]]  # ("SPSS", name in a .sav) where the file's differs
    numbered: bool  # text written as numbers in a .sav or .dta


@dataclass
class _Group:
    heading: str
    anchor: str
    rows: list[_Row] = field(default_factory=list)


def _text(value) -> str:
    return "" if value is None or pd.isna(value) else str(value)


def _pairs(text: str) -> list[tuple[str, str]]:
    if not text:
        return []
    return [
        (code, label)
        for code, _, label in (part.partition(" = ") for part in _VALUE_SPLIT.split(text))
    ]


def _values(text: str, numbers: str) -> list[tuple[str, str, str]]:
    """Each value's code and label, and its number in a .sav or .dta file where it has one."""
    number = dict(_pairs(numbers))
    values = [(code, label, number.pop(code, "")) for code, label in _pairs(text)]
    return values + [(code, "", n) for code, n in number.items()]  # codes no longer listed


def _groups(book: pd.DataFrame) -> tuple[list[_Group], bool]:
    """The rows, by wave when any row has one (in the order the waves first appear)."""
    groups: dict[str, _Group] = {}
    for record in book.to_dict("records"):
        cells = {name: _text(record.get(name)) for name in book.columns}
        source, wave = cells.get("source", ""), ""
        match = _WAVE.match(source)
        if match:
            wave = match.group("wave") or match.group("only")
            source = match.group("rest") or ""
        row = _Row(
            name=cells.get("name", ""),
            name_parts=_NAME_PARTS.findall(cells.get("name", "")),
            label=cells.get("label", ""),
            type=cells.get("type", ""),
            values=_values(cells.get("values", ""), cells.get("sav_dta_values", "")),
            source=source,
            formula=cells.get("formula", ""),
            branching=cells.get("branching", ""),
            range=cells.get("range", ""),
            missing_codes=bool(cells.get("missing_codes"))
            and not missing_apart(cells.get("missing_codes", "")),
            missing_apart=missing_apart(cells.get("missing_codes", "")),
            file_names=[
                (package, cells[column])
                for package, column in (("SPSS", "sav_name"), ("Stata", "dta_name"))
                if cells.get(column)
            ],
            numbered=bool(cells.get("sav_dta_values")),
        )
        if wave not in groups:
            heading = f"Wave {wave}" if wave else "Once per participant"
            groups[wave] = _Group(
                heading=heading, anchor=f"wave-{wave}" if wave else "once-per-participant"
            )
        groups[wave].rows.append(row)
    return list(groups.values()), any(groups)  # any(): a key other than "" (no wave)


def codebook_html(book: pd.DataFrame, *, title: str, missing_codes: dict) -> str:
    """``book`` (a codebook frame) as a standalone HTML page: the title, the date, the missing
    codes and their meaning once, then a row per variable."""
    groups, by_wave = _groups(book)
    return render_to_string(
        TEMPLATE,
        {
            "title": title,
            "generated": timezone.localdate(),
            "variables": len(book),
            "missing_codes": list(missing_codes.items()),
            "groups": groups,
            "by_wave": by_wave,
        },
    )
