"""Reading a REDCap data dictionary into instrument versions, all or nothing."""

import csv
import io
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from django.core.exceptions import ValidationError
from django.db import transaction

from surveys import logic
from surveys.datasets.cells import formula_unquote
from surveys.dictionary.common import (
    ALIGNMENT,
    ALIGNMENTS,
    ANNOTATION,
    BRANCHING,
    CHOICE_CODE,
    CHOICES,
    COLUMNS,
    DATE_VALIDATIONS,
    DATETIME_VALIDATION,
    DEFAULT_VALIDATION,
    FIELD_COLUMNS,
    FIELD_TYPE,
    FIELD_TYPES,
    FORM,
    FORM_NAME,
    IDENTIFIER,
    IMPORT_NOTE,
    ISO_DATE,
    LABEL,
    MATRIX_GROUP,
    MATRIX_RANKING,
    MAX,
    MIN,
    NOTE,
    NUMBER_VALIDATION,
    QUESTION_NUMBER,
    REFUSED_TYPES,
    REQUIRED,
    SECTION_HEADER,
    SINCE_LAST_TAGS,
    TEXT_VALIDATIONS,
    TIME_VALIDATIONS,
    VALIDATION,
    VARIABLE,
    DictionaryError,
    ImportedForm,
    Kind,
    _in,
)
from surveys.instruments import instrument_items_set, items_validate, version_items_as_dicts
from surveys.models import Instrument, InstrumentVersion, Language, Study
from surveys.validation import SINCE_LAST_SURVEY
from surveys.validators import validate_variable_name

ALERT_TAG = re.compile(r'@ALERT="([^"]*)"')
# @DIARY="group=1 format=inperson days=30": the meeting diary's prefill (surveys/diary.py).
DIARY_TAG = re.compile(r'@DIARY="([^"]*)"')
DIARY_KEYS = ("group", "format", "days")
# @MAX-DAYS-SINCE-LAST-SURVEY (or MIN): a bound REDCap's Min/Max columns cannot hold.
SINCE_LAST_TAG = {
    column: re.compile(re.escape(tag) + r"(?![-\w])") for column, tag in SINCE_LAST_TAGS.items()
}

# --- Import -------------------------------------------------------------------------------


def dictionary_import(
    *, study: Study, text: str, language: str | None = None
) -> list[InstrumentVersion]:
    """Import a REDCap data dictionary into ``study``: one instrument per form, all or nothing.

    Every row is checked before anything is written; any problem raises ``DictionaryError``
    listing all of them. Then each form's items are saved with ``instrument_items_set`` (a new
    version when the current one has responses) in one transaction. A form whose items equal its
    instrument's current version is left as it is, and so is every instrument the file does not
    name. Returns each form's current version.
    """
    return [
        form.version for form in dictionary_import_forms(study=study, text=text, language=language)
    ]


def dictionary_import_forms(
    *, study: Study, text: str, language: str | None = None
) -> list[ImportedForm]:
    """``dictionary_import``, saying for each form what happened to its instrument."""
    language = language or study.default_language
    if language not in Language.values:
        raise ValueError(f"unknown language {language!r}; expected one of {Language.values}")
    forms = _parse(text, language=language)
    results = []
    with transaction.atomic():
        for form, rows in forms.items():
            items = [row.item for row in rows]
            instrument = Instrument.objects.filter(study=study, slug=form).first()
            created = instrument is None
            if instrument is None:
                instrument = Instrument.objects.create(
                    study=study, slug=form, name=_form_title(form)
                )
            current = instrument.current_version
            stale: tuple[str, ...] = ()
            if current is not None:
                existing = version_items_as_dicts(current)
                items, stale = _keep_translations(items, existing, language=language)
                if _same_items(existing, items):
                    results.append(ImportedForm(instrument, current, "unchanged", len(items), None))
                    continue
            try:
                version = instrument_items_set(instrument=instrument, items=items, note=IMPORT_NOTE)
            except ValidationError as exc:  # the checks above should have caught it first
                raise DictionaryError(_item_errors(exc, rows)) from exc
            if created:
                outcome = "created"
            elif current is not None and version.pk == current.pk:
                outcome = "replaced"
            else:
                outcome = "new version"
            previous = current.number if current is not None else None
            results.append(ImportedForm(instrument, version, outcome, len(items), previous, stale))
    return results


