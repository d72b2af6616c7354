"""What an SPSS (``.sav``) or Stata (``.dta``) file holds where it differs from the dataset
frame: the writer (``formats``) and the codebook (``writers.codebook``) both ask here, so the
codebook describes the file as it is.

Names. A name the format cannot hold is changed, once, the same way for every export of the
same columns: a character other than a-z, A-Z, 0-9 and ``_`` becomes ``_`` (a choice coded
``-99`` gives ``refusal_multi____99``); a name not starting with a letter gets a ``v`` in
front; a reserved word (SPSS's in any case, Stata's as Stata spells them) gets a ``_`` after
it; a name too long keeps its start and a short digest of the whole name; a name another
column already has (for SPSS, in any case) gets ``_2``, ``_3``, … Names the file can hold
are never changed. The limits: SPSS 64 bytes; Stata 32 characters, and 27 for a variable with
value labels: pyreadstat names its label set after it, followed by the set's number in the
file (``gender0``, …, ``status_m12_1234``), and readstat refuses a set name longer than 32
("A provided name is too long for the file format"); 27 leaves room for five digits, more
than the variables Stata takes, so a name never depends on the other columns.

Text codes. A text column with value labels (a derived category such as ``mat_mhg_class``, a
single choice with text codes, the row's ``status``, the diary's ``group`` and ``format``) is
written as numbers with value labels, so SPSS and Stata tabulate it with its labels and SPSS
leaves the missing codes out: a code that is a whole number keeps it (``"2"`` is 2), the other
codes are numbered 1, 2, … in the questionnaire's order, skipping numbers taken, and a code
in the data that the questionnaire no longer lists comes after them, labelled with itself.
The missing codes stay the same numbers as in every other column.
"""

import hashlib
import re
from collections.abc import Container, Iterable

import pandas as pd

from surveys.datasets.codes import CODE_TEXTS
from surveys.datasets.plan import DECIMAL, INTEGER, STRING

NAME_LIMITS = {"sav": 64, "dta": 32}
DTA_LABELLED_LIMIT = 32 - 5  # (see above)
# SPSS's reserved words, in any case (SPSS reads its syntax without regard to case).
SAV_RESERVED = frozenset(
    ("all", "and", "by", "eq", "ge", "gt", "le", "lt", "ne", "not", "or", "to", "with")
)
# Stata's reserved names (case matters in Stata), and str1, str2, … strL.
DTA_RESERVED = frozenset(
    (
        "_all", "_b", "byte", "_coef", "_cons", "double", "float", "if", "in", "int", "long",
        "_n", "_N", "_pi", "_pred", "_rc", "_skip", "strL", "using", "with",
    )
)  # fmt: skip
_DTA_STR = re.compile(r"str[0-9]+")
_ILLEGAL = re.compile(r"[^A-Za-z0-9_]")
_LETTER = re.compile(r"[A-Za-z]")


def _reserved(name: str, fmt: str) -> bool:
    if fmt == "sav":
        return name.lower() in SAV_RESERVED
    return name in DTA_RESERVED or bool(_DTA_STR.fullmatch(name))


def _key(name: str, fmt: str) -> str:
    return name.lower() if fmt == "sav" else name


def _legal(name: str, fmt: str) -> str:
    legal = _ILLEGAL.sub("_", name)
    if not _LETTER.match(legal):
        legal = f"v{legal}"
    if _reserved(legal, fmt):
        legal = f"{legal}_"
    return legal


def file_names(
    columns: Iterable[str], fmt: str, *, labelled: Container[str] = ()
) -> dict[str, str]:
    """Each column's name in a ``fmt`` (``"sav"`` or ``"dta"``) file, in the columns' order.
    ``labelled``: the columns written with value labels (``has_value_labels``)."""
    columns = [str(column) for column in columns]

    def limit_of(column: str) -> int:
        if fmt == "dta" and column in labelled:
            return DTA_LABELLED_LIMIT
        return NAME_LIMITS[fmt]

    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:  # the names the file holds as they are keep them
        key = _key(column, fmt)
        if _legal(column, fmt) == column and len(column) <= limit_of(column) and key not in taken:
            names[column] = column
            taken.add(key)
    for column in columns:
        if column in names:
            continue
        legal, limit = _legal(column, fmt), limit_of(column)
        if len(legal) > limit:
            digest = hashlib.sha1(column.encode()).hexdigest()[:4]  # noqa: S324 (a tag)
            legal = f"{legal[: limit - 5]}_{digest}"
        name, number = legal, 1
        while _key(name, fmt) in taken:
            number += 1
            suffix = f"_{number}"
            name = f"{legal[: limit - len(suffix)]}{suffix}"
        names[column] = name
        taken.add(_key(name, fmt))
    return {column: names[column] for column in columns}


def coded_text(info: dict, series: pd.Series) -> bool:
    """Whether a column is text with value labels: written as numbers in a .sav or .dta."""
    if not info.get("values"):
        return False
    dtype = info.get("dtype")
    if dtype is not None:
        return dtype == STRING
    return not pd.api.types.is_numeric_dtype(series.dtype)


def numeric(info: dict, series: pd.Series) -> bool:
    """Whether a column is written as numbers (its own, or its text codes')."""
    if coded_text(info, series):
        return True
    return info.get("dtype") in (INTEGER, DECIMAL) or pd.api.types.is_numeric_dtype(series.dtype)


def has_value_labels(info: dict, series: pd.Series) -> bool:
    """Whether a column is written with value labels: numbers with labelled values or codes."""
    return numeric(info, series) and bool(info.get("values") or info.get("missing_codes"))


def labelled_columns(df: pd.DataFrame, meta: dict) -> set[str]:
    return {name for name in df.columns if has_value_labels(meta.get(name, {}), df[name])}


def _whole(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        return None
    return number if str(number) == text else None


def text_numbers(info: dict, series: pd.Series) -> dict[str, int]:
    """The number written for each text code of a ``coded_text`` column (``series``: its
    cells, for codes the questionnaire no longer lists)."""
    codes = [str(code) for code in info.get("values") or {}]
    skip = CODE_TEXTS if info.get("missing_codes") else frozenset()
    found = set(series.dropna().astype(str)) - set(codes) - skip
    codes += sorted(found)
    numbers: dict[str, int] = {}
    for code in codes:
        number = _whole(code)
        if number is not None and number not in numbers.values():
            numbers[code] = number
    following = 1
    for code in codes:
        if code in numbers:
            continue
        while following in numbers.values():
            following += 1
        numbers[code] = following
    return {code: numbers[code] for code in codes}
