"""The meeting diary's choices: the groups and the meeting formats a participant can log.

The engine knows nothing about mutual-help groups: an app registers the choices at start-up
(``recovery.apps.RecoveryConfig.ready`` registers the battery's fellowships and formats) and the
home page, the services, the survey prefill and the exports read them here. A ``DiaryEntry``
stores the codes; labels are looked up when shown, in the reader's language (English when a
choice has no label in that language).
"""

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from django.utils import timezone

FALLBACK_LANGUAGE = "en"


@dataclass(frozen=True)
class DiaryChoice:
    code: str
    labels: dict[str, str]  # {"en": ..., "es": ...}

    def label(self, language: str) -> str:
        return self.labels.get(language) or self.labels.get(FALLBACK_LANGUAGE) or self.code


_GROUPS: dict[str, DiaryChoice] = {}
_FORMATS: dict[str, DiaryChoice] = {}


def _register(registry: dict[str, DiaryChoice], kind: str, code: str, labels: dict) -> None:
    if not labels.get(FALLBACK_LANGUAGE):
        raise ValueError(f"diary {kind} {code!r} needs an English label")
    choice = DiaryChoice(code=str(code), labels=dict(labels))
    existing = registry.get(choice.code)
    if existing is not None and existing != choice:
        raise ValueError(f"a different diary {kind} is already registered as {code!r}")
    registry[choice.code] = choice


def group_register(code: str, labels: dict[str, str]) -> None:
    """A group (fellowship) participants can log, with its label in each language."""
    _register(_GROUPS, "group", code, labels)


def format_register(code: str, labels: dict[str, str]) -> None:
    """A meeting format (in person, online, ...), with its short label in each language."""
    _register(_FORMATS, "format", code, labels)


def groups() -> list[DiaryChoice]:
    return list(_GROUPS.values())


def formats() -> list[DiaryChoice]:
    return list(_FORMATS.values())


def group_choices(language: str) -> list[tuple[str, str]]:
    return [(choice.code, choice.label(language)) for choice in _GROUPS.values()]


def format_choices(language: str) -> list[tuple[str, str]]:
    return [(choice.code, choice.label(language)) for choice in _FORMATS.values()]


def is_group(code: str) -> bool:
    return code in _GROUPS


def is_format(code: str) -> bool:
    return code in _FORMATS


def group_label(code: str, language: str) -> str:
    """The group's label, or its code when no app registers it (any more)."""
    choice = _GROUPS.get(code)
    return choice.label(language) if choice else code


def format_label(code: str, language: str) -> str:
    choice = _FORMATS.get(code)
    return choice.label(language) if choice else code


def local_today(timezone_name: str, now: datetime) -> date:
    """The calendar date at ``now`` where the participant lives."""
    return timezone.localtime(now, ZoneInfo(timezone_name)).date()
