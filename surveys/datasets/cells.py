"""Spreadsheet cells that cannot run as formulas (CWE-1236, "CSV injection").

Excel and LibreOffice run a text cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula
when a CSV file is opened (and when an XLSX cell is edited and entered again); a leading tab or
carriage return is skipped before that check, so it counts too. A formula can fetch a URL with
the sheet's contents or, through DDE (``cmd|' /C calc'!A0``), start a program. Labels, choices
and notes are typed by study staff or come in with a third party's data dictionary, so every
file a spreadsheet may open writes its text through ``formula_safe``.

The guard is OWASP's: a single quote before the text, so the spreadsheet shows it as text.

Text that is exactly a number (``-99``, ``-3.5``, ``+1``, ``1e-3``) is left alone: a spreadsheet
reads it as that number, never as a formula, and a missing code written in a text column
(``"-98"``) must stay a code. Numbers themselves are never passed here.
"""

import re

from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A number as a spreadsheet reads one: sign, digits, an optional point, an optional exponent.
NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
QUOTE = "'"


def needs_guard(text: str) -> bool:
    """Whether a spreadsheet would run ``text`` as a formula."""
    return text.startswith(FORMULA_STARTS) and not NUMBER.fullmatch(text)


def formula_safe(text: str) -> str:
    """``text``, with a single quote in front when a spreadsheet would run it as a formula:
    ``=SUM(A1)`` becomes ``'=SUM(A1)``; ``-99``, ``Calm`` and ``a=b`` stay as they are."""
    return QUOTE + text if needs_guard(text) else text


def formula_quote(text: str) -> str:
    """``formula_safe`` made reversible by ``formula_unquote``, for files that are read back in
    (the data dictionary): text that is quotes followed by formula-like text (``'=a``) gets one
    more quote, so that taking one quote off always gives the original back."""
    return QUOTE + text if needs_guard(text.lstrip(QUOTE)) else text


def formula_unquote(text: str) -> str:
    """The text ``formula_quote`` was given: one leading quote off a guarded text."""
    if text.startswith(QUOTE) and needs_guard(text.lstrip(QUOTE)):
        return text[1:]
    return text


# Line breaks in another spelling: a vertical tab is Excel's own line break in some exports.
_BREAKS = re.compile(r"[\x0b\x0c]")


def xml_safe(text: str) -> str:
    """``text`` without the control characters XML 1.0 cannot hold (openpyxl refuses to write
    them): a vertical tab or form feed becomes a line break, the others are left out."""
    if not ILLEGAL_CHARACTERS_RE.search(text):
        return text
    return ILLEGAL_CHARACTERS_RE.sub("", _BREAKS.sub("\n", text))