def _form_title(form: str) -> str:
    title = form.replace("_", " ")
    return title[:1].upper() + title[1:]


def _same_items(current: list[dict], items: list[dict]) -> bool:
    return len(current) == len(items) and all(
        {name: old.get(name) for name in new} == new
        for old, new in zip(current, items, strict=True)
    )


def _keep_translations(
    items: list[dict], existing: list[dict], *, language: str
) -> tuple[list[dict], tuple[str, ...]]:
    """Carry over the texts in other languages of the instrument's current items.

    A dictionary holds one language. Where an item's text reads as it did (as the export wrote
    it, English fallback included), all its languages are kept; where it changed, the new text
    replaces that language's and the other languages stay (flagged as stale when a text this
    language had was reworded); a cleared text is cleared in every language.
    """
    old_items = {item["variable"]: item for item in existing}
    merged_items, stale = [], []
    for item in items:
        old = old_items.get(item["variable"])
        if old is None:
            merged_items.append(item)
            continue
        changed = []

        def merge(old_text, new_text: dict, changed=changed) -> dict:
            text = new_text.get(language, "")
            if text == _in(old_text, language):
                return dict(old_text or {})
            if not text:
                return {}
            old_text = old_text or {}
            others = {k: v for k, v in old_text.items() if k != language and v}
            # Stale only when a text this language had was reworded, not when one is added.
            changed.append(bool(others) and bool(old_text.get(language)))
            return {**others, language: text}

        merged = dict(item)
        for field in ("label", "note", "section_header"):
            merged[field] = merge(old.get(field), item[field])
        old_choices = {str(c.get("code")): c.get("label") for c in old.get("choices") or []}
        merged["choices"] = [
            {**choice, "label": merge(old_choices.get(choice["code"]), choice["label"])}
            for choice in item["choices"]
        ]
        options = dict(item["options"])
        old_options = old.get("options") or {}
        if item["kind"] == Kind.SLIDER:
            for end in ("left", "middle", "right"):
                text = merge(old_options.get(end), options.get(end, {}))
                if text:
                    options[end] = text
                else:
                    options.pop(end, None)
        merged["options"] = options
        merged_items.append(merged)
        if any(changed):
            stale.append(item["variable"])
    return merged_items, tuple(stale)


@dataclass
class _Row:
    line: int
    form: str
    field_type: str
    item: dict


