"""Branching and calculation: the shared vectors in Python and JavaScript, properties, and the
two evaluators agreeing on random expressions."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveys import logic
from surveys.logic import LogicError

ROOT = Path(__file__).resolve().parents[2]
SHARED = json.loads(
    (ROOT / "surveys/static/surveys/logic-vectors.json").read_text(encoding="utf-8")
)
VECTORS = SHARED["vectors"]
TYPED_NUMBERS = SHARED["typed_numbers"]
NODE = shutil.which("node")


def _close(actual, expected) -> bool:
    if expected is None or actual is None:
        return actual is expected
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['mode']}:{v['expr']}")
def test_shared_vector_in_python(vector):
    def run():
        if vector["mode"] == "shows":
            return logic.shows(vector["expr"], vector["answers"])
        return logic.calculate(vector["expr"], vector["answers"])

    if "error_at" in vector:
        with pytest.raises(LogicError) as excinfo:
            run()
        assert excinfo.value.position == vector["error_at"], excinfo.value
        return
    actual = run()
    if vector["mode"] == "shows":
        assert actual is vector["expect"]
    else:
        assert _close(actual, vector["expect"]), actual


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_shared_vectors_in_javascript():
    result = subprocess.run(
        [NODE, "--test", str(ROOT / "tests/js/logic.test.cjs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert f"# pass {len(VECTORS) + len(TYPED_NUMBERS)}" in result.stdout


@pytest.mark.parametrize("vector", TYPED_NUMBERS, ids=lambda v: ascii(v["typed"]))
def test_shared_typed_number_in_python(vector):
    decimal = vector.get("decimal", False)
    if "problem" in vector:
        with pytest.raises(logic.TypedNumberError) as excinfo:
            logic.typed_number(vector["typed"], decimal=decimal)
        assert excinfo.value.problem == vector["problem"]
        return
    assert logic.typed_number(vector["typed"], decimal=decimal) == vector["expect"]


def test_error_names_the_position_and_reason():
    with pytest.raises(LogicError) as excinfo:
        logic.parse("[a] = 1 xor [b] = 1")
    assert excinfo.value.position == 8
    assert "xor" in str(excinfo.value)
    assert "character 9" in str(excinfo.value)


def test_check_rejects_unknown_variables_and_choice_syntax_on_other_kinds():
    kinds = {"a": "integer", "fellowships": "multiple"}
    logic.check("[a] > 1 and [fellowships(2)] = '1'", kinds=kinds)
    with pytest.raises(LogicError) as unknown:
        logic.check("[a] > 1 and [b] = 1", kinds=kinds)
    assert unknown.value.position == 12
    assert "[b]" in unknown.value.message
    with pytest.raises(LogicError) as wrong_kind:
        logic.check("[a(1)] = 1", kinds=kinds)
    assert wrong_kind.value.position == 0


# --- Properties ----------------------------------------------------------------------------

VARIABLES = ["a", "b", "c", "fellowships"]
values = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False).map(lambda x: round(x, 3)),
    st.sampled_from(
        [
            "",
            "0",
            "1",
            "2.5",
            "-3",
            "abc",
            "Yes",
            " 7 ",
            "\u0663",
            "\uff15",
            "\u00a04",
            "1" * 400,
            "1e3",
        ]
    ),
)
answers_strategy = st.fixed_dictionaries(
    {},
    optional={
        "a": values,
        "b": values,
        "c": values,
        "fellowships": st.lists(st.sampled_from(["1", "2", "3"]), unique=True, max_size=3),
    },
)


def _expressions():
    atom = st.one_of(
        st.integers(min_value=0, max_value=100).map(str),
        st.sampled_from(["0.5", "2.25", "'1'", "''", "'abc'", '"2"']),
        st.sampled_from(["[a]", "[b]", "[c]", "[fellowships(1)]", "[fellowships(3)]"]),
    )

    def extend(inner):
        return st.one_of(
            st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "^"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(inner, st.sampled_from(["=", "<>", "<", "<=", ">", ">="]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
                lambda t: f"({t[0]} {t[1]} {t[2]})"
            ),
            inner.map(lambda x: f"(not ({x}))"),
            inner.map(lambda x: f"-({x})"),
            st.tuples(inner, inner, inner).map(lambda t: f"if({t[0]}, {t[1]}, {t[2]})"),
            st.lists(inner, min_size=1, max_size=4).map(lambda xs: f"sum({', '.join(xs)})"),
            st.tuples(inner, st.integers(min_value=-2, max_value=3)).map(
                lambda t: f"round({t[0]}, {t[1]})"
            ),
        )

    return st.recursive(atom, extend, max_leaves=12)


@settings(max_examples=300)
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_any_text_either_parses_or_raises_a_logic_error_with_a_position_inside_it(text):
    try:
        logic.parse(text)
    except LogicError as exc:
        assert 0 <= exc.position <= len(text)


@settings(max_examples=300)
@given(expr=_expressions(), answers=answers_strategy)
def test_generated_expressions_always_evaluate_to_a_number_or_blank(expr, answers):
    value = logic.calculate(expr, answers)
    assert value is None or (isinstance(value, int | float) and math.isfinite(value))
    assert isinstance(logic.shows(expr, answers), bool)


def _node_batch(batch: list[dict]) -> list[dict]:
    """What logic.js answers for each case of ``batch`` (tests/js/evaluate_batch.cjs)."""
    result = subprocess.run(
        [NODE, str(ROOT / "tests/js/evaluate_batch.cjs")],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.data_too_large, HealthCheck.too_slow],
)
@given(cases=st.lists(st.tuples(_expressions(), answers_strategy), min_size=60, max_size=60))
def test_python_and_javascript_agree_on_random_expressions(cases):
    batch = [
        {"mode": mode, "expr": expr, "answers": answers}
        for expr, answers in cases
        for mode in ("shows", "calc")
    ]
    for case, js in zip(batch, _node_batch(batch), strict=True):
        assert "crash" not in js, (case, js)
        if case["mode"] == "shows":
            assert js["value"] is logic.shows(case["expr"], case["answers"]), case
        else:
            expected = logic.calculate(case["expr"], case["answers"])
            if "^" in case["expr"]:
                # C's pow() and V8's may differ in the last bit; everything else is exact.
                assert _close(js["value"], expected), (case, js)
            else:
                assert js["value"] == expected, (case, js)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cases=st.lists(
        st.tuples(st.text(alphabet="0123456789,.- \u06f1\u06f5\u0662\u066b\u066ca"), st.booleans()),
        min_size=100,
        max_size=100,
    )
)
def test_python_and_javascript_read_typed_numbers_alike(cases):
    batch = [{"mode": "typed", "typed": typed, "decimal": decimal} for typed, decimal in cases]
    for case, js in zip(batch, _node_batch(batch), strict=True):
        try:
            expected = {"value": logic.typed_number(case["typed"], decimal=case["decimal"])}
        except logic.TypedNumberError as exc:
            expected = {"problem": exc.problem}
        assert js == expected, case


# --- value_range: a bound on what a calculation can give (the datasets' missing codes) ------


def _within(value: float, bound: logic.Range) -> bool:
    slack = 1e-9 * max(1.0, abs(value))  # the bound's own rounding, not the formula's
    return bound[0] - slack <= value <= bound[1] + slack


@st.composite
def _ranged_answers(draw):
    """Ranges of a, b and c (None: no limit that side), whether each is whole, and answers
    within them: a number in the range (whole if so), blank, or text that is no number."""
    ranges, whole, answers = {}, set(), {}
    for name in ("a", "b", "c"):
        low = draw(st.one_of(st.none(), st.integers(min_value=-300, max_value=300)))
        high = draw(st.one_of(st.none(), st.integers(min_value=-300, max_value=300)))
        if low is not None and high is not None and low > high:
            low, high = high, low
        ranges[name] = (
            -math.inf if low is None else float(low),
            math.inf if high is None else float(high),
        )
        low = -10_000 if low is None else low
        high = 10_000 if high is None else high
        if draw(st.booleans()):
            whole.add(name)
            number = st.integers(min_value=low, max_value=high)
        else:
            number = st.floats(min_value=low, max_value=high).map(lambda x: round(x, 2))
        answers[name] = draw(st.one_of(number, st.sampled_from(["", "abc"])))
        if isinstance(answers[name], float) and not _within(answers[name], ranges[name]):
            answers[name] = ""  # rounded out of its range
    answers["fellowships"] = draw(st.lists(st.sampled_from(["1", "2", "3"]), unique=True))
    return ranges, whole, answers


@settings(max_examples=500)
@given(expr=_expressions(), drawn=_ranged_answers())
def test_a_calculation_gives_a_number_within_its_value_range(expr, drawn):
    ranges, whole, answers = drawn
    value = logic.calculate(expr, answers)
    assert value is None or _within(value, logic.value_range(expr, ranges, whole))


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("round([age] / 10)", (1.3, 12.5)),  # age 18 to 120: never a missing code
        ("[days] / [people]", (0.0, 30.0)),
        ("[days] - [people]", (-20.0, 29.0)),
        ("sum([days], [people], -2)", (-2.0, 50.0)),  # a bound, not tight
        ("if([days] > 3, [days], -5)", (-5.0, 30.0)),
        ("[days] * [change]", logic.ANY),  # change has no limit
        ("[days] / [change]", logic.ANY),  # change can be 0
        ("[days] ^ 2", logic.ANY),
        ("[days] >= 3 and [people] = 2", (0.0, 1.0)),
        ("[fellowships(2)] * 5", (0.0, 5.0)),
        ("'abc' + 1", logic.ANY),
        ("[days] +", logic.ANY),  # not a formula
        ("round([days], " + "9" * 309 + ")", logic.ANY),  # places too long for a double
        ("[odd] - 96", logic.ANY),  # a range that is no range
    ],
)
def test_value_range_of_formulas(expr, expected):
    ranges = {
        "age": (18.0, 120.0),
        "days": (0.0, 30.0),
        "people": (1.0, 20.0),
        "odd": (math.nan, 1.0),
    }
    assert logic.value_range(expr, ranges) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        # 0 people: blank; else 1 or more
        ("[days] / [household]", (0.0, 30.0)),
        ("[days] / ([household] + [pets])", (0.0, 30.0)),
        ("[days] / [change]", logic.ANY),  # whole, but can be -1, 0 or 1
        ("[days] / [share]", logic.ANY),  # not whole: can be 0.001
        ("round([days] / [household] * 7)", (0.0, 210.5)),
        ("round([household] + 1, 2)", (1.0, 21.0)),  # whole stays as it is
    ],
)
def test_value_range_knows_a_whole_divisor_skips_zero(expr, expected):
    ranges = {
        "days": (0.0, 30.0),
        "household": (0.0, 20.0),
        "pets": (0.0, 5.0),
        "change": (-5.0, 5.0),
        "share": (0.0, 1.0),
    }
    whole = {"days", "household", "pets", "change"}
    assert logic.value_range(expr, ranges, whole) == pytest.approx(expected)
