"""The wide shape: one row per participant, pivoted from the long frame (never rebuilt).

Columns: ``pid``, ``site``, the baseline covariates once, then for each wave in the study's
order (and each occurrence of a recurring wave) the long frame's row columns and variables
suffixed ``_<wave>`` (``_<wave>_<occurrence>`` for a recurring wave; a hyphen in a wave's slug
becomes an underscore). A variable appears for a wave only when one of that wave's instruments
has it; a name made twice (two waves whose slugs differ only by a hyphen, a covariate's ``_bl``
beside a wave named ``bl``) is numbered the second time, ``__2``. A participant without a row
for a wave has empty cells there (no assignment: e.g.
enrolled after the wave was added, or a recurring occurrence not reached).
"""

import numpy as np
import pandas as pd

from surveys.datasets.bare import bare
from surveys.datasets.plan import ID_COLUMNS, SHIFTED_ID_COLUMNS

_KEYS = ("wave", "occurrence")


def wave_suffix(wave: str, occurrence: int, *, recurring: bool) -> str:
    wave = wave.replace("-", "_")
    return f"{wave}_{occurrence}" if recurring else wave


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name__2`` (``__3``, …) where it is taken."""
    number = 2
    unique = name
    while unique in taken:
        unique = f"{name}__{number}"
        number += 1
    return unique


def dataset_wide(long_df: pd.DataFrame) -> pd.DataFrame:
    """``long_df`` (from ``dataset_long``) with one row per participant."""
    meta = long_df.attrs.get("columns", {})
    info = long_df.attrs.get("dataset", {})
    # Worked on without its attrs: pandas deep-copies a frame's attrs into every frame and
    # column derived from it (the metadata of every column, each time).
    long_df = bare(long_df)
    covariates = info.get("covariates")
    if covariates is None:
        covariates = [c for c in long_df.columns if c.endswith("_bl")]
    recurring = set(info.get("recurring_waves", ()))
    if not info:  # a frame without its metadata: a wave with a second occurrence recurs
        recurring = set(long_df.loc[long_df["occurrence"] > 0, "wave"])
    wave_order = {slug: n for n, slug in enumerate(info.get("waves", ()))}
    wave_instruments = info.get("wave_instruments")
    ids = [c for c in long_df.columns if c in (*ID_COLUMNS, *SHIFTED_ID_COLUMNS)]
    per_row = [c for c in long_df.columns if c not in (*ids, *_KEYS, *covariates)]

    people = long_df[[*ids, *covariates]].drop_duplicates("pid").set_index("pid").sort_index()
    columns_meta = {name: dict(meta.get(name, {}), name=name) for name in people.columns}
    columns_meta["pid"] = dict(meta.get("pid", {}), name="pid")
    if info.get("groups") is not None:  # every (wave, occurrence) anyone in scope has
        groups = [tuple(g) for g in info["groups"]]
    else:
        found = long_df[list(_KEYS)].drop_duplicates().itertuples(index=False)
        groups = sorted(
            ((g.wave, int(g.occurrence)) for g in found),
            key=lambda g: (wave_order.get(g[0], len(wave_order)), str(g[0]), g[1]),
        )
    waves = long_df["wave"].to_numpy(dtype=object)
    occurrences = long_df["occurrence"].to_numpy(dtype=float, na_value=np.nan)
    # each long row's row in the wide frame (people's pid order)
    row_of = people.index.get_indexer(long_df["pid"])
    columns = {}
    # A name made twice (waves "m-1" and "m_1", a wave "bl" beside the covariates' "_bl")
    # would have one column overwrite the other, or two of one name that no statistics file
    # holds: the later one is numbered instead (found by review). The wave slugs' own check
    # keeps the first kind from being made.
    taken = {"pid", *people.columns}
    for wave, occurrence in groups:
        suffix = wave_suffix(wave, int(occurrence), recurring=wave in recurring)
        mask = (waves == wave) & (occurrences == occurrence)
        if wave_instruments is not None and meta:
            asked = set(wave_instruments.get(wave, ()))
            names = [
                c
                for c in per_row
                if meta[c]["role"] not in ("item", "derived", "version", "missing")
                or set(meta[c]["sources"]) & asked
            ]
        else:  # without metadata: a variable no row of the wave has is not the wave's
            rows = long_df[mask]
            names = [c for c in per_row if rows[c].notna().any()]
        # the wave's long row of each participant (-1: none), then each column taken whole
        found = np.flatnonzero(mask)
        take = np.full(len(people), -1, dtype=np.int64)
        take[row_of[found]] = found
        wide_of = {}
        for name in names:
            wide_name = _unique(f"{name}_{suffix}", taken)
            taken.add(wide_name)
            wide_of[name] = wide_name
            columns[wide_name] = long_df[name].array.take(take, allow_fill=True)
            columns_meta[wide_name] = dict(meta.get(name, {}), name=wide_name, wave=suffix)
        for name in names:  # a column's missing codes apart: in this wave's column of them
            apart = meta.get(name, {}).get("missing_column")
            if apart:  # ("": that wave has no such column, so no codes apart either)
                columns_meta[wide_of[name]]["missing_column"] = wide_of.get(apart, "")
    waves_wide = pd.DataFrame(columns, index=people.index)
    wide = pd.concat([people, waves_wide], axis=1) if columns else people.copy()
    wide.index.name = "pid"
    wide = wide.reset_index()
    wide.attrs["columns"] = {name: columns_meta[name] for name in wide.columns}
    wide.attrs["dataset"] = {**info, "shape": "wide"}
    return wide
