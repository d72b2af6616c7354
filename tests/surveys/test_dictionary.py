import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from recovery.services import study_create_from_template
from surveys.dictionary import (
    COLUMNS,
    DictionaryError,
    dictionary_export,
    dictionary_import,
    dictionary_import_forms,
)
from surveys.dictionary import reader as dictionary_reader
from surveys.models import Instrument, InstrumentVersion, Item, Response, Study, WaveInstrument
from surveys.validation import SINCE_LAST_SURVEY, answers_clean
from tests.conftest import TEST_SITES

FIXTURES = Path(__file__).parent / "fixtures"
REDCAP = FIXTURES / "redcap_dictionary.csv"
REDCAP_WITH_FILE = FIXTURES / "redcap_dictionary_with_file.csv"
BRANCHING = "Branching Logic (Show field only if...)"


def _fixture(path: Path = REDCAP) -> str:
    return path.read_text(encoding="utf-8")


@pytest.fixture
def fresh_study(db):
    """A study made directly with the models: no instruments, no waves."""
    return Study.objects.create(slug="fresh", name="Fresh study")


def _counts(study) -> tuple[int, int, int]:
    return (
        Instrument.objects.filter(study=study).count(),
        InstrumentVersion.objects.filter(instrument__study=study).count(),
        Item.objects.filter(version__instrument__study=study).count(),
    )


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _with_row(text: str, variable: str, form: str | None = None, **changes: str) -> str:
    """The dictionary with some cells of one field's row changed."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    for row in rows[1:]:
        if row[0] == variable and form in (None, row[1]):
            for column, value in changes.items():
                row[header.index(column)] = value
            break
    else:
        raise AssertionError(f"no row for {variable}")
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _header() -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(COLUMNS)
    return out.getvalue()


def _line(**cells: str) -> str:
    names = {
        "variable": "Variable / Field Name",
        "form": "Form Name",
        "type": "Field Type",
        "label": "Field Label",
        "choices": "Choices, Calculations, OR Slider Labels",
        "validation": "Text Validation Type OR Show Slider Number",
        "min": "Text Validation Min",
        "max": "Text Validation Max",
        "branching": BRANCHING,
        "matrix": "Matrix Group Name",
        "annotation": "Field Annotation",
    }
    row = dict.fromkeys(COLUMNS, "")
    row.update({"Form Name": "survey", "Field Type": "text", "Field Label": "A question"})
    row.update({names[key]: value for key, value in cells.items()})
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow([row[column] for column in COLUMNS])
    return out.getvalue()


# --- Columns and export -------------------------------------------------------------------


def test_columns_are_redcaps_eighteen_in_redcaps_order():
    assert list(COLUMNS) == [
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
    ]


def _forms_in_wave_order(study) -> list[str]:
    slugs = WaveInstrument.objects.filter(wave__study=study).order_by("wave__position")
    return list(dict.fromkeys(slugs.values_list("instrument__slug", flat=True)))


def test_battery_export_reads_back_as_a_redcap_dictionary(study):
    text = dictionary_export(study=study)
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(COLUMNS)
    items = Item.objects.filter(version__instrument__study=study)
    assert len(frame) == items.count()
    # Forms in the order of their first wave, each form's rows together and in item order.
    forms = frame["Form Name"].tolist()
    assert list(dict.fromkeys(forms)) == _forms_in_wave_order(study)
    assert list(dict.fromkeys(forms))[:2] == ["baseline", "followup"]
    for slug in dict.fromkeys(forms):
        variables = list(
            items.filter(version__instrument__slug=slug)
            .order_by("position")
            .values_list("variable", flat=True)
        )
        assert frame.loc[frame["Form Name"] == slug, "Variable / Field Name"].tolist() == variables

    rows = frame.set_index(["Form Name", "Variable / Field Name"])
    age = rows.loc[("baseline", "age")]
    assert age["Field Type"] == "text"
    assert age["Text Validation Type OR Show Slider Number"] == "integer"
    assert (age["Text Validation Min"], age["Text Validation Max"]) == ("18", "100")
    assert age["Required Field?"] == "y"
    assert age["Field Label"] == "How old are you, in years?"
    gender = rows.loc[("baseline", "gender")]
    assert gender["Field Type"] == "radio"
    assert gender["Choices, Calculations, OR Slider Labels"] == (
        "1, Woman | 2, Man | 3, Non-binary or another gender | 4, Prefer not to say"
    )
    craving = rows.loc[("followup", "craving")]
    assert craving["Field Type"] == "slider"
    assert craving["Choices, Calculations, OR Slider Labels"] == (
        "No urge at all | The strongest urge I can imagine"
    )
    assert (craving["Text Validation Min"], craving["Text Validation Max"]) == ("0", "10")
    fellowships = rows.loc[("followup", "fellowships")]
    assert fellowships["Field Type"] == "checkbox"
    assert fellowships[BRANCHING] == "[attended_any] = '1'"
    assert rows.loc[("followup", "home_group")]["Field Type"] == "yesno"
    assert rows.loc[("followup", "mtg_na_inperson")][BRANCHING] == "[fellowships(1)] = '1'"


def test_export_quotes_cells_the_way_redcap_does(study):
    lines = dictionary_export(study=study).split("\n")
    assert lines[0] == REDCAP.read_text(encoding="utf-8").split("\n")[0]
    assert lines[1] == 'age,baseline,,text,"How old are you, in years?",,,integer,18,100,,,y,,,,,'
    assert lines[-1] == ""  # every row ends with a line break, the last one too


def test_export_uses_the_requested_language_and_falls_back_to_english(study):
    item = Item.objects.get(version__instrument__slug="baseline", variable="gender")
    item.label = {"en": "Which best describes your gender?"}
    item.save(update_fields=["label"])
    spanish = {
        row["Variable / Field Name"]: row
        for row in _rows(dictionary_export(study=study, language="es"))
    }
    assert spanish["age"]["Field Label"] == "¿Cuántos años tiene?"
    assert spanish["gender"]["Field Label"] == "Which best describes your gender?"
    assert spanish["gender"]["Choices, Calculations, OR Slider Labels"].startswith("1, Mujer | ")


# --- Round trips --------------------------------------------------------------------------


def _english_only(values: dict) -> dict:
    """An item's fields as a dictionary in English carries them."""

    def en(text):
        return {"en": text["en"]} if text.get("en") else {}

    values = dict(values)
    for field in ("label", "note", "section_header"):
        values[field] = en(values[field])
    values["choices"] = [{**c, "label": en(c["label"])} for c in values["choices"]]
    values["options"] = {
        key: en(value) if key in ("left", "middle", "right") else value
        for key, value in values["options"].items()
    }
    return values


