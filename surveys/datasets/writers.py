"""Writers of dataset frames: CSV written a block of rows at a time, and the codebook.

``csv_rows`` yields the header line, then the text of a few thousand lines at a time, so a
``StreamingHttpResponse`` (or a file written chunk by chunk) never holds the whole file as text.
The lines are written by Arrow's CSV writer (C++; text cells in double quotes, empty cells
empty, whole numbers without ".0"). Cells are codes by default; ``labels=True`` writes each
value's label (choices, yes/no, statuses, and the missing codes' labels) where it has one.
Text that a spreadsheet would run as a formula gets a leading quote (``cells.formula_safe``).
"""

import csv
import io
import re
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from surveys.datasets.bare import bare
from surveys.datasets.cells import FORMULA_STARTS, NUMBER, formula_safe
from surveys.datasets.codes import MISSING_CODES
from surveys.datasets.statfiles import coded_text, file_names, labelled_columns, text_numbers

CHUNK_ROWS = 5000
_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed", eol="\r\n")


def _text(value) -> str | None:
    """A cell as text: whole numbers without ".0" (so -99.0 is the code -99), None if empty."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _labelled(series: pd.Series, meta: dict) -> pd.Series:
    """A column with each value's label in place of the value, where it has one."""
    mapping = dict(meta.get("values") or {})
    if meta.get("missing_codes"):
        mapping.update({str(code): label for code, label in MISSING_CODES.items()})
    if not mapping:
        return series
    texts = (_text(value) for value in series.astype(object).tolist())
    labelled = [None if text is None else mapping.get(text, text) for text in texts]
    return pd.Series(labelled, index=series.index, dtype="string")


_STARTS = pa.array(list(FORMULA_STARTS))
_NUMBER = f"^(?:{NUMBER.pattern})$"  # RE2's $ is the end of the text, as fullmatch's


def _guarded(series: pd.Series) -> pd.Series:
    """A text column with a quote before each cell a spreadsheet would run as a formula
    (``cells.needs_guard``, for the whole column at once by Arrow; the few cells it finds
    are then guarded one by one)."""
    values = pa.array(series, type=pa.string(), from_pandas=True)
    starts = pc.is_in(pc.utf8_slice_codeunits(values, 0, 1), value_set=_STARTS)
    found = pc.and_(starts, pc.invert(pc.match_substring_regex(values, _NUMBER)))
    if not pc.any(found).as_py():
        return series
    risky = found.fill_null(False).to_numpy(zero_copy_only=False)
    series = series.copy()
    series[risky] = series[risky].map(formula_safe)
    return series


def header_line(names) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(names)
    return buffer.getvalue()


def _arrow(series: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow, text through the formula guard. A typed column (the builder's
    nullable integers, decimals and Arrow text) hands over its own arrays."""
    values = series.array
    if isinstance(values, pd.arrays.ArrowStringArray):
        return _guarded_arrow(pa.chunked_array(values.__arrow_array__()))
    if isinstance(values, pd.arrays.IntegerArray | pd.arrays.FloatingArray):
        return pa.array(values)
    if pd.api.types.is_object_dtype(series.dtype) or isinstance(series.dtype, pd.StringDtype):
        return pa.array(_guarded(series.astype("string")), from_pandas=True)
    return pa.array(series, from_pandas=True)


def _guarded_arrow(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """``_guarded`` for text already in Arrow (the common case: nothing to guard)."""
    starts = pc.is_in(pc.utf8_slice_codeunits(values, 0, 1), value_set=_STARTS)
    found = pc.and_(starts, pc.invert(pc.match_substring_regex(values, _NUMBER)))
    if not pc.any(found).as_py():
        return values
    series = pd.Series(pd.arrays.ArrowStringArray(values))
    return pa.chunked_array([pa.array(_guarded(series), type=values.type, from_pandas=True)])


def csv_lines(df: pd.DataFrame, *, labels: bool = False, meta: dict | None = None) -> str:
    """The frame's rows as CSV lines (no header)."""
    meta = df.attrs.get("columns", {}) if meta is None else meta
    plain = bare(df)
    arrays = []
    for name in plain.columns:
        info = meta.get(name, {})
        if labels and (info.get("values") or info.get("missing_codes")):
            arrays.append(pa.array(_guarded(_labelled(plain[name], info)), from_pandas=True))
        else:
            arrays.append(_arrow(plain[name]))
    table = pa.Table.from_arrays(arrays, names=[str(name) for name in plain.columns])
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, write_options=_OPTIONS)
    return buffer.getvalue().decode("utf-8")


