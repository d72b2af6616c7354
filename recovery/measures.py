"""Derived measures of the built-in battery, computed from follow-up responses' answers (an
answers frame: one row per response, see ``surveys.derived``).

Registered with the survey engine at start-up (``RecoveryConfig.ready``); exports, the dataset
builder and the analyses all compute them through ``surveys.derived``. Each docstring and
``formula`` is the definition researchers see in the codebook.
"""

import numpy as np
import pandas as pd

from recovery.battery import FELLOWSHIPS, FORMATS, SUBSTANCES
from surveys.derived import DerivedMeasure, number, register, text, yes

FOLLOWUP = ("followup",)
MEETING_VARIABLES = [f"mtg_{stem}_{fmt}" for _, stem, _ in FELLOWSHIPS for fmt, _ in FORMATS]
ONLINE_FORMATS = ("online", "online24")
WEEKLY_MEETINGS = 4  # at least one meeting a week over the past 30 days
DAYS_VARIABLES = [f"days_{stem}" for _, stem, _ in SUBSTANCES]


def _count(frame: pd.DataFrame, variable: str) -> pd.Series:
    """A count (meetings, days, a 0–10 rating): the answer as a number, blank if below 0 (a
    study may let its copy of a question take one; no count is negative). Every measure reads
    counts this way, so a measure and the measures built on it agree (days_used and any_use),
    and none goes below 0, its declared minimum."""
    value = number(frame, variable)
    return value.where(value >= 0)


def _total(frame: pd.DataFrame, variables: list[str]) -> pd.Series:
    """The sum of the variables, a blank counting 0."""
    found = [_count(frame, v).to_numpy() for v in variables]
    total = np.nansum(np.vstack(found), axis=0) if found else np.zeros(len(frame))
    return pd.Series(total, index=frame.index)


def meetings_total(frame: pd.DataFrame) -> pd.Series:
    """Meetings in the past 30 days, all fellowships and formats. 0 if none attended; blank if
    the attendance question was not answered."""
    attended = yes(frame, "attended_any")
    total = _total(frame, MEETING_VARIABLES).where(attended == 1, 0.0)
    return total.where(attended.notna()).floordiv(1)


def meetings_online_share(frame: pd.DataFrame) -> pd.Series:
    """Share of the past 30 days' meetings that were online (video/phone/chat or 24-hour);
    blank when there were none."""
    total = meetings_total(frame)
    online = _total(
        frame, [f"mtg_{stem}_{fmt}" for _, stem, _ in FELLOWSHIPS for fmt in ONLINE_FORMATS]
    )
    return (online / total).where(total > 0)


def _all_answered(parts: list[pd.Series], total: pd.Series) -> pd.Series:
    answered = total.notna()
    for part in parts:
        answered &= part.notna()
    return answered


def involvement_index(frame: pd.DataFrame) -> pd.Series:
    """0–5: home group + sponsor or close friend in the group + service work + time with members
    outside meetings + at least weekly attendance (≥ 4 meetings in the past 30 days)."""
    total = meetings_total(frame)
    parts = [
        yes(frame, v)
        for v in ("home_group", "has_sponsor", "service_work", "member_contact_outside")
    ]
    index = sum(parts) + (total >= WEEKLY_MEETINGS).astype("float64")
    return index.where(_all_answered(parts, total))


def high_involvement(frame: pd.DataFrame) -> pd.Series:
    """1 when home group AND sponsor AND ≥ 1 meeting a week (≥ 4 in the past 30 days) AND
    service work; else 0."""
    total = meetings_total(frame)
    parts = [yes(frame, v) for v in ("home_group", "has_sponsor", "service_work")]
    high = total >= WEEKLY_MEETINGS
    for part in parts:
        high &= part == 1
    return high.astype("float64").where(_all_answered(parts, total))


def days_used(frame: pd.DataFrame) -> pd.Series:
    """Days of any drug use in the past 30 days: the largest of the per-substance day counts
    (a lower bound: days with different substances may not overlap)."""
    days = pd.concat([_count(frame, v) for v in DAYS_VARIABLES], axis=1)
    return days.max(axis=1).floordiv(1).where(days.notna().all(axis=1))