def _read(text: str) -> list[tuple[int, list[str]]]:
    """The CSV records with the line each starts on (cells may hold line breaks)."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    records = []
    start = 1
    try:
        for cells in reader:
            records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DictionaryError([(start, "", f"the file cannot be read as CSV: {exc}")]) from exc
    return records


def _check_header(records: list[tuple[int, list[str]]]) -> None:
    if not records:
        raise DictionaryError([(1, "", "the file is empty; expected REDCap's 18 column header")])
    header = [cell.strip() for cell in records[0][1]]
    if header == list(COLUMNS):
        return
    errors = []
    for index, expected in enumerate(COLUMNS):
        if index >= len(header):
            errors.append(
                (1, expected, f"column {index + 1} should be {expected!r}, but the header ends")
            )
        elif header[index] != expected:
            errors.append(
                (1, expected, f"column {index + 1} should be {expected!r}, not {header[index]!r}")
            )
    for index in range(len(COLUMNS), len(header)):
        errors.append(
            (
                1,
                header[index],
                f"column {index + 1} ({header[index]!r}) is one too many: a REDCap data "
                "dictionary has exactly 18 columns",
            )
        )
    raise DictionaryError(errors)


def _parse(text: str, *, language: str) -> dict[str, list[_Row]]:
    """Rows grouped by form, each as the item fields ``instrument_items_set`` takes."""
    records = _read(text)
    _check_header(records)
    errors: list[tuple[int, str, str]] = []
    rows: list[_Row] = []
    forms: dict[str, list[_Row]] = {}
    seen: dict[tuple[str, str], int] = {}
    form_start: dict[str, int] = {}
    previous_form = None
    unusable: list[tuple[str, str]] = []  # (form, variable) of rows with an unusable type
    for line, raw in records[1:]:
        if not any(cell.strip() for cell in raw):
            continue  # spreadsheets leave blank rows behind

        def add(column: str, message: str, line: int = line) -> None:
            errors.append((line, column, message))

        if any(cell.strip() for cell in raw[len(COLUMNS) :]):
            add("", f"the row has {len(raw)} cells; a REDCap data dictionary has 18")
            continue
        cells = [cell.replace("\r\n", "\n").strip() for cell in raw[: len(COLUMNS)]]
        nul = [column for column, cell in zip(COLUMNS, cells, strict=False) if "\x00" in cell]
        if nul:  # PostgreSQL stores no NUL in text or JSON: a cell with one is refused
            for column in nul:
                add(column, "the cell holds a NUL character (\\0); remove it and upload again")
            continue
        values = dict(zip(COLUMNS, cells + [""] * (len(COLUMNS) - len(cells)), strict=True))
        values = _formula_unguard(values)

        form = values[FORM]
        if not form:
            add(FORM, "the form name is empty")
        else:
            if not FORM_NAME.fullmatch(form):
                add(
                    FORM,
                    f"{form!r} is not a usable form name: use at most 50 lower-case letters, "
                    "digits and _",
                )
            if form != previous_form and form in form_start:
                add(
                    FORM,
                    f"the fields of form {form!r} (from line {form_start[form]}) are split by "
                    f"another form; keep a form's rows together",
                )
            form_start.setdefault(form, line)
            previous_form = form

        variable = values[VARIABLE]
        if not variable:
            add(VARIABLE, "the variable name is empty")
        else:
            try:
                validate_variable_name(variable)
            except ValidationError as exc:
                add(VARIABLE, f"{variable!r} is not a valid variable name. {exc.messages[0]}")
            if (form, variable) in seen:
                add(
                    VARIABLE,
                    f"{variable} is already a field of form {form!r} on line "
                    f"{seen[(form, variable)]}",
                )
            seen.setdefault((form, variable), line)

        item = _row_item(values, add=add, language=language)
        if item is None:
            unusable.append((form, variable))
        else:
            row = _Row(line=line, form=form, field_type=values[FIELD_TYPE].lower(), item=item)
            rows.append(row)
            forms.setdefault(form, []).append(row)

    errors.extend(_logic_errors(rows, unusable=unusable))
    errors.extend(_matrix_errors(rows))
    if not errors:
        for form_rows in forms.values():
            try:
                items_validate([row.item for row in form_rows])
            except ValidationError as exc:
                errors.extend(_item_errors(exc, form_rows))
    if errors:
        raise DictionaryError(errors)
    return forms


def _formula_unguard(values: dict[str, str]) -> dict[str, str]:
    """The cells without the quote the exporter puts before a text a spreadsheet would run as a
    formula (``surveys/dictionary/writer.py``); logic never gets one."""
    as_written = {BRANCHING, CHOICES} if values[FIELD_TYPE].lower() == "calc" else {BRANCHING}
    return {
        column: text if column in as_written else formula_unquote(text)
        for column, text in values.items()
    }


def _row_item(values: dict[str, str], *, add: Callable[[str, str], None], language: str):
    """One row as item fields, or None when its field type is unusable."""
    variable = values[VARIABLE] or "this field"
    field_type = values[FIELD_TYPE].lower()
    validation = values[VALIDATION]
    choices_text = values[CHOICES]
    minimum, maximum = values[MIN], values[MAX]
    if field_type in REFUSED_TYPES:  # a signature is a file field with validation "signature"
        key = "signature" if validation == "signature" else field_type
        add(FIELD_TYPE, f"{variable}: {REFUSED_TYPES[key]}")
        return None
    if field_type not in FIELD_TYPES:
        shown = repr(values[FIELD_TYPE]) if field_type else "empty"
        add(
            FIELD_TYPE,
            f"{variable}: the field type is {shown}; expected one of " + ", ".join(FIELD_TYPES),
        )
        return None

    def text(value: str) -> dict:
        return {language: value} if value else {}

    options: dict = {}
    item = {
        "variable": values[VARIABLE],
        "kind": "",
        "label": text(values[LABEL]),
        "note": text(values[NOTE]),
        "section_header": text(values[SECTION_HEADER]),
        "choices": [],
        "required": _flag(values, REQUIRED, add, variable),
        "min_value": minimum,
        "max_value": maximum,
        "options": options,
        "branching": values[BRANCHING],
        "calculation": "",
        "matrix_group": values[MATRIX_GROUP],
        "identifier": _flag(values, IDENTIFIER, add, variable),
        "annotation": values[ANNOTATION],
    }
    # @ALERT="expression" in the annotation: an answer that shows crisis resources and alerts
    # the study team (surveys/safety.py); checked below like branching logic.
    alert = ALERT_TAG.search(item["annotation"])
    if alert:
        options["alert"] = alert.group(1)
        item["annotation"] = ALERT_TAG.sub("", item["annotation"]).strip()
    diary = DIARY_TAG.search(item["annotation"])
    if diary:
        options["diary"] = _diary_option(diary.group(1), add=add, variable=variable)
        item["annotation"] = DIARY_TAG.sub("", item["annotation"]).strip()
    for column, found in SINCE_LAST_TAG.items():
        tag = SINCE_LAST_TAGS[column]
        if not found.search(item["annotation"]):
            continue
        item["annotation"] = found.sub("", item["annotation"]).strip()
        bound = "min_value" if column == MIN else "max_value"
        if item[bound] and item[bound] != SINCE_LAST_SURVEY:
            add(column, f"{variable}: {tag} and a {column} of {item[bound]!r}: give one of them")
        item[bound] = SINCE_LAST_SURVEY
    minimum, maximum = item["min_value"], item["max_value"]
    if not values[LABEL]:
        add(LABEL, f"{variable}: the field label is empty")

    bounded = False  # whether Text Validation Min/Max mean anything for this field
    if field_type == "text":
        kind = _kind_for_validation(validation)
        if kind is None:
            add(VALIDATION, f"{variable}: unknown text validation type {validation!r}")
            kind = Kind.TEXT
        elif validation and validation != DEFAULT_VALIDATION.get(kind):
            options["validation"] = validation
        bounded = kind != Kind.TEXT or bool(
            DATETIME_VALIDATION.fullmatch(validation) or validation in TIME_VALIDATIONS
        )
    elif field_type == "slider":
        kind = Kind.SLIDER
        bounded = True
        if validation == "number":
            options["show_number"] = True
        elif validation:
            add(
                VALIDATION,
                f"{variable}: a slider takes 'number' (show the number) or nothing here, "
                f"not {validation!r}",
            )
        labels = [part.strip() for part in choices_text.split("|")] if choices_text else []
        if len(labels) > 3:
            add(CHOICES, f"{variable}: a slider has at most 3 labels: left | middle | right")
        ends = {1: ["left"], 2: ["left", "right"]}.get(len(labels), ["left", "middle", "right"])
        for end, label in zip(ends, labels, strict=False):
            if label:
                options[end] = {language: label}
    else:
        kind = {
            "notes": Kind.NOTES,
            "radio": Kind.SINGLE,
            "dropdown": Kind.SINGLE,
            "checkbox": Kind.MULTIPLE,
            "yesno": Kind.YESNO,
            "truefalse": Kind.YESNO,
            "calc": Kind.CALC,
            "descriptive": Kind.DESCRIPTIVE,
        }[field_type]
        if validation:
            add(
                VALIDATION,
                f"{variable}: only text fields and sliders take a validation type, "
                f"not a {field_type} field",
            )
    item["kind"] = kind

    if field_type in ("dropdown", "truefalse"):
        options["redcap_type"] = field_type
    if field_type in ("radio", "dropdown", "checkbox"):
        item["choices"] = _choices(
            choices_text,
            add=add,
            variable=variable,
            checkbox=field_type == "checkbox",
            language=language,
        )
    elif field_type == "calc":
        item["calculation"] = choices_text
        if not choices_text:
            add(CHOICES, f"{variable}: a calc field needs its formula in this column")
    elif field_type != "slider" and choices_text:
        options["redcap_choices"] = choices_text

    if not bounded:
        for column, value in ((MIN, minimum), (MAX, maximum)):
            if value:
                add(
                    column,
                    f"{variable}: a minimum or maximum needs a number, date or time validation "
                    f"or a slider, and this {field_type} field has none",
                )
    else:
        if kind == Kind.DECIMAL and validation.endswith("_comma_decimal"):
            # 0,5 as REDCap writes a comma-decimal field's bounds. Only there: in a plain
            # number field "1,000" may mean a thousand, and is refused rather than read as 1.
            minimum, maximum = _decimal_bound(minimum), _decimal_bound(maximum)
            item["min_value"], item["max_value"] = minimum, maximum
        _check_bounds(kind, minimum, maximum, add=add, variable=variable)

    alignment = values[ALIGNMENT]
    if alignment:
        if alignment.upper() in ALIGNMENTS:
            options["alignment"] = alignment.upper()
        else:
            add(
                ALIGNMENT,
                f"{variable}: custom alignment is one of LV, LH, RV, RH, not {alignment!r}",
            )
    if values[QUESTION_NUMBER]:
        options["question_number"] = values[QUESTION_NUMBER]
    if _flag(values, MATRIX_RANKING, add, variable):
        options["matrix_ranking"] = True
        if not values[MATRIX_GROUP]:
            add(MATRIX_RANKING, f"{variable}: matrix ranking needs a matrix group name")
    return item


def _diary_option(text: str, *, add: Callable[[str, str], None], variable: str) -> dict:
    """``group=1 format=inperson days=30`` as {"group": "1", "format": "inperson", "days": 30}."""
    option: dict = {}
    for part in text.split():
        key, _, value = part.partition("=")
        if key not in DIARY_KEYS or not value or key in option:
            add(
                ANNOTATION,
                f"{variable}: @DIARY takes group=CODE, format=CODE and days=N, not {part!r}",
            )
        elif key == "days":
            if not value.isdecimal() or int(value) < 1:
                add(ANNOTATION, f"{variable}: @DIARY days is a whole number of days, not {value!r}")
            else:
                option["days"] = int(value)
        else:
            option[key] = value
    if "days" not in option:
        add(ANNOTATION, f"{variable}: @DIARY needs days=N (how many days of the log to count)")
    return option


def _flag(
    values: dict[str, str], column: str, add: Callable[[str, str], None], variable: str
) -> bool:
    value = values[column].lower()
    if value not in ("", "y", "n"):
        add(column, f"{variable}: write y or leave it empty, not {values[column]!r}")
    return value == "y"


def _kind_for_validation(validation: str) -> str | None:
    if not validation:
        return Kind.TEXT
    if validation == "integer":
        return Kind.INTEGER
    if NUMBER_VALIDATION.fullmatch(validation):
        return Kind.DECIMAL
    if validation in DATE_VALIDATIONS:
        return Kind.DATE
    if (
        DATETIME_VALIDATION.fullmatch(validation)
        or validation in TIME_VALIDATIONS
        or validation in TEXT_VALIDATIONS
    ):
        return Kind.TEXT
    return None


def _choices(
    text: str, *, add: Callable[[str, str], None], variable: str, checkbox: bool, language: str
) -> list[dict]:
    if not text:
        add(CHOICES, f"{variable}: a radio, dropdown or checkbox field needs choices")
        return []
    choices = []
    codes: set[str] = set()
    for part in text.split("|"):
        part = part.strip()
        code, comma, label = (piece.strip() for piece in part.partition(","))
        if not comma or not code or not label:
            add(CHOICES, f"{variable}: {part!r} is not a 'code, label' pair")
            continue
        if not CHOICE_CODE.fullmatch(code):
            where = f" so [{variable}({code})] cannot name it" if checkbox else ""
            add(
                CHOICES,
                f"{variable}: choice code {code!r} may hold only letters, digits, _ . and -{where}",
            )
        if code in codes:
            add(CHOICES, f"{variable}: choice code {code!r} is used twice")
        codes.add(code)
        choices.append({"code": code, "label": {language: label}})
    return choices


def _decimal_bound(value: str) -> str:
    """A comma-decimal field's Min or Max with the point the items store: "0,5" is "0.5", as
    a participant's 0,5 is (``logic.typed_number``); anything else is left for the check."""
    try:
        typed = logic.typed_number(value.strip(), decimal=True)
    except logic.TypedNumberError:
        return value
    return typed if logic.is_numeric(typed) else value


