"""The analysis frame: the dataset builder's long frame made ready for models.

The dataset builder (``surveys.datasets.dataset_long``) keeps *why* a value is absent as a
negative missing code (-99 wave missed, -98 not yet due, ...). Models need plain numbers and
NaN. :func:`analysis_frame` turns the long frame (one row per participant × wave) into:

* ``pid``, ``site``, ``wave`` as text; ``wave_index`` (0, 1, 2, ... in the study's wave order,
  the order of ``order``, else of ``waves``) and ``months`` (days since enrolment / 30.4375,
  the wave's time);
* ``completed``: 1.0 if the wave was completed, 0.0 if it was missed, NaN when it is not due
  (``surveys.due``: its window is open or has not opened, or it was cancelled), for retention;
* every other column: numbers as float64 and text as object, each missing code replaced by NaN
  in the columns that hold codes (not in a column whose codes are in ``<name>_missing``: a
  value of its own there is a value).

Nothing here imports Django: the missing codes are passed in (the Django side passes
``surveys.datasets.MISSING_CODES``), and ``surveys.due`` (which statuses are due) imports
nothing, so the package also runs on an exported CSV.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from surveys.datasets.codes import MISSING_CODES
from surveys.due import COMPLETED_ROW_STATUS, DUE_ROW_STATUSES

from .errors import AnalysisError

DAYS_PER_MONTH = 30.4375
# The dataset builder's codes (surveys.datasets.codes), the default for a frame read from an
# exported file.
DEFAULT_MISSING_CODES = tuple(MISSING_CODES)
TEXT_COLUMNS = ("pid", "site", "wave", "status")
REQUIRED_COLUMNS = ("pid", "wave")


def analysis_frame(
    long_df: pd.DataFrame,
    *,
    waves: Sequence[str] | None = None,
    missing_codes: Iterable[int] = DEFAULT_MISSING_CODES,
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The long frame with missing codes as NaN, numbers as float64, ``wave_index``,
    ``months`` (since enrolment, at answering where the wave was completed) and ``completed``
    added. ``waves`` gives the wave order (default: the order in
    which waves first appear); rows of other waves are dropped. ``order`` (default: ``waves``)
    numbers the waves: the study's every wave, so that a selection that skips one keeps the
    gap (waves 0, 1 and 3: the lag pairs 0 → 1 only, never 1 → 3 as one step)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in long_df.columns]
    if missing:
        raise AnalysisError(
            f"The data has no {' or '.join(repr(c) for c in missing)} column: analyses need one "
            "row per participant and wave, as the long dataset export gives.",
            code="unknown_column",
        )
    codes = {float(c) for c in missing_codes}
    code_texts = {str(int(c)) for c in codes}
    coded = _coded_columns(long_df)
    wave_text = long_df["wave"].astype(str)
    kept = list(waves) if waves is not None else list(pd.unique(wave_text))
    keep = wave_text.isin(kept).to_numpy()

    out: dict[str, pd.Series | np.ndarray] = {}
    for name in long_df.columns:
        series = long_df[name][keep]
        if name in TEXT_COLUMNS:
            out[name] = series.astype(object).where(series.notna(), None).to_numpy()
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            values = _floats(series)
            if codes and name in coded:
                values[np.isin(values, list(codes))] = np.nan
            out[name] = values
        else:
            text = series.astype(object).to_numpy()
            blank = pd.isna(text)
            if name in coded:
                blank = blank | np.isin(text.astype(str), list(code_texts))
            text = text.copy()
            text[blank] = np.nan
            out[name] = text
    frame = pd.DataFrame(out, index=pd.RangeIndex(int(keep.sum())))
    numbered = list(order or ())
    numbered += [wave for wave in kept if wave not in numbered]
    position = {wave: i for i, wave in enumerate(numbered)}
    frame["wave_index"] = frame["wave"].map(position).astype("int64")
    if "days_since_enrolment" in frame.columns:
        # When the answers were given: the day the window opened, plus the days the
        # participant took where they completed it (the outcome's own time, about ten days
        # later on average; found by review: the window's opening alone was used).
        days = frame["days_since_enrolment"]
        if "days_since_window_opened" in frame.columns:
            days = days + frame["days_since_window_opened"].fillna(0)
        frame["months"] = days / DAYS_PER_MONTH
    if "status" in frame.columns:
        status = frame["status"]
        frame["completed"] = np.select(
            [status == COMPLETED_ROW_STATUS, status.isin(DUE_ROW_STATUSES)], [1.0, 0.0], np.nan
        )
    return frame.sort_values(["pid", "wave_index"], kind="stable").reset_index(drop=True)


def _coded_columns(long_df: pd.DataFrame) -> set[str]:
    """The columns whose cells may hold missing codes. The builder's frame says which
    (``attrs["columns"]``). A frame read from an exported file is read by its names: every
    column but those whose codes are in a column of their own, ``<name>_missing`` (a value of
    theirs could be one: a calculated item, a date before enrolment, a choice coded -99
    "Refused"), their baseline covariates (``<name>_bl``, empty where the baseline is), and
    the ``_missing`` columns themselves (their codes are their values)."""
    meta = long_df.attrs.get("columns")
    if meta:
        return {name for name, info in meta.items() if info.get("missing_codes")}
    names = set(long_df.columns)
    apart = {name for name in names if f"{name}_missing" in names}
    plain = apart | {f"{name}_missing" for name in apart} | {f"{name}_bl" for name in apart}
    return names - plain


def _floats(series: pd.Series) -> np.ndarray:
    return series.to_numpy(dtype="float64", na_value=np.nan).copy()


# A category held by fewer participants than this is pooled with the other rare ones: an
# indicator of a handful of people separates the groups of a propensity model or a GEE by itself.
MIN_CATEGORY_PARTICIPANTS = 10


def indicators(
    frame: pd.DataFrame,
    column: str,
    *,
    prefix: str | None = None,
    min_participants: int = MIN_CATEGORY_PARTICIPANTS,
) -> pd.DataFrame:
    """0/1 indicator columns for each value of a categorical ``column`` but the most common
    (the reference), NaN where the value is missing: a category as covariates. Values held by
    fewer than ``min_participants`` participants (counted by ``pid`` when the frame has it)
    share one ``<column>_other`` indicator; ``attrs["pooled"]`` lists them."""
    values = frame[column]
    if "pid" in frame.columns:
        counts = frame.loc[values.notna(), ["pid", column]].drop_duplicates()[column].value_counts()
    else:
        counts = values.dropna().value_counts()
    if counts.empty:
        raise AnalysisError(f"The column {column!r} has no values.", code="constant_covariate")
    name = prefix or column
    reference = counts.index[0]
    rare = [v for v in counts.index[1:] if counts[v] < min_participants]
    out = {}
    for value in sorted((v for v in counts.index[1:] if v not in rare), key=str):
        out[f"{name}_{_label(value)}"] = np.where(
            values.isna(), np.nan, (values == value).astype(float)
        )
    if rare:
        out[f"{name}_other"] = np.where(values.isna(), np.nan, values.isin(rare).astype(float))
    result = pd.DataFrame(out, index=frame.index)
    result.attrs["pooled"] = [_label(v) for v in sorted(rare, key=str)]
    result.attrs["reference"] = _label(reference)
    return result


def _label(value) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def one_row_per_participant(
    frame: pd.DataFrame, columns: dict[str, tuple[str, str]]
) -> pd.DataFrame:
    """A participant-level frame: for each output name, ``(wave, column)`` picks that wave's value
    of the column. Participants without the wave get NaN. Indexed by ``pid``."""
    pids = pd.Index(pd.unique(frame["pid"]), name="pid")
    out = pd.DataFrame(index=pids)
    for name, (wave, column) in columns.items():
        rows = frame.loc[frame["wave"] == wave, ["pid", column]].drop_duplicates("pid")
        out[name] = rows.set_index("pid")[column].reindex(pids)
    return out


def exposure_outcome_frame(
    frame: pd.DataFrame,
    *,
    exposure: str,
    outcome: str,
    exposure_waves: Sequence[str],
    outcome_wave: str,
    covariates: Sequence[str] = (),
) -> pd.DataFrame:
    """One row per participant for a matched comparison (Costello et al. 2021): the exposure
    over ``exposure_waves`` (its largest value at those waves, so a 0/1 exposure is 1 when it
    was 1 at any of them; NaN when none of them was answered), the outcome at
    ``outcome_wave`` and the covariates (baseline columns: their value at the first wave,
    missing where it is missing there). Indexed by ``pid``; the exposure and outcome keep their
    column names."""
    for name in (exposure, outcome, *covariates):
        if name not in frame.columns:
            raise AnalysisError(
                f"The data has no column {name!r}. Check the spelling, or choose another variable.",
                code="unknown_column",
            )
    known_waves = set(frame["wave"].dropna())
    for wave in (*exposure_waves, outcome_wave):
        if wave not in known_waves:
            raise AnalysisError(
                f"The data has no wave {wave!r}; the waves are "
                f"{', '.join(repr(w) for w in pd.unique(frame['wave']))}.",
                code="unknown_wave",
            )
    if not exposure_waves:
        raise AnalysisError("Choose at least one wave for the exposure.", code="invalid_parameter")
    position = frame.groupby("wave", sort=False)["wave_index"].first()
    if position[outcome_wave] <= max(position[w] for w in exposure_waves):
        raise AnalysisError(
            f"The outcome's wave ({outcome_wave}) must come after every exposure wave "
            f"({', '.join(exposure_waves)}): an outcome measured before or with the exposure "
            "cannot show its effect.",
            code="invalid_parameter",
        )
    pids = pd.Index(pd.unique(frame["pid"]), name="pid")
    exposed = frame.loc[frame["wave"].isin(list(exposure_waves)), ["pid", exposure]]
    out = pd.DataFrame(index=pids)
    out[exposure] = exposed.groupby("pid", sort=False)[exposure].max().reindex(pids)
    later = frame.loc[frame["wave"] == outcome_wave, ["pid", outcome]].drop_duplicates("pid")
    out[outcome] = later.set_index("pid")[outcome].reindex(pids)
    if covariates:
        # At the first wave (the baseline), as answered: a value missing there stays missing
        # (the participant is left out and counted), never filled from a later wave, which
        # may be the exposure's or the outcome's (found by review: ``first()`` skipped
        # missing values and took the rows in the order they came).
        first_wave = frame["wave_index"].min()
        baseline = frame.loc[frame["wave_index"] == first_wave, ["pid", *covariates]]
        out = out.join(baseline.drop_duplicates("pid").set_index("pid")[list(covariates)])
    return out