def test_battery_round_trip_is_exact(study):
    exported = dictionary_export(study=study)
    # A second template study whose instruments (and waves) exist but have no version yet.
    twin = study_create_from_template(slug="twin", name="Twin", sites=TEST_SITES)
    InstrumentVersion.objects.filter(instrument__study=twin).delete()

    forms = dictionary_import_forms(study=twin, text=exported)

    assert [(f.instrument.slug, f.outcome, f.version.number) for f in forms] == [
        (slug, "new version", 1) for slug in _forms_in_wave_order(study)
    ]
    assert dictionary_export(study=twin) == exported
    # Not only the text: the items come back as the battery made them (in English).
    fields = [f.name for f in Item._meta.fields if f.name not in ("id", "version")]
    original = Item.objects.filter(version__instrument__study=study).order_by(
        "version__instrument__slug", "position"
    )
    copied = Item.objects.filter(version__instrument__study=twin).order_by(
        "version__instrument__slug", "position"
    )
    assert [_english_only(values) for values in original.values(*fields)] == list(
        copied.values(*fields)
    )


def test_reimporting_the_battery_export_keeps_every_language_and_version(study):
    exported = dictionary_export(study=study)
    before = list(Item.objects.filter(version__instrument__study=study).values())
    forms = dictionary_import_forms(study=study, text=exported)
    assert [(f.instrument.slug, f.outcome, f.version.number) for f in forms] == [
        (slug, "unchanged", 1) for slug in _forms_in_wave_order(study)
    ]
    assert list(Item.objects.filter(version__instrument__study=study).values()) == before
    age = Item.objects.get(version__instrument__study=study, variable="age")
    assert age.label["es"] == "¿Cuántos años tiene?"


def test_a_spanish_dictionary_keeps_the_english_texts(study):
    gender = Item.objects.get(version__instrument__study=study, variable="gender")
    gender.label = {"en": "Which best describes your gender?"}  # not translated yet
    gender.save(update_fields=["label"])
    spanish = dictionary_export(study=study, language="es")
    changed = _with_row(spanish, "age", **{"Field Label": "¿Qué edad tiene?"})
    changed = _with_row(changed, "gender", **{"Field Label": "¿Cuál es su género?"})
    forms = {
        f.instrument.slug: f
        for f in dictionary_import_forms(study=study, text=changed, language="es")
    }
    assert forms["baseline"].outcome == "replaced"
    assert forms["baseline"].stale_translations == ("age",)
    assert forms["followup"].outcome == "unchanged"
    age = Item.objects.get(version__instrument__study=study, variable="age")
    assert age.label == {"en": "How old are you, in years?", "es": "¿Qué edad tiene?"}
    gender = Item.objects.get(version__instrument__study=study, variable="gender")
    assert gender.label == {"en": "Which best describes your gender?", "es": "¿Cuál es su género?"}
    assert gender.choices[0]["label"] == {"en": "Woman", "es": "Mujer"}


