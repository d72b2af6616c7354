"""Derived measures: variables computed from responses' answers by registered functions.

The engine knows nothing about recovery research; an app registers its measures at start-up
(``recovery.apps.RecoveryConfig.ready``) and the dataset builder, exports and analyses compute
them here, so every place gets the same number from the same code.

A measure is computed for many responses at once: its function takes an answers frame (one row
per response, one column per item variable; see ``answers_frame``) and returns one value per
row, with NaN/None where the measure cannot be computed from the row's answers. The helpers
``number``, ``yes`` and ``text`` read a variable the way every measure should: blank, text that
is not a number, a choice list, or a variable the row's questionnaire does not have are all
missing. ``compute`` runs the measures of one instrument on one response's answers (a dict).
"""

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class DerivedMeasure:
    name: str
    label: str
    formula: str  # documented in codebooks, in words and symbols
    kind: str  # integer, decimal, binary or category
    instruments: tuple[str, ...]  # instrument slugs whose answers it is computed from
    compute: Callable[[pd.DataFrame], pd.Series] = field(compare=False)
    choices: tuple[tuple[str, str], ...] = ()  # for categories: (code, label)
    # The range of a number (None: no limit). A measure that can fall between -99 and -92
    # (the datasets' missing codes) has its codes in a column of their own.
    minimum: float | None = None
    maximum: float | None = None


_REGISTRY: dict[str, DerivedMeasure] = {}


def register(measure: DerivedMeasure) -> None:
    existing = _REGISTRY.get(measure.name)
    if existing is not None and existing != measure:
        raise ValueError(f"a different derived measure is already named {measure.name!r}")
    _REGISTRY[measure.name] = measure


def measures(instrument: str | None = None) -> list[DerivedMeasure]:
    return [m for m in _REGISTRY.values() if instrument is None or instrument in m.instruments]


# --- Reading answers frames -----------------------------------------------------------------


def answer_text(value) -> str | None:
    """A stored answer as the text PostgreSQL's ``->>`` gives for it: lists as JSON, booleans
    as true/false, None for none (the dataset builder reads answers as this text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def answers_frame(records: list[dict]) -> pd.DataFrame:
    """Answers dicts as an answers frame: a column per variable, numbers where every answer of
    the column is a number, text otherwise (choice lists as JSON text)."""
    names = list(dict.fromkeys(name for record in records for name in record))
    frame = pd.DataFrame(
        {name: [answer_text(r.get(name)) for r in records] for name in names},
        index=pd.RangeIndex(len(records)),
        dtype=object,
    )
    for name in names:
        numbers = pd.to_numeric(frame[name], errors="coerce")
        if numbers.notna().sum() == frame[name].notna().sum():
            frame[name] = numbers
    return frame


_BOOLEAN_TEXT = {"true": 1.0, "false": 0.0}


def _number_like(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return _BOOLEAN_TEXT.get(value, value)
    return None if isinstance(value, list | dict) else value


def number(frame: pd.DataFrame, variable: str) -> pd.Series:
    """The variable as float64: NaN for blank, text that is not a number and choice lists;
    booleans (JSON true/false, as text or not) count as 1/0, however the column was read."""
    if variable not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype="float64")
    column = frame[variable]
    if column.dtype.kind in "biuf":
        return pd.Series(column.to_numpy(dtype="float64"), index=frame.index, copy=False)
    if isinstance(column.dtype, pd.BooleanDtype | pd.Int64Dtype | pd.Float64Dtype):
        return column.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    text = column.astype(object).where(column.notna(), None)
    text = text.map(_number_like)
    return pd.to_numeric(text, errors="coerce").astype("float64")


def _as_text(value):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if text.strip() else None


def text(frame: pd.DataFrame, variable: str) -> pd.Series:
    """The variable as text (object): whole numbers without ".0", None for blank."""
    if variable not in frame.columns:
        return pd.Series(None, index=frame.index, dtype=object)
    return frame[variable].astype(object).map(_as_text)


def yes(frame: pd.DataFrame, variable: str) -> pd.Series:
    """1.0 where the answer is 1 (yes), 0.0 where it is another number, NaN where blank."""
    value = number(frame, variable)
    return (value == 1).astype("float64").where(value.notna())


def compute_frame(instrument: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Every measure registered for ``instrument``, one column each, for every row of
    ``frame`` (an answers frame)."""
    return pd.DataFrame(
        {m.name: computed(m, frame) for m in measures(instrument)},
        index=frame.index,
    )


def computed(measure: DerivedMeasure, frame: pd.DataFrame) -> pd.Series:
    """The measure for every row of ``frame`` (an answers frame): one value per row, a number
    outside its declared range blank (``in_range``). The one way every caller computes it."""
    values = measure.compute(frame)
    if not isinstance(values, pd.Series) or len(values) != len(frame):
        raise TypeError(f"derived measure {measure.name!r} must return one value per row")
    return in_range(measure, values.set_axis(frame.index))


def in_range(measure: DerivedMeasure, values: pd.Series) -> pd.Series:
    """The measure's values, a number outside its declared range (``minimum``, ``maximum``)
    left blank: not computable from those answers. The datasets keep a measure's missing codes
    in its own cells when its range stays clear of them, so the range must hold even when a
    study lets its questions take answers the measure was not written for (negative days)."""
    if measure.kind not in ("integer", "decimal") or (
        measure.minimum is None and measure.maximum is None
    ):
        return values
    numbers = pd.to_numeric(values, errors="coerce")
    outside = pd.Series(False, index=values.index)
    if measure.minimum is not None:
        outside |= numbers < measure.minimum
    if measure.maximum is not None:
        outside |= numbers > measure.maximum
    return values.mask(outside) if outside.any() else values


def _python(value, kind: str):
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if kind in ("integer", "binary") and isinstance(value, float | bool):
        return int(value)
    return value


def compute(instrument: str, answers: dict) -> dict[str, object]:
    """Every measure registered for ``instrument``, computed from one response's answers:
    whole numbers as int, blanks as None."""
    frame = answers_frame([answers])
    return {m.name: _python(computed(m, frame).iloc[0], m.kind) for m in measures(instrument)}
