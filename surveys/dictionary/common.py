"""Shared definitions of the REDCap data dictionary format: columns, types, errors."""

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError

from surveys.models import Instrument, InstrumentVersion, Item

COLUMNS: tuple[str, ...] = (
    "Variable / Field Name",
    "Form Name",
    "Section Header",
    "Field Type",
    "Field Label",
    "Choices, Calculations, OR Slider Labels",
    "Field Note",
    "Text Validation Type OR Show Slider Number",
    "Text Validation Min",
    "Text Validation Max",
    "Identifier?",
    "Branching Logic (Show field only if...)",
    "Required Field?",
    "Custom Alignment",
    "Question Number (surveys only)",
    "Matrix Group Name",
    "Matrix Ranking?",
    "Field Annotation",
)
(
    VARIABLE,
    FORM,
    SECTION_HEADER,
    FIELD_TYPE,
    LABEL,
    CHOICES,
    NOTE,
    VALIDATION,
    MIN,
    MAX,
    IDENTIFIER,
    BRANCHING,
    REQUIRED,
    ALIGNMENT,
    QUESTION_NUMBER,
    MATRIX_GROUP,
    MATRIX_RANKING,
    ANNOTATION,
) = COLUMNS

IMPORT_NOTE = "Imported from a REDCap data dictionary"

Kind = Item.Kind
# The validation a kind implies when an item (e.g. of the built-in battery) names none.
DEFAULT_VALIDATION = {Kind.INTEGER: "integer", Kind.DECIMAL: "number", Kind.DATE: "date_ymd"}
NUMBER_VALIDATION = re.compile(r"number(_\d+dp)?(_comma_decimal)?")
DATE_VALIDATIONS = {"date_ymd", "date_mdy", "date_dmy"}
DATETIME_VALIDATION = re.compile(r"datetime(_seconds)?_(ymd|mdy|dmy)")
TIME_VALIDATIONS = {"time", "time_mm_ss", "time_hh_mm_ss"}
TEXT_VALIDATIONS = {
    "alpha_only",
    "email",
    "mrn_10d",
    "mrn_generic",
    "phone",
    "phone_australia",
    "postalcode_australia",
    "postalcode_canada",
    "postalcode_french",
    "postalcode_germany",
    "ssn",
    "vmrn",
    "zipcode",
}
FIELD_TYPES = (
    "text",
    "notes",
    "radio",
    "dropdown",
    "checkbox",
    "yesno",
    "truefalse",
    "slider",
    "calc",
    "descriptive",
)
REFUSED_TYPES = {
    "file": "file upload fields are not supported: the app does not store uploaded files",
    "signature": "signature fields are not supported: the app does not store uploaded files",
    "sql": "sql fields are not supported: the app does not run SQL from a dictionary",
}
ALIGNMENTS = {"LV", "LH", "RV", "RH"}
CHOICE_CODE = re.compile(r"[A-Za-z0-9_.\-]+")  # what [var(code)] accepts in logic.py
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
FORM_NAME = re.compile(r"[-a-zA-Z0-9_]{1,50}")  # it becomes the instrument's slug
# A number field's bound of ``days_since_last_survey`` (worked out for each participant when
# they answer) as an action tag in the annotation: REDCap refuses a Min or Max that is not a
# number, so the export leaves the column empty and writes the tag; the import reads either.
SINCE_LAST_TAGS = {MIN: "@MIN-DAYS-SINCE-LAST-SURVEY", MAX: "@MAX-DAYS-SINCE-LAST-SURVEY"}

# Item fields the importer fills, and the column each comes from (for error messages).
FIELD_COLUMNS = {
    "variable": VARIABLE,
    "kind": FIELD_TYPE,
    "label": LABEL,
    "note": NOTE,
    "section_header": SECTION_HEADER,
    "choices": CHOICES,
    "required": REQUIRED,
    "min_value": MIN,
    "max_value": MAX,
    "options": VALIDATION,
    "branching": BRANCHING,
    "calculation": CHOICES,
    "matrix_group": MATRIX_GROUP,
    "identifier": IDENTIFIER,
    "annotation": ANNOTATION,
}


class DictionaryError(ValidationError):
    """Everything wrong with a data dictionary, as (line, column, message) triples.

    Line 1 is the header; a line is where a row starts in the file. ``column`` is one of
    ``COLUMNS`` (or "" for a problem with the row as a whole).
    """

    def __init__(self, errors: list[tuple[int, str, str]]):
        order = {name: index for index, name in enumerate(COLUMNS)}
        self.errors = sorted(errors, key=lambda error: (error[0], order.get(error[1], -1)))
        super().__init__([_format_error(*error) for error in self.errors])

    def __str__(self) -> str:
        count = len(self.errors)
        heading = f"The data dictionary has {count} problem{'s' if count != 1 else ''}:"
        return "\n".join([heading, *self.messages])


def _format_error(line: int, column: str, message: str) -> str:
    return f"line {line}, column {column}: {message}" if column else f"line {line}: {message}"


@dataclass(frozen=True)
class ImportedForm:
    """What importing one form did to its instrument."""

    instrument: Instrument
    version: InstrumentVersion
    # "created" (a new instrument), "new version" (the current one has responses, or there was
    # none), "replaced" (the current version, without responses, rewritten in place) or
    # "unchanged" (the dictionary gives the current version's items exactly).
    outcome: str
    items: int
    previous_number: int | None
    # Variables whose text changed in the import's language while their texts in other
    # languages were kept as they were: translations to check.
    stale_translations: tuple[str, ...] = ()


def _in(texts, language: str) -> str:
    if isinstance(texts, str):
        return texts
    if not texts:
        return ""
    return texts.get(language) or texts.get("en", "")