def test_redcap_dictionary_round_trip_is_exact(fresh_study):
    original = _fixture()
    dictionary_import(study=fresh_study, text=original)
    exported = dictionary_export(study=fresh_study)
    # Written back exactly as REDCap writes it, quoting included.
    assert exported == original
    again = Study.objects.create(slug="again", name="Again")
    dictionary_import(study=again, text=exported)
    assert dictionary_export(study=again) == exported


def test_a_bom_and_windows_line_ends_are_accepted(fresh_study):
    original = _fixture()
    dictionary_import(study=fresh_study, text="\ufeff" + original.replace("\n", "\r\n"))
    assert dictionary_export(study=fresh_study) == original


# --- What a REDCap dictionary becomes -----------------------------------------------------


def test_redcap_dictionary_imports_as_runnable_items(fresh_study):
    versions = dictionary_import(study=fresh_study, text=_fixture())
    assert [(v.instrument.slug, v.instrument.name, v.number) for v in versions] == [
        ("enrolment", "Enrolment", 1),
        ("monthly_checkin", "Monthly checkin", 1),
    ]
    items = {
        item.variable: item for item in Item.objects.filter(version__instrument__study=fresh_study)
    }
    assert len(items) == 28
    kinds = {variable: item.kind for variable, item in items.items()}
    assert kinds["record_id"] == "text"
    assert kinds["email"] == "text" and items["email"].options == {"validation": "email"}
    assert kinds["age_years"] == "integer" and items["age_years"].options == {}
    assert (items["age_years"].min_value, items["age_years"].max_value) == ("18", "99")
    assert kinds["work_hours"] == "decimal"
    assert items["work_hours"].options == {"validation": "number_1dp"}
    assert kinds["birth_date"] == "date"
    assert (items["birth_date"].min_value, items["birth_date"].max_value) == ("1920-01-01", "today")
    assert kinds["recovery_intro"] == "descriptive"
    assert items["recovery_intro"].label["en"].count("\n") == 1
    assert items["recovery_intro"].section_header == {"en": "Your recovery so far"}
    assert kinds["main_substance"] == "single"
    assert items["main_substance"].options == {"redcap_type": "dropdown"}
    assert kinds["treatment_kind"] == "single"
    assert items["treatment_kind"].choices == [
        {"code": "1", "label": {"en": "Residential"}},
        {"code": "2", "label": {"en": "Outpatient"}},
        {"code": "3", "label": {"en": "Medication only"}},
    ]
    assert items["treatment_kind"].branching == "[in_treatment] = '1'"
    assert items["treatment_kind"].options == {"alignment": "LH"}
    assert kinds["groups_tried"] == "multiple"
    assert [c["code"] for c in items["groups_tried"].choices] == [
        "twelve_step",
        "smart",
        "dharma",
        "other",
    ]
    assert items["other_group"].branching == "[groups_tried(other)] = '1'"
    assert kinds["in_treatment"] == "yesno" and items["in_treatment"].options == {"alignment": "RH"}
    assert kinds["ready_change"] == "yesno"
    assert items["ready_change"].options == {"redcap_type": "truefalse"}
    assert kinds["confidence"] == "slider"
    assert items["confidence"].options == {
        "show_number": True,
        "left": {"en": "Not sure at all"},
        "middle": {"en": "Fairly sure"},
        "right": {"en": "Completely sure"},
    }
    assert items["craving_week"].options == {
        "left": {"en": "No urge"},
        "right": {"en": "The strongest urge"},
        "question_number": "5",
    }
    assert kinds["staff_notes"] == "notes"
    assert items["staff_notes"].annotation == "@HIDDEN-SURVEY"
    assert items["staff_notes"].note == {"en": "Seen by staff only"}
    assert kinds["feelings_score"] == "calc"
    assert items["feelings_score"].calculation == (
        "round(sum([feel_calm], [feel_hopeful], [feel_connected]) / 3, 1)"
    )
    assert items["any_use"].calculation == "if([days_used] > 0, 1, 0)"
    matrix = [v for v, item in items.items() if item.matrix_group == "feel_matrix"]
    assert matrix == ["feel_calm", "feel_hopeful", "feel_connected"]
    assert all(items[v].options.get("matrix_ranking") for v in matrix)
    assert not any(
        items[v].options.get("matrix_ranking")
        for v in ("support_family", "support_friends", "support_group")
    )
    assert items["feel_calm"].choices == items["feel_connected"].choices
    assert {v for v, item in items.items() if item.identifier} == {
        "first_name",
        "email",
        "birth_date",
    }
    assert {v for v, item in items.items() if item.required} == {
        "first_name",
        "birth_date",
        "age_years",
        "main_substance",
        "in_treatment",
        "treatment_kind",
        "checkin_date",
        "meetings_month",
        "craving_week",
        "days_used",
    }
    assert items["checkin_date"].options == {"question_number": "1"}
    assert items["checkin_date"].annotation == "@TODAY"
    positions = list(
        Item.objects.filter(version=versions[1])
        .order_by("position")
        .values_list("variable", flat=True)
    )
    assert positions[:3] == ["checkin_date", "meetings_month", "feel_calm"]


