"""An instrument version's items laid out for a phone: one question (or one matrix group) per
screen, texts in the participant's language.

The layout is pure data, rendered by ``templates/participant/survey.html``: without JavaScript
every screen shows on one long page (the form still works); ``survey.js`` shows one screen at a
time and applies branching live.
"""

from dataclasses import dataclass, field
from datetime import date

from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from surveys.models import Item
from surveys.validation import item_limits, number_bound

# Kinds that take an answer (descriptive text is read, a calculated field is computed).
ANSWERED = frozenset(Item.Kind.values) - {Item.Kind.DESCRIPTIVE, Item.Kind.CALC}


def _text(texts: dict, language: str) -> str:
    return (texts or {}).get(language) or (texts or {}).get("en", "")


@dataclass
class Question:
    item: Item
    label: str
    note: str
    choices: list[tuple[str, str]]
    left: str = ""
    right: str = ""
    # The number limits the page checks (as written on the item, or worked out for this
    # participant: ``validation.number_bound``); "" for none.
    low: str = ""
    high: str = ""
    # Filled by the page: the answer so far, as given and as a set of chosen codes, and the
    # error to show.
    value: object = None
    chosen: set[str] = field(default_factory=set)
    error: str = ""
    # Said when the starting answer comes from the participant's meeting log.
    diary_note: str = ""

    @property
    def alert(self) -> str:
        """The logic expression that marks a dangerous answer (surveys/safety.py), if any."""
        return self.item.options.get("alert", "")

    @property
    def variable(self) -> str:
        return self.item.variable

    @property
    def kind(self) -> str:
        return self.item.kind

    @property
    def input_type(self) -> str:
        """The HTML input type of a one-line answer. Numbers are typed as text (with a digits
        keyboard, ``inputmode``): a number input empties itself on Persian or Arabic digits and
        on a decimal comma, which the server reads (surveys/validation.py)."""
        validation = self.item.options.get("validation", "")
        if self.kind == Item.Kind.DATE:
            return "date"
        if validation == "email":
            return "email"
        if validation.startswith("phone"):
            return "tel"
        return "text"

    @property
    def inputmode(self) -> str:
        if self.kind in (Item.Kind.INTEGER, Item.Kind.SLIDER):
            return "numeric"
        if self.kind == Item.Kind.DECIMAL:
            return "decimal"
        return ""

    @property
    def grouped(self) -> bool:
        """Answered by picking among options (a fieldset with a legend)."""
        return self.kind in (Item.Kind.YESNO, Item.Kind.SINGLE, Item.Kind.MULTIPLE)


@dataclass
class Screen:
    number: int
    header: str = ""
    # Descriptive texts shown before the questions: (text, branching).
    intro: list[tuple[str, str]] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    matrix: str = ""

    @property
    def first_variable(self) -> str:
        return self.questions[0].variable if self.questions else ""


def diary_note(kind: str, count: int, since: date) -> str:
    """Why a question starts answered from the meeting log, in the active language."""
    day = date_format(since, "j F")
    if kind == Item.Kind.MULTIPLE:
        return _(
            "The groups chosen are the ones in your meeting log since %(day)s — please check."
        ) % {"day": day}
    if kind == Item.Kind.YESNO:
        text = ngettext(
            "Your log shows %(n)s meeting since %(day)s, so “Yes” is chosen — please check.",
            "Your log shows %(n)s meetings since %(day)s, so “Yes” is chosen — please check.",
            count,
        )
    else:
        text = ngettext(
            "Your log shows %(n)s meeting since %(day)s — please check this number.",
            "Your log shows %(n)s meetings since %(day)s — please check this number.",
            count,
        )
    return text % {"n": count, "day": day}


def _question(item: Item, language: str, since_last_survey: int | None) -> Question:
    if item.kind == Item.Kind.YESNO:
        truefalse = item.options.get("redcap_type") == "truefalse"
        choices = [
            ("1", _("True") if truefalse else _("Yes")),
            ("0", _("False") if truefalse else _("No")),
        ]
    else:
        choices = [(c["code"], _text(c.get("label"), language)) for c in item.choices or []]
    options = item.options or {}
    return Question(
        item=item,
        label=item.text(language),
        note=_text(item.note, language),
        choices=choices,
        left=_text(options.get("left"), language),
        right=_text(options.get("right"), language),
        low=number_bound(item_limits(item)[0], since_last_survey),
        high=number_bound(item_limits(item)[1], since_last_survey),
    )


def screens_build(
    *, items: list[Item], language: str, since_last_survey: int | None = None
) -> list[Screen]:
    """Screens in question order. A section header starts a new screen; descriptive text joins
    the question after it; the items of a matrix group share one screen. ``since_last_survey``
    (``submission.days_since_last_survey``) is the limit of items that use it."""
    screens: list[Screen] = []
    pending_intro: list[tuple[str, str]] = []
    pending_header = ""
    for item in items:
        header = _text(item.section_header, language)
        if header:
            pending_header = header
        if item.kind == Item.Kind.CALC:
            continue
        if item.kind == Item.Kind.DESCRIPTIVE:
            pending_intro.append((item.text(language), item.branching))
            continue
        last = screens[-1] if screens else None
        if (
            item.matrix_group
            and last is not None
            and last.matrix == item.matrix_group
            and not header
        ):
            last.questions.append(_question(item, language, since_last_survey))
            continue
        screen = Screen(
            number=len(screens) + 1,
            header=pending_header,
            intro=pending_intro,
            matrix=item.matrix_group,
        )
        screen.questions.append(_question(item, language, since_last_survey))
        screens.append(screen)
        pending_intro, pending_header = [], ""
    if pending_intro:  # descriptive text at the very end
        screens.append(Screen(number=len(screens) + 1, header=pending_header, intro=pending_intro))
    return screens
