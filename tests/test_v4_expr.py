"""relay.v4.expr: the bool.exp parser, its error messages, and evaluation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.v4 import expr
from relay.v4.expr import And, Name, Not, Or
from relay.v4.jsonparse import InvalidRequest

KNOWN = {"leftZone", "batteryLow", "onMonday", "a", "b", "c"}


def test_example_expression() -> None:
    tree = expr.parse("leftZone & (batteryLow | onMonday)", KNOWN)
    assert tree == And((Name("leftZone"), Or((Name("batteryLow"), Name("onMonday")))))


def test_precedence_not_and_or() -> None:
    assert expr.parse("a | b & !c") == Or((Name("a"), And((Name("b"), Not(Name("c"))))))
    assert expr.parse("!a & b") == And((Not(Name("a")), Name("b")))
    assert expr.parse("!(a | b)") == Not(Or((Name("a"), Name("b"))))


def test_double_negation_cancels() -> None:
    assert expr.parse("!!a") == Name("a")
    assert expr.parse("!!!a") == Not(Name("a"))


def test_whitespace_is_free() -> None:
    assert expr.parse(" a&b\t|\nc ") == expr.parse("a & b | c")


def test_names_may_have_dots_and_dashes() -> None:
    assert expr.parse("zone-1 & data.low") == And((Name("zone-1"), Name("data.low")))
    assert expr.is_name("x_1.y-z")
    assert not expr.is_name("a b")
    assert not expr.is_name("")


def test_evaluate_truth_table() -> None:
    tree = expr.parse("leftZone & (batteryLow | onMonday)")
    for left, low, monday in itertools.product([False, True], repeat=3):
        values = {"leftZone": left, "batteryLow": low, "onMonday": monday}
        assert expr.evaluate(tree, values) == (left and (low or monday))


def test_missing_name_is_false() -> None:
    assert expr.evaluate(expr.parse("a | !b"), {}) is True
    assert expr.evaluate(expr.parse("a"), {}) is False


def test_three_valued_evaluation() -> None:
    tree = expr.parse("a & (b | c)")
    assert expr.evaluate_partial(tree, {"a": False}) is False
    assert expr.evaluate_partial(tree, {"a": True}) is None
    assert expr.evaluate_partial(tree, {"a": True, "b": True}) is True
    assert expr.evaluate_partial(tree, {"a": True, "b": False, "c": None}) is None
    assert expr.evaluate_partial(tree, {"a": True, "b": False, "c": False}) is False
    assert expr.evaluate_partial(expr.parse("!a"), {"a": None}) is None
    assert expr.evaluate_partial(expr.parse("!a"), {"a": False}) is True


def test_names() -> None:
    assert expr.names(expr.parse("a & !(b | a) | c")) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bool.exp: expression is empty"),
        ("   ", "bool.exp: expression is empty"),
        ("(a & b", 'bool.exp: unbalanced parenthesis: "(" at position 1 is never closed'),
        ("a & (b | (c)", 'bool.exp: unbalanced parenthesis: "(" at position 5 is never closed'),
        ("a & b)", 'bool.exp: unbalanced parenthesis: ")" at position 6 has no matching "("'),
        ("(a)) & (b", 'bool.exp: unbalanced parenthesis: ")" at position 4 has no matching "("'),
        ("a &", 'bool.exp: trailing operator: "&" at position 3 has no right operand'),
        ("a & b |", 'bool.exp: trailing operator: "|" at position 7 has no right operand'),
        ("!", 'bool.exp: trailing operator: "!" at position 1 has no right operand'),
        ("& a", 'bool.exp: "&" at position 1 has no left operand'),
        ("a & | b", 'bool.exp: "&" at position 3 has no right operand (found "|" at position 5)'),
        ("a && b", 'bool.exp: "&" at position 3 has no right operand (found "&" at position 4)'),
        ("(| a)", 'bool.exp: "|" at position 2 has no left operand'),
        ("(a |)", 'bool.exp: "|" at position 4 has no right operand (found ")" at position 5)'),
        ("!)", 'bool.exp: unbalanced parenthesis: ")" at position 2 has no matching "("'),
        ("a & ()", "bool.exp: empty parentheses at position 5"),
        ("a b", "bool.exp: expected \"&\" or \"|\" before 'b' at position 3"),
        ("(a) (b)", 'bool.exp: expected "&" or "|" before "(" at position 5'),
        ("(a b)", "bool.exp: expected \"&\", \"|\" or \")\" but found 'b' at position 4"),
        ("a + b", "bool.exp: unexpected character '+' at position 3; allowed: trigger names, "
                  '"&", "|", "!", "(", ")"'),
        ("~a", "bool.exp: unexpected character '~' at position 1 (use \"!\" for not); allowed: "
               'trigger names, "&", "|", "!", "(", ")"'),
        ("leftZone & lowBattery", "bool.exp: unknown trigger name 'lowBattery' at position 12 "
                                  "(triggers: a, b, batteryLow, c, leftZone, onMonday)"),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        expr.parse(text, KNOWN)
    assert info.value.message == message


def test_not_a_string() -> None:
    with pytest.raises(InvalidRequest, match=r"bool\.exp: must be a string"):
        expr.parse(42)


def test_bounds() -> None:
    with pytest.raises(InvalidRequest, match="longer than 2000 characters"):
        expr.parse("a|" * 1000 + "a")
    deep = "(" * 40 + "a" + ")" * 40
    with pytest.raises(InvalidRequest, match="nested deeper than 32 at position 33"):
        expr.parse(deep)
    assert expr.parse("(" * 32 + "a" + ")" * 32) == Name("a")
    # A long chain of "!" must not recurse once per "!".
    assert expr.parse("!" * 1500 + "a") == Name("a")


# --- properties -----------------------------------------------------------------------

# Tokens, not characters, so the parser sees mostly near-valid expressions.
TEXT = st.lists(st.sampled_from([*"ab&|!() \t", "c", "é", "+", "ab", "&&"]),
                max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(TEXT)
def test_parser_never_raises_anything_else(text: str) -> None:
    try:
        tree = expr.parse(text, {"a", "b", "ab"})
    except InvalidRequest as exc:
        assert exc.message.startswith("bool.exp: ")
        return
    assert expr.names(tree) <= {"a", "b", "ab"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parser_never_raises_on_any_text(text: str) -> None:
    try:
        expr.parse(text)
    except InvalidRequest:
        pass


NAMES = st.sampled_from(["a", "b", "c"])
TREES = st.recursive(
    NAMES.map(Name),
    lambda inner: st.one_of(
        inner.map(Not),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(TREES)
def test_to_text_roundtrip_keeps_meaning(tree: expr.Expr) -> None:
    text = expr.to_text(tree)
    reparsed = expr.parse(text, {"a", "b", "c"})
    for bits in itertools.product([False, True], repeat=3):
        values = dict(zip("abc", bits, strict=True))
        assert expr.evaluate(reparsed, values) == expr.evaluate(tree, values)
        assert expr.evaluate_partial(tree, values) == expr.evaluate(tree, values)


@settings(max_examples=200, deadline=None)
@given(TREES, st.lists(st.sampled_from([True, False, None]), min_size=3, max_size=3))
def test_partial_evaluation_is_sound(tree: expr.Expr, bits: list[bool | None]) -> None:
    values = dict(zip("abc", bits, strict=True))
    known = expr.evaluate_partial(tree, values)
    if known is None:
        return
    # A known answer must hold whatever the unknown names turn out to be.
    unknown = [k for k, v in values.items() if v is None]
    for fill in itertools.product([False, True], repeat=len(unknown)):
        full = {k: bool(v) for k, v in values.items() if v is not None}
        full.update(zip(unknown, fill, strict=True))
        assert expr.evaluate(tree, full) == known
