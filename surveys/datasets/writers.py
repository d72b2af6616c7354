"""Writers of dataset frames: a streamed CSV, and the codebook.

``csv_rows`` yields text a few hundred lines at a time, so a ``StreamingHttpResponse`` (or a file
written chunk by chunk) never holds the whole file as text. Cells are written as codes by
default; ``labels=True`` writes each value's label (choices, yes/no, statuses, and the missing
codes' labels) where it has one.
"""

import csv
import io
from collections.abc import Iterator

import pandas as pd

from surveys.datasets.codes import MISSING_CODES

CHUNK_ROWS = 500


def _cell(value) -> str:
    """One cell's text: empty for a missing value, whole numbers without ".0" (codes such as
    -99 too), other numbers in Python's shortest exact form, text as it is."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _as_text(series: pd.Series, meta: dict, labels: bool) -> list[str]:
    """A whole column as the text of its cells, in plain Python over the column's values
    (measured: pandas' per-column string conversions cost far more on wide frames)."""
    texts = [_cell(value) for value in series.tolist()]
    if labels:
        mapping = dict(meta.get("values") or {})
        if meta.get("missing_codes"):
            mapping.update({str(code): label for code, label in MISSING_CODES.items()})
        if mapping:
            texts = [mapping.get(text, text) for text in texts]
    return texts


def csv_rows(
    df: pd.DataFrame, *, labels: bool = False, chunk_rows: int = CHUNK_ROWS
) -> Iterator[str]:
    """The frame as CSV text: the header line, then blocks of whole lines."""
    meta = df.attrs.get("columns", {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(df.columns)
    yield buffer.getvalue()
    # Each column is turned into text once (pandas, vectorised); the lines are then written a
    # block at a time. items() rather than df[name]: a wide frame has hundreds of columns.
    # Without its attrs: pandas deep-copies a frame's attrs (here, every column's metadata) into
    # each column it hands out, which made this loop quadratic in the number of columns.
    plain = df.copy(deep=False)
    plain.attrs = {}
    columns = [_as_text(series, meta.get(name, {}), labels) for name, series in plain.items()]
    for start in range(0, len(df), chunk_rows):
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        block = (column[start : start + chunk_rows] for column in columns)
        writer.writerows(zip(*block, strict=True))
        yield buffer.getvalue()


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
)
_TYPES = {"Int64": "integer", "Float64": "decimal", "string": "text"}


def codebook(study, df: pd.DataFrame) -> pd.DataFrame:
    """One row per column of ``df``: its name, label, type, values and their labels, source
    instrument(s) and version(s) (or "derived"), the formula of a derived measure or calculated
    item, the branching that shows it, its range, and the missing codes its cells may hold."""
    meta = df.attrs.get("columns", {})
    missing = "; ".join(f"{code} = {label}" for code, label in MISSING_CODES.items())
    rows = []
    for name in df.columns:
        info = meta.get(name, {})
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
                "type": _TYPES.get(info.get("dtype", ""), str(df[name].dtype)),
                "values": "; ".join(f"{k} = {v}" for k, v in (info.get("values") or {}).items()),
                "source": source,
                "formula": info.get("formula", ""),
                "branching": info.get("branching", ""),
                "range": f"{low} to {high}" if low or high else "",
                "missing_codes": missing if info.get("missing_codes") else "",
            }
        )
    frame = pd.DataFrame(rows, columns=list(CODEBOOK_COLUMNS)).astype("string")
    frame.attrs["dataset"] = {"shape": "codebook", "study": getattr(study, "slug", str(study))}
    return frame