def _check_bounds(
    kind: str, minimum: str, maximum: str, *, add: Callable[[str, str], None], variable: str
) -> None:
    if kind in (Kind.INTEGER, Kind.DECIMAL, Kind.SLIDER):
        for column, value in ((MIN, minimum), (MAX, maximum)):
            if value == SINCE_LAST_SURVEY and kind != Kind.SLIDER:
                continue  # worked out for each participant when they answer
            if value and "," in value and logic.is_numeric(value.replace(",", "")):
                add(
                    column,
                    f"{variable}: {value!r} is not a number: write it without a thousands "
                    "separator and with a point for decimals (a comma decimal needs a "
                    "number_comma_decimal validation)",
                )
            elif value and not logic.is_numeric(value):
                add(column, f"{variable}: {value!r} is not a number")
        numbers = logic.is_numeric(minimum) and logic.is_numeric(maximum)
        if numbers and float(minimum) > float(maximum):
            add(MIN, f"{variable}: the minimum {minimum} is above the maximum {maximum}")
        return
    if kind == Kind.DATE:
        dates = {}
        for column, value in ((MIN, minimum), (MAX, maximum)):
            if not value or value == "today":
                continue
            try:
                if not ISO_DATE.fullmatch(value):
                    raise ValueError
                dates[column] = date.fromisoformat(value)
            except ValueError:
                add(column, f"{variable}: {value!r} is not a date written YYYY-MM-DD or 'today'")
        if len(dates) == 2 and dates[MIN] > dates[MAX]:
            add(MIN, f"{variable}: the minimum {minimum} is after the maximum {maximum}")


