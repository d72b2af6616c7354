"""Branching logic and calculations in the subset of REDCap's expression language studies use.

    [var]  [var(code)]  = <> != < <= > >=  and or not  ( )  'text' "text" 12 3.5
    + - * / ^  round(x[, places])  sum(a, b, ...)  if(condition, then, else)

The browser has the same language in ``surveys/static/surveys/logic.js``; both are run against
``surveys/static/surveys/logic-vectors.json`` so that a question is shown or hidden, and a
calculation gives the same number, on the phone and on the server.

Semantics (chosen to be predictable, written down so both implementations agree):

* A missing answer is blank (``''``). ``[var(code)]`` is 1 when the multiple-choice answer
  ``var`` includes ``code``, else 0.
* ``=``, ``<>`` and ``!=`` compare as numbers when both sides look like numbers, otherwise as
  text (so ``[x] = ''`` tests for blank). ``<``, ``<=``, ``>``, ``>=`` compare numbers only and
  are false when either side is blank or not a number.
* Arithmetic on a blank or non-number gives blank; so do division by zero and overflow.
  ``sum()`` skips blanks (blank if all are). ``round()`` rounds halves away from zero.
* ``and``, ``or``, ``not`` and ``if()`` use truth: false, 0, blank and ``'0'`` are false.
"""

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from operator import eq, ge, gt, le, lt, ne

# ASCII only, spelled out: Python's \d and \s are Unicode-aware and JavaScript's differ, and the
# two evaluators must agree on what looks like a number.
SPACE = "[ \t\n\r\f\v]"
NUMERIC = re.compile(rf"^{SPACE}*(-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)){SPACE}*$")
# What a Persian or Arabic phone keyboard types in a number: the digits ۰–۹ (U+06F0–06F9) and
# ٠–٩ (U+0660–0669), and the decimal separator ٫ (U+066B). Only these: other scripts' digits
# (fullwidth ５) stay refused, here and in the browser.
EASTERN_DIGITS = str.maketrans(
    {chr(0x06F0 + n): str(n) for n in range(10)}
    | {chr(0x0660 + n): str(n) for n in range(10)}
    | {"\u066b": "."}
)
FUNCTIONS = {"round": (1, 2), "sum": (1, None), "if": (3, 3)}
COMPARISONS = {"=", "<>", "!=", "<", "<=", ">", ">="}
BLANK = ""