def test_imported_logic_runs(fresh_study):
    from surveys import logic

    dictionary_import(study=fresh_study, text=_fixture())
    items = {i.variable: i for i in Item.objects.filter(version__instrument__study=fresh_study)}
    assert logic.shows(items["other_group"].branching, {"groups_tried": ["other"]})
    assert not logic.shows(items["other_group"].branching, {"groups_tried": ["smart"]})
    answers = {"feel_calm": "2", "feel_hopeful": "3", "feel_connected": "3", "days_used": 4}
    assert logic.calculate(items["feelings_score"].calculation, answers) == 2.7
    assert logic.calculate(items["any_use"].calculation, answers) == 1


# --- Refusals -----------------------------------------------------------------------------


def test_a_file_field_is_refused_with_its_line(fresh_study):
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=_fixture(REDCAP_WITH_FILE))
    assert len(excinfo.value.errors) == 1
    line, column, message = excinfo.value.errors[0]
    assert (line, column) == (3, "Field Type")
    assert "consent_scan" in message and "file" in message
    assert "line 3, column Field Type:" in str(excinfo.value)
    assert _counts(fresh_study) == (0, 0, 0)


@pytest.mark.parametrize(
    ("field_type", "validation", "word"),
    [("file", "signature", "signature"), ("sql", "", "sql"), ("file", "", "file")],
)
def test_field_types_the_app_cannot_run_are_refused(fresh_study, field_type, validation, word):
    text = (
        _header()
        + _line(variable="thing", type=field_type, validation=validation)
        + _line(variable="after", branching="[thing] <> ''")
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    # Reported once, on its own line; the logic that names it is not blamed as well.
    assert [(line, column) for line, column, _ in excinfo.value.errors] == [(2, "Field Type")]
    assert word in excinfo.value.errors[0][2]


def test_a_malformed_branching_expression_names_line_column_variable_and_position(fresh_study):
    text = _with_row(_fixture(), "treatment_kind", **{BRANCHING: "[in_treatment] == '1'"})
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    [(line, column, message)] = excinfo.value.errors
    assert line == 14  # the recovery_intro label above it spans two lines
    assert column == BRANCHING
    assert "treatment_kind" in message
    assert "at character 17" in message  # the second '='
    assert f"line 14, column {BRANCHING}: treatment_kind: unexpected '=' (at character 17)" in str(
        excinfo.value
    )
    assert _counts(fresh_study) == (0, 0, 0)


def test_every_problem_in_a_file_is_reported(fresh_study):
    text = (
        _header()
        + _line(variable="ok_one", type="radio", choices="1, Yes | 2, No")  # line 2
        + _line(variable="Bad Name")  # 3
        + _line(variable="ok_one")  # 4: duplicate
        + _line(variable="when", type="texty")  # 5
        + _line(variable="pick", type="radio", choices="1, One | two")  # 6
        + _line(variable="many", type="checkbox", choices="1, A | b c, B")  # 7
        + _line(variable="count", validation="integer", min="10", max="5")  # 8
        + _line(variable="level", type="slider", min="100", max="0")  # 9
        + _line(variable="total", type="calc")  # 10
        + _line(variable="shown", branching="[nowhere] = '1'")  # 11
        + _line(variable="formula", type="calc", choices="sum([ok_one], ")  # 12
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    errors = excinfo.value.errors
    by_line = {line: (column, message) for line, column, message in errors}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert len(errors) == 10
    assert by_line[3][0] == "Variable / Field Name" and "'Bad Name'" in by_line[3][1]
    assert by_line[4][0] == "Variable / Field Name" and "line 2" in by_line[4][1]
    assert by_line[5][0] == "Field Type" and "'texty'" in by_line[5][1]
    assert by_line[6][0] == "Choices, Calculations, OR Slider Labels"
    assert "'two'" in by_line[6][1]
    assert "[many(b c)]" in by_line[7][1]
    assert by_line[8][0] == "Text Validation Min" and "above the maximum" in by_line[8][1]
    assert by_line[9][0] == "Text Validation Min" and "above the maximum" in by_line[9][1]
    assert by_line[10][0] == "Choices, Calculations, OR Slider Labels"
    assert "formula" in by_line[10][1]
    assert by_line[11] == (BRANCHING, by_line[11][1])
    assert "unknown variable [nowhere]" in by_line[11][1]
    assert "ends too early" in by_line[12][1]
    assert len(str(excinfo.value).splitlines()) == 11  # a heading and one line per problem
    assert _counts(fresh_study) == (0, 0, 0)


def test_a_comma_decimal_fields_bounds_may_use_a_decimal_comma(fresh_study):
    """REDCap writes a comma-decimal field's bounds with a comma (0,5): the item stores 0.5
    and the survey checks answers against it. In a plain number field "1,000" may mean a
    thousand: refused with its line and how to write it, never read as 1."""
    text = (
        _header()
        + _line(variable="dose", validation="number_comma_decimal", min="0,5", max="12,75")
        + _line(variable="grams", validation="number_1dp_comma_decimal", min="0", max="2,5")
    )
    dictionary_import(study=fresh_study, text=text)
    items = {i.variable: i for i in Item.objects.filter(version__instrument__study=fresh_study)}
    assert (items["dose"].min_value, items["dose"].max_value) == ("0.5", "12.75")
    assert items["grams"].max_value == "2.5"
    form = list(items.values())
    assert answers_clean(items=form, answers={"dose": "12,5"}, final=True)["dose"] == 12.5
    with pytest.raises(ValidationError) as refused:
        answers_clean(items=form, answers={"dose": "13"}, final=True)
    assert "dose" in refused.value.message_dict

    bad = (
        _header()
        + _line(variable="count", validation="integer", min="0", max="1,5")
        + _line(variable="spent", validation="number", min="0", max="1,000")
        + _line(variable="dose", validation="number_comma_decimal", min="0", max="1.000,5")
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=bad)
    errors = excinfo.value.errors
    assert [(line, column) for line, column, _ in errors] == [
        (2, "Text Validation Max"),
        (3, "Text Validation Max"),
        (4, "Text Validation Max"),
    ]
    assert "'1,000' is not a number: write it without a thousands separator" in errors[1][2]
    assert Item.objects.filter(version__instrument__study=fresh_study).count() == 2  # unchanged


def test_a_count_may_be_limited_to_the_days_since_the_last_survey(fresh_study):
    """``days_since_last_survey`` as a number field's Max is worked out per participant when
    they answer; a slider's ends are drawn, so it takes numbers only."""
    ok = _header() + _line(variable="run", validation="integer", min="0", max=SINCE_LAST_SURVEY)
    dictionary_import(study=fresh_study, text=ok)
    item = Item.objects.get(version__instrument__study=fresh_study, variable="run")
    assert item.max_value == SINCE_LAST_SURVEY
    # Back out as REDCap takes it: Max empty (REDCap refuses a word there), the bound as an
    # action tag in the annotation; and in again.
    exported = dictionary_export(study=fresh_study)
    [line] = [r for r in csv.DictReader(io.StringIO(exported)) if r[COLUMNS[0]] == "run"]
    assert (line["Text Validation Min"], line["Text Validation Max"]) == ("0", "")
    assert line["Field Annotation"] == "@MAX-DAYS-SINCE-LAST-SURVEY"
    assert SINCE_LAST_SURVEY not in exported
    Item.objects.filter(variable="run").update(max_value="30")
    dictionary_import(study=fresh_study, text=exported)
    survey = Instrument.objects.get(study=fresh_study, slug="survey")
    item = survey.current_version.items.get(variable="run")
    assert (item.max_value, item.annotation) == (SINCE_LAST_SURVEY, "")
    both = _header() + _line(
        variable="run", validation="integer", max="30", annotation="@MAX-DAYS-SINCE-LAST-SURVEY"
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=both)
    [(_, column, message)] = excinfo.value.errors
    assert column == "Text Validation Max" and "give one of them" in message
    slider = _header() + _line(variable="mood", type="slider", min="0", max=SINCE_LAST_SURVEY)
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=slider)
    [(line, column, message)] = excinfo.value.errors
    assert (line, column) == (2, "Text Validation Max") and "is not a number" in message


def test_the_header_must_be_redcaps(fresh_study):
    header = list(COLUMNS)
    header[4] = "Label"
    text = ",".join(f'"{h}"' for h in header[:17]) + "\n" + _line(variable="x")
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    assert [(line, column) for line, column, _ in excinfo.value.errors] == [
        (1, "Field Label"),
        (1, "Field Annotation"),
    ]
    assert "should be 'Field Label', not 'Label'" in excinfo.value.errors[0][2]


def test_logic_may_only_use_fields_of_its_own_form(fresh_study):
    text = (
        _header()
        + _line(variable="smokes", form="first", type="yesno")
        + _line(variable="packs", form="second", branching="[smokes] = '1'")
        + _line(variable="ticks", form="second", type="checkbox", choices="1, A | 2, B")
        + _line(variable="tick_c", form="second", branching="[ticks(3)] = '1'")
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    [(line3, column3, message3), (line5, _, message5)] = excinfo.value.errors
    assert (line3, column3) == (3, BRANCHING)
    assert "[smokes]" in message3 and "'first'" in message3
    assert line5 == 5 and "[ticks(3)]" in message5


def test_the_rows_of_a_form_and_of_a_matrix_stay_together(fresh_study):
    text = (
        _header()
        + _line(variable="a", form="one", type="radio", choices="1, X | 2, Y", matrix="grid")
        + _line(variable="b", form="one")
        + _line(variable="c", form="one", type="radio", choices="1, X | 2, Z", matrix="grid")
        + _line(variable="d", form="two")
        + _line(variable="e", form="one")
    )
    with pytest.raises(DictionaryError) as excinfo:
        dictionary_import(study=fresh_study, text=text)
    columns = [(line, column) for line, column, _ in excinfo.value.errors]
    assert columns == [(4, "Matrix Group Name"), (4, "Matrix Group Name"), (6, "Form Name")]


# --- Saving -------------------------------------------------------------------------------


def test_a_failed_import_changes_nothing(study):
    exported = dictionary_export(study=study)
    changed = _with_row(exported, "age", **{"Field Label": "Your age?"})
    broken = _with_row(changed, "overdose", **{BRANCHING: "[overdose] = "})
    before = _counts(study)
    with pytest.raises(DictionaryError):
        dictionary_import(study=study, text=broken)
    assert _counts(study) == before
    assert dictionary_export(study=study) == exported


def test_an_import_is_one_transaction(study, monkeypatch):
    """Even a failure while saving the second form undoes the first one."""
    exported = dictionary_export(study=study)
    changed = _with_row(exported, "age", **{"Field Label": "Your age?"})
    changed = _with_row(changed, "overdose", **{"Field Label": "Any overdose?"})
    real = dictionary_reader.instrument_items_set
    saved = []

    def fail_second(**kwargs):
        saved.append(kwargs["instrument"].slug)
        if len(saved) == 2:
            raise RuntimeError("the database went away")
        return real(**kwargs)

    monkeypatch.setattr(dictionary_reader, "instrument_items_set", fail_second)
    before = _counts(study)
    with pytest.raises(RuntimeError):
        dictionary_import(study=study, text=changed)
    assert saved == ["baseline", "followup"]
    assert _counts(study) == before
    assert dictionary_export(study=study) == exported


def _submitted_followup(study, site_a, enrol) -> Response:
    assignment = enrol(site=site_a).assignments.get(wave__slug="m1")
    instrument = study.instruments.get(slug="followup")
    return Response.objects.create(
        assignment=assignment,
        instrument=instrument,
        instrument_version=instrument.current_version,
        answers={"attended_any": 1, "craving": 6},
        status=Response.Status.SUBMITTED,
        started_at=datetime(2026, 2, 1, tzinfo=UTC),
        submitted_at=datetime(2026, 2, 1, 0, 7, tzinfo=UTC),
    )


def test_a_changed_dictionary_makes_version_2_of_an_answered_instrument(study, site_a, enrol):
    response = _submitted_followup(study, site_a, enrol)
    old_craving = Item.objects.get(version=response.instrument_version, variable="craving").label
    exported = dictionary_export(study=study)
    changed = _with_row(
        exported, "craving", "followup", **{"Field Label": "How strong was the urge?"}
    )
    changed = _with_row(changed, "overdose", **{"Field Label": "Any overdose since then?"})
    first_followup_items = Item.objects.filter(version=response.instrument_version).count()

    forms = {f.instrument.slug: f for f in dictionary_import_forms(study=study, text=changed)}

    followup = study.instruments.get(slug="followup")
    assert list(followup.versions.values_list("number", flat=True)) == [1, 2]
    assert (forms["followup"].outcome, forms["followup"].previous_number) == ("new version", 1)
    assert forms["followup"].stale_translations == ("craving", "overdose")
    version_1, version_2 = followup.versions.order_by("number")
    assert version_1.items.count() == first_followup_items
    assert version_1.items.get(variable="craving").label == old_craving
    assert version_2.items.get(variable="craving").label == {
        "en": "How strong was the urge?",
        "es": old_craving["es"],
    }
    assert version_2.note == "Imported from a REDCap data dictionary"
    response.refresh_from_db()
    assert response.instrument_version == version_1
    assert response.answers == {"attended_any": 1, "craving": 6}
    # Baseline (its own craving item included) did not change.
    baseline = study.instruments.get(slug="baseline")
    assert list(baseline.versions.values_list("number", flat=True)) == [1]
    assert forms["baseline"].outcome == "unchanged"
    assert baseline.current_version.items.get(variable="craving").label == old_craving
    assert _rows(dictionary_export(study=study)) == _rows(changed)


SPONSOR_CONTACT = (
    "1, Every day or nearly | 2, A few times a week | 3, About once a week | "
    "4, Less than once a week"
)


@pytest.mark.parametrize(
    ("choices", "moved"),
    [
        # two options swapped
        (
            "1, A few times a week | 2, Every day or nearly | 3, About once a week | "
            "4, Less than once a week",
            "code 1 now means what code 2 meant in version 1 (“A few times a week”)",
        ),
        # an option inserted mid-list and the codes after it renumbered
        (
            "1, Every day or nearly | 2, Twice a day | 3, A few times a week | "
            "4, About once a week | 5, Less than once a week",
            "code 3 now means what code 2 meant in version 1 (“A few times a week”)",
        ),
    ],
)
def test_a_choice_code_keeps_its_meaning_across_versions(study, site_a, enrol, choices, moved):
    """Found by review: a version whose codes mean other things than an answered version's
    (two options swapped, an option inserted and the codes after it renumbered) was taken,
    and every labelled export then read the old answers with the new labels (one column per
    variable, one label per code). Refused, on the line and column; a reworded label and a
    new option with a new code are fine."""
    _submitted_followup(study, site_a, enrol)
    exported = dictionary_export(study=study)
    assert (
        _rows(exported)[
            [r["Variable / Field Name"] for r in _rows(exported)].index("sponsor_contact")
        ]["Choices, Calculations, OR Slider Labels"]
        == SPONSOR_CONTACT
    )
    changed = _with_row(
        exported, "sponsor_contact", **{"Choices, Calculations, OR Slider Labels": choices}
    )
    with pytest.raises(DictionaryError) as refused:
        dictionary_import(study=study, text=changed)
    (line, column, message) = refused.value.errors[0]
    variables = [row["Variable / Field Name"] for row in _rows(changed)]
    assert line == 2 + variables.index("sponsor_contact")  # the header is line 1
    assert column == "Choices, Calculations, OR Slider Labels"
    assert moved in message and "a code keeps its meaning" in message
    assert study.instruments.get(slug="followup").versions.count() == 1  # nothing saved

    fine = _with_row(
        exported,
        "sponsor_contact",
        **{
            "Choices, Calculations, OR Slider Labels": "1, Every day or almost every day | "
            "2, A few times a week | 3, About once a week | 4, Less than once a week | "
            "5, Never"
        },
    )
    dictionary_import(study=study, text=fine)
    assert study.instruments.get(slug="followup").versions.count() == 2


def test_a_translation_fixed_in_another_language_is_no_recode(study, site_a, enrol):
    """Found by the diff's review: Spanish labels of two options swapped in an answered
    version (the English, which the answers were given by, right), then fixed: taken for a
    recode and refused. Meaning is read in the study's own language."""
    item = Item.objects.get(
        version__instrument__study=study,
        version__instrument__slug="followup",
        variable="sponsor_contact",
    )
    right = [dict(choice["label"]) for choice in item.choices]
    wrong = [dict(choice) for choice in item.choices]
    wrong[0]["label"] = {**right[0], "es": right[1]["es"]}
    wrong[1]["label"] = {**right[1], "es": right[0]["es"]}
    item.choices = wrong
    item.save()
    _submitted_followup(study, site_a, enrol)
    exported = dictionary_export(study=study, language="es")
    fixed = " | ".join(f"{choice['code']}, {right[i]['es']}" for i, choice in enumerate(wrong))
    changed = _with_row(
        exported, "sponsor_contact", **{"Choices, Calculations, OR Slider Labels": fixed}
    )
    dictionary_import(study=study, text=changed, language="es")
    latest = study.instruments.get(slug="followup").current_version
    assert [c["label"]["es"] for c in latest.items.get(variable="sponsor_contact").choices] == [
        label["es"] for label in right
    ]


def test_two_instruments_sharing_a_question_keep_one_meaning_even_unanswered(study):
    """Found by the diff's review: only answered versions were compared, so the follow-up's
    copy of ``mat_status`` could be given swapped codes before launch; once both were answered,
    one column held two meanings, and every later edit of the instrument, of any question, was
    refused. Now the other instrument's versions count answered or not, and a question whose
    choices an edit leaves alone is not checked."""
    column = "Choices, Calculations, OR Slider Labels"
    exported = dictionary_export(study=study)
    (row,) = [
        r
        for r in _rows(exported)
        if (r["Form Name"], r["Variable / Field Name"]) == ("followup", "mat_status")
    ]
    swapped = (
        row[column]
        .replace("0, No medication", "X")
        .replace("1, Methadone", "0, Methadone")
        .replace("X", "1, No medication")
    )
    with pytest.raises(DictionaryError, match="code 1 now means what code 0 meant in baseline"):
        dictionary_import(
            study=study, text=_with_row(exported, "mat_status", "followup", **{column: swapped})
        )
    reworded = _with_row(
        exported, "craving", "followup", **{"Field Label": "How strong was the urge, 0-10?"}
    )
    dictionary_import(study=study, text=reworded)  # nothing else in the way


def test_the_same_dictionary_again_makes_no_new_version_even_with_responses(study, site_a, enrol):
    _submitted_followup(study, site_a, enrol)
    exported = dictionary_export(study=study)
    dictionary_import(study=study, text=exported)
    assert study.instruments.get(slug="followup").versions.count() == 1


def test_importing_twice_without_responses_keeps_one_version(fresh_study):
    text = _fixture()
    dictionary_import(study=fresh_study, text=text)
    counts = _counts(fresh_study)
    dictionary_import(study=fresh_study, text=text)
    assert _counts(fresh_study) == counts == (2, 2, 28)
    changed = _with_row(text, "days_used", **{"Text Validation Max": "31"})
    forms = dictionary_import_forms(study=fresh_study, text=changed)
    assert [(f.outcome, f.version.number) for f in forms] == [
        ("unchanged", 1),
        ("replaced", 1),
    ]
    assert _counts(fresh_study) == (2, 2, 28)
    item = Item.objects.get(version__instrument__study=fresh_study, variable="days_used")
    assert item.max_value == "31"


# --- Commands -----------------------------------------------------------------------------


def test_export_and_import_commands(study, fresh_study, tmp_path):
    path = tmp_path / "dictionary.csv"
    out = io.StringIO()
    call_command("export_data_dictionary", "--study", study.slug, "--out", str(path), stdout=out)
    assert path.read_text(encoding="utf-8") == dictionary_export(study=study)
    assert str(path) in out.getvalue()

    out = io.StringIO()
    call_command("import_data_dictionary", "--study", fresh_study.slug, str(path), stdout=out)
    report = out.getvalue()
    baseline_items = Item.objects.filter(
        version__instrument__study=study, version__instrument__slug="baseline"
    ).count()
    assert "baseline: new instrument 'Baseline', version 1," in report
    assert f"version 1, {baseline_items} items" in report
    assert "followup: new instrument 'Followup', version 1" in report
    # The fresh study has no waves, so its forms come in slug order; the rows are the same.
    assert sorted(dictionary_export(study=fresh_study).splitlines()) == sorted(
        path.read_text(encoding="utf-8").splitlines()
    )


def test_export_command_writes_to_standard_output(study):
    out = io.StringIO()
    call_command("export_data_dictionary", "--study", study.slug, "--out", "-", stdout=out)
    assert out.getvalue() == dictionary_export(study=study)


def test_import_command_reports_every_error_and_changes_nothing(study, tmp_path):
    exported = dictionary_export(study=study)
    broken = _with_row(exported, "gender", **{"Field Type": "file"})
    broken = _with_row(broken, "overdose", **{BRANCHING: "[overdose] = "})
    path = tmp_path / "broken.csv"
    path.write_text(broken, encoding="utf-8")
    before = _counts(study)
    with pytest.raises(CommandError) as excinfo:
        call_command("import_data_dictionary", "--study", study.slug, str(path))
    message = str(excinfo.value)
    assert "nothing was changed" in message
    assert "line 3, column Field Type: gender: file upload fields are not supported" in message
    overdose_line = next(
        number
        for number, line in enumerate(broken.split("\n"), start=1)
        if line.startswith("overdose,")
    )
    assert f"line {overdose_line}, column {BRANCHING}: overdose:" in message
    assert _counts(study) == before


def test_import_command_refuses_an_unknown_study(db, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(_fixture(), encoding="utf-8")
    with pytest.raises(CommandError, match="no-such-study"):
        call_command("import_data_dictionary", "--study", "no-such-study", str(path))


def test_a_calculated_field_used_before_it_stands_is_refused():
    """Found by review: a question shown by a score calculated after it was always hidden (the
    score is worked out where it stands, on the phone and the server alike) and its answer
    dropped. Refused, with what to do; the calculation before the question is fine."""
    from surveys.instruments import items_validate

    question = {
        "variable": "q3",
        "kind": "yesno",
        "label": {"en": "Q"},
        "branching": "[score] >= 5",
    }
    score = {"variable": "score", "kind": "calc", "label": {"en": "S"}, "calculation": "[q1] + 1"}
    first = {"variable": "q1", "kind": "integer", "label": {"en": "N"}}
    with pytest.raises(ValidationError) as refused:
        items_validate([first, question, score])
    assert refused.value.message_dict == {
        "1": [
            "q3: branching: uses [score], a calculated field that comes after it; move the "
            "calculation before this question"
        ]
    }
    items_validate([first, score, question])


def test_a_slider_without_limits_runs_from_0_to_100_on_the_page_and_the_server(fresh_study):
    """Found by review: a REDCap slider imported without limits stopped at 10 on the phone
    (its script's default) and the server took any number; REDCap's slider runs 0-100."""
    from surveys.screens import screens_build

    dictionary_import(study=fresh_study, text=_header() + _line(variable="urge", type="slider"))
    (item,) = Item.objects.filter(version__instrument__study=fresh_study)
    assert (item.min_value, item.max_value) == ("", "")
    assert answers_clean(items=[item], answers={"urge": 57}, final=True) == {"urge": 57}
    with pytest.raises(ValidationError) as refused:
        answers_clean(items=[item], answers={"urge": 101}, final=True)
    assert refused.value.message_dict == {"urge": ["Enter a number from 0 to 100."]}
    (screen,) = screens_build(items=[item], language="en")
    (question,) = screen.questions
    assert (question.low, question.high) == ("0", "100")
