"""SPSS (.sav), Stata (.dta) and Excel files as a researcher opens them: text categories as
labelled numbers with their missing codes missing, names the program accepts (and the codebook
mapping them back), and Excel files written whatever characters a label or answer holds."""

import hashlib
import io
import re
from datetime import date

import openpyxl
import pandas as pd
import pyreadstat
import pytest

from surveys.datasets import (
    MISSING_CODES,
    NOT_YET_DUE,
    codebook,
    csv_rows,
    dataset_diary,
    dataset_long,
    dataset_wide,
    pseudonymous_id,
)
from surveys.datasets.codebook_html import codebook_html
from surveys.datasets.formats import write_dataset
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import DiaryEntry, Instrument
from tests.surveys.test_datasets import (  # noqa: F401 (fixtures)
    BASELINE_ANSWERS,
    BASELINE_DAY,
    ENROLLED,
    ENROLMENT,
    cohort,
    design,
    submit,
)

BATTERY = {k: v for k, v in BASELINE_ANSWERS.items() if k not in ("birth_year", "story")}


def _baseline_with(study, *extra: dict) -> None:
    """A new version of the baseline with ``extra`` items at its end."""
    instrument = Instrument.objects.get(study=study, slug="baseline")
    items = version_items_as_dicts(instrument.current_version) + list(extra)
    for position, item in enumerate(items, start=1):
        item["position"] = position
    instrument_items_set(instrument=instrument, items=items)


def _read(frame, fmt: str, tmp_path, **options):
    path = tmp_path / f"data.{fmt}"
    write_dataset(frame, path, fmt)
    reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
    return reader(str(path), **options)


def _book(study, frame) -> pd.DataFrame:
    return codebook(study, frame).set_index("name")


# --- A. text categories -----------------------------------------------------------------------


def test_a_derived_category_in_spss_has_its_labels_and_its_missing_codes_missing(cohort, tmp_path):  # noqa: F811
    """Found by review: a text category (mat_mhg_class) went to SPSS as a string, so a
    frequency table counted "-98" (not yet due) as a valid answer and showed no labels."""
    study = cohort[0].study
    frame = dataset_long(study=study)
    texts = frame["mat_mhg_class"].astype(object)
    assert (texts == str(NOT_YET_DUE)).any() and texts.isin(["both"]).any()

    data, meta = _read(frame, "sav", tmp_path)  # as SPSS reads it: user-missing left out
    labels = meta.variable_value_labels["mat_mhg_class"]
    named = data["mat_mhg_class"].map(labels)
    answered = ~texts.isin([str(code) for code in MISSING_CODES]) & texts.notna()
    # every answer reads as its label, as in the CSV with labels; no code counts as valid
    with_labels = pd.read_csv(io.StringIO("".join(csv_rows(frame, labels=True))), dtype=str)
    assert named[answered].tolist() == with_labels.loc[answered, "mat_mhg_class"].tolist()
    assert named[answered].tolist().count("Both") >= 1
    assert data.loc[~answered, "mat_mhg_class"].isna().all()

    raw, declared = _read(frame, "sav", tmp_path, user_missing=True)
    assert declared.missing_ranges["mat_mhg_class"] == [{"lo": -99.0, "hi": -92.0}]
    assert (raw.loc[texts == str(NOT_YET_DUE), "mat_mhg_class"] == NOT_YET_DUE).all()
    assert labels[float(NOT_YET_DUE)] == MISSING_CODES[NOT_YET_DUE]

    # the codebook gives the number each code has in the file
    book = _book(study, frame)
    numbers = dict(
        part.split(" = ") for part in book.loc["mat_mhg_class", "sav_dta_values"].split("; ")
    )
    assert labels[float(numbers["both"])] == "Both"
    assert labels[float(numbers["neither"])] == "Neither"
    assert book.loc["gender", "sav_dta_values"] == ""  # numbers already


def test_a_single_choice_with_text_codes_is_labelled_in_stata_and_spss(
    study, site_a, enrol, tmp_path
):
    """Found by review: a single choice coded with text ("yes"/"no"/"unsure") reached Stata
    and SPSS as strings without its value labels."""
    _baseline_with(
        study,
        {
            "variable": "ready_now",
            "kind": "single",
            "label": {"en": "Ready to stop now?"},
            "choices": [
                {"code": "yes", "label": {"en": "Yes, now"}},
                {"code": "no", "label": {"en": "Not yet"}},
                {"code": "unsure", "label": {"en": "Not sure"}},
            ],
        },
    )
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)  # Ben: has not answered yet
    submit(ana, "baseline", "baseline", {**BATTERY, "ready_now": "unsure"}, BASELINE_DAY)
    frame = dataset_long(study=study, waves=["baseline"])
    answered = (
        frame["pid"] == pseudonymous_id(study_id=study.pk, participant_id=ana.pk)
    ).to_numpy()
    assert frame.loc[answered, "ready_now"].tolist() == ["unsure"]
    code = int(frame.loc[~answered, "ready_now"].iloc[0])  # why ben's cell is empty
    assert code in MISSING_CODES
    for fmt in ("dta", "sav"):
        data, meta = _read(frame, fmt, tmp_path)
        labels = meta.variable_value_labels["ready_now"]
        assert labels[3] == "Not sure" and labels[code] == MISSING_CODES[code], fmt
        assert data.loc[answered, "ready_now"].tolist() == [3], fmt
        if fmt == "dta":  # the code, labelled
            assert data.loc[~answered, "ready_now"].tolist() == [code]
        else:  # missing to SPSS
            assert data.loc[~answered, "ready_now"].isna().all()
    numbers = _book(study, frame).loc["ready_now", "sav_dta_values"]
    assert numbers == "yes = 1; no = 2; unsure = 3"  # the codebook's word on the numbers