class LogicError(ValueError):
    """A malformed expression, with the 0-based position of the problem."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} (at character {position + 1})")
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Token:
    kind: str  # num, str, field, op, word, lparen, rparen, comma, end
    value: object
    position: int


_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\n\r\f\v]+)
  | (?P<num>[0-9]+\.?[0-9]*|\.[0-9]+)
  | (?P<str>'[^']*'|"[^"]*")
  | (?P<field>\[(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:\((?P<code>[A-Za-z0-9_.\-]+)\))?\])
  | (?P<op><=|>=|<>|!=|=|<|>|\+|-|\*|/|\^)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE | re.ASCII,
)


def tokenize(text: str) -> list[Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            if char in "'\"":
                raise LogicError("a quoted text is not closed", position)
            if char == "[":
                raise LogicError(
                    "a field reference is malformed: write [name] or [name(code)]", position
                )
            raise LogicError(f"unexpected character {char!r}", position)
        kind = match.lastgroup if match.lastgroup != "name" else "field"
        if match.group("field"):
            kind = "field"
            value: object = (match.group("name").lower(), match.group("code"))
        elif kind == "num":
            value = float(match.group("num"))
        elif kind == "str":
            value = match.group("str")[1:-1]
        else:
            value = match.group(kind)
        if kind != "space":
            if kind == "word":
                value = str(value).lower()
            tokens.append(Token(kind, value, position))
        position = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


class _Parser:
    """Recursive descent; nodes are tuples so they print and compare plainly."""

    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def is_word(self, word: str) -> bool:
        return self.current.kind == "word" and self.current.value == word

    def parse(self):
        if self.current.kind == "end":
            raise LogicError("the expression is empty", 0)
        node = self.parse_or()
        if self.current.kind != "end":
            raise self.unexpected()
        return node

    def unexpected(self) -> LogicError:
        token = self.current
        if token.kind == "end":
            return LogicError("the expression ends too early", token.position)
        shown = {"field": "field reference", "num": "number", "str": "quoted text"}.get(token.kind)
        what = shown or repr(token.value)
        return LogicError(f"unexpected {what}", token.position)

    def parse_or(self):
        node = self.parse_and()
        while self.is_word("or"):
            self.advance()
            node = ("or", node, self.parse_and())
        return node

    def parse_and(self):
        node = self.parse_not()
        while self.is_word("and"):
            self.advance()
            node = ("and", node, self.parse_not())
        return node

    def parse_not(self):
        if self.is_word("not"):
            self.advance()
            return ("not", self.parse_not())
        return self.parse_comparison()

    def parse_comparison(self):
        node = self.parse_additive()
        if self.current.kind == "op" and self.current.value in COMPARISONS:
            operator = self.advance().value
            node = ("cmp", "<>" if operator == "!=" else operator, node, self.parse_additive())
            if self.current.kind == "op" and self.current.value in COMPARISONS:
                raise LogicError(
                    "comparisons cannot be chained; join them with and/or", self.current.position
                )
        return node

    def parse_additive(self):
        node = self.parse_multiplicative()
        while self.current.kind == "op" and self.current.value in ("+", "-"):
            node = ("arith", self.advance().value, node, self.parse_multiplicative())
        return node

    def parse_multiplicative(self):
        node = self.parse_unary()
        while self.current.kind == "op" and self.current.value in ("*", "/"):
            node = ("arith", self.advance().value, node, self.parse_unary())
        return node

    def parse_unary(self):
        if self.current.kind == "op" and self.current.value in ("-", "+"):
            operator = self.advance().value
            operand = self.parse_unary()
            return ("neg", operand) if operator == "-" else ("pos", operand)
        return self.parse_power()

    def parse_power(self):
        node = self.parse_primary()
        if self.current.kind == "op" and self.current.value == "^":
            self.advance()
            node = ("arith", "^", node, self.parse_unary())
        return node

    def parse_primary(self):
        token = self.current
        if token.kind == "num":
            self.advance()
            return ("num", token.value)
        if token.kind == "str":
            self.advance()
            return ("str", token.value)
        if token.kind == "field":
            self.advance()
            name, code = token.value
            return ("field", name, code, token.position)
        if token.kind == "lparen":
            self.advance()
            node = self.parse_or()
            if self.current.kind != "rparen":
                raise LogicError("a parenthesis is not closed", self.current.position)
            self.advance()
            return node
        if token.kind == "word":
            if token.value in ("and", "or", "not"):
                raise self.unexpected()
            if token.value not in FUNCTIONS:
                raise LogicError(f"unknown function or word {token.value!r}", token.position)
            return self.parse_call()
        raise self.unexpected()

    def parse_call(self):
        name_token = self.advance()
        name = name_token.value
        if self.current.kind != "lparen":
            raise LogicError(f"{name} needs its arguments in parentheses", self.current.position)
        self.advance()
        args = []
        if self.current.kind != "rparen":
            args.append(self.parse_or())
            while self.current.kind == "comma":
                self.advance()
                args.append(self.parse_or())
        if self.current.kind != "rparen":
            raise LogicError(f"the arguments of {name} are not closed", self.current.position)
        self.advance()
        low, high = FUNCTIONS[name]
        if len(args) < low or (high is not None and len(args) > high):
            expected = (
                str(low)
                if low == high
                else f"{low} or more"
                if high is None
                else f"{low} to {high}"
            )
            raise LogicError(
                f"{name} takes {expected} arguments, not {len(args)}", name_token.position
            )
        return ("call", name, tuple(args))


@lru_cache(maxsize=4096)
def parse(text: str):
    """The syntax tree of ``text``; raises LogicError with the position of the first problem."""
    return _Parser(text).parse()


def fields_used(node) -> list[tuple[str, str | None, int]]:
    """Every ``[name]`` / ``[name(code)]`` in a tree, with its position."""
    found = []

    def walk(n):
        if n[0] == "field":
            found.append((n[1], n[2], n[3]))
        for child in n[1:]:
            if isinstance(child, tuple):
                if child and isinstance(child[0], str):
                    walk(child)
                else:
                    for arg in child:
                        walk(arg)

    walk(node)
    return found


def check(text: str, *, kinds: dict[str, str]) -> None:
    """Parse ``text`` and check its fields against ``kinds`` (variable -> item kind)."""
    tree = parse(text)
    for name, code, position in fields_used(tree):
        if name not in kinds:
            raise LogicError(f"unknown variable [{name}]", position)
        if code is not None and kinds[name] != "multiple":
            raise LogicError(
                f"[{name}({code})] picks a choice, but {name} is not a multiple-choice item",
                position,
            )


class TypedNumberError(ValueError):
    """A typed number whose separators cannot be read without guessing. ``problem``:
    ``"whole_comma"``, a comma (or ``٬``) in a whole number (1,000 may be a thousand or one);
    ``"whole_point"``, points grouping a whole number's digits in threes (2.000);
    ``"separators"``, more than one separator in a decimal (1,000.5, 1.000,5, 1,5,5)."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


