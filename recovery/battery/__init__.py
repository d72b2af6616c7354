"""The built-in mutual-help research battery, as data, in the project's own words.

Baseline and follow-up instruments with the variables the synthetic cohort, exports and analyses
rely on, and an optional weekly check-in. Choice codes are numeric strings so that SPSS and Stata
value labels work. Answers are stored as: integers/sliders/yes-no as numbers (yes = 1, no = 0),
single choices as the code string, multiple choices as a list of code strings. An item hidden by
branching is absent from the answers.

Every participant-facing text is in English and Spanish (plain Latin-American Spanish, "usted"):
item labels are ``{"en": ..., "es": ...}``, choices are ``(code, English, Spanish)``, slider ends
are ``{"en": ..., "es": ...}``. ``FELLOWSHIPS``, ``FORMATS`` and ``SUBSTANCES`` keep their
English-only shape because other modules unpack them; their Spanish is in the ``*_ES`` mappings.
"""

from dataclasses import dataclass, field

from surveys.validation import SINCE_LAST_SURVEY

LANGUAGES = ("en", "es")

# A participant-facing text in every language of the battery: {"en": "...", "es": "..."}.
Text = dict[str, str]


def _t(en: str, es: str) -> Text:
    return {"en": en, "es": es}


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
# Official names; a fellowship without an official Spanish name keeps its English one.
FELLOWSHIP_NAMES_ES: dict[str, str] = {
    "na": "Narcóticos Anónimos",
    "ca": "Cocaína Anónimos",
    "cma": "Crystal Meth Anonymous",
    "aa": "Alcohólicos Anónimos",
    "ma": "Methadone Anonymous",
    "smart": "SMART Recovery",
    "lifering": "LifeRing",
    "dharma": "Recovery Dharma",
    "wellbriety": "Wellbriety",
    "wfs": "Women for Sobriety",
    "allrecovery": "All Recovery",
    "other": "Otro grupo de ayuda mutua",
}
# The fellowship as it reads inside a Spanish sentence ("reuniones de ..."), where it differs.
_FELLOWSHIP_IN_SENTENCE_ES = {"other": "otro grupo de ayuda mutua"}
TWELVE_STEP = {"na", "ca", "cma", "aa", "ma"}

FORMATS: list[tuple[str, str]] = [
    ("inperson", "in person"),
    ("online", "online by video, phone or chat"),
    ("online24", "in an always-open (24-hour) online meeting"),
    ("hybrid", "hybrid (some people in the room, some online)"),
]
FORMATS_ES: dict[str, str] = {
    "inperson": "en persona",
    "online": "a distancia, por video, teléfono o chat",
    "online24": "en salas por internet abiertas las 24 horas",
    "hybrid": "en formato mixto (algunas personas en el salón y otras conectadas a distancia)",
}

SUBSTANCES: list[tuple[str, str, str]] = [
    ("1", "opioids", "Heroin, fentanyl or opioid pills not taken as prescribed"),
    ("2", "cocaine", "Cocaine or crack"),
    ("3", "meth", "Methamphetamine"),
    ("4", "cannabis", "Cannabis"),
    ("5", "alcohol", "Alcohol"),
    ("6", "other", "Another drug"),
]
SUBSTANCES_ES: dict[str, str] = {
    "opioids": (
        "Heroína, fentanilo o pastillas para el dolor (opioides) que no tomó como se las recetaron"
    ),
    "cocaine": "Cocaína o crack",
    "meth": "Metanfetamina (cristal)",
    "cannabis": "Marihuana (cannabis)",
    "alcohol": "Alcohol",
    "other": "Otra droga",
}

