"""The built-in mutual-help research battery, as data, in the project's own words.

First cut: baseline and follow-up instruments with the variables the synthetic cohort, exports and
analyses rely on. Choice codes are numeric strings so that SPSS and Stata value labels work.
Answers are stored as: integers/sliders/yes-no as numbers (yes = 1, no = 0), single choices as the
code string, multiple choices as a list of code strings. An item hidden by branching is absent
from the answers.
"""

from dataclasses import dataclass, field

FELLOWSHIPS: list[tuple[str, str, str]] = [
    # (code, variable stem, name)
    ("1", "na", "Narcotics Anonymous"),
    ("2", "ca", "Cocaine Anonymous"),
    ("3", "cma", "Crystal Meth Anonymous"),
    ("4", "aa", "Alcoholics Anonymous"),
    ("5", "ma", "Methadone Anonymous"),
    ("6", "smart", "SMART Recovery"),
    ("7", "lifering", "LifeRing"),
    ("8", "dharma", "Recovery Dharma"),
    ("9", "wellbriety", "Wellbriety"),
    ("10", "wfs", "Women for Sobriety"),
    ("11", "allrecovery", "All Recovery"),
    ("12", "other", "Another mutual-help group"),
]
TWELVE_STEP = {"na", "ca", "cma", "aa", "ma"}

FORMATS: list[tuple[str, str]] = [
    ("inperson", "in person"),
    ("online", "online by video, phone or chat"),
    ("online24", "in an always-open (24-hour) online meeting"),
    ("hybrid", "hybrid (some people in the room, some online)"),
]

SUBSTANCES: list[tuple[str, str, str]] = [
    ("1", "opioids", "Heroin, fentanyl or opioid pills not taken as prescribed"),
    ("2", "cocaine", "Cocaine or crack"),
    ("3", "meth", "Methamphetamine"),
    ("4", "cannabis", "Cannabis"),
    ("5", "alcohol", "Alcohol"),
    ("6", "other", "Another drug"),
]

MAT_OPTIONS: list[tuple[str, str]] = [
    ("0", "No medication for addiction treatment"),
    ("1", "Methadone"),
    ("2", "Buprenorphine taken under the tongue (film or tablet)"),
    ("3", "Buprenorphine as a monthly injection"),
    ("4", "Naltrexone tablets"),
    ("5", "Naltrexone as a monthly injection"),
]

GENDERS = [
    ("1", "Woman"),
    ("2", "Man"),
    ("3", "Non-binary or another gender"),
    ("4", "Prefer not to say"),
]
RACE_ETHNICITY = [
    ("1", "American Indian or Alaska Native"),
    ("2", "Asian"),
    ("3", "Black or African American"),
    ("4", "Hispanic or Latino/a"),
    ("5", "Native Hawaiian or Pacific Islander"),
    ("6", "White"),
    ("7", "More than one, or another group"),
    ("8", "Prefer not to say"),
]
TREATMENT_SETTINGS = [
    ("1", "Residential or inpatient"),
    ("2", "Outpatient"),
    ("3", "Not in treatment"),
]
SPONSOR_CONTACT = [
    ("1", "Every day or nearly"),
    ("2", "A few times a week"),
    ("3", "About once a week"),
    ("4", "Less than once a week"),
]


@dataclass
class ItemSpec:
    variable: str
    kind: str
    label: str
    choices: list[tuple[str, str]] = field(default_factory=list)
    required: bool = False
    min_value: float | None = None
    max_value: float | None = None
    branching: str = ""
    note: str = ""
    options: dict = field(default_factory=dict)

    def as_item_fields(self, position: int) -> dict:
        return {
            "position": position,
            "variable": self.variable,
            "kind": self.kind,
            "label": {"en": self.label},
            "note": {"en": self.note} if self.note else {},
            "choices": [{"code": c, "label": {"en": text}} for c, text in self.choices],
            "required": self.required,
            "min_value": _bound(self.min_value),
            "max_value": _bound(self.max_value),
            "branching": self.branching,
            "options": self.options,
        }