# A whole number whose digits a point groups in threes (2.000, 1.500.000): a thousands
# separator, or a decimal point, depending on who typed it.
GROUPED_BY_POINTS = re.compile(r"^\s*[-+]?\d{1,3}(?:\.\d{3})+\s*$")


def typed_number(text: str, *, decimal: bool = False) -> str:
    """A number as a participant typed it, in the ASCII that ``NUMERIC`` reads: Persian and
    Arabic-Indic digits as 0–9, the Arabic decimal separator ``٫`` as ".", and in a decimal
    item (``decimal``) one comma with no dot as the decimal point (3,5 is 3.5, as Spanish
    writes it). Thousands separators are never read: a comma in a whole number, and two
    separators in a decimal, raise ``TypedNumberError``. Anything else is left as typed, for
    ``NUMERIC`` to refuse (``typedNumber`` in logic.js does the same)."""
    ascii_text = text.translate(EASTERN_DIGITS)
    if not decimal:
        if "," in ascii_text or "\u066c" in ascii_text:
            raise TypedNumberError("whole_comma")
        if GROUPED_BY_POINTS.match(ascii_text):
            # 2.000 is two thousand where a point groups thousands (Spanish), 2 elsewhere
            # (found by review: read as 2)
            raise TypedNumberError("whole_point")
        return ascii_text
    if "\u066c" in ascii_text:  # the Arabic thousands separator
        raise TypedNumberError("separators")
    commas = ascii_text.count(",")
    if commas == 0:
        return ascii_text
    if commas == 1 and "." not in ascii_text:
        return ascii_text.replace(",", ".")
    raise TypedNumberError("separators")


# --- Evaluation ---------------------------------------------------------------------------


def is_numeric(value) -> bool:
    return not math.isnan(to_number(value))


def to_number(value) -> float:
    """The value as a float; NaN for blank, text and numbers too large for a double (which
    JavaScript would see as Infinity, also treated as not a number)."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str) and (match := NUMERIC.match(value)):
            number = float(match.group(1))
        else:
            return math.nan
    except OverflowError:
        return math.nan
    return number if math.isfinite(number) else math.nan


def to_text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return repr(value) if isinstance(value, float) else str(value)
    if value is None:
        return BLANK
    return str(value)


def truthy(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return math.isfinite(value) and value != 0
    if isinstance(value, str):
        if NUMERIC.match(value):
            number = to_number(value)
            return not math.isnan(number) and number != 0
        return value != ""
    return False


def _blank_if_not_finite(value: float):
    return value if math.isfinite(value) else BLANK


def round_half_away(value: float, places: float) -> float:
    try:
        factor = 10.0 ** int(places)
    except OverflowError:
        return math.inf
    scaled = abs(value) * factor + 0.5
    if factor == 0 or not math.isfinite(scaled):
        return math.nan  # blank, as in JavaScript (0/0 or Infinity)
    return math.copysign(math.floor(scaled) / factor, value)


def _arith(operator: str, left, right):
    a, b = to_number(left), to_number(right)
    if math.isnan(a) or math.isnan(b):
        return BLANK
    try:
        if operator == "+":
            return _blank_if_not_finite(a + b)
        if operator == "-":
            return _blank_if_not_finite(a - b)
        if operator == "*":
            return _blank_if_not_finite(a * b)
        if operator == "/":
            return BLANK if b == 0 else _blank_if_not_finite(a / b)
        return _blank_if_not_finite(math.pow(a, b))
    except (OverflowError, ValueError, ZeroDivisionError):
        return BLANK


_COMPARISONS = {
    "=": eq,
    "<>": ne,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
}


def _compare(op: str, left, right) -> bool:
    return _compared(op, left, right, to_number(right))


def _compared(op: str, left, right, right_number: float) -> bool:
    """``left op right``, with ``right`` already read as a number (NaN if it is not one): a
    compiled comparison with a constant reads it once. Numbers compare as numbers; otherwise
    only = and <> apply, to the values as text."""
    if not math.isnan(right_number):
        left_number = to_number(left)
        if not math.isnan(left_number):
            return _COMPARISONS[op](left_number, right_number)
    if op in ("=", "<>"):
        return _COMPARISONS[op](to_text(left), to_text(right))
    return False


def _compile(node) -> Callable[[dict], object]:
    """The expression ``node`` as a function of the answers, made once per expression: the
    busiest use is a submit's branching (about 60 expressions, each evaluated once), and
    walking the syntax tree each time, reading each number constant again, was most of the
    answers' check (benchmarks/README.md)."""
    kind = node[0]
    if kind == "num" or kind == "str":
        constant = node[1]
        return lambda answers: constant
    if kind == "field":
        return _compile_field(node[1], node[2])
    if kind == "or" or kind == "and":
        left, right = _compile(node[1]), _compile(node[2])
        if kind == "or":
            return lambda answers: truthy(left(answers)) or truthy(right(answers))
        return lambda answers: truthy(left(answers)) and truthy(right(answers))
    if kind == "not":
        operand = _compile(node[1])
        return lambda answers: not truthy(operand(answers))
    if kind == "cmp":
        return _compile_compare(node[1], node[2], node[3])
    if kind == "arith":
        operator, left, right = node[1], _compile(node[2]), _compile(node[3])
        return lambda answers: _arith(operator, left(answers), right(answers))
    if kind == "neg" or kind == "pos":
        operand, negate = _compile(node[1]), kind == "neg"

        def signed(answers):
            number = to_number(operand(answers))
            if math.isnan(number):
                return BLANK
            return -number if negate else number

        return signed
    if kind == "call":
        return _compile_call(node[1], [_compile(arg) for arg in node[2]])
    raise AssertionError(f"unknown node {kind}")  # pragma: no cover - the parser makes nodes


