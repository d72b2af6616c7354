"""Validating a set of answers against an instrument version, as a whole.

``answers_clean`` returns the answers as they will be stored (types coerced, hidden questions
dropped on a final submit, calculated fields computed on the server) or raises one
``ValidationError`` whose ``message_dict`` has one entry per question that is wrong.
"""

import functools
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from surveys import logic
from surveys.models import Item

MAX_TEXT = 2000
MAX_NOTES = 10000
NOT_STORED = {Item.Kind.DESCRIPTIVE}
MAX_MAGNITUDE = Decimal("1e15")
ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
TEXT_PATTERNS = {
    "phone": (re.compile(r"^\+?[0-9 ()\-.]{7,25}$"), gettext_lazy("Enter a phone number.")),
    "phone_australia": (
        re.compile(r"^(\+?61|0)[0-9 ]{8,12}$"),
        gettext_lazy("Enter an Australian phone number."),
    ),
    "zipcode": (
        re.compile(r"^[0-9]{5}(-[0-9]{4})?$"),
        gettext_lazy("Enter a ZIP code (12345 or 12345-6789)."),
    ),
    "time": (
        re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$"),
        gettext_lazy("Enter a time as HH:MM."),
    ),
    "time_hh_mm_ss": (
        re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$"),
        gettext_lazy("Enter a time as HH:MM:SS."),
    ),
    "time_mm_ss": (
        re.compile(r"^[0-5][0-9]:[0-5][0-9]$"),
        gettext_lazy("Enter a duration as MM:SS."),
    ),
    "ssn": (
        re.compile(r"^[0-9]{3}-[0-9]{2}-[0-9]{4}$"),
        gettext_lazy("Enter a number as 123-45-6789."),
    ),
    "mrn_10d": (re.compile(r"^[0-9]{10}$"), gettext_lazy("Enter a 10-digit number.")),
    "mrn_generic": (
        re.compile(r"^[A-Za-z0-9\-]{1,30}$"),
        gettext_lazy("Use letters, digits and dashes."),
    ),
    "postalcode_canada": (
        re.compile(r"^[A-Za-z][0-9][A-Za-z] ?[0-9][A-Za-z][0-9]$"),
        gettext_lazy("Enter a postal code such as K1A 0B1."),
    ),
    "postalcode_australia": (re.compile(r"^[0-9]{4}$"), gettext_lazy("Enter a 4-digit postcode.")),
    "postalcode_germany": (re.compile(r"^[0-9]{5}$"), gettext_lazy("Enter a 5-digit postcode.")),
    "postalcode_french": (re.compile(r"^[0-9]{5}$"), gettext_lazy("Enter a 5-digit postcode.")),
    "alpha_only": (re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿ]+$"), gettext_lazy("Use letters only.")),
}


# The words for a typed number whose separators are not read (logic.TypedNumberError); the
# survey page says the same (participant_views._survey_strings).
TYPED_NUMBER_PROBLEMS = {
    "whole_comma": gettext_lazy("Enter a whole number without a comma, for example 1500."),
    "whole_point": gettext_lazy("Enter a whole number without a point, for example 1500."),
    "separators": gettext_lazy(
        "Enter the number with one decimal separator and no thousands separator, for example "
        "1500.5 or 1500,5."
    ),
}


class _Invalid(Exception):
    pass


# Characters that show nothing: an answer of only these (and spaces) is no answer (found by
# review: a required text question "answered" with a zero-width space).
INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))


def answer_blank(value) -> bool:
    """An answer that is no answer (the dataset's "shown but not answered" uses this too)."""
    return (
        value is None
        or value == ""
        or value == []
        or (isinstance(value, str) and not value.translate(INVISIBLE).strip())
    )


# A number item's limit that depends on the participant: how many days "since your last
# survey" can cover (``submission.days_since_last_survey``), e.g. the longest run of days of use.
SINCE_LAST_SURVEY = "days_since_last_survey"


def uses_since_last_survey(items: list[Item]) -> bool:
    return any(SINCE_LAST_SURVEY in (item.min_value, item.max_value) for item in items)


def _bound(
    text: str, today: date | None = None, since_last: int | None = None
) -> Decimal | date | None:
    """A limit as written on the item: a number, a date, "today" (``today``: the
    participant's own date; else the server's), or ``SINCE_LAST_SURVEY`` (``since_last``; no
    limit when it is not known)."""
    if not text:
        return None
    if text in ("today", "now"):
        return today or timezone.localdate()
    if text == SINCE_LAST_SURVEY:
        return None if since_last is None else Decimal(since_last)
    try:
        return Decimal(text)
    except InvalidOperation:
        return date.fromisoformat(text)


