"""Descriptive tables by wave: attendance, involvement, medication × mutual-help, retention.

Every function takes the analysis frame (:func:`~recovery.analysis.frames.analysis_frame`: one
row per participant × wave) and returns a tidy DataFrame ordered by ``wave_index``, with the
wave's name in ``wave``. A wave none of whose rows answered the question is left out of the
attendance, involvement and medication tables (the baseline has no follow-up measures);
the retention table has every wave.

Which rows count:

* **Answered.** Attendance, involvement and medication are described among the rows whose wave
  was completed (``completed == 1``, when the frame has that column) and that answered the
  question (the measure is not missing). ``n`` is that number of rows, which is the number of
  participants, one row per participant and wave.
* **Meetings.** A fellowship × format cell (``mtg_<fellowship>_<format>``) counts the meetings
  of the past 30 days. As in ``recovery.measures.meetings_total``, a cell counts 0 when the
  participant said they went to no meetings (``attended_any = 0``) and when it is blank although
  attendance was answered (a fellowship or format not attended is not asked). The fellowships
  and formats are read from the column names, so any set of them works; ``"all"`` stands for
  the sum over fellowships or formats, and the ``all``/``all`` row is ``meetings_total``.

The intervals are 95 % intervals:

* a proportion: the Wilson score interval without continuity correction (Wilson 1927; statsmodels
  ``proportion_confint(method="wilson")``), which stays inside 0–1 and keeps its coverage for
  small n and proportions near 0 or 1, unlike the normal (Wald) interval;
* a mean: the t-interval, mean ± t(0.975, n − 1) × SD / √n (SD with n − 1); none for n < 2.

Within a wave each participant has one row, so these intervals are per-wave intervals for
independent observations. The helpers :func:`wilson_interval`, :func:`t_interval` and
:func:`summarise_outcome` are shared with the dose–response and online analyses, and the
checks :func:`require_columns` and :func:`require_numeric` with those and the longitudinal
ones.

A missing column or a value outside its coding raises
:class:`~recovery.analysis.errors.AnalysisError` with a plain-language message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from .errors import AnalysisError

MEETING_COLUMN = re.compile(r"^mtg_([a-z0-9]+)_(inperson|online|online24|hybrid)$")
FORMATS = ("inperson", "online", "online24", "hybrid")
ALL = "all"
INVOLVEMENT_LEVELS = (0, 1, 2, 3, 4, 5)
MAT_MHG_CLASSES = ("both", "medication_only", "mhg_only", "neither")
ROW_STATUSES = ("completed", "missed", "cancelled", "not_yet_due", "open")


# --- Shared helpers ------------------------------------------------------------------------


def require_columns(frame: pd.DataFrame, columns: Iterable[str], *, purpose: str) -> None:
    """Raise a plain :class:`AnalysisError` (``code="unknown_column"``) naming every column of
    ``columns`` the frame lacks; ``purpose`` says what needs them ("the dose–response
    analysis")."""
    if not isinstance(frame, pd.DataFrame):
        raise AnalysisError("The data must be a pandas DataFrame.", code="invalid_parameter")
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        listed = ", ".join(repr(c) for c in missing)
        raise AnalysisError(
            f"The data has no column {listed}, which {purpose} needs. Check the spelling, or "
            "export the dataset again with that variable.",
            code="unknown_column",
        )


def require_numeric(frame: pd.DataFrame, column: str, *, role: str) -> None:
    """Raise ``code="non_numeric"`` when ``column`` holds text, naming a few of its values;
    ``role`` says what the column is for ("outcome")."""
    series = frame[column]
    if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
        values = ", ".join(repr(v) for v in pd.unique(series.dropna())[:3])
        raise AnalysisError(
            f"The {role} {column!r} is not numeric (it holds {values}). Code a category as 0/1 "
            "indicator columns, or choose a numeric variable.",
            code="non_numeric",
        )


def is_binary(values: np.ndarray) -> bool:
    """True when every (non-missing) value is 0 or 1."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())


def wilson_interval(count: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % Wilson score interval of ``count`` / ``n`` (elementwise); NaN where ``n`` is 0."""
    count = np.atleast_1d(np.asarray(count, dtype=float))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    ok = n > 0
    low, high = proportion_confint(
        np.where(ok, count, 0.0), np.where(ok, n, 1.0), alpha=0.05, method="wilson"
    )
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def t_interval(mean: np.ndarray, sd: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """95 % t-interval of a mean, mean ± t(0.975, n − 1) × sd / √n (elementwise); NaN where
    n < 2."""
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    sd = np.atleast_1d(np.asarray(sd, dtype=float))
    n = np.atleast_1d(np.asarray(n, dtype=float))
    ok = n >= 2
    safe_n = np.where(ok, n, 2.0)
    half = stats.t.ppf(0.975, safe_n - 1) * np.where(ok, sd, 0.0) / np.sqrt(safe_n)
    return np.where(ok, mean - half, np.nan), np.where(ok, mean + half, np.nan)


def summarise_outcome(
    values: np.ndarray, groups: np.ndarray, n_groups: int, *, binary: bool
) -> pd.DataFrame:
    """Per group ``0 … n_groups − 1`` (rows of ``groups``; a negative group is left out):
    ``n``, ``mean`` (a proportion for a 0/1 outcome) and its 95 % interval ``ci_low``,
    ``ci_high`` — Wilson for a 0/1 outcome, t otherwise. Missing values are left out."""
    values = np.asarray(values, dtype=float)
    groups = np.asarray(groups)
    keep = (groups >= 0) & ~np.isnan(values)
    y, g = values[keep], groups[keep].astype(int)
    n = np.bincount(g, minlength=n_groups).astype(float)
    total = np.bincount(g, weights=y, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / n
        if binary:
            low, high = wilson_interval(total, n)
        else:
            squares = np.bincount(g, weights=(y - mean[g]) ** 2, minlength=n_groups)
            sd = np.sqrt(squares / (n - 1))
            low, high = t_interval(mean, sd, n)
    return pd.DataFrame(
        {"n": n.astype(int), "mean": mean, "ci_low": low, "ci_high": high},
        index=pd.RangeIndex(n_groups),
    )


def meeting_columns(frame: pd.DataFrame) -> list[tuple[str, str, str]]:
    """``(column, fellowship, format)`` of every ``mtg_<fellowship>_<format>`` column:
    fellowships in the order of the columns, formats in the order of ``FORMATS``."""
    found = []
    for column in frame.columns:
        match = MEETING_COLUMN.match(str(column))
        if match:
            found.append((str(column), match.group(1), match.group(2)))
    fellowships = list(dict.fromkeys(f for _, f, _ in found))
    return sorted(found, key=lambda c: (fellowships.index(c[1]), FORMATS.index(c[2])))


def _answered(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Rows whose wave was completed (when the frame says so) and that answered ``column``."""
    keep = frame[column].notna().to_numpy()
    if "completed" in frame.columns:
        keep = keep & (frame["completed"].to_numpy(dtype=float, na_value=np.nan) == 1)
    return keep


def _wave_names(frame: pd.DataFrame) -> pd.Series:
    """The wave's name per ``wave_index``."""
    return frame.groupby("wave_index", sort=True)["wave"].first()


def _check_coded(values: np.ndarray, allowed: Iterable[float], column: str, coding: str) -> None:
    values = values[~np.isnan(values)]
    bad = values[~np.isin(values, list(allowed))]
    if bad.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(bad)[:5])
        raise AnalysisError(
            f"The column {column!r} must hold {coding}; it also holds {shown}. Check that the "
            "right variable is chosen and that missing codes were turned into blanks "
            "(analysis_frame does this).",
            code="out_of_range",
        )


# --- Attendance ----------------------------------------------------------------------------


def attendance_by_wave(frame: pd.DataFrame) -> pd.DataFrame:
    """Meetings in the past 30 days per wave × fellowship × format, among the rows that
    answered the attendance question (``attended_any``) at a completed wave.

    Columns: ``wave``, ``wave_index``, ``fellowship`` (the column's stem, or ``"all"``),
    ``format`` (``inperson``/``online``/``online24``/``hybrid``, or ``"all"``), ``n`` (rows
    answering), ``mean`` and ``median`` meetings, ``share_any`` (share with at least one
    meeting). Every fellowship × format cell is followed by its fellowship's ``all``-formats row;
    the ``all``-fellowships rows (per format, then in total) come last in each wave.
    """
    require_columns(frame, ("wave", "wave_index", "attended_any"), purpose="the attendance table")
    cells = meeting_columns(frame)
    if not cells:
        raise AnalysisError(
            "The data has no meeting-count columns (mtg_<fellowship>_<format>, e.g. "
            "mtg_na_inperson), which the attendance table needs. Export the dataset again with "
            "the attendance items.",
            code="unknown_column",
        )
    keep = _answered(frame, "attended_any")
    data = frame.loc[keep]
    attended = data["attended_any"].to_numpy(dtype=float)
    _check_coded(attended, (0.0, 1.0), "attended_any", "0 (no) or 1 (yes)")
    counts = data[[c for c, _, _ in cells]].to_numpy(dtype=float, na_value=np.nan)
    if (counts < 0).any():
        column = cells[int(np.flatnonzero((counts < 0).any(axis=0))[0])][0]
        raise AnalysisError(
            f"The column {column!r} holds a negative meeting count; missing codes must be "
            "blanks (analysis_frame turns them into blanks).",
            code="out_of_range",
        )
    # Not attended, or blank although attendance was answered: 0 meetings.
    counts = np.where(attended[:, None] == 1, np.nan_to_num(counts, nan=0.0), 0.0)

    fellowships = list(dict.fromkeys(f for _, f, _ in cells))
    formats = [f for f in FORMATS if any(c[2] == f for c in cells)]
    keys: list[tuple[str, str]] = []
    columns: list[np.ndarray] = []
    for fellowship in fellowships:
        mine = [i for i, c in enumerate(cells) if c[1] == fellowship]
        for i in mine:
            keys.append((fellowship, cells[i][2]))
            columns.append(counts[:, i])
        keys.append((fellowship, ALL))
        columns.append(counts[:, mine].sum(axis=1))
    for fmt in formats:
        mine = [i for i, c in enumerate(cells) if c[2] == fmt]
        keys.append((ALL, fmt))
        columns.append(counts[:, mine].sum(axis=1))
    keys.append((ALL, ALL))
    columns.append(counts.sum(axis=1))

    matrix = np.column_stack(columns) if columns else np.empty((len(data), 0))
    waves = data["wave_index"].to_numpy()
    values = pd.DataFrame(matrix)
    grouped = values.groupby(waves, sort=True)
    means = grouped.mean()
    medians = grouped.median()
    shares = pd.DataFrame(matrix >= 1).groupby(waves, sort=True).mean()
    sizes = grouped.size()

    wave_index = means.index.to_numpy()
    n_keys = len(keys)
    names = _wave_names(frame)
    return pd.DataFrame(
        {
            "wave": np.repeat(names.reindex(wave_index).to_numpy(), n_keys),
            "wave_index": np.repeat(wave_index, n_keys).astype("int64"),
            "fellowship": np.tile([k[0] for k in keys], wave_index.size),
            "format": np.tile([k[1] for k in keys], wave_index.size),
            "n": np.repeat(sizes.to_numpy(), n_keys).astype("int64"),
            "mean": means.to_numpy().ravel(),
            "median": medians.to_numpy().ravel(),
            "share_any": shares.to_numpy(dtype=float).ravel(),
        }
    )


# --- Involvement ---------------------------------------------------------------------------


def involvement_by_wave(frame: pd.DataFrame) -> pd.DataFrame:
    """The involvement index (0–5) and high involvement (0/1) per wave, among completed waves
    that answered them.

    Columns: ``wave``, ``wave_index``; the index: ``n``, ``mean``, ``ci_low``, ``ci_high``
    (t-interval), ``share_0`` … ``share_5`` (its distribution; they add up to 1); high
    involvement: ``high_n`` (rows answering), ``high_count``, ``high_share``,
    ``high_ci_low``, ``high_ci_high`` (Wilson). The two ``n`` can differ: high involvement
    needs fewer items answered than the index.
    """
    require_columns(
        frame,
        ("wave", "wave_index", "involvement_index", "high_involvement"),
        purpose="the involvement table",
    )
    index_rows = frame.loc[_answered(frame, "involvement_index")]
    index = index_rows["involvement_index"].to_numpy(dtype=float)
    _check_coded(index, INVOLVEMENT_LEVELS, "involvement_index", "whole numbers from 0 to 5")
    high_rows = frame.loc[_answered(frame, "high_involvement")]
    high = high_rows["high_involvement"].to_numpy(dtype=float)
    _check_coded(high, (0.0, 1.0), "high_involvement", "0 (no) or 1 (yes)")

    waves = np.union1d(index_rows["wave_index"].unique(), high_rows["wave_index"].unique())
    position = {w: i for i, w in enumerate(waves)}
    k = waves.size
    g_index = index_rows["wave_index"].map(position).to_numpy(dtype=int)
    g_high = high_rows["wave_index"].map(position).to_numpy(dtype=int)

    level = summarise_outcome(index, g_index, k, binary=False)
    distribution = np.zeros((k, len(INVOLVEMENT_LEVELS)))
    np.add.at(distribution, (g_index, index.astype(int)), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        distribution /= level["n"].to_numpy()[:, None]
    high_n = np.bincount(g_high, minlength=k)
    high_count = np.bincount(g_high, weights=high, minlength=k)
    high_low, high_high = wilson_interval(high_count, high_n)
    with np.errstate(invalid="ignore", divide="ignore"):
        high_share = high_count / high_n

    out = pd.DataFrame(
        {
            "wave": _wave_names(frame).reindex(waves).to_numpy(),
            "wave_index": waves.astype("int64"),
            "n": level["n"].to_numpy(),
            "mean": level["mean"].to_numpy(),
            "ci_low": level["ci_low"].to_numpy(),
            "ci_high": level["ci_high"].to_numpy(),
        }
    )
    for j, value in enumerate(INVOLVEMENT_LEVELS):
        out[f"share_{value}"] = distribution[:, j]
    out["high_n"] = high_n.astype("int64")
    out["high_count"] = high_count.astype("int64")
    out["high_share"] = high_share
    out["high_ci_low"] = high_low
    out["high_ci_high"] = high_high
    return out


# --- Medication × mutual-help --------------------------------------------------------------


def mat_mhg_by_wave(frame: pd.DataFrame) -> pd.DataFrame:
    """The medication × mutual-help cross-classification per wave (``mat_mhg_class``: on
    medication for addiction treatment or not × went to a mutual-help meeting in the past 30
    days or not), among completed waves that answered both.

    Columns: ``wave``, ``wave_index``, ``n``, the count of each class (``both``,
    ``medication_only``, ``mhg_only``, ``neither``; they add up to ``n``) and its share
    (``share_both``, ...).
    """
    require_columns(
        frame, ("wave", "wave_index", "mat_mhg_class"), purpose="the medication × mutual-help table"
    )
    data = frame.loc[_answered(frame, "mat_mhg_class"), ["wave_index", "mat_mhg_class"]]
    classes = data["mat_mhg_class"].astype(str)
    unknown = sorted(set(classes.unique()) - set(MAT_MHG_CLASSES))
    if unknown:
        raise AnalysisError(
            f"The column 'mat_mhg_class' holds {', '.join(repr(u) for u in unknown[:5])}; its "
            f"values must be {', '.join(MAT_MHG_CLASSES)}.",
            code="out_of_range",
        )
    table = pd.crosstab(data["wave_index"], classes).reindex(
        columns=list(MAT_MHG_CLASSES), fill_value=0
    )
    n = table.sum(axis=1)
    out = pd.DataFrame(
        {
            "wave": _wave_names(frame).reindex(table.index).to_numpy(),
            "wave_index": table.index.to_numpy().astype("int64"),
            "n": n.to_numpy().astype("int64"),
        }
    )
    for name in MAT_MHG_CLASSES:
        out[name] = table[name].to_numpy().astype("int64")
    for name in MAT_MHG_CLASSES:
        out[f"share_{name}"] = (table[name] / n).to_numpy()
    return out


# --- Retention -----------------------------------------------------------------------------


def retention_by_wave(frame: pd.DataFrame) -> pd.DataFrame:
    """Retention per wave: of the surveys that are due, the share completed, with its Wilson
    95 % interval. Due and the rate are defined once, in ``surveys.due``, for this table and
    the coordinators' retention dashboard alike: due = completed or missed (the frame's
    ``completed`` is known); open, not yet due and cancelled surveys are not due.

    Columns: ``wave``, ``wave_index``, ``participants`` (rows of the wave), ``due``,
    ``completed``, ``missed`` (the window closed without a response), ``cancelled`` (the
    participant withdrew, died or finished the study before answering; not due), ``rate``
    (completed / due; blank while none is due), ``ci_low``, ``ci_high``, ``not_yet_due`` (the
    window has not opened), ``open`` (the window is open). Completed + missed = due, and due +
    cancelled + not_yet_due + open = participants.
    """
    require_columns(
        frame, ("wave", "wave_index", "completed", "status"), purpose="the retention table"
    )
    done = frame["completed"].to_numpy(dtype=float, na_value=np.nan)
    _check_coded(done, (0.0, 1.0), "completed", "1 (completed), 0 (missed) or blank")
    status = frame["status"].astype(object).to_numpy()
    parts = pd.DataFrame(
        {
            "participants": np.ones(len(frame)),
            "due": ~np.isnan(done),
            "completed": done == 1,
            "missed": done == 0,
            "cancelled": np.isnan(done) & (status == "cancelled"),
            "not_yet_due": np.isnan(done) & (status == "not_yet_due"),
            "open": np.isnan(done) & (status == "open"),
        }
    )
    sums = parts.groupby(frame["wave_index"].to_numpy(), sort=True).sum().astype("int64")
    low, high = wilson_interval(sums["completed"].to_numpy(), sums["due"].to_numpy())
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = sums["completed"].to_numpy() / sums["due"].to_numpy()
    out = pd.DataFrame(
        {
            "wave": _wave_names(frame).reindex(sums.index).to_numpy(),
            "wave_index": sums.index.to_numpy().astype("int64"),
        }
    )
    for name in ("participants", "due", "completed", "missed", "cancelled"):
        out[name] = sums[name].to_numpy()
    out["rate"] = rate
    out["ci_low"] = low
    out["ci_high"] = high
    out["not_yet_due"] = sums["not_yet_due"].to_numpy()
    out["open"] = sums["open"].to_numpy()
    return out