def _compile_field(name: str, code: str | None):
    if code is not None:

        def chosen(answers):
            value = answers.get(name)
            if isinstance(value, list | tuple):
                for picked in value:
                    if (picked if isinstance(picked, str) else to_text(picked)) == code:
                        return 1.0
            return 0.0

        return chosen

    def field(answers):
        value = answers.get(name)
        if value is None or isinstance(value, list | tuple | dict):
            return BLANK
        return value

    return field


def _compile_compare(op: str, left_node, right_node):
    """``_compare`` of the two sides; a constant right side (``[x] = '1'``, the usual
    branching) is read as a number once, not at every evaluation."""
    left, right = _compile(left_node), _compile(right_node)
    if right_node[0] not in ("num", "str"):
        return lambda answers: _compare(op, left(answers), right(answers))
    constant = right_node[1]
    number = to_number(constant)
    return lambda answers: _compared(op, left(answers), constant, number)


def _compile_call(name: str, args: list):
    if name == "if":
        condition, then, otherwise = args
        return lambda answers: then(answers) if truthy(condition(answers)) else otherwise(answers)
    if name == "sum":

        def total(answers):
            numbers = [to_number(v) for v in (arg(answers) for arg in args) if is_numeric(v)]
            if not numbers:
                return BLANK
            try:
                return _blank_if_not_finite(math.fsum(numbers))
            except (OverflowError, ValueError):  # inf or inf - inf: JavaScript gives blank
                return BLANK

        return total

    def rounded(answers):
        values = [arg(answers) for arg in args]
        number = to_number(values[0])
        places = to_number(values[1]) if len(values) > 1 else 0.0
        if math.isnan(number) or math.isnan(places):
            return BLANK
        result = round_half_away(number, places)
        return BLANK if math.isnan(result) else _blank_if_not_finite(result)

    return rounded


@lru_cache(maxsize=4096)
def _compiled(text: str) -> Callable[[dict], object]:
    return _compile(parse(text))


def evaluate(text: str, answers: dict):
    """The raw value of an expression: a number, text, True/False or blank ('')."""
    return _compiled(text)(answers)


def shows(text: str, answers: dict) -> bool:
    """Whether an item with this branching logic is shown (an empty expression: always)."""
    return _shown(text)(answers)


@lru_cache(maxsize=4096)
def _shown(text: str) -> Callable[[dict], bool]:
    if not text.strip():
        return lambda answers: True
    expression = _compiled(text)
    return lambda answers: truthy(expression(answers))


# A calculated value this large is a formula gone wrong (a division by an almost-zero answer,
# a power run away), not a measure: it is left blank, as inf and nan are. Beyond 1e15 a double
# no longer holds every whole number, and Stata's and SPSS's files refuse values near 1e308.
CALCULATED_LIMIT = 1e15


