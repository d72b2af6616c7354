"""A frame without its metadata, made without copying it."""

import pandas as pd


def bare(df: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy of ``df`` with empty ``attrs``. pandas deep-copies a frame's ``attrs`` (the
    metadata of every column: thousands of dicts in a wide frame) into every frame and column
    derived from it, ``copy`` included; the attrs are set aside while the copy is made."""
    attrs = df.attrs
    df.attrs = {}
    try:
        return df.copy(deep=False)
    finally:
        df.attrs = attrs
