"""Dataset files for statistics packages: Excel (data and codebook sheets), SPSS ``.sav`` and
Stata ``.dta`` with variable and value labels (pyreadstat), and Parquet with its own types
(pyarrow): categories for the row's site, wave and status, nullable integers elsewhere.

Missing codes stay numbers in every file (−99 … −92, see ``codes.MISSING_CODES``), labelled as
values; SPSS also declares them user-missing, so its statistics leave them out. A column whose
codes are in ``<name>_missing`` (its own values could be codes) declares none: its answers are
answers; the ``_missing`` column's codes are its values, labelled.

In ``.sav`` and ``.dta`` files a text column with value labels (a derived category, a single
choice with text codes, the row's status, the diary's group and format) is written as numbers
with those labels, its missing codes as theirs (declared missing in SPSS like any other
column's), and a name SPSS or Stata cannot hold is changed, the dataset's name then starting
the variable label: ``statfiles`` says how, and the codebook gives each code's number and each
changed name. CSV, Excel and Parquet keep the text codes and the names.

Every text cell of an Excel file goes through ``cells.formula_safe`` (openpyxl would store a text
starting with "=" as a formula), and loses the control characters an XLSX file cannot hold
(``cells.xml_safe``: openpyxl refuses them). The codebook also comes as one HTML page
(``"html"``, ``codebook_html``), for reading and printing.
"""

from pathlib import Path

import pandas as pd
import pyreadstat

from surveys.datasets.bare import bare
from surveys.datasets.cells import formula_safe, xml_safe
from surveys.datasets.codebook_html import codebook_html
from surveys.datasets.codes import HIGHEST_CODE, LOWEST_CODE, MISSING_CODES
from surveys.datasets.statfiles import (
    coded_text,
    file_names,
    labelled_columns,
    numeric,
    text_numbers,
)
from surveys.datasets.writers import codebook

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "sav": ("application/x-spss-sav", "sav"),
    "dta": ("application/x-stata-dta", "dta"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "html": ("text/html; charset=utf-8", "html"),
}
STATA_LABEL = 80
CATEGORIES = ("site", "wave", "status")


def write_dataset(df: pd.DataFrame, path: Path, fmt: str, *, study=None) -> None:
    """Write ``df`` (a frame of ``surveys.datasets``, with its column metadata) to ``path``."""
    if fmt == "xlsx":
        _xlsx(df, path, study)
    elif fmt == "parquet":
        _parquet(df).to_parquet(path, engine="pyarrow", index=False)
    elif fmt in ("sav", "dta"):
        _stats_package(df, path, fmt)
    elif fmt == "html":
        _html(df, path, study)
    else:
        raise ValueError(f"no file writer for {fmt!r}")


def _meta(df: pd.DataFrame) -> dict[str, dict]:
    return df.attrs.get("columns", {})


def _xlsx(df: pd.DataFrame, path: Path, study) -> None:
    book = codebook(study, df) if df.attrs.get("columns") else None
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        _formula_safe_frame(df).to_excel(writer, sheet_name="data", index=False)
        if book is not None:
            _formula_safe_frame(book).to_excel(writer, sheet_name="codebook", index=False)


def _formula_safe_cell(value):
    return formula_safe(xml_safe(value)) if isinstance(value, str) else value


