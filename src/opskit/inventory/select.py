"""The selection language used by every `--select`.

    expr   := or
    or     := and ("or" and)*
    and    := unary ("and" unary)*
    unary  := "not" unary | "(" or ")" | term
    term   := KEY ":" PATTERN | "attr." PATH "=" VALUE | PATTERN (a name glob)

Keys: name, group, platform, type, site, lifecycle, criticality, owner, host,
department (each value a shell-style glob); `attr.model=C9300` compares an
attribute (dotted paths reach into nested mappings) for equality. Values with
spaces or parentheses are quoted: `site:"dc 1"`. Keywords are
case-insensitive. A syntax error names the position (1-based column).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from opskit.errors import InventoryError
from opskit.inventory.model import CI, Lifecycle

Predicate = Callable[[CI], bool]

KEYS = (
    "name",
    "group",
    "platform",
    "type",
    "site",
    "lifecycle",
    "criticality",
    "owner",
    "department",
    "host",
)
KEYWORDS = ("and", "or", "not")
GLOB_CHARS = frozenset("*?[")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\() | (?P<rparen>\)) |
        (?P<word>(?:"[^"]*"|'[^']*'|[^\s()"'])+)
    )""",
    re.VERBOSE,
)


class SelectionError(InventoryError):
    """A malformed selection expression."""


@dataclass(frozen=True)
class Token:
    """One token of a selection expression, with its offset (for messages)."""

    kind: str  # "(", ")", "and", "or", "not", "term", "end"
    text: str
    position: int  # 0-based offset in the expression


@dataclass(frozen=True)
class Term:
    """One `key:pattern` term of a selection (`attr:a.b=value` for an
    attribute); `matches(ci)` tests a CI against it.
    """

    key: str  # one of KEYS, or "attr"
    pattern: str
    attribute: tuple[str, ...] = ()

    def matches(self, ci: CI) -> bool:
        if self.key == "attr":
            return _attribute_equals(ci.attributes, self.attribute, self.pattern)
        if self.key == "group":
            return any(_glob(group, self.pattern) for group in ci.groups)
        value = getattr(ci, self.key)
        if value is None:
            return False
        return _glob(str(value), self.pattern)

    @property
    def is_glob(self) -> bool:
        return bool(GLOB_CHARS & set(self.pattern))

    def predicate(self) -> Predicate:
        """`matches`, specialised for the common exact cases (selections run
        over every CI of large inventories)."""
        pattern = self.pattern
        if self.is_glob or self.key == "attr":
            return self.matches
        if self.key == "group":
            return lambda ci: pattern in ci.groups
        key = self.key
        return lambda ci: getattr(ci, key) == pattern  # StrEnum fields equal their text


def _glob(value: str, pattern: str) -> bool:
    if GLOB_CHARS & set(pattern):
        return fnmatch.fnmatchcase(value, pattern)
    return value == pattern


def _attribute_equals(attributes: Any, path: tuple[str, ...], expected: str) -> bool:
    value = attributes
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    if isinstance(value, str):
        return value == expected
    if isinstance(value, bool):
        return expected.lower() == str(value).lower()
    if value is None:
        return expected.lower() in ("null", "none", "~")
    return str(value) == expected


