"""SPSS (.sav), Stata (.dta) and Excel files as a researcher opens them: Excel files written
whatever characters a label or answer holds."""

import openpyxl
import pandas as pd

from surveys.datasets import dataset_long
from surveys.datasets.formats import write_dataset
from surveys.instruments import instrument_items_set, version_items_as_dicts
from surveys.models import Instrument
from tests.surveys.test_datasets import (  # noqa: F401 (fixtures)
    BASELINE_ANSWERS,
    BASELINE_DAY,
    ENROLLED,
    ENROLMENT,
    design,
    submit,
)

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