MAT_OPTIONS: list[tuple[str, str, str]] = [
    ("0", "No medication for addiction treatment", "Ningún medicamento para tratar el consumo"),
    ("1", "Methadone", "Metadona"),
    (
        "2",
        "Buprenorphine taken under the tongue (film or tablet)",
        "Buprenorfina que se pone debajo de la lengua (tira o pastilla)",
    ),
    ("3", "Buprenorphine as a monthly injection", "Buprenorfina en inyección una vez al mes"),
    ("4", "Naltrexone tablets", "Naltrexona en pastillas"),
    ("5", "Naltrexone as a monthly injection", "Naltrexona en inyección una vez al mes"),
]

GENDERS: list[tuple[str, str, str]] = [
    ("1", "Woman", "Mujer"),
    ("2", "Man", "Hombre"),
    ("3", "Non-binary or another gender", "No binario u otro género"),
    ("4", "Prefer not to say", "Prefiero no responder"),
]
RACE_ETHNICITY: list[tuple[str, str, str]] = [
    ("1", "American Indian or Alaska Native", "Indígena de América o nativo/a de Alaska"),
    ("2", "Asian", "Asiático/a"),
    ("3", "Black or African American", "Negro/a o afroamericano/a"),
    ("4", "Hispanic or Latino/a", "Hispano/a o latino/a"),
    (
        "5",
        "Native Hawaiian or Pacific Islander",
        "Nativo/a de Hawái o de otras islas del Pacífico",
    ),
    ("6", "White", "Blanco/a"),
    ("7", "More than one, or another group", "Más de uno, u otro grupo"),
    ("8", "Prefer not to say", "Prefiero no responder"),
]
TREATMENT_SETTINGS: list[tuple[str, str, str]] = [
    (
        "1",
        "Residential or inpatient",
        "Residencial o internado (se queda a dormir en el centro de tratamiento)",
    ),
    ("2", "Outpatient", "Ambulatorio (va al tratamiento y vuelve a su casa)"),
    ("3", "Not in treatment", "No estoy en tratamiento"),
]
SPONSOR_CONTACT: list[tuple[str, str, str]] = [
    ("1", "Every day or nearly", "Todos los días o casi todos"),
    ("2", "A few times a week", "Varias veces por semana"),
    ("3", "About once a week", "Más o menos una vez por semana"),
    ("4", "Less than once a week", "Menos de una vez por semana"),
]


@dataclass
class ItemSpec:
    variable: str
    kind: str
    label: Text
    # (code, English, Spanish)
    choices: list[tuple[str, str, str]] = field(default_factory=list)
    required: bool = False
    min_value: float | None = None
    # A number, or a limit worked out per participant (validation.SINCE_LAST_SURVEY).
    max_value: float | str | None = None
    branching: str = ""
    note: Text = field(default_factory=dict)
    # Kind-specific settings; a slider's "left" and "right" end labels are Texts.
    options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        texts = [self.label, *([self.note] if self.note else [])]
        texts += [self.options[end] for end in ("left", "right") if end in self.options]
        for text in texts:
            if set(text) != set(LANGUAGES) or not all(text.values()):
                raise ValueError(f"{self.variable}: every text needs {LANGUAGES}: {text!r}")
        for choice in self.choices:
            if len(choice) != 1 + len(LANGUAGES) or not all(choice):
                raise ValueError(f"{self.variable}: a choice is (code, en, es): {choice!r}")

    def as_item_fields(self, position: int) -> dict:
        options = {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in self.options.items()
        }
        return {
            "position": position,
            "variable": self.variable,
            "kind": self.kind,
            "label": dict(self.label),
            "note": dict(self.note),
            "choices": [
                {"code": code, "label": dict(zip(LANGUAGES, texts, strict=True))}
                for code, *texts in self.choices
            ],
            "required": self.required,
            "min_value": _bound(self.min_value),
            "max_value": _bound(self.max_value),
            "branching": self.branching,
            "options": options,
        }


