"""The validators of model fields: what a coordinator is told when a value is refused."""

import pytest
from django.core.exceptions import ValidationError

from surveys.validators import validate_phone

LETTERS = (
    "Letters are not allowed in a phone number: write it in digits (spaces and - ( ) . are "
    "fine), e.g. +1 555 010 4477."
)
ODD = "A phone number holds digits, spaces and - ( ) . after an optional + only: remove {}."
TOO_FEW_DIGITS = "Enter a phone number with at least 9 digits, e.g. +1 555 010 4477."


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("555-CALL-NOW", LETTERS),  # a number written with the keypad's letters
        ("call me", LETTERS),
        ("+1 212 555 0143 ext 12", LETTERS),
        ("call me after 6pm on +1 212 555 0143", LETTERS),  # letters, not "too long"
        ("۰۹۱۲ ۳۴۵ ۶۷۸۹ تماس", LETTERS),  # Persian digits are digits; Persian letters are not
        ("555-01", TOO_FEW_DIGITS),
        # Its ten digits are there: the message names what is in the way, not a missing digit.
        ("5550104477#", ODD.format("“#”")),
        ("555*010#4477", ODD.format("“#”, “*”")),
        ("0171/555 0104", ODD.format("“/”")),
        ("555\u00a0010 4477", ODD.format("the unusual space (U+00A0)")),  # pasted
        ("555\t010 4477", ODD.format("the tab")),
    ],
)
def test_a_refused_phone_number_says_why(value, message):
    with pytest.raises(ValidationError) as excinfo:
        validate_phone(value)
    assert excinfo.value.messages == [message]


@pytest.mark.parametrize("value", ["+1 (555) 010-4477", "555.010.4477", "۰۹۱۲ ۳۴۵ ۶۷۸۹"])
def test_a_phone_number_in_digits_and_separators_is_accepted(value):
    validate_phone(value)


@pytest.mark.parametrize("typed", ["\u200b", " \ufeff ", "\u200c\u200d", "\u2060"])
def test_an_answer_of_characters_that_show_nothing_is_no_answer(typed):
    """Found by review: a required text question "answered" with a zero-width space (a
    keyboard's stray joiner) was taken as answered."""
    from surveys.models import Item
    from surveys.validation import answer_blank, answers_clean

    assert answer_blank(typed)
    item = Item(variable="why", kind="text", label={"en": "Why?"}, required=True, position=1)
    with pytest.raises(ValidationError) as refused:
        answers_clean(items=[item], answers={"why": typed}, final=True)
    assert refused.value.message_dict == {"why": ["This question needs an answer."]}
    # Persian text keeps its joiners.
    assert answers_clean(items=[item], answers={"why": "می\u200cخواهم"}, final=True) == {
        "why": "می\u200cخواهم"
    }
