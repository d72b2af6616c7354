"""Derived measures of the built-in battery, computed from one follow-up response's answers.

Registered with the survey engine at start-up (``RecoveryConfig.ready``); exports, the dataset
builder and the analyses all compute them through ``surveys.derived``. Each docstring and
``formula`` is the definition researchers see in the codebook.
"""

from recovery.battery import FELLOWSHIPS, FORMATS, SUBSTANCES
from surveys.derived import DerivedMeasure, register

FOLLOWUP = ("followup",)
MEETING_VARIABLES = [f"mtg_{stem}_{fmt}" for _, stem, _ in FELLOWSHIPS for fmt, _ in FORMATS]
ONLINE_FORMATS = ("online", "online24")
WEEKLY_MEETINGS = 4  # at least one meeting a week over the past 30 days
DAYS_VARIABLES = [f"days_{stem}" for _, stem, _ in SUBSTANCES]


def _number(answers: dict, variable: str) -> float | None:
    value = answers.get(variable)
    if value is None or value == "" or isinstance(value, list | dict | bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _yes(answers: dict, variable: str) -> bool | None:
    value = _number(answers, variable)
    return None if value is None else value == 1


def meetings_total(answers: dict) -> int | None:
    """Meetings in the past 30 days, all fellowships and formats. 0 if none attended; blank if
    the attendance question was not answered."""
    attended = _yes(answers, "attended_any")
    if attended is None:
        return None
    if not attended:
        return 0
    return int(sum(_number(answers, v) or 0 for v in MEETING_VARIABLES))


def meetings_online_share(answers: dict) -> float | None:
    """Share of the past 30 days' meetings that were online (video/phone/chat or 24-hour);
    blank when there were none."""
    total = meetings_total(answers)
    if not total:
        return None
    online = sum(
        _number(answers, f"mtg_{stem}_{fmt}") or 0
        for _, stem, _ in FELLOWSHIPS
        for fmt in ONLINE_FORMATS
    )
    return online / total


def involvement_index(answers: dict) -> int | None:
    """0–5: home group + sponsor or close friend in the group + service work + time with members
    outside meetings + at least weekly attendance (≥ 4 meetings in the past 30 days)."""
    total = meetings_total(answers)
    parts = [
        _yes(answers, v)
        for v in ("home_group", "has_sponsor", "service_work", "member_contact_outside")
    ]
    if total is None or any(p is None for p in parts):
        return None
    return int(sum(bool(p) for p in parts) + (total >= WEEKLY_MEETINGS))


def high_involvement(answers: dict) -> int | None:
    """1 when home group AND sponsor AND ≥ 1 meeting a week (≥ 4 in the past 30 days) AND
    service work; else 0."""
    total = meetings_total(answers)
    parts = [_yes(answers, v) for v in ("home_group", "has_sponsor", "service_work")]
    if total is None or any(p is None for p in parts):
        return None
    return int(all(parts) and total >= WEEKLY_MEETINGS)


def days_used(answers: dict) -> int | None:
    """Days of any drug use in the past 30 days: the largest of the per-substance day counts
    (a lower bound: days with different substances may not overlap)."""
    days = [_number(answers, v) for v in DAYS_VARIABLES]
    if any(d is None for d in days):
        return None
    return int(max(days))


def any_use(answers: dict) -> int | None:
    """1 when any drug was used in the past 30 days (days_used > 0), else 0."""
    days = days_used(answers)
    return None if days is None else int(days > 0)


def craving(answers: dict) -> int | None:
    """Strongest urge to use in the past week, 0 (none) to 10."""
    value = _number(answers, "craving")
    return None if value is None else int(value)


def lapse_relapse(answers: dict) -> str | None:
    """From the longest run of use since the last survey: none (no use), lapse (≤ 7 days),
    between (8–13 days), relapse (≥ 14 days)."""
    used = _yes(answers, "any_use_since_last")
    if used is None:
        return None
    if not used:
        return "none"
    run = _number(answers, "longest_use_run_days")
    if run is None:
        return None
    return "lapse" if run <= 7 else "relapse" if run >= 14 else "between"


def mat_mhg_class(answers: dict) -> str | None:
    """Medication for addiction treatment × mutual-help attendance in the past 30 days:
    both / medication only / MHG only / neither."""
    mat = answers.get("mat_status")
    attended = _yes(answers, "attended_any")
    if mat in (None, "") or attended is None:
        return None
    on_mat = str(mat) != "0"
    if on_mat and attended:
        return "both"
    if on_mat:
        return "medication_only"
    return "mhg_only" if attended else "neither"


MEASURES = [
    DerivedMeasure(
        "meetings_total",
        "Meetings attended, past 30 days",
        "sum of mtg_<fellowship>_<format>; 0 if attended_any = 0",
        "integer",
        FOLLOWUP,
        meetings_total,
    ),
    DerivedMeasure(
        "meetings_online_share",
        "Share of meetings attended online",
        "(sum of mtg_*_online + mtg_*_online24) / meetings_total; blank if 0",
        "decimal",
        FOLLOWUP,
        meetings_online_share,
    ),
    DerivedMeasure(
        "involvement_index",
        "Mutual-help involvement index (0–5)",
        "home_group + has_sponsor + service_work + member_contact_outside + (meetings_total >= 4)",
        "integer",
        FOLLOWUP,
        involvement_index,
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
    ),
    DerivedMeasure(
        "craving",
        "Craving, past week (0–10)",
        "craving",
        "integer",
        ("baseline", "followup", "checkin"),
        craving,
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