def _number(value, *, whole: bool) -> int | float:
    if isinstance(value, bool):
        raise _Invalid(_("Enter a number."))
    if isinstance(value, str):
        try:
            value = logic.typed_number(value, decimal=not whole)
        except logic.TypedNumberError as exc:
            raise _Invalid(TYPED_NUMBER_PROBLEMS[exc.problem]) from exc
    match = logic.NUMERIC.match(value) if isinstance(value, str) and len(value) < 40 else None
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif match:
        number = Decimal(match.group(1))
    else:
        raise _Invalid(_("Enter a whole number.") if whole else _("Enter a number."))
    if not number.is_finite():
        raise _Invalid(_("Enter a number."))
    if abs(number) >= MAX_MAGNITUDE:
        raise _Invalid(_("Enter a smaller number."))
    if whole:
        if number != number.to_integral_value():
            raise _Invalid(_("Enter a whole number."))
        return int(number)
    return int(number) if number == number.to_integral_value() else float(number)


def number_bound(text: str, since_last: int | None = None) -> str:
    """A number item's limit as the participant is told it (and as the survey page checks
    it): as written, or the number of days since the last survey ("" when not known)."""
    if text == SINCE_LAST_SURVEY:
        return "" if since_last is None else str(since_last)
    return text


# A slider without limits runs from 0 to 100, as in REDCap (found by review: the phone's
# slider stopped at 10 and the server took any number).
SLIDER_LIMITS = ("0", "100")


def item_limits(item: Item) -> tuple[str, str]:
    """The item's lowest and highest answers as written (a slider's, its defaults where
    empty): what the page shows and checks and the server checks."""
    if item.kind == Item.Kind.SLIDER:
        return item.min_value or SLIDER_LIMITS[0], item.max_value or SLIDER_LIMITS[1]
    return item.min_value, item.max_value


def _check_range(item: Item, number, since_last: Callable[[], int | None] | None = None) -> None:
    min_value, max_value = item_limits(item)
    days = since_last() if since_last and SINCE_LAST_SURVEY in (min_value, max_value) else None
    low, high = (
        _bound(min_value, since_last=days),
        _bound(max_value, since_last=days),
    )
    shown = {
        "low": number_bound(min_value, days),
        "high": number_bound(max_value, days),
    }
    if low is not None and high is not None and not low <= Decimal(str(number)) <= high:
        raise _Invalid(_("Enter a number from %(low)s to %(high)s.") % shown)
    if low is not None and high is None and Decimal(str(number)) < low:
        raise _Invalid(_("Enter a number of at least %(low)s.") % shown)
    if high is not None and low is None and Decimal(str(number)) > high:
        raise _Invalid(_("Enter a number of at most %(high)s.") % shown)


def _decimals_allowed(item: Item) -> int | None:
    match = re.fullmatch(r"number_(\d)dp(_comma_decimal)?", item.options.get("validation", ""))
    return int(match.group(1)) if match else None


