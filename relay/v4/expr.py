"""``bool.exp``: a boolean expression over a monitor's trigger names.

Grammar (``!`` binds tighter than ``&``, which binds tighter than ``|``)::

    expr    := and ( "|" and )*
    and     := unary ( "&" unary )*
    unary   := "!"* primary
    primary := NAME | "(" expr ")"
    NAME    := [A-Za-z0-9_.-]+

Every error is an ``InvalidRequest`` whose message names the problem and its
1-based character position, e.g. ``bool.exp: unbalanced parenthesis: "(" at
position 1 is never closed``. Parentheses are checked in a first pass so the
message points at the parenthesis itself, not at wherever the parser noticed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeAlias

import attrs

from relay.v4.jsonparse import InvalidRequest

# Real expressions are a handful of names. The bounds keep a hostile body from
# costing more than a trivial amount of work or recursion.
MAX_LENGTH = 2000
MAX_DEPTH = 32

FIELD = "bool.exp"
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_OPERATORS = "&|!()"


def is_name(text: str) -> bool:
    """Can ``text`` be written as a trigger name in an expression?"""
    return bool(text) and all(c in _NAME_CHARS for c in text)


@attrs.frozen
class Token:
    kind: str  # "name", "&", "|", "!", "(", ")"
    text: str
    pos: int  # 1-based character position, as error messages show it


@attrs.frozen
class Name:
    name: str

    def evaluate(self, values: Mapping[str, bool]) -> bool:
        return bool(values.get(self.name, False))


@attrs.frozen
class Not:
    operand: Expr

    def evaluate(self, values: Mapping[str, bool]) -> bool:
        return not self.operand.evaluate(values)


@attrs.frozen
class And:
    operands: tuple[Expr, ...]

    def evaluate(self, values: Mapping[str, bool]) -> bool:
        # all() short-circuits; every operand is evaluated lazily like Python's `and`.
        return all(op.evaluate(values) for op in self.operands)


@attrs.frozen
class Or:
    operands: tuple[Expr, ...]

    def evaluate(self, values: Mapping[str, bool]) -> bool:
        return any(op.evaluate(values) for op in self.operands)


Expr: TypeAlias = Name | Not | And | Or


def _error(message: str) -> InvalidRequest:
    return InvalidRequest(f"{FIELD}: {message}")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in " \t\r\n":
            i += 1
        elif char in _OPERATORS:
            tokens.append(Token(char, char, i + 1))
            i += 1
        elif char in _NAME_CHARS:
            start = i
            while i < len(text) and text[i] in _NAME_CHARS:
                i += 1
            tokens.append(Token("name", text[start:i], start + 1))
        else:
            hint = ""
            if char in "~^":
                hint = ' (use "!" for not)'
            raise _error(f"unexpected character {char!r} at position {i + 1}{hint}; "
                         'allowed: trigger names, "&", "|", "!", "(", ")"')
    return tokens


def _check_parentheses(tokens: list[Token]) -> None:
    open_stack: list[Token] = []
    for tok in tokens:
        if tok.kind == "(":
            open_stack.append(tok)
            if len(open_stack) > MAX_DEPTH:
                raise _error(f"parentheses nested deeper than {MAX_DEPTH} at position {tok.pos}")
        elif tok.kind == ")":
            if not open_stack:
                raise _error(f'unbalanced parenthesis: ")" at position {tok.pos} has no '
                             'matching "("')
            open_stack.pop()
    if open_stack:
        tok = open_stack[-1]
        raise _error(f'unbalanced parenthesis: "(" at position {tok.pos} is never closed')


class _Parser:
    def __init__(self, tokens: list[Token], known: Collection[str] | None) -> None:
        self.tokens = tokens
        self.i = 0
        self.known = known

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def parse(self) -> Expr:
        expr = self.parse_or()
        tok = self.peek()
        if tok is not None:
            # Two operands side by side: a name or "(" where an operator belongs.
            raise _error(f'expected "&" or "|" before {_show(tok)} at position {tok.pos}')
        return expr

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while (tok := self.peek()) is not None and tok.kind == "|":
            self.take()
            operands.append(self.parse_and_after(tok))
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Expr:
        operands = [self.parse_unary()]
        while (tok := self.peek()) is not None and tok.kind == "&":
            self.take()
            operands.append(self.parse_unary_after(tok))
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_and_after(self, op: Token) -> Expr:
        self._need_operand(op)
        return self.parse_and()

    def parse_unary_after(self, op: Token) -> Expr:
        self._need_operand(op)
        return self.parse_unary()

    def _need_operand(self, op: Token) -> None:
        nxt = self.peek()
        if nxt is None:
            raise _error(f'trailing operator: "{op.text}" at position {op.pos} has no right '
                         "operand")
        if nxt.kind in "&|)":
            raise _error(f'"{op.text}" at position {op.pos} has no right operand (found '
                         f"{_show(nxt)} at position {nxt.pos})")

    def parse_unary(self) -> Expr:
        # "!!x" is x: count the bangs instead of recursing once per "!".
        bangs: list[Token] = []
        while (tok := self.peek()) is not None and tok.kind == "!":
            bangs.append(self.take())
        if bangs:
            self._need_operand(bangs[-1])
        operand = self.parse_primary()
        return Not(operand) if len(bangs) % 2 else operand

    def parse_primary(self) -> Expr:
        tok = self.peek()
        if tok is None:
            # Only reachable for an empty (sub)expression; callers check the rest.
            raise _error("expression is empty")
        if tok.kind == "name":
            self.take()
            if self.known is not None and tok.text not in self.known:
                names = ", ".join(sorted(self.known)) or "none"
                raise _error(f"unknown trigger name {tok.text!r} at position {tok.pos} "
                             f"(triggers: {names})")
            return Name(tok.text)
        if tok.kind == "(":
            self.take()
            inner_first = self.peek()
            if inner_first is not None and inner_first.kind == ")":
                raise _error(f"empty parentheses at position {tok.pos}")
            inner = self.parse_or()
            closing = self.peek()
            if closing is None or closing.kind != ")":
                # The balance pass makes this an operand-next-to-operand case.
                where = "end of expression" if closing is None else (
                    f"{_show(closing)} at position {closing.pos}")
                raise _error(f'expected "&", "|" or ")" but found {where}')
            self.take()
            return inner
        # A binary operator or ")" where an operand must start.
        raise _error(f'"{tok.text}" at position {tok.pos} has no left operand')


def _show(tok: Token) -> str:
    return repr(tok.text) if tok.kind == "name" else f'"{tok.text}"'


def parse(text: object, known: Collection[str] | None = None) -> Expr:
    """Parse ``bool.exp``; names must be in ``known`` when it is given.

    Raises only ``InvalidRequest``.
    """
    if not isinstance(text, str):
        raise _error("must be a string such as \"a & (b | !c)\"")
    if len(text) > MAX_LENGTH:
        raise _error(f"longer than {MAX_LENGTH} characters")
    tokens = tokenize(text)
    if not tokens:
        raise _error("expression is empty")
    _check_parentheses(tokens)
    return _Parser(tokens, known).parse()


def names(expr: Expr) -> set[str]:
    """Every trigger name the expression mentions."""
    out: set[str] = set()
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Name):
            out.add(node.name)
        elif isinstance(node, Not):
            stack.append(node.operand)
        else:
            stack.extend(node.operands)
    return out


def to_text(expr: Expr) -> str:
    """Canonical text, fully parenthesised where precedence needs it."""
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Not):
        inner = to_text(expr.operand)
        return f"!{inner}" if isinstance(expr.operand, Name) else f"!({inner})"
    if isinstance(expr, And):
        return " & ".join(
            f"({to_text(op)})" if isinstance(op, Or) else to_text(op) for op in expr.operands
        )
    return " | ".join(to_text(op) for op in expr.operands)


def evaluate(expr: Expr, values: Mapping[str, bool]) -> bool:
    """Value of the expression; a name missing from ``values`` is false."""
    return expr.evaluate(values)


def evaluate_partial(expr: Expr, values: Mapping[str, bool | None]) -> bool | None:
    """Three-valued (Kleene) value: None (unknown) for a name that is None or missing.

    ``false & unknown`` is false and ``true | unknown`` is true, so an answer is
    known whenever the known triggers decide it.
    """
    if isinstance(expr, Name):
        return values.get(expr.name)
    if isinstance(expr, Not):
        inner = evaluate_partial(expr.operand, values)
        return None if inner is None else not inner
    results = [evaluate_partial(op, values) for op in expr.operands]
    decisive = isinstance(expr, Or)  # the value that settles the answer alone
    if decisive in results:
        return decisive
    if None in results:
        return None
    return not decisive
