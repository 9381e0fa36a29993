"""Could two features claim the same line? Decided on the patterns' fixed prefixes.

A feature's ``match`` patterns are regular expressions matched at the start
of a top-level line. Whether two arbitrary regular expressions can match a
common line is not something to guess at run time, so the rule is made
decidable and checked when the rules are loaded: each pattern's top-level
alternatives are reduced to the literal text they must start with (``^ntp
server`` -> ``ntp server``; ``^logging (host|trap)`` -> ``logging ``;
``^(ntp|clock)`` -> the empty prefix, which every line starts with). Two
patterns are disjoint when neither prefix begins the other. This is
conservative: ``^interface `` and ``^interface Vlan`` are refused together
even if the first were written to exclude VLAN interfaces; split the
patterns by their fixed text instead (``^interface Ethernet``,
``^interface Vlan``).

Example::

    >>> overlapping(["^ntp "], ["^snmp-server "]) is None
    True
    >>> overlapping(["^ntp "], ["^ntp server"])
    "'^ntp ' and '^ntp server' both match lines starting 'ntp server'"
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

_CLASS_ESCAPES = frozenset("dDwWsSbBAZzG0123456789")
_META = frozenset(".[](){}|*+?$^")


def alternatives(pattern: str) -> Iterator[str]:
    """The top-level alternatives of ``pattern`` (``a|b`` outside groups and classes)."""
    depth = 0
    in_class = False
    start = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            yield pattern[start:i]
            start = i + 1
        i += 1
    yield pattern[start:]


def literal_prefix(alternative: str) -> str:
    """The text every line this alternative matches starts with."""
    text = alternative[1:] if alternative.startswith("^") else alternative
    text = text[2:] if text.startswith("\\A") else text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] in _CLASS_ESCAPES:
                break
            literal, i = text[i + 1], i + 2
        elif char in _META:
            break
        else:
            literal, i = char, i + 1
        if i < len(text) and text[i] in "*?{":
            break  # the character may be absent (or repeated in any number)
        out.append(literal)
        if i < len(text) and text[i] == "+":
            break
    return "".join(out)


def prefixes(patterns: Sequence[str]) -> list[tuple[str, str]]:
    """(pattern, literal prefix) for every top-level alternative of every pattern."""
    return [(p, literal_prefix(alt)) for p in patterns for alt in alternatives(p)]


def overlapping(first: Sequence[str], second: Sequence[str]) -> str | None:
    """None when no line can match a pattern of each; else what they share."""
    for pattern_a, prefix_a in prefixes(first):
        for pattern_b, prefix_b in prefixes(second):
            if prefix_a.startswith(prefix_b) or prefix_b.startswith(prefix_a):
                longer = max(prefix_a, prefix_b, key=len)
                shared = f"lines starting {longer!r}" if longer else "any line"
                return f"{pattern_a!r} and {pattern_b!r} both match {shared}"
    return None
