"""The suite's matching with an exposure that is a count, not 0/1."""

import numpy as np
import pandas as pd

from recovery.analysis.suite import SuiteRequest, run_suite


def _frame(zeros: float, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    pids = [f"P{i:03d}" for i in range(n)]
    age = rng.normal(35, 8, n)
    meetings = np.where(rng.random(n) < zeros, 0, rng.poisson(6, n) + 1).astype(float)
    use = (rng.random(n) < np.where(meetings > 0, 0.3, 0.5)).astype(float)
    rows = []
    for i, pid in enumerate(pids):
        rows.append({"pid": pid, "wave": "baseline", "wave_index": 0, "age_bl": age[i]})
        rows.append(
            {"pid": pid, "wave": "m1", "wave_index": 1, "meetings": meetings[i], "age_bl": age[i]}
        )
        rows.append({"pid": pid, "wave": "m12", "wave_index": 2, "use": use[i], "age_bl": age[i]})
    return pd.DataFrame(rows)


def test_a_count_whose_median_is_its_least_value_splits_above_it():
    """Found by review: most participants attended no meeting, so the median was 0 and
    "at least the median" made everyone exposed: the matching failed with nobody to compare
    with, and its message spoke of a 0/1 exposure. Exposed is now more than 0, said so."""
    request = SuiteRequest(
        analyses=("matching",), exposure="meetings", outcome="use", covariates=("age_bl",),
        exposure_waves=("m1",), outcome_wave="m12",
    )  # fmt: skip
    (section,) = run_suite(_frame(zeros=0.6), request)
    assert not section.error, section.error
    assert any("exposed means more than 0 (the median, and the least value)" in note
               for note in section.notes)  # fmt: skip
    (section,) = run_suite(_frame(zeros=0.3), request)  # the median is above 0: as before
    assert not section.error, section.error
    assert any("exposed means at least" in note for note in section.notes)