def any_use(frame: pd.DataFrame) -> pd.Series:
    """1 when any drug was used in the past 30 days (days_used > 0), else 0."""
    days = days_used(frame)
    return (days > 0).astype("float64").where(days.notna())


def craving(frame: pd.DataFrame) -> pd.Series:
    """Strongest urge to use in the past week, 0 (none) to 10."""
    return _count(frame, "craving").floordiv(1)


def lapse_relapse(frame: pd.DataFrame) -> pd.Series:
    """From the longest run of use since the last survey: none (no use), lapse (≤ 7 days),
    between (8–13 days), relapse (≥ 14 days)."""
    used = yes(frame, "any_use_since_last")
    run = _count(frame, "longest_use_run_days")
    found = np.select(
        [used == 0, (used == 1) & (run <= 7), (used == 1) & (run >= 14), (used == 1) & run.notna()],
        ["none", "lapse", "relapse", "between"],
        default=None,
    )
    return pd.Series(found, index=frame.index, dtype=object)


def mat_mhg_class(frame: pd.DataFrame) -> pd.Series:
    """Medication for addiction treatment × mutual-help attendance in the past 30 days:
    both / medication only / MHG only / neither."""
    mat = text(frame, "mat_status")
    attended = yes(frame, "attended_any")
    on_mat = mat != "0"
    known = mat.notna() & attended.notna()
    found = np.select(
        [known & on_mat & (attended == 1), known & on_mat, known & (attended == 1), known],
        ["both", "medication_only", "mhg_only", "neither"],
        default=None,
    )
    return pd.Series(found, index=frame.index, dtype=object)


MEASURES = [
    DerivedMeasure(
        "meetings_total",
        "Meetings attended, past 30 days",
        "sum of mtg_<fellowship>_<format>; 0 if attended_any = 0",
        "integer",
        FOLLOWUP,
        meetings_total,
        minimum=0,
    ),
    DerivedMeasure(
        "meetings_online_share",
        "Share of meetings attended online",
        "(sum of mtg_*_online + mtg_*_online24) / meetings_total; blank if 0",
        "decimal",
        FOLLOWUP,
        meetings_online_share,
        minimum=0,
    ),
    DerivedMeasure(
        "involvement_index",
        "Mutual-help involvement index (0–5)",
        "home_group + has_sponsor + service_work + member_contact_outside + (meetings_total >= 4)",
        "integer",
        FOLLOWUP,
        involvement_index,
        minimum=0,
    ),
    DerivedMeasure(
        "high_involvement",
        "High involvement",
        "home_group = 1 and has_sponsor = 1 and meetings_total >= 4 and service_work = 1",
        "binary",
        FOLLOWUP,
        high_involvement,
    ),
    DerivedMeasure(
        "any_use", "Any drug use, past 30 days", "days_used > 0", "binary", FOLLOWUP, any_use
    ),
    DerivedMeasure(
        "days_used",
        "Days of drug use, past 30 days",
        "max(days_<substance>) over all substances",
        "integer",
        FOLLOWUP,
        days_used,
        minimum=0,
    ),
    DerivedMeasure(
        "craving",
        "Craving, past week (0–10)",
        "craving",
        "integer",
        ("baseline", "followup", "checkin"),
        craving,
        minimum=0,
    ),
    DerivedMeasure(
        "lapse_relapse",
        "Return to use since last survey",
        "none if any_use_since_last = 0; lapse if longest_use_run_days <= 7; "
        "relapse if >= 14; between otherwise",
        "category",
        FOLLOWUP,
        lapse_relapse,
        choices=(
            ("none", "No use"),
            ("lapse", "Lapse (7 days or less)"),
            ("between", "8 to 13 days"),
            ("relapse", "Relapse (14 days or more)"),
        ),
    ),
    DerivedMeasure(
        "mat_mhg_class",
        "Medication and mutual-help",
        "both if mat_status <> 0 and attended_any = 1; medication_only if "
        "mat_status <> 0; mhg_only if attended_any = 1; else neither",
        "category",
        FOLLOWUP,
        mat_mhg_class,
        choices=(
            ("both", "Both"),
            ("medication_only", "Medication only"),
            ("mhg_only", "Mutual-help only"),
            ("neither", "Neither"),
        ),
    ),
]


def register_measures() -> None:
    for measure in MEASURES:
        register(measure)