def _clean_value(
    item: Item,
    value,
    today: date | None = None,
    since_last: Callable[[], int | None] | None = None,
):
    kind = item.kind
    codes = {str(choice["code"]) for choice in item.choices}
    if kind in (Item.Kind.INTEGER, Item.Kind.DECIMAL, Item.Kind.SLIDER):
        # Sliders move in whole steps; only decimal items take fractions.
        number = _number(value, whole=kind != Item.Kind.DECIMAL)
        places = _decimals_allowed(item)
        if places is not None and round(number, places) != number:
            raise _Invalid(
                ngettext(
                    "Use at most %(places)d decimal place.",
                    "Use at most %(places)d decimal places.",
                    places,
                )
                % {"places": places}
            )
        _check_range(item, number, since_last)
        return number
    if kind == Item.Kind.YESNO:
        if value in (1, "1", True) and not isinstance(value, float):
            return 1
        if value in (0, "0", False) and not isinstance(value, float):
            return 0
        raise _Invalid(_("Answer yes or no."))
    if kind == Item.Kind.SINGLE:
        code = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
        if code not in codes:
            raise _Invalid(_("Choose one of the options."))
        return code
    if kind == Item.Kind.MULTIPLE:
        if not isinstance(value, list):
            raise _Invalid(_("Choose from the options (a list)."))
        chosen = [str(v) for v in value if isinstance(v, int | str) and not isinstance(v, bool)]
        if len(chosen) != len(value) or not set(chosen) <= codes:
            raise _Invalid(_("Choose only from the options."))
        if len(set(chosen)) != len(chosen):
            raise _Invalid(_("An option is chosen twice."))
        order = [str(choice["code"]) for choice in item.choices]
        return sorted(chosen, key=order.index)
    if kind == Item.Kind.DATE:
        try:
            day = (
                date.fromisoformat(value)
                if isinstance(value, str) and ISO_DATE.match(value)
                else None
            )
        except ValueError:
            day = None
        if day is None:
            raise _Invalid(_("Enter a date as YYYY-MM-DD."))
        low, high = _bound(item.min_value, today), _bound(item.max_value, today)
        if isinstance(low, date) and day < low:
            raise _Invalid(_("Enter a date on or after %(day)s.") % {"day": low.isoformat()})
        if isinstance(high, date) and day > high:
            raise _Invalid(_("Enter a date on or before %(day)s.") % {"day": high.isoformat()})
        return day.isoformat()
    if kind in (Item.Kind.TEXT, Item.Kind.NOTES):
        if not isinstance(value, str) or not _storable(value):
            raise _Invalid(_("Enter text."))
        text = value.strip()
        limit = MAX_TEXT if kind == Item.Kind.TEXT else MAX_NOTES
        if len(text) > limit:
            raise _Invalid(_("Keep it under %(limit)s characters.") % {"limit": limit})
        return _clean_text_validation(item, text)
    raise _Invalid(_("This field takes no answer."))


def _storable(text: str) -> bool:
    """Text the database can keep: no NUL character and no lone surrogate (PostgreSQL's JSON
    refuses both, which would fail the whole save)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _clean_text_validation(item: Item, text: str) -> str:
    validation = item.options.get("validation", "")
    if validation == "email":
        try:
            validate_email(text)
        except ValidationError as exc:
            raise _Invalid(_("Enter an e-mail address.")) from exc
    elif validation in TEXT_PATTERNS:
        pattern, message = TEXT_PATTERNS[validation]
        if not pattern.match(text):
            raise _Invalid(message)
    elif validation.startswith("datetime"):
        try:
            datetime.fromisoformat(text)
        except ValueError as exc:
            raise _Invalid(_("Enter a date and time as YYYY-MM-DD HH:MM.")) from exc
    return text


def answers_clean(
    *,
    items: list[Item],
    answers: dict,
    final: bool,
    today: date | None = None,
    since_last_survey: Callable[[], int | None] | None = None,
) -> dict:
    """Validate ``answers`` against ``items``; return what to store or raise ValidationError.
    ``today`` is the participant's date (on their clock), for date limits such as "today";
    ``since_last_survey`` gives the days since their last survey, for the ``SINCE_LAST_SURVEY``
    limit: called (once) only when an answer is checked against it.

    A draft (``final=False``) keeps every valid answer and skips required checks. A final
    submit also requires every shown required question, drops answers to hidden questions and
    computes calculated fields.
    """
    if not isinstance(answers, dict):
        raise ValidationError({"answers": [_("Answers must be an object of question: answer.")]})
    by_variable = {item.variable: item for item in items}
    since_last = functools.cache(since_last_survey) if since_last_survey else None
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    for variable in answers:
        if variable not in by_variable:
            errors[str(variable)] = [_("There is no such question in this survey.")]
    for item in items:
        if item.kind in NOT_STORED or item.kind == Item.Kind.CALC:
            continue
        value = answers.get(item.variable)
        if answer_blank(value):
            continue
        try:
            cleaned[item.variable] = _clean_value(item, value, today, since_last)
        except _Invalid as exc:
            errors[item.variable] = [str(exc)]
    if final:
        # One pass in question order, as the participant meets them: a hidden question's
        # answer is dropped (so later branching and formulas never see it), a shown required
        # question must be answered, and a calculated field is computed from what is shown.
        for item in items:
            shown = logic.shows(item.branching, cleaned)
            if item.kind == Item.Kind.CALC:
                value = logic.calculate(item.calculation, cleaned) if shown else None
                if value is not None:
                    cleaned[item.variable] = value
            elif not shown:
                cleaned.pop(item.variable, None)
                errors.pop(item.variable, None)
            elif (
                item.required
                and item.variable not in cleaned
                and item.kind not in NOT_STORED
                and item.variable not in errors
            ):
                errors[item.variable] = [_("This question needs an answer.")]
    if errors:
        raise ValidationError(errors)
    return cleaned