def tokenize(expression: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    length = len(expression)
    while position < length:
        match = _TOKEN.match(expression, position)
        if match is None or match.end() == position:
            rest = expression[position:]
            if not rest.strip():
                break
            column = position + len(rest) - len(rest.lstrip()) + 1
            raise SelectionError(
                f"selection {expression!r}: unexpected character at column {column}"
                " (unbalanced quote?)"
            )
        start = match.start(match.lastgroup) if match.lastgroup else position
        if match.lastgroup == "lparen":
            tokens.append(Token("(", "(", start))
        elif match.lastgroup == "rparen":
            tokens.append(Token(")", ")", start))
        elif match.lastgroup == "word":
            text = match["word"]
            kind = text.lower() if text.lower() in KEYWORDS else "term"
            tokens.append(Token(kind, text, start))
        position = match.end()
    tokens.append(Token("end", "", length))
    return tokens


class Parser:
    """Recursive descent over the tokens; builds a predicate and records terms."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.tokens = tokenize(expression)
        self.index = 0
        self.terms: list[Term] = []

    def fail(self, message: str, token: Token) -> SelectionError:
        return SelectionError(
            f"selection {self.expression!r}: {message} at column {token.position + 1}"
        )

    def peek(self) -> Token:
        return self.tokens[self.index]

    def take(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> Predicate:
        if self.peek().kind == "end":
            raise self.fail("empty selection", self.peek())
        predicate = self.parse_or()
        token = self.peek()
        if token.kind != "end":
            expected = "'and', 'or' or the end" if token.kind != ")" else "no ')' here"
            raise self.fail(f"unexpected {token.text!r} (expected {expected})", token)
        return predicate

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.peek().kind == "or":
            self.take()
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda ci: first(ci) or second(ci)
        return lambda ci: any(part(ci) for part in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while self.peek().kind == "and":
            self.take()
            parts.append(self.parse_unary())
        if len(parts) == 1:
            return parts[0]
        if len(parts) == 2:
            first, second = parts
            return lambda ci: first(ci) and second(ci)
        return lambda ci: all(part(ci) for part in parts)

    def parse_unary(self) -> Predicate:
        token = self.take()
        if token.kind == "not":
            inner = self.parse_unary()
            return lambda ci: not inner(ci)
        if token.kind == "(":
            inner = self.parse_or()
            closing = self.take()
            if closing.kind != ")":
                raise self.fail("missing ')'", closing)
            return inner
        if token.kind == "term":
            term = self.parse_term(token)
            self.terms.append(term)
            return term.predicate()
        if token.kind == "end":
            raise self.fail("expression ends too early", token)
        raise self.fail(f"unexpected {token.text!r}", token)

    def parse_term(self, token: Token) -> Term:
        text = token.text
        if text.startswith("attr."):
            path, sep, value = text[len("attr.") :].partition("=")
            if not sep or not path:
                raise self.fail(f"{text!r}: attribute terms are attr.NAME=VALUE", token)
            return Term("attr", _unquote(value), tuple(path.split(".")))
        key, sep, pattern = text.partition(":")
        if not sep:
            return Term("name", _unquote(text))
        if key not in KEYS:
            raise self.fail(f"unknown key {key!r} (keys: {', '.join(KEYS)}, attr.NAME=)", token)
        if not pattern:
            raise self.fail(f"{key}: needs a value", token)
        return Term(key, _unquote(pattern))


def _unquote(text: str) -> str:
    return re.sub(r"\"([^\"]*)\"|'([^']*)'", lambda m: m[1] if m[1] is not None else m[2], text)


@dataclass(frozen=True)
class Selection:
    """A compiled selection expression."""

    expression: str
    predicate: Predicate
    terms: tuple[Term, ...]
    #: The CI names, when the expression only names CIs one by one
    #: (``name:a or b or ...``, no pattern): a lookup, not a match per CI.
    names: frozenset[str] | None = None

    @property
    def names_decommissioned(self) -> bool:
        """True when the expression asks for decommissioned CIs by name."""
        return any(
            t.key == "lifecycle" and t.pattern == Lifecycle.DECOMMISSIONED.value for t in self.terms
        )


def compile_selection(expression: str) -> Selection:
    parser = Parser(expression)
    predicate = parser.parse()
    names = None
    if all(t.kind not in ("and", "not") for t in parser.tokens) and all(
        t.key == "name" and not t.is_glob for t in parser.terms
    ):
        names = frozenset(t.pattern for t in parser.terms)  # a union of names
    return Selection(expression, predicate, tuple(parser.terms), names)


def select(
    cis: Iterable[CI],
    expression: str | Selection | None,
    *,
    include_decommissioned: bool = False,
) -> list[CI]:
    """The CIs matching `expression` (all when None or blank), sorted by name.
    Decommissioned CIs only when asked for (see the module docs)."""
    if expression is None or (isinstance(expression, str) and not expression.strip()):
        chosen = [ci for ci in cis if include_decommissioned or not ci.decommissioned]
    else:
        selection = compile_selection(expression) if isinstance(expression, str) else expression
        keep_decommissioned = include_decommissioned or selection.names_decommissioned
        predicate = selection.predicate
        chosen = [
            ci for ci in cis if (keep_decommissioned or not ci.decommissioned) and predicate(ci)
        ]
    chosen.sort(key=lambda ci: ci.name)
    return chosen