def test_the_diary_group_and_format_are_labelled_numbers_in_stata(cohort, tmp_path):  # noqa: F811
    """Found by review: the diary's group and format went to Stata and SPSS as text codes with
    no value labels."""
    ana, _ben = cohort
    DiaryEntry.objects.create(
        participant=ana, group="1", format="online", occurred_on=date(2026, 1, 20)
    )
    frame = dataset_diary(study=ana.study)
    for fmt in ("dta", "sav"):
        data, meta = _read(frame, fmt, tmp_path)
        for name in ("group", "format"):
            value = data.loc[0, name]
            assert isinstance(value, float), (fmt, name)
            assert meta.variable_value_labels[name][value] == frame.loc[0, f"{name}_label"]


# --- B and C. names ---------------------------------------------------------------------------


def test_a_long_labelled_baseline_variable_reads_back_from_the_wide_stata_file(
    study, site_a, enrol, tmp_path
):
    """Found by review: a labelled baseline variable of 24 characters (33 with "_baseline")
    was shortened to 32, a value-label name readstat refuses: the wide .dta failed."""
    variable = "treatment_satisfaction_x"  # 24 characters
    _baseline_with(
        study,
        {
            "variable": variable,
            "kind": "integer",
            "label": {"en": "Satisfaction"},
            "min_value": "0",
            "max_value": "10",
        },
    )
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    submit(ana, "baseline", "baseline", {**BATTERY, variable: 7}, BASELINE_DAY)
    wide = dataset_wide(dataset_long(study=study))
    data, meta = _read(wide, "dta", tmp_path)
    name = _book(study, wide).loc[f"{variable}_baseline", "dta_name"]
    assert name and name in data.columns
    assert data.loc[0, name] == 7
    assert meta.column_names_to_labels[name] == f"{variable}_baseline: Satisfaction"
    assert meta.variable_value_labels[name][-99].startswith("Wave missed")


@pytest.mark.timeout(60)
def test_stata_names_that_shorten_alike_each_get_their_own(tmp_path):
    """Found by review: when a shortened Stata name was taken, the writer tried the same name
    with a last "x" over and over: an export with such names never finished."""
    long_name = "q" * 40

    def digest(name: str) -> str:
        return hashlib.sha1(name.encode()).hexdigest()[:4]  # noqa: S324

    # the name a 40-character name was shortened to (32 characters), the same ending in "x",
    # and the name it is shortened to now (31 characters)
    was = "q" * 27 + "_" + digest(long_name)
    names = (was, was[:-1] + "x", "q" * 26 + "_" + digest(long_name), long_name)
    frame = pd.DataFrame({name: [float(n)] for n, name in enumerate(names, start=1)})
    frame.attrs["columns"] = {name: {"label": "A count"} for name in names}
    data, meta = _read(frame, "dta", tmp_path)
    book = codebook("trial", frame).set_index("name")
    file_names = [book.loc[name, "dta_name"] or name for name in names]
    assert list(data.columns) == file_names and len(set(file_names)) == 4
    assert all(len(name) <= 32 for name in file_names)
    assert data.loc[0, file_names[3]] == 4
    assert meta.column_names_to_labels[file_names[3]] == f"{long_name}: A count"


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_a_choice_coded_minus_99_and_a_60_character_variable_are_exported(
    study, site_a, enrol, tmp_path, fmt
):
    """Found by review: a multiple choice coded -99 made the column refusal_multi___-99, a name
    neither SPSS nor Stata accepts, and a 60-character variable with "_baseline" was too long
    for SPSS: the whole file failed."""
    long_variable = "a" * 60
    _baseline_with(
        study,
        {
            "variable": "refusal_multi",
            "kind": "multiple",
            "label": {"en": "Which ones?"},
            "choices": [
                {"code": "1", "label": {"en": "One"}},
                {"code": "-99", "label": {"en": "Refused"}},
            ],
        },
        {
            "variable": long_variable,
            "kind": "integer",
            "label": {"en": "Long name"},
            "min_value": "0",
            "max_value": "5",
        },
    )
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    answers = {**BATTERY, "refusal_multi": ["-99"], long_variable: 3}
    submit(ana, "baseline", "baseline", answers, BASELINE_DAY)
    wide = dataset_wide(dataset_long(study=study))
    data, meta = _read(wide, fmt, tmp_path)
    book = _book(study, wide)
    for column, value in (("refusal_multi___-99_baseline", 1), (f"{long_variable}_baseline", 3)):
        name = book.loc[column, f"{fmt}_name"]  # the codebook maps it back
        assert name and name in data.columns, column
        assert data.loc[0, name] == value
        assert meta.column_names_to_labels[name].startswith(f"{column}: ")
    assert book.loc["refusal_multi___1_baseline", f"{fmt}_name"] == ""  # kept as it is
    assert data.loc[0, "refusal_multi___1_baseline"] == 0


