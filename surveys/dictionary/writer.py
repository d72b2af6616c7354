"""Writing a study's instruments as a REDCap data dictionary.

Texts that a spreadsheet would run as a formula get a quote in front (``surveys.datasets.cells``,
CWE-1236): people open and edit dictionaries in Excel. The importer takes it off again, so an
exported dictionary re-imports to the same items. Left as REDCap writes them, so that REDCap
still reads them: branching logic and calculations (their grammar, ``surveys/logic.py``, has
fields, numbers, quoted text and round/sum/if, so nothing that can call out), a choice list
whose first code is a number (``-1, Refused | ...``: a number then a comma is no formula), and
a field annotation that starts with an action tag (``@HIDDEN``), unless it holds a ``|`` (how a
formula starts another program, DDE).
"""

import re
from collections import defaultdict

from django.db.models import F, Min

from surveys.datasets.cells import NUMBER, formula_quote
from surveys.dictionary.common import (
    ALIGNMENT,
    ANNOTATION,
    BRANCHING,
    CHOICES,
    COLUMNS,
    DEFAULT_VALIDATION,
    FIELD_TYPE,
    FORM,
    IDENTIFIER,
    LABEL,
    MATRIX_GROUP,
    MATRIX_RANKING,
    MAX,
    MIN,
    NOTE,
    QUESTION_NUMBER,
    REQUIRED,
    SECTION_HEADER,
    SINCE_LAST_TAGS,
    VALIDATION,
    VARIABLE,
    Kind,
    _in,
)
from surveys.models import InstrumentVersion, Item, Study
from surveys.selectors import study_identifier_variables
from surveys.validation import SINCE_LAST_SURVEY

ACTION_TAG = re.compile(r"@([A-Z][A-Z0-9_-]*)(?=$|[\s=(])")
# REDCap's action tags (the names, as its documentation lists them) and our own @ALERT,
# @DIARY and @MAX-/@MIN-DAYS-SINCE-LAST-SURVEY, which an annotation may start with unquoted.
# Any other "@NAME(" could be a spreadsheet function (@WEBSERVICE, @HYPERLINK) and is quoted
# like every formula-like text.
REDCAP_ACTION_TAGS = frozenset(
    [
        "ALERT",
        "APPUSERNAME-APP",
        "BARCODE-APP",
        "CALCDATE",
        "CALCTEXT",
        "CHARLIMIT",
        "DEFAULT",
        "DIARY",
        "DOWNLOAD-COUNT",
        "FORCE-MINMAX",
        "HIDDEN",
        "HIDDEN-APP",
        "HIDDEN-FORM",
        "HIDDEN-PDF",
        "HIDDEN-SURVEY",
        "HIDEBUTTON",
        "HIDECHOICE",
        "IF",
        "INLINE",
        "INLINE-PREVIEW",
        "LANGUAGE-CURRENT-FORM",
        "LANGUAGE-CURRENT-SURVEY",
        "LANGUAGE-FORCE",
        "LANGUAGE-FORCE-FORM",
        "LANGUAGE-FORCE-SURVEY",
        "LANGUAGE-SET",
        "LATITUDE",
        "LONGITUDE",
        "MAX-DAYS-SINCE-LAST-SURVEY",
        "MAXCHECKED",
        "MAXCHOICE",
        "MAXCHOICE-SURVEY-COMPLETE",
        "MIN-DAYS-SINCE-LAST-SURVEY",
        "NOMISSING",
        "NONEOFTHEABOVE",
        "NOW",
        "NOW-SERVER",
        "NOW-UTC",
        "PASSWORDMASK",
        "PLACEHOLDER",
        "PREFILL",
        "RANDOMORDER",
        "READONLY",
        "READONLY-APP",
        "READONLY-FORM",
        "READONLY-SURVEY",
        "RICHTEXT",
        "SETVALUE",
        "SHOWCHOICE",
        "SYNC-APP",
        "TODAY",
        "TODAY-SERVER",
        "TODAY-UTC",
        "USERNAME",
        "WORDLIMIT",
    ]
)
CHOICE_LIST_TYPES = ("radio", "dropdown", "checkbox")

# --- Export -------------------------------------------------------------------------------


def dictionary_export(*, study: Study, language: str | None = None) -> str:
    """The study's instruments (their current versions) as a REDCap data dictionary.

    Instruments come in the order of the first wave that uses them, then by slug; items by
    position. Texts are in ``language`` (default: the study's), falling back to English. An
    item is an identifier when it is one by the rule the exports follow
    (``selectors.study_identifier_variables``: marked in any version of any instrument), so
    the dictionary says what
    the datasets leave out.
    """
    language = language or study.default_language
    instruments = (
        study.instruments.annotate(first_wave=Min("waves__position"))
        .order_by(F("first_wave").asc(nulls_last=True), "slug")
        .only("pk", "slug")
    )
    latest: dict[int, InstrumentVersion] = {}
    for version in InstrumentVersion.objects.filter(instrument__study=study).order_by(
        "instrument_id", "number"
    ):
        latest[version.instrument_id] = version
    items: dict[int, list[Item]] = defaultdict(list)
    for item in Item.objects.filter(version__in=list(latest.values())).order_by(
        "version_id", "position"
    ):
        items[item.version_id].append(item)
    identifiers = study_identifier_variables(study_id=study.pk)

    lines = [_csv_line(COLUMNS)]
    for instrument in instruments:
        version = latest.get(instrument.pk)
        if version is None:
            continue
        for item in items[version.pk]:
            row = _item_row(item, form=instrument.slug, language=language, identifiers=identifiers)
            lines.append(_csv_line(row))
    return "".join(lines)