def csv_rows(
    df: pd.DataFrame, *, labels: bool = False, chunk_rows: int = CHUNK_ROWS, header: bool = True
) -> Iterator[str]:
    """The frame as CSV text: the header line, then blocks of whole lines."""
    meta = df.attrs.get("columns", {})
    if header:
        yield header_line(df.columns)
    plain = bare(df)
    for start in range(0, len(plain), chunk_rows):
        yield csv_lines(plain.iloc[start : start + chunk_rows], labels=labels, meta=meta)


CODEBOOK_COLUMNS = (
    "name",
    "label",
    "type",
    "values",
    "source",
    "formula",
    "branching",
    "range",
    "missing_codes",
    "sav_name",
    "dta_name",
    "sav_dta_values",
)
_TYPES = {"Int64": "integer", "Float64": "decimal", "string": "text"}


_APART = re.compile(r"^in (\S+): ")


def _apart(name: str) -> str:
    """The codebook's word on a column whose missing codes are in a column of their own
    (``name``; in a wide frame, that wave's column of them: ``shapes.dataset_wide``)."""
    if not name:
        return ""
    return f"in {name}: a value of this column could be a code, so its empty cells stay empty"


def missing_apart(cell: str) -> str:
    """The column holding a column's missing codes, from its codebook cell ("": none apart)."""
    found = _APART.match(cell or "")
    return found.group(1) if found else ""


def codebook(study, df: pd.DataFrame) -> pd.DataFrame:
    """One row per column of ``df``: its name, label, type, values and their labels, source
    instrument(s) and version(s) (or "derived"), the formula of a derived measure or calculated
    item, the branching that shows it, its range, and the missing codes its cells may hold.

    Then how an SPSS or Stata file differs (``statfiles``): the column's name in a ``.sav`` and
    in a ``.dta`` file where it is not the dataset's, and for a text column with value labels,
    the number each code is written as there (``"both = 1; medication_only = 2"``)."""
    meta = df.attrs.get("columns", {})
    plain = bare(df)
    sav_names = file_names(plain.columns, "sav")
    dta_names = file_names(plain.columns, "dta", labelled=labelled_columns(plain, meta))
    # "(-99) Wave missed: …": a cell starting "-99 = …" would read as a formula in a
    # spreadsheet, and the guard's quote would be the first thing a researcher saw.
    missing = "; ".join(f"({code}) {label}" for code, label in MISSING_CODES.items())
    rows = []
    for name in plain.columns:
        info = meta.get(name, {})
        numbers = text_numbers(info, plain[name]) if coded_text(info, plain[name]) else {}
        sources = info.get("sources") or {}
        role = info.get("role", "")
        source = "; ".join(
            f"{slug} v{', v'.join(str(n) for n in numbers)}" if numbers else slug
            for slug, numbers in sources.items()
        )
        if role in ("derived",) or info.get("item_kind", "").startswith("derived:"):
            source = f"derived from {source}" if source else "derived"
        if info.get("wave"):
            source = f"{source} (wave {info['wave']})" if source else f"wave {info['wave']}"
        low, high = info.get("min_value", ""), info.get("max_value", "")
        rows.append(
            {
                "name": name,
                "label": info.get("label", ""),
                "type": _TYPES.get(info.get("dtype", ""), str(plain[name].dtype)),
                "values": "; ".join(f"{k} = {v}" for k, v in (info.get("values") or {}).items()),
                "source": source,
                "formula": info.get("formula", ""),
                "branching": info.get("branching", ""),
                "range": f"{low} to {high}" if low or high else "",
                "missing_codes": missing
                if info.get("missing_codes")
                else _apart(info.get("missing_column", "")),
                "sav_name": "" if sav_names[name] == name else sav_names[name],
                "dta_name": "" if dta_names[name] == name else dta_names[name],
                "sav_dta_values": "; ".join(f"{k} = {n}" for k, n in numbers.items()),
            }
        )
    frame = pd.DataFrame(rows, columns=list(CODEBOOK_COLUMNS)).astype("string")
    frame.attrs["dataset"] = {"shape": "codebook", "study": getattr(study, "slug", str(study))}
    return frame
