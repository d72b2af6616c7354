"""The meeting diary's choices for recovery research: the battery's fellowships and formats.

Registered with the survey engine at start-up (``RecoveryConfig.ready``). Group codes are the
fellowship codes of the battery ("1".."12"), so a logged meeting lines up with the follow-up's
``fellowships`` answer and its ``mtg_{stem}_{format}`` counts.
"""

from recovery.battery import FELLOWSHIP_NAMES_ES, FELLOWSHIPS, FORMATS
from surveys import diary

# Short labels for a select box (the battery's FORMATS read inside a sentence).
FORMAT_LABELS: dict[str, dict[str, str]] = {
    "inperson": {"en": "In person", "es": "En persona"},
    "online": {"en": "Online (video, phone or chat)", "es": "En línea (video, teléfono o chat)"},
    "online24": {"en": "Online 24-hour meeting room", "es": "Sala en línea abierta las 24 horas"},
    "hybrid": {"en": "Hybrid (in the room and online)", "es": "Mixta (en el salón y en línea)"},
}


def register_diary_choices() -> None:
    for code, stem, name in FELLOWSHIPS:
        diary.group_register(code, {"en": name, "es": FELLOWSHIP_NAMES_ES[stem]})
    for fmt, _ in FORMATS:
        diary.format_register(fmt, FORMAT_LABELS[fmt])