def calculate(text: str, answers: dict) -> int | float | None:
    """A calculated item's value: a number (whole numbers as int), or None when blank."""
    value = evaluate(text, answers)
    if isinstance(value, bool):
        return int(value)
    number = to_number(value)
    if math.isnan(number) or not math.isfinite(number) or abs(number) >= CALCULATED_LIMIT:
        return None
    return int(number) if number.is_integer() else number


# --- Ranges -------------------------------------------------------------------------------

Range = tuple[float, float]  # lowest, highest (-inf, inf: no limit)
ANY: Range = (-math.inf, math.inf)
_ANY = (-math.inf, math.inf, False)  # a range, and whether every number in it is whole


def value_range(text: str, ranges: dict[str, Range], whole: Iterable[str] = ()) -> Range:
    """The lowest and highest number ``text`` can give, its fields' answers being within
    ``ranges`` (a field not there: any number), those of ``whole`` whole numbers. A bound,
    never tight: a power, a division by a number that can be 0 (or, whole, cross it), or a
    constant that is not a number give ``ANY``. The datasets ask it whether a calculated item
    could give a number that is also a missing code."""
    try:
        low, high, _ = _range(parse(text), ranges, frozenset(whole))
    except (LogicError, ValueError, OverflowError):
        return ANY
    return ANY if math.isnan(low) or math.isnan(high) else (low, high)


def _range(node, ranges: dict[str, Range], whole: frozenset):
    kind = node[0]
    if kind == "num" or kind == "str":
        number = to_number(node[1])
        return _ANY if math.isnan(number) else (number, number, number.is_integer())
    if kind == "field":
        if node[2] is not None:
            return (0.0, 1.0, True)
        return (*ranges.get(node[1], ANY), node[1] in whole)
    if kind in ("or", "and", "not", "cmp"):
        return (0.0, 1.0, True)
    if kind == "neg":
        low, high, integral = _range(node[1], ranges, whole)
        return (-high, -low, integral)
    if kind == "pos":
        return _range(node[1], ranges, whole)
    if kind == "arith":
        left, right = _range(node[2], ranges, whole), _range(node[3], ranges, whole)
        return _arith_range(node[1], left, right)
    if kind == "call":
        args = [_range(arg, ranges, whole) for arg in node[2]]
        if node[1] == "if":
            _, then, otherwise = args
            low, high = min(then[0], otherwise[0]), max(then[1], otherwise[1])
            return (low, high, then[2] and otherwise[2])
        if node[1] == "sum":  # a blank argument is left out: it counts as 0
            return (
                sum(min(arg[0], 0.0) for arg in args),
                sum(max(arg[1], 0.0) for arg in args),
                all(arg[2] for arg in args),
            )
        return _round_range(node[2], args)
    return _ANY  # pragma: no cover - the parser makes no other node


def _arith_range(operator: str, left, right):
    integral = left[2] and right[2]
    if operator == "+":
        return (left[0] + right[0], left[1] + right[1], integral)
    if operator == "-":
        return (left[0] - right[1], left[1] - right[0], integral)
    if operator == "/":
        low, high, _ = right
        if right[2]:  # a division by 0 is blank: a whole divisor is then at least 1 away
            low, high = (1.0 if low == 0 else low), (-1.0 if high == 0 else high)
        if low > high or low <= 0 <= high:
            return _ANY  # always blank, or a number near 0 (any size)
        right, integral = (low, high), False
    elif operator != "*":
        return _ANY  # a power
    ends = [a * b if operator == "*" else a / b for a in left[:2] for b in right[:2]]
    if any(math.isnan(v) for v in ends):  # 0 × infinity, infinity / infinity: no bound known
        return _ANY
    return (min(ends), max(ends), integral)


def _round_range(nodes, args):
    low, high, integral = args[0]
    places = 0.0
    if len(nodes) > 1:
        if nodes[1][0] != "num":
            return _ANY
        places = to_number(nodes[1][1])
        if math.isnan(places):  # too long a number for a double
            return _ANY
        places = float(int(places))
    if integral and places >= 0:
        return (low, high, True)  # a whole number rounded to places stays as it is
    try:
        step = 0.5 * 10.0 ** (-places)  # rounding moves a number by at most half a step
    except OverflowError:
        return _ANY
    # rounding half away from zero keeps the sign, so a bound at 0 or beyond it stays
    return (
        max(low - step, 0.0) if low >= 0 else low - step,
        min(high + step, 0.0) if high <= 0 else high + step,
        places <= 0,
    )