def _logic_errors(
    rows: list[_Row], *, unusable: list[tuple[str, str]]
) -> list[tuple[int, str, str]]:
    """Branching and formulas: syntax, and fields that exist (in the file, and in the form).

    Fields of an unusable type are already reported; logic naming them is not reported again.
    """
    errors = []
    all_kinds: dict[str, str] = {}
    form_of: dict[str, str] = {}
    form_kinds: dict[str, dict[str, str]] = defaultdict(dict)
    codes: dict[tuple[str, str], set[str]] = {}
    for form, variable in unusable:
        all_kinds.setdefault(variable, "")
        form_of.setdefault(variable, form)
        form_kinds[form].setdefault(variable, "")
    for row in rows:
        variable = row.item["variable"]
        all_kinds.setdefault(variable, row.item["kind"])
        form_of.setdefault(variable, row.form)
        form_kinds[row.form].setdefault(variable, row.item["kind"])
        codes.setdefault((row.form, variable), {c["code"] for c in row.item["choices"]})
    for row in rows:
        variable = row.item["variable"]
        own = form_kinds[row.form]
        checked = (
            ("branching", BRANCHING, row.item["branching"]),
            ("calculation", CHOICES, row.item["calculation"]),
            ("alert", ANNOTATION, row.item["options"].get("alert", "")),
        )
        for _field, column, text in checked:
            if not text:
                continue
            try:
                logic.check(text, kinds={**all_kinds, **own})
            except logic.LogicError as exc:
                errors.append((row.line, column, f"{variable}: {exc} in {text!r}"))
                continue
            for name, code, position in logic.fields_used(logic.parse(text)):
                where = f"at character {position + 1} of {text!r}"
                if name not in own:
                    errors.append(
                        (
                            row.line,
                            column,
                            f"{variable}: [{name}] ({where}) is a field of form "
                            f"{form_of[name]!r}; branching and calculations can only use "
                            f"fields of their own form ({row.form!r})",
                        )
                    )
                elif (
                    code is not None
                    and codes[(row.form, name)]
                    and (code not in codes[(row.form, name)])
                ):
                    errors.append(
                        (
                            row.line,
                            column,
                            f"{variable}: [{name}({code})] ({where}) names a choice {name} "
                            f"does not have",
                        )
                    )
    return errors


