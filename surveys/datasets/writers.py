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

from surveys.datasets.builder import STRING
from surveys.datasets.codes import MISSING_CODES

CHUNK_ROWS = 500


def _number_text(value) -> str:
    """A number as text: whole numbers without ".0", others in the shortest exact form."""
    if pd.isna(value):
        return ""
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


def _as_text(series: pd.Series, meta: dict, labels: bool) -> pd.Series:
    if meta.get("dtype") == STRING or not pd.api.types.is_numeric_dtype(series.dtype):
        text = series.astype("string")
    else:
        text = series.map(_number_text, na_action="ignore").astype("string")
    if labels:
        mapping = dict(meta.get("values") or {})
        if meta.get("missing_codes"):
            mapping.update({str(code): label for code, label in MISSING_CODES.items()})
        if mapping:
            text = text.map(lambda v: mapping.get(v, v), na_action="ignore").astype("string")
    return text.fillna("")


def csv_rows(
    df: pd.DataFrame, *, labels: bool = False, chunk_rows: int = CHUNK_ROWS
) -> Iterator[str]:
    """The frame as CSV text: the header line, then blocks of whole lines."""
    meta = df.attrs.get("columns", {})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(df.columns)
    yield buffer.getvalue()
    for start in range(0, len(df), chunk_rows):
        chunk = df.iloc[start : start + chunk_rows]
        texts = [_as_text(chunk[name], meta.get(name, {}), labels) for name in df.columns]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerows(zip(*(t.tolist() for t in texts), strict=True))
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