def _formula_safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy of ``df`` whose text cells and headers cannot run as formulas and hold
    only characters an XLSX file can."""
    safe = bare(df)
    for position in range(safe.shape[1]):
        series = safe.iloc[:, position]
        dtype = series.dtype
        if not (
            pd.api.types.is_numeric_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_datetime64_any_dtype(dtype)
        ):
            safe.isetitem(position, series.map(_formula_safe_cell))
    safe.columns = [_formula_safe_cell(name) for name in safe.columns]
    return safe


def _html(df: pd.DataFrame, path: Path, study) -> None:
    info = df.attrs.get("dataset", {})
    if info.get("shape") != "codebook":
        raise ValueError("the HTML format is for the codebook")
    name = getattr(study, "name", "") or info.get("study", "")
    title = f"Codebook: {name}" if name else "Codebook"
    page = codebook_html(df, title=title, missing_codes=MISSING_CODES)
    Path(path).write_text(page, encoding="utf-8")


def _parquet(df: pd.DataFrame) -> pd.DataFrame:
    typed = df.copy()
    for name in CATEGORIES:
        if name in typed.columns:
            typed[name] = typed[name].astype("category")
    if "wave" in typed.columns:
        # The waves in the study's order (baseline, m1, m3, m12), not the alphabet's (m12
        # before m3): sorting or comparing by wave in pandas, R or DuckDB follows the study.
        order = list(df.attrs.get("dataset", {}).get("waves") or [])
        order += sorted(set(typed["wave"].dropna()) - set(order))
        typed["wave"] = typed["wave"].astype(pd.CategoricalDtype(order, ordered=True))
    return typed


def _value_labels(info: dict, numbers: dict[str, int] | None = None) -> dict[float, str]:
    """A column's value labels by number: ``numbers`` gives a text column's
    (``statfiles.text_numbers``); a numeric column's are its values."""
    labels: dict[float, str] = {}
    for value, label in (info.get("values") or {}).items():
        if numbers is not None:
            labels[float(numbers[str(value)])] = label
            continue
        try:
            labels[float(value)] = label
        except ValueError:
            continue  # (a numeric column has numeric values)
    if numbers is not None:  # codes the questionnaire no longer lists: labelled with themselves
        listed = {str(value) for value in info.get("values") or {}}
        labels.update({float(n): code for code, n in numbers.items() if code not in listed})
    if info.get("missing_codes"):
        labels.update({float(code): label for code, label in MISSING_CODES.items()})
    return labels


def _numbered(series: pd.Series, numbers: dict[str, int], info: dict) -> pd.Series:
    """A text column as the numbers of its codes; the missing codes as their numbers."""
    mapping = {code: float(number) for code, number in numbers.items()}
    if info.get("missing_codes"):
        mapping.update({str(code): float(code) for code in MISSING_CODES})
    texts = series.astype("string").astype(object)
    return texts.map(mapping, na_action="ignore").astype("Float64").astype("float64")


def _stats_package(df: pd.DataFrame, path: Path, fmt: str) -> None:
    meta = _meta(df)
    plain = bare(df)
    names = file_names(plain.columns, fmt, labelled=labelled_columns(plain, meta))
    columns: dict[str, pd.Series] = {}
    value_labels: dict[str, dict[float, str]] = {}
    missing: dict[str, list[dict]] = {}
    column_labels = []
    for column, name in names.items():
        info = meta.get(column, {})
        series = plain[column]
        numbers = text_numbers(info, series) if coded_text(info, series) else None
        if numbers is not None:
            columns[name] = _numbered(series, numbers, info)
        elif numeric(info, series):
            columns[name] = series.astype("Float64").astype("float64")  # NaN for empty cells
        else:
            columns[name] = series.astype("string").astype(object).where(series.notna(), "")
        label = info.get("label", "")
        if name != column:  # the dataset's name, for the researcher to map it back
            label = f"{column}: {label}"
        column_labels.append(label[:STATA_LABEL] if fmt == "dta" else label)
        if columns[name].dtype == "float64":
            labels = _value_labels(info, numbers)
            if labels:
                value_labels[name] = labels
            if info.get("missing_codes"):
                missing[name] = [{"lo": LOWEST_CODE, "hi": HIGHEST_CODE}]
    out = pd.DataFrame(columns, index=plain.index)
    if fmt == "sav":
        pyreadstat.write_sav(
            out,
            str(path),
            column_labels=column_labels,
            variable_value_labels=value_labels,
            missing_ranges=missing,
        )
    else:
        pyreadstat.write_dta(
            out,
            str(path),
            column_labels=column_labels,
            variable_value_labels={
                name: {int(k): v for k, v in labels.items() if float(k).is_integer()}
                for name, labels in value_labels.items()
            },
            version=15,
        )