def _csv_line(cells) -> str:
    return ",".join(_csv_cell(cell) for cell in cells) + "\n"


def _csv_cell(value: str) -> str:
    if any(char in value for char in ' ,"\t\r\n\\'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _yes(flag) -> str:
    return "y" if flag else ""


def _item_row(item: Item, *, form: str, language: str, identifiers: frozenset[str]) -> list[str]:
    options = item.options or {}
    choices = ""
    validation = ""
    if item.kind in (Kind.TEXT, Kind.INTEGER, Kind.DECIMAL, Kind.DATE):
        field_type = "text"
        validation = options.get("validation") or DEFAULT_VALIDATION.get(item.kind, "")
    elif item.kind == Kind.NOTES:
        field_type = "notes"
    elif item.kind == Kind.SINGLE:
        field_type = "dropdown" if options.get("redcap_type") == "dropdown" else "radio"
        choices = _choices_text(item.choices, language)
    elif item.kind == Kind.MULTIPLE:
        field_type = "checkbox"
        choices = _choices_text(item.choices, language)
    elif item.kind == Kind.YESNO:
        field_type = "truefalse" if options.get("redcap_type") == "truefalse" else "yesno"
    elif item.kind == Kind.SLIDER:
        field_type = "slider"
        choices = _slider_text(options, language)
        validation = "number" if options.get("show_number") else ""
    elif item.kind == Kind.CALC:
        field_type = "calc"
        choices = item.calculation
    elif item.kind == Kind.DESCRIPTIVE:
        field_type = "descriptive"
    else:
        raise ValueError(f"{item.variable}: kind {item.kind!r} has no REDCap field type")
    if field_type in ("text", "notes", "yesno", "truefalse", "descriptive"):
        choices = options.get("redcap_choices", "")
    bounds = {MIN: item.min_value, MAX: item.max_value}
    since_last = []
    for column, tag in SINCE_LAST_TAGS.items():
        if bounds[column] == SINCE_LAST_SURVEY:  # REDCap takes a number or nothing there
            bounds[column] = ""
            since_last.append(tag)
    row = {
        VARIABLE: item.variable,
        FORM: form,
        SECTION_HEADER: _in(item.section_header, language),
        FIELD_TYPE: field_type,
        LABEL: _in(item.label, language),
        CHOICES: choices,
        NOTE: _in(item.note, language),
        VALIDATION: validation,
        MIN: bounds[MIN],
        MAX: bounds[MAX],
        IDENTIFIER: _yes(item.variable in identifiers),
        BRANCHING: item.branching,
        REQUIRED: _yes(item.required),
        ALIGNMENT: options.get("alignment", ""),
        QUESTION_NUMBER: options.get("question_number", ""),
        MATRIX_GROUP: item.matrix_group,
        MATRIX_RANKING: _yes(options.get("matrix_ranking")),
        ANNOTATION: " ".join(
            part
            for part in (
                item.annotation,
                options.get("alert") and f'@ALERT="{options["alert"]}"',
                _diary_tag(options.get("diary")),
                *since_last,
            )
            if part
        ),
    }
    return [_formula_guard(column, str(row[column] or ""), field_type) for column in COLUMNS]


def _formula_guard(column: str, text: str, field_type: str) -> str:
    """The cell as written to the file: see the module's docstring for what is left as it is
    (the importer's ``_formula_unguard`` takes the quote off every cell but logic)."""
    if column == BRANCHING or (column == CHOICES and field_type == "calc"):
        return text
    if column == CHOICES and field_type in CHOICE_LIST_TYPES:
        first_code = text.partition(",")[0].strip()
        if NUMBER.fullmatch(first_code):
            return text
    tag = ACTION_TAG.match(text) if column == ANNOTATION else None
    if tag and tag.group(1) in REDCAP_ACTION_TAGS and "|" not in text:
        return text
    return formula_quote(text)


def _diary_tag(diary: dict | None) -> str:
    """The meeting diary's prefill as an action tag: @DIARY="group=1 format=inperson days=30"."""
    if not diary:
        return ""
    parts = " ".join(f"{key}={diary[key]}" for key in ("group", "format", "days") if key in diary)
    return f'@DIARY="{parts}"'


def _choices_text(choices: list[dict], language: str) -> str:
    return " | ".join(
        f"{choice['code']}, {_in(choice.get('label'), language)}" for choice in choices
    )


def _slider_text(options: dict, language: str) -> str:
    left, middle, right = (_in(options.get(end), language) for end in ("left", "middle", "right"))
    # REDCap reads one label as the left one, two as left and right, three as all three.
    if middle:
        parts = [left, middle, right]
    elif right:
        parts = [left, right]
    else:
        parts = [left] if left else []
    return " | ".join(parts)