@pytest.mark.parametrize("fmt", ["sav", "dta"])
def test_reserved_words_and_names_alike_but_for_case_are_renamed(
    study, site_a, enrol, tmp_path, fmt
):
    """Found by review: a variable called "in", "long" or "with" (Stata's reserved words; "with"
    is SPSS's too) made the file fail, and choices coded "A" and "a" gave two names SPSS
    reads as one."""
    words = ("in", "long", "with", "using")
    _baseline_with(
        study,
        *(
            {"variable": word, "kind": "integer", "label": {"en": f"Count {word}"}}
            for word in words
        ),
        {
            "variable": "grade",
            "kind": "multiple",
            "label": {"en": "Grades"},
            "choices": [
                {"code": "A", "label": {"en": "Upper"}},
                {"code": "a", "label": {"en": "Lower"}},
            ],
        },
    )
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    answers = {**BATTERY, **{word: n for n, word in enumerate(words, start=1)}, "grade": ["a"]}
    submit(ana, "baseline", "baseline", answers, BASELINE_DAY)
    frame = dataset_long(study=study, waves=["baseline"])
    data, meta = _read(frame, fmt, tmp_path)
    if fmt == "sav":  # SPSS reads names without regard to case
        assert len({name.lower() for name in data.columns}) == len(frame.columns)
    book = _book(study, frame)
    for n, word in enumerate(words, start=1):
        name = book.loc[word, f"{fmt}_name"] or word
        assert data.loc[0, name] == n, word
        assert meta.column_names_to_labels[name].endswith(f"Count {word}")
    assert book.loc["with", f"{fmt}_name"] == "with_"
    for column, value in (("grade___A", 0), ("grade___a", 1)):
        name = book.loc[column, f"{fmt}_name"] or column
        assert data.loc[0, name] == value, column


def test_the_html_codebook_gives_the_names_and_numbers_of_the_spss_and_stata_files(
    study, site_a, enrol
):
    """Found by review: the codebook said nothing of what the .sav and .dta files hold where
    they differ (a renamed variable, a text category written as numbers)."""
    _baseline_with(study, {"variable": "with", "kind": "integer", "label": {"en": "Count"}})
    enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    book = codebook(study, dataset_long(study=study))
    page = codebook_html(book, title="Codebook", missing_codes=MISSING_CODES)
    rows = {
        found.group(1): found.group(0)
        for found in re.finditer(r'<tr id="([^"]+)">.*?</tr>', page, flags=re.S)
    }
    assert "in SPSS: <code>with_</code>" in rows["with"]
    assert "in Stata: <code>with_</code>" in rows["with"]
    assert "in SPSS" not in rows["gender"]
    both = book.set_index("name").loc["mat_mhg_class", "sav_dta_values"].split("; ")[0]
    assert both == "both = 1"
    assert "<code>both</code> Both <small>(1 in .sav/.dta)</small>" in rows["mat_mhg_class"]
    assert "numbers in .sav/.dta" in rows["mat_mhg_class"]
    assert "numbers in .sav/.dta" not in rows["gender"]


# --- D. Excel ---------------------------------------------------------------------------------


def test_an_excel_export_is_written_whatever_control_characters_a_label_or_answer_has(
    design,  # noqa: F811
    site_a,
    enrol,
    tmp_path,
):
    """Found by review: a vertical tab in an item's label (common in imported dictionaries)
    or in an answer made the Excel export fail (openpyxl's IllegalCharacterError), even the
    de-identified one, through its codebook sheet."""
    instrument = Instrument.objects.get(study=design, slug="baseline")
    items = version_items_as_dicts(instrument.current_version)
    for item in items:
        if item["variable"] == "age":
            item["label"] = {"en": "How old are you?\x0b(years)"}
    instrument_items_set(instrument=instrument, items=items)
    ana = enrol(site=site_a, enrolled_on=ENROLLED, now=ENROLMENT)
    story = "Line one\x0bline two\x1b end"
    submit(ana, "baseline", "baseline", {**BASELINE_ANSWERS, "story": story}, BASELINE_DAY)
    for free_text in (False, True):
        frame = dataset_long(study=design, include_free_text=free_text)
        path = tmp_path / f"data_{free_text}.xlsx"
        write_dataset(frame, path, "xlsx", study=design)
        book = pd.read_excel(path, sheet_name="codebook").set_index("name")
        assert book.loc["age", "label"] == "How old are you?\n(years)"
        if free_text:
            data = pd.read_excel(path, sheet_name="data")
            assert data.loc[data["wave"] == "baseline", "story"].tolist() == [
                "Line one\nline two end"
            ]
    sheet = openpyxl.load_workbook(path)["data"]
    assert sheet.max_row == len(frame) + 1
