import functools
import re
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator


@functools.cache
def _timezones() -> frozenset[str]:
    # Reading the time-zone database takes ~10 ms: once per process, not once per value.
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value not in _timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone (e.g. America/New_York).",
            code="invalid_timezone",
            params={"value": value},
        )


validate_variable_name = RegexValidator(
    r"^[a-z][a-z0-9_]{0,99}$",
    "A variable name starts with a lower-case letter and holds only a-z, 0-9 and _.",
    code="invalid_variable",
)


# Digits and separators after an optional +: room for any international number written out.
PHONE_MAX_CHARACTERS = 25


def _character_named(ch: str) -> str:
    """A character as a message can name it: a tab or an unusual space (pasted from a
    document) would otherwise read as “ ”."""
    if ch == "\t":
        return "the tab"
    if ch.isspace():
        return f"the unusual space (U+{ord(ch):04X})"
    return f"“{ch}”"


def validate_phone(value: str) -> None:
    """A phone number someone can text: digits with the usual separators, at least nine."""
    from surveys.fields import ascii_digits, phone_normalise

    text = ascii_digits(value or "").strip()
    # Letters first: "call me after 6pm" is not a number too long, and "555-CALL-NOW" is not
    # one too short; both need their digits written out.
    if any(ch.isalpha() for ch in text):
        raise ValidationError(
            "Letters are not allowed in a phone number: write it in digits (spaces and - ( ) . "
            "are fine), e.g. +1 555 010 4477.",
            code="phone_letters",
        )
    length = len(text.removeprefix("+"))
    if length > PHONE_MAX_CHARACTERS:
        raise ValidationError(
            "This phone number is too long: %(length)s characters, at most %(max)s (digits, "
            "spaces and - ( ) . after an optional +), e.g. +1 555 010 4477.",
            code="phone_too_long",
            params={"length": length, "max": PHONE_MAX_CHARACTERS},
        )
    odd = sorted({ch for ch in text.removeprefix("+") if not re.fullmatch(r"[0-9 ()\-.]", ch)})
    if odd:
        # "5550104477#" has its nine digits: saying it has too few would send them looking for
        # a missing digit.
        raise ValidationError(
            "A phone number holds digits, spaces and - ( ) . after an optional + only: remove "
            "%(odd)s.",
            code="phone_characters",
            params={"odd": ", ".join(_character_named(ch) for ch in odd)},
        )
    if not re.fullmatch(r"\+?[0-9 ()\-.]{7,25}", text) or not phone_normalise(text):
        raise ValidationError("Enter a phone number with at least 9 digits, e.g. +1 555 010 4477.")