def _matrix_errors(rows: list[_Row]) -> list[tuple[int, str, str]]:
    """REDCap's rules for a matrix: adjacent rows of one form, all radio or all checkbox, with
    the same choices."""
    errors = []
    first: dict[tuple[str, str], _Row] = {}
    previous: _Row | None = None
    for row in rows:
        group = row.item["matrix_group"]
        if group:
            variable = row.item["variable"]
            key = (row.form, group)
            if row.field_type not in ("radio", "checkbox"):
                errors.append(
                    (
                        row.line,
                        FIELD_TYPE,
                        f"{variable}: a field in matrix group {group!r} must be radio or "
                        f"checkbox, not {row.field_type}",
                    )
                )
            if key not in first:
                first[key] = row
            else:
                head = first[key]
                if (
                    previous is None
                    or previous.form != row.form
                    or previous.item["matrix_group"] != group
                ):
                    errors.append(
                        (
                            row.line,
                            MATRIX_GROUP,
                            f"{variable}: the fields of matrix group {group!r} must be on "
                            "adjacent rows",
                        )
                    )
                if row.field_type != head.field_type or row.item["choices"] != head.item["choices"]:
                    errors.append(
                        (
                            row.line,
                            MATRIX_GROUP,
                            f"{variable}: every field of matrix group {group!r} has the field "
                            f"type and choices of its first field ({head.item['variable']}, "
                            f"line {head.line})",
                        )
                    )
        previous = row
    return errors


def _item_errors(exc: ValidationError, rows: list[_Row]) -> list[tuple[int, str, str]]:
    """``items_validate``'s errors (keyed by item index) as (line, column, message)."""
    errors = []
    by_item = exc.message_dict if hasattr(exc, "error_dict") else {"": exc.messages}
    for key, messages in by_item.items():
        try:
            row = rows[int(key)]
        except (ValueError, IndexError):
            for message in messages:
                errors.append((rows[0].line if rows else 1, "", message))
            continue
        for message in messages:
            parts = message.split(": ")
            column = FIELD_COLUMNS.get(parts[1], "") if len(parts) > 2 else ""
            errors.append((row.line, column, message))
    return errors