def _bound(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def _yesno(variable: str, label: Text, branching: str = "", diary: dict | None = None) -> ItemSpec:
    options = {"diary": diary} if diary else {}
    return ItemSpec(variable, "yesno", label, required=True, branching=branching, options=options)


def _slider(
    variable: str,
    label: Text,
    low: int,
    high: int,
    left: Text,
    right: Text,
    branching: str = "",
) -> ItemSpec:
    return ItemSpec(
        variable,
        "slider",
        label,
        required=True,
        min_value=low,
        max_value=high,
        branching=branching,
        options={"left": left, "right": right},
    )


def _count(
    variable: str,
    label: Text,
    high: int | str,
    branching: str = "",
    required: bool = True,
    diary: dict | None = None,
) -> ItemSpec:
    return ItemSpec(
        variable,
        "integer",
        label,
        required=required,
        min_value=0,
        max_value=high,
        branching=branching,
        options={"diary": diary} if diary else {},
    )


CRAVING = _slider(
    "craving",
    _t(
        "Over the past week, how strong was your urge to use, at its worst?",
        "En la última semana, en el peor momento, ¿qué tan fuertes fueron sus ganas de consumir?",
    ),
    0,
    10,
    _t("No urge at all", "Nada de ganas"),
    _t("The strongest urge I can imagine", "Las ganas más fuertes que me puedo imaginar"),
)
# The top of the scale shows crisis resources and alerts the study team (surveys/safety.py).
CRAVING.options["alert"] = "[craving] >= 10"

MAT_STATUS = ItemSpec(
    "mat_status",
    "single",
    _t(
        "Which medication for addiction treatment are you taking now, if any?",
        "¿Qué medicamento para tratar el consumo de drogas toma ahora, si toma alguno?",
    ),
    MAT_OPTIONS,
    required=True,
)

BASELINE: list[ItemSpec] = [
    ItemSpec(
        "age",
        "integer",
        _t("How old are you, in years?", "¿Cuántos años tiene?"),
        required=True,
        min_value=18,
        max_value=100,
    ),
    ItemSpec(
        "gender",
        "single",
        _t(
            "Which best describes your gender?", "¿Cuál de estas opciones describe mejor su género?"
        ),
        GENDERS,
        required=True,
    ),
    ItemSpec(
        "race_ethnicity",
        "single",
        _t("Which group do you most identify with?", "¿Con qué grupo se identifica más?"),
        RACE_ETHNICITY,
        required=True,
    ),
    ItemSpec(
        "primary_substance",
        "single",
        _t(
            "Which drug has caused you the most trouble?", "¿Qué droga le ha causado más problemas?"
        ),
        [(code, text, SUBSTANCES_ES[stem]) for code, stem, text in SUBSTANCES],
        required=True,
    ),
    ItemSpec(
        "treatment_setting",
        "single",
        _t(
            "Where are you getting treatment right now?",
            "¿Dónde recibe tratamiento en este momento?",
        ),
        TREATMENT_SETTINGS,
        required=True,
    ),
    _yesno(
        "justice_involved",
        _t(
            "Are you on probation or parole, or under another kind of court supervision?",
            "¿Está en libertad condicional, en período de prueba o bajo otro tipo de control "
            "de un juez?",
        ),
    ),
    MAT_STATUS,
    _yesno(
        "prior_mhg",
        _t(
            "Before joining this study, had you ever gone to a mutual-help meeting?",
            "Antes de entrar a este estudio, ¿había ido alguna vez a una reunión de ayuda mutua?",
        ),
    ),
    _count(
        "baseline_days_used",
        _t(
            "In the 30 days before today, on how many days did you use any drug?",
            "En los 30 días antes de hoy, ¿cuántos días consumió alguna droga?",
        ),
        30,
    ),
    _slider(
        "readiness",
        _t(
            "How ready do you feel to make changes to your drug use?",
            "¿Qué tan preparado/a se siente para hacer cambios en su consumo de drogas?",
        ),
        0,
        10,
        _t("Not ready at all", "Nada preparado/a"),
        _t("Completely ready", "Totalmente preparado/a"),
    ),
    CRAVING,
]


def _in_sentence_es(text: str) -> str:
    """A Spanish choice label as it reads inside a sentence (lower-case first letter)."""
    return text[:1].lower() + text[1:]


# English sentences for the meeting counts, one shape per format, so that every fellowship and
# format reads naturally ("how many hybrid SMART Recovery meetings ... did you attend?").
_MEETING_QUESTION_EN = {
    "inperson": "In the past 30 days, how many {name} meetings did you attend in person?",
    "online": "In the past 30 days, how many {name} meetings did you attend online, by video, "
    "phone or chat?",
    "online24": "In the past 30 days, how many times did you join an always-open (24-hour) "
    "online {name} meeting room?",
    "hybrid": "In the past 30 days, how many hybrid {name} meetings (some people in the room, "
    "some online) did you attend?",
}
_FELLOWSHIP_IN_SENTENCE_EN = {"other": "other mutual-help"}


# The meeting diary (surveys/diary.py) offers what the participant logged as the starting answer
# of the attendance items: ``options["diary"]`` names the group and format counted (if any) and
# how many days before the survey is opened are counted.
DIARY_DAYS = 30
CHECKIN_DIARY_DAYS = 7


def _attendance_items() -> list[ItemSpec]:
    items = [
        _yesno(
            "attended_any",
            _t(
                "In the past 30 days, did you go to any mutual-help meetings?",
                "En los últimos 30 días, ¿fue a alguna reunión de ayuda mutua?",
            ),
            diary={"days": DIARY_DAYS},
        ),
        ItemSpec(
            "fellowships",
            "multiple",
            _t("Which groups did you go to?", "¿A qué grupos fue?"),
            [(code, name, FELLOWSHIP_NAMES_ES[stem]) for code, stem, name in FELLOWSHIPS],
            required=True,
            branching="[attended_any] = '1'",
            options={"diary": {"days": DIARY_DAYS}},
        ),
    ]
    for code, stem, name in FELLOWSHIPS:
        name_es = _FELLOWSHIP_IN_SENTENCE_ES.get(stem, FELLOWSHIP_NAMES_ES[stem])
        for fmt, _ in FORMATS:
            items.append(
                _count(
                    f"mtg_{stem}_{fmt}",
                    _t(
                        _MEETING_QUESTION_EN[fmt].format(
                            name=_FELLOWSHIP_IN_SENTENCE_EN.get(stem, name)
                        ),
                        f"En los últimos 30 días, ¿en cuántas reuniones de {name_es} participó "
                        f"{FORMATS_ES[fmt]}?",
                    ),
                    200,
                    branching=f"[fellowships({code})] = '1'",
                    diary={"group": code, "format": fmt, "days": DIARY_DAYS},
                )
            )
    return items


FOLLOWUP: list[ItemSpec] = [
    *_attendance_items(),
    _yesno(
        "home_group",
        _t(
            "Do you have a home group you go to regularly?",
            "¿Tiene un grupo base, es decir, un grupo al que va de forma regular?",
        ),
    ),
    _yesno(
        "has_sponsor",
        _t(
            "Do you have a sponsor, mentor or close friend in the group?",
            "¿Tiene en el grupo un padrino o una madrina, un mentor o una amistad cercana?",
        ),
    ),
    ItemSpec(
        "sponsor_contact",
        "single",
        _t(
            "How often are you in touch with them?",
            "¿Con qué frecuencia habla o se comunica con esa persona?",
        ),
        SPONSOR_CONTACT,
        required=True,
        branching="[has_sponsor] = '1'",
    ),
    _yesno(
        "is_sponsor",
        _t(
            "Are you a sponsor or mentor for someone else?",
            "¿Es usted padrino, madrina o mentor de otra persona?",
        ),
    ),
    _yesno(
        "service_work",
        _t(
            "In the past 30 days, did you do service for a group "
            "(setting up, making coffee, holding a role)?",
            "En los últimos 30 días, ¿hizo algún servicio para un grupo "
            "(por ejemplo, preparar el salón, hacer el café o tener un cargo)?",
        ),
    ),
    _count(
        "steps_completed",
        _t(
            "If your group works steps, how many have you completed?",
            "Si en su grupo se trabajan los pasos, ¿cuántos pasos ha completado?",
        ),
        12,
    ),
    _yesno(
        "speaks_at_meetings",
        _t(
            "In the past 30 days, did you share or speak at a meeting?",
            "En los últimos 30 días, ¿compartió o habló en alguna reunión?",
        ),
    ),
    _yesno(
        "member_contact_outside",
        _t(
            "In the past 30 days, did you spend time with group members outside meetings?",
            "En los últimos 30 días, ¿pasó tiempo con personas del grupo fuera de las reuniones?",
        ),
    ),
    _yesno(
        "reads_literature",
        _t(
            "In the past 30 days, did you read your group's literature?",
            "En los últimos 30 días, ¿leyó libros o folletos de su grupo (la literatura)?",
        ),
    ),
    MAT_STATUS,
    _yesno(
        "mat_changed",
        _t(
            "Since the last survey, did you stop, start or switch medication?",
            "Desde la última encuesta, ¿empezó a tomar, dejó de tomar o cambió su medicamento "
            "para el consumo de drogas?",
        ),
    ),
    _yesno(
        "mat_stopped_pressure",
        _t(
            "Did people in a mutual-help group push you to stop?",
            "¿Hubo personas de un grupo de ayuda mutua que le presionaron para que "
            "dejara el medicamento?",
        ),
        branching="[mat_changed] = '1'",
    ),
    _yesno(
        "mat_disclosed",
        _t(
            "Have you told people at meetings that you take this medication?",
            "¿Les ha contado a las personas de las reuniones que toma este medicamento?",
        ),
        branching="[mat_status] <> '0' and [attended_any] = '1'",
    ),
    _yesno(
        "mat_stigma",
        _t(
            "Have people at meetings treated you worse because of your medication?",
            "¿Alguien en las reuniones le ha tratado peor por tomar su medicamento?",
        ),
        branching="[mat_status] <> '0' and [attended_any] = '1'",
    ),
    CRAVING,
    *[
        _count(
            f"days_{stem}",
            _t(
                f"In the past 30 days, on how many days did you use: {text}?",
                f"En los últimos 30 días, ¿cuántos días consumió "
                f"{_in_sentence_es(SUBSTANCES_ES[stem])}?",
            ),
            30,
        )
        for _, stem, text in SUBSTANCES
    ],
    _yesno(
        "any_use_since_last",
        _t(
            "Since your last survey, have you used any drug at all?",
            "Desde su última encuesta, ¿ha consumido alguna droga, aunque sea una vez?",
        ),
    ),
    _count(
        "longest_use_run_days",
        _t(
            "What is the longest stretch of days in a row you used since your last survey?",
            "Desde su última encuesta, ¿cuál es la mayor cantidad de días seguidos en que "
            "consumió?",
        ),
        SINCE_LAST_SURVEY,  # no more days than there have been since then
        branching="[any_use_since_last] = '1'",
    ),
    ItemSpec(
        "overdose",
        "yesno",
        _t(
            "Since your last survey, have you had an overdose?",
            "Desde su última encuesta, ¿ha tenido una sobredosis?",
        ),
        required=True,
        options={"alert": "[overdose] = '1'"},
    ),
    _slider(
        "cohesion",
        _t(
            "How close and connected do you feel to the people in your group?",
            "¿Cuánta cercanía y unión siente con las personas de su grupo?",
        ),
        0,
        100,
        _t("Not at all", "Nada de cercanía"),
        _t("Completely", "Cercanía total"),
        branching="[attended_any] = '1'",
    ),
    _slider(
        "qol_overall",
        _t(
            "All in all, how would you rate your life these days?",
            "En general, ¿cómo calificaría su vida en estos días?",
        ),
        0,
        10,
        _t("Very poor", "Muy mala"),
        _t("Excellent", "Excelente"),
    ),
    _slider(
        "qol_health",
        _t(
            "How would you rate your physical health these days?",
            "¿Cómo calificaría su salud física en estos días?",
        ),
        0,
        10,
        _t("Very poor", "Muy mala"),
        _t("Excellent", "Excelente"),
    ),
]

# Weekly check-in (Spanish: "Seguimiento semanal"): a short, repeatable form between follow-ups.
CHECKIN: list[ItemSpec] = [
    CRAVING,
    *[
        _count(
            f"checkin_mtg_{fmt}",
            _t(
                f"Since your last check-in, how many mutual-help meetings did you go to "
                f"{fmt_text}?",
                f"Desde la última vez que respondió estas preguntas, ¿en cuántas reuniones de "
                f"ayuda mutua participó {FORMATS_ES[fmt]}?",
            ),
            50,
            diary={"format": fmt, "days": CHECKIN_DIARY_DAYS},
        )
        for fmt, fmt_text in FORMATS
    ],
    _yesno(
        "any_use_since_last",
        _t(
            "Since your last check-in, have you used any drug at all?",
            "Desde la última vez que respondió estas preguntas, ¿ha consumido alguna droga, "
            "aunque sea una vez?",
        ),
    ),
]

INSTRUMENTS: dict[str, tuple[str, list[ItemSpec]]] = {
    "baseline": ("Baseline", BASELINE),
    "followup": ("Follow-up", FOLLOWUP),
    "checkin": ("Weekly check-in", CHECKIN),
}
# Names participants see in Spanish (the Spanish form of each name above).
INSTRUMENT_NAMES_ES: dict[str, str] = {
    "baseline": "Encuesta inicial",
    "followup": "Seguimiento",
    "checkin": "Seguimiento semanal",
}
# Persian names (the questions themselves are in English and Spanish only): the participant's
# pages and messages name the survey in their language.
INSTRUMENT_NAMES_FA: dict[str, str] = {
    "baseline": "پرسشنامهٔ آغازین",
    "followup": "پیگیری",
    "checkin": "پیگیری هفتگی",
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
    # Days between occurrences of a recurring wave (7 = weekly); None for a single wave.
    recurrence_days: int | None = None
    # A switched-off wave is part of the study's design but gives nobody an assignment.
    active: bool = True


# Baseline then 1, 3, 6 and 12 months after enrolment, each with a -7/+28 day window; last, a
# weekly check-in (first due a week after enrolment, open for 3 days), switched off by default.
WAVES: list[WaveSpec] = [
    WaveSpec("baseline", "Baseline", 0, 0, 14, "baseline", 0),
    WaveSpec("m1", "1 month", 30, 7, 28, "followup", 1),
    WaveSpec("m3", "3 months", 91, 7, 28, "followup", 3),
    WaveSpec("m6", "6 months", 182, 7, 28, "followup", 6),
    WaveSpec("m12", "12 months", 365, 7, 28, "followup", 12),
    WaveSpec(
        "weekly",
        "Weekly check-in",
        7,
        0,
        3,
        "checkin",
        months=0.25,  # the first occurrence, about a week in
        recurrence_days=7,
        active=False,
    ),
]
WAVE_NAMES_ES: dict[str, str] = {
    "baseline": "Encuesta inicial",
    "m1": "1 mes",
    "m3": "3 meses",
    "m6": "6 meses",
    "m12": "12 meses",
    "weekly": "Seguimiento semanal",
}
WAVE_NAMES_FA: dict[str, str] = {
    "baseline": "آغازین",
    "m1": "یک‌ماهه",
    "m3": "سه‌ماهه",
    "m6": "شش‌ماهه",
    "m12": "دوازده‌ماهه",
    "weekly": "پیگیری هفتگی",
}
# The single (non-recurring) waves: baseline and the dated follow-ups.
FOLLOW_UP_WAVES: list[WaveSpec] = [wave for wave in WAVES if wave.recurrence_days is None]
