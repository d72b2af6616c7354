"""Dataset files for statistics packages: Excel (data and codebook sheets), SPSS ``.sav`` and
Stata ``.dta`` with variable and value labels (pyreadstat), and Parquet with its own types
(pyarrow): categories for the row's site, wave and status, nullable integers elsewhere.

Missing codes stay numbers in every file (−99 … −93, see ``codes.MISSING_CODES``), labelled as
values; SPSS also declares them user-missing, so its statistics leave them out. A column whose
codes are in ``<name>_missing`` (its own values could be codes) declares none: its answers are
answers; the ``_missing`` column's codes are its values, labelled.

Every text cell of an Excel file goes through ``cells.formula_safe`` (openpyxl would store a text
starting with "=" as a formula), and loses the control characters an XLSX file cannot hold
(``cells.xml_safe``: openpyxl refuses them). The codebook also comes as one HTML page
(``"html"``, ``codebook_html``), for reading and printing.
"""

import hashlib
from pathlib import Path

import pandas as pd
import pyreadstat

from surveys.datasets.bare import bare
from surveys.datasets.builder import DECIMAL, INTEGER
from surveys.datasets.cells import formula_safe, xml_safe
from surveys.datasets.codebook_html import codebook_html
from surveys.datasets.codes import HIGHEST_CODE, LOWEST_CODE, MISSING_CODES
from surveys.datasets.writers import codebook

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
    "sav": ("application/x-spss-sav", "sav"),
    "dta": ("application/x-stata-dta", "dta"),
    "parquet": ("application/vnd.apache.parquet", "parquet"),
    "html": ("text/html; charset=utf-8", "html"),
}
STATA_NAME, STATA_LABEL = 32, 80
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


def _value_labels(info: dict) -> dict[float, str]:
    labels: dict[float, str] = {}
    for value, label in (info.get("values") or {}).items():
        try:
            labels[float(value)] = label
        except ValueError:
            continue  # a text code: no numeric label (text columns keep their text)
    if info.get("missing_codes"):
        labels.update({float(code): label for code, label in MISSING_CODES.items()})
    return labels


def _stata_name(name: str, taken: set[str]) -> str:
    """Stata allows 32 characters: a longer name keeps its start and a short digest."""
    if len(name) <= STATA_NAME:
        return name
    short = f"{name[: STATA_NAME - 5]}_{hashlib.sha1(name.encode()).hexdigest()[:4]}"  # noqa: S324
    while short in taken:
        short = short[:-1] + "x"
    return short


def _stats_package(df: pd.DataFrame, path: Path, fmt: str) -> None:
    meta = _meta(df)
    columns: dict[str, pd.Series] = {}
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in df.columns:
        name = _stata_name(column, taken) if fmt == "dta" else column
        taken.add(name)
        names[column] = name
        dtype = meta.get(column, {}).get("dtype")
        series = df[column]
        if dtype in (INTEGER, DECIMAL) or pd.api.types.is_numeric_dtype(series.dtype):
            columns[name] = series.astype("Float64").astype("float64")  # NaN for empty cells
        else:
            columns[name] = series.astype("string").astype(object).where(series.notna(), "")
    out = pd.DataFrame(columns, index=df.index)
    column_labels = []
    value_labels: dict[str, dict[float, str]] = {}
    missing: dict[str, list[dict]] = {}
    for column, name in names.items():
        info = meta.get(column, {})
        label = info.get("label", "")
        if name != column:
            label = f"{column}: {label}"
        column_labels.append(label[:STATA_LABEL] if fmt == "dta" else label)
        if out[name].dtype == "float64":
            labels = _value_labels(info)
            if labels:
                value_labels[name] = labels
            if info.get("missing_codes"):
                missing[name] = [{"lo": LOWEST_CODE, "hi": HIGHEST_CODE}]
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