def _bound(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _yesno(variable: str, label: str, branching: str = "") -> ItemSpec:
    return ItemSpec(variable, "yesno", label, required=True, branching=branching)


def _slider(
    variable: str, label: str, low: int, high: int, left: str, right: str, branching: str = ""
) -> ItemSpec:
    return ItemSpec(
        variable,
        "slider",
        label,
        required=True,
        min_value=low,
        max_value=high,
        branching=branching,
        options={"left": {"en": left}, "right": {"en": right}},
    )


def _count(
    variable: str, label: str, high: int, branching: str = "", required: bool = True
) -> ItemSpec:
    return ItemSpec(
        variable,
        "integer",
        label,
        required=required,
        min_value=0,
        max_value=high,
        branching=branching,
    )


CRAVING = _slider(
    "craving",
    "Over the past week, how strong was your urge to use, at its worst?",
    0,
    10,
    "No urge at all",
    "The strongest urge I can imagine",
)

BASELINE: list[ItemSpec] = [
    ItemSpec(
        "age", "integer", "How old are you, in years?", required=True, min_value=18, max_value=100
    ),
    ItemSpec("gender", "single", "Which best describes your gender?", GENDERS, required=True),
    ItemSpec(
        "race_ethnicity",
        "single",
        "Which group do you most identify with?",
        RACE_ETHNICITY,
        required=True,
    ),
    ItemSpec(
        "primary_substance",
        "single",
        "Which drug has caused you the most trouble?",
        [(code, text) for code, _, text in SUBSTANCES],
        required=True,
    ),
    ItemSpec(
        "treatment_setting",
        "single",
        "Where are you getting treatment right now?",
        TREATMENT_SETTINGS,
        required=True,
    ),
    _yesno(
        "justice_involved",
        "Are you on probation or parole, or under another kind of court supervision?",
    ),
    ItemSpec(
        "mat_status",
        "single",
        "Which medication for addiction treatment are you taking now, if any?",
        MAT_OPTIONS,
        required=True,
    ),
    _yesno("prior_mhg", "Before joining this study, had you ever gone to a mutual-help meeting?"),
    _count(
        "baseline_days_used",
        "In the 30 days before today, on how many days did you use any drug?",
        30,
    ),
    _slider(
        "readiness",
        "How ready do you feel to make changes to your drug use?",
        0,
        10,
        "Not ready at all",
        "Completely ready",
    ),
    CRAVING,
]


def _attendance_items() -> list[ItemSpec]:
    items = [
        _yesno("attended_any", "In the past 30 days, did you go to any mutual-help meetings?"),
        ItemSpec(
            "fellowships",
            "multiple",
            "Which groups did you go to?",
            [(code, name) for code, _, name in FELLOWSHIPS],
            required=True,
            branching="[attended_any] = '1'",
        ),
    ]
    for code, stem, name in FELLOWSHIPS:
        for fmt, fmt_text in FORMATS:
            items.append(
                _count(
                    f"mtg_{stem}_{fmt}",
                    f"How many {name} meetings did you go to {fmt_text} in the past 30 days?",
                    200,
                    branching=f"[fellowships({code})] = '1'",
                )
            )
    return items


FOLLOWUP: list[ItemSpec] = [
    *_attendance_items(),
    _yesno("home_group", "Do you have a home group you go to regularly?"),
    _yesno("has_sponsor", "Do you have a sponsor, mentor or close friend in the group?"),
    ItemSpec(
        "sponsor_contact",
        "single",
        "How often are you in touch with them?",
        SPONSOR_CONTACT,
        required=True,
        branching="[has_sponsor] = '1'",
    ),
    _yesno("is_sponsor", "Are you a sponsor or mentor for someone else?"),
    _yesno(
        "service_work",
        "In the past 30 days, did you do service for a group "
        "(setting up, making coffee, holding a role)?",
    ),
    _count("steps_completed", "If your group works steps, how many have you completed?", 12),
    _yesno("speaks_at_meetings", "In the past 30 days, did you share or speak at a meeting?"),
    _yesno(
        "member_contact_outside",
        "In the past 30 days, did you spend time with group members outside meetings?",
    ),
    _yesno("reads_literature", "In the past 30 days, did you read your group's literature?"),
    ItemSpec(
        "mat_status",
        "single",
        "Which medication for addiction treatment are you taking now, if any?",
        MAT_OPTIONS,
        required=True,
    ),
    _yesno("mat_changed", "Since the last survey, did you stop, start or switch medication?"),
    _yesno(
        "mat_stopped_pressure",
        "Did people in a mutual-help group push you to stop?",
        branching="[mat_changed] = '1'",
    ),
    _yesno(
        "mat_disclosed",
        "Have you told people at meetings that you take this medication?",
        branching="[mat_status] <> '0' and [attended_any] = '1'",
    ),
    _yesno(
        "mat_stigma",
        "Have people at meetings treated you worse because of your medication?",
        branching="[mat_status] <> '0' and [attended_any] = '1'",
    ),
    CRAVING,
    *[
        _count(f"days_{stem}", f"In the past 30 days, on how many days did you use: {text}?", 30)
        for _, stem, text in SUBSTANCES
    ],
    _yesno("any_use_since_last", "Since your last survey, have you used any drug at all?"),
    _count(
        "longest_use_run_days",
        "What is the longest stretch of days in a row you used since your last survey?",
        400,
        branching="[any_use_since_last] = '1'",
    ),
    _yesno("overdose", "Since your last survey, have you had an overdose?"),
    _slider(
        "cohesion",
        "How close and connected do you feel to the people in your group?",
        0,
        100,
        "Not at all",
        "Completely",
        branching="[attended_any] = '1'",
    ),
    _slider(
        "qol_overall",
        "All in all, how would you rate your life these days?",
        0,
        10,
        "Very poor",
        "Excellent",
    ),
    _slider(
        "qol_health",
        "How would you rate your physical health these days?",
        0,
        10,
        "Very poor",
        "Excellent",
    ),
]

INSTRUMENTS: dict[str, tuple[str, list[ItemSpec]]] = {
    "baseline": ("Baseline", BASELINE),
    "followup": ("Follow-up", FOLLOWUP),
}


@dataclass(frozen=True)
class WaveSpec:
    slug: str
    name: str
    offset_days: int
    window_before_days: int
    window_after_days: int
    instrument: str
    months: float


# Baseline then 1, 3, 6 and 12 months after enrolment, each with a -7/+28 day window.
WAVES: list[WaveSpec] = [
    WaveSpec("baseline", "Baseline", 0, 0, 14, "baseline", 0),
    WaveSpec("m1", "1 month", 30, 7, 28, "followup", 1),
    WaveSpec("m3", "3 months", 91, 7, 28, "followup", 3),
    WaveSpec("m6", "6 months", 182, 7, 28, "followup", 6),
    WaveSpec("m12", "12 months", 365, 7, 28, "followup", 12),
]
