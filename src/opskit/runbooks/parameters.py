"""The rules a change's parameter values follow beyond their JSON Schema types.

A parameter value ends up in commands sent to devices, so:

- every string (values at any depth, and mapping keys) refuses control
  characters: NUL, CR, LF, TAB, DEL, the C1 range, Unicode line/paragraph
  separators and bidirectional overrides. A runbook lets one parameter carry
  line breaks with ``x-opskit-multiline: true`` on its schema (inherited by
  the items of an array or object); LF is then allowed, and every other
  character is still checked line by line;
- numbers are finite: NaN and infinities are refused wherever they appear;
- ``format`` is enforced (`FORMAT_CHECKER`): the JSON Schema formats
  (ipv4, ipv6, hostname, date-time, uri, email...) and opskit's own
  ``ipv4-network``, ``ipv6-network``, ``ip-network``, ``ipv4-interface``,
  ``ipv6-interface`` and ``ip-interface``; a runbook naming any other format
  is refused when it is loaded (`unknown_formats`).

Errors name the parameter and describe the value (`describe_value`), never
echo a long one.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match

from opskit.errors import RunbookError

MULTILINE_KEY = "x-opskit-multiline"

FORMAT_CHECKER = FormatChecker()

_NAMED = {
    "\x00": "NUL",
    "\t": "TAB",
    "\n": "a line feed (LF)",
    "\r": "a carriage return (CR)",
    "\x7f": "DEL",
    "\x85": "a next-line (NEL)",
    "\u2028": "a line separator (U+2028)",
    "\u2029": "a paragraph separator (U+2029)",
}
# Bidirectional embeddings, overrides and isolates: they make a line read
# differently from what it is (format characters, category Cf).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")
_MAX_SHOWN = 40


def _ip_checker(kind: Callable[[str], Any]) -> Callable[[object], bool]:
    def check(instance: object) -> bool:
        if not isinstance(instance, str):
            return True
        kind(instance)  # ValueError: not this format
        return True

    return check


def _register_ip_formats() -> None:
    kinds: dict[str, Callable[[str], Any]] = {
        "ipv4-network": lambda s: ipaddress.IPv4Network(s, strict=True),
        "ipv6-network": lambda s: ipaddress.IPv6Network(s, strict=True),
        "ip-network": lambda s: ipaddress.ip_network(s, strict=True),
        "ipv4-interface": lambda s: _with_prefix(s, ipaddress.IPv4Interface),
        "ipv6-interface": lambda s: _with_prefix(s, ipaddress.IPv6Interface),
        "ip-interface": lambda s: _with_prefix(s, ipaddress.ip_interface),
    }
    for name, kind in kinds.items():
        FORMAT_CHECKER.checks(name, raises=ValueError)(_ip_checker(kind))


def _with_prefix(text: str, kind: Callable[[str], Any]) -> Any:
    # An interface address names its prefix: "10.0.0.1" alone is an address.
    if "/" not in text:
        raise ValueError(f"{text!r} has no prefix length")
    return kind(text)


_register_ip_formats()


def known_formats() -> frozenset[str]:
    return frozenset(FORMAT_CHECKER.checkers)


# Keywords whose value is data, and keywords whose value maps names to schemas.
_DATA_KEYWORDS = frozenset({"default", "enum", "const", "examples"})
_NAME_KEYWORDS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def unknown_formats(
    schema: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path, format) for every ``format`` in a schema that is not enforced."""
    if isinstance(schema, list):
        for index, value in enumerate(schema):
            yield from unknown_formats(value, (*path, index))
    if not isinstance(schema, Mapping):
        return
    fmt = schema.get("format")
    if isinstance(fmt, str) and fmt not in FORMAT_CHECKER.checkers:
        yield (*path, "format"), fmt
    for key, value in schema.items():
        if key in _NAME_KEYWORDS and isinstance(value, Mapping):
            for name, sub in value.items():
                yield from unknown_formats(sub, (*path, key, name))
        elif key not in _DATA_KEYWORDS:
            yield from unknown_formats(value, (*path, key))


def schema_problems(parameters: Mapping[str, Any]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(path in the schema, message): formats opskit cannot enforce, and
    defaults that break the rules a given value follows (a change created
    without the parameter gets the default)."""
    for loc, fmt in unknown_formats(parameters):
        known = ", ".join(sorted(known_formats()))
        yield loc, f"format {fmt!r} is not one opskit enforces (known: {known})"
    props = parameters.get("properties", {}) or {}
    for name, spec in props.items():
        if not isinstance(spec, Mapping) or spec.get("secret") or "default" not in spec:
            continue
        loc: tuple[str | int, ...] = ("properties", name, "default")
        try:
            check_value(name, spec["default"], spec, "the default")
        except RunbookError as exc:
            yield loc, str(exc).removeprefix(f"[params.{name}]: ")
            continue
        error = best_match(
            Draft202012Validator(spec, format_checker=FORMAT_CHECKER).iter_errors(spec["default"])
        )
        if error is not None:
            message = short_schema_message(error.message, error.instance)
            yield loc, f"the default of {name!r}: {message}"


def describe_value(value: Any) -> str:
    """A short description of a value for an error message (never all of a long one)."""
    if isinstance(value, str):
        if len(value) <= _MAX_SHOWN and not _first_forbidden(value, multiline=False):
            return repr(value)
        return f"a string of {len(value)} characters"
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _MAX_SHOWN else f"a number of {len(text)} digits"
    if isinstance(value, Mapping):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)} item(s)"
    return f"a {type(value).__name__}"


def _char_name(ch: str) -> str:
    return _NAMED.get(ch) or f"the control character U+{ord(ch):04X}"


def _first_forbidden(text: str, *, multiline: bool) -> tuple[int, str] | None:
    for index, ch in enumerate(text):
        if ch == "\n" and multiline:
            continue
        if ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return index, ch
    return None


def _child_schema(schema: Mapping[str, Any], key: str | int) -> Mapping[str, Any]:
    if isinstance(key, int):
        items = schema.get("items")
        return items if isinstance(items, Mapping) else {}
    props = schema.get("properties")
    if isinstance(props, Mapping) and isinstance(props.get(key), Mapping):
        return props[key]  # type: ignore[no-any-return]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else {}


def check_value(name: str, value: Any, schema: Mapping[str, Any], ref: str) -> None:
    """Refuses control characters and non-finite numbers in one parameter."""
    bad_name = _first_forbidden(name, multiline=False)
    if bad_name is not None or len(name) > 100:
        what = f"contains {_char_name(bad_name[1])}" if bad_name else "is over 100 characters"
        # The name itself cannot be shown safely: the field is the parameters as a whole.
        raise RunbookError(
            f"{ref}: a parameter name ({describe_value(name)}) {what}", field="params"
        )
    problem = _problem(value, schema, bool(schema.get(MULTILINE_KEY, False)), ())
    if problem is not None:
        where, message = problem
        full = name + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
        raise RunbookError(f"{ref}: parameter '{full}': {message}", field=f"params.{name}")


def _problem(
    value: Any, schema: Mapping[str, Any], multiline: bool, where: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return where, f"{value!r} is not a finite number (NaN and infinities are refused)"
    if isinstance(value, str):
        found = _first_forbidden(value, multiline=multiline)
        if found is None:
            return None
        index, ch = found
        hint = (
            "; a parameter is one line unless the runbook allows line breaks "
            f"({MULTILINE_KEY}: true)"
            if ch in "\r\n\x85\u2028\u2029" and not multiline
            else ""
        )
        line = value.count("\n", 0, index) + 1
        at = f"line {line}, " if multiline and line > 1 else ""
        return where, f"contains {_char_name(ch)} at {at}character {index + 1}{hint}"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and _first_forbidden(key, multiline=False):
                index, ch = _first_forbidden(key, multiline=False)  # type: ignore[misc]
                return where, f"a key contains {_char_name(ch)} at character {index + 1}"
            child = _child_schema(schema, str(key))
            inherited = bool(child.get(MULTILINE_KEY, multiline))
            found = _problem(item, child, inherited, (*where, str(key)))
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            child = _child_schema(schema, index)
            inherited = bool(child.get(MULTILINE_KEY, multiline))
            found = _problem(item, child, inherited, (*where, index))
            if found is not None:
                return found
    return None


class MultilineText(str):
    """A parameter value a runbook allows to span lines (``x-opskit-multiline``):
    the template renderer inserts it as is; any other inserted value with a
    line break is refused."""

    __slots__ = ()


def mark_multiline(schema: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The values with every string a runbook allows to span lines wrapped in
    `MultilineText` (for rendering only: never stored)."""
    props = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
    props = props if isinstance(props, Mapping) else {}
    out = dict(values)
    for name, value in values.items():
        spec = props.get(name)
        if isinstance(spec, Mapping):
            out[name] = _mark(value, spec, bool(spec.get(MULTILINE_KEY, False)))
    return out


def _mark(value: Any, schema: Mapping[str, Any], multiline: bool) -> Any:
    if isinstance(value, str):
        return MultilineText(value) if multiline else value
    if isinstance(value, Mapping):
        result = {}
        for key, item in value.items():
            child = _child_schema(schema, str(key))
            result[key] = _mark(item, child, bool(child.get(MULTILINE_KEY, multiline)))
        return result
    if isinstance(value, list):
        marked = []
        for index, item in enumerate(value):
            child = _child_schema(schema, index)
            marked.append(_mark(item, child, bool(child.get(MULTILINE_KEY, multiline))))
        return marked
    return value


def short_schema_message(error_message: str, instance: Any) -> str:
    """A jsonschema message with the value it starts with replaced by a short
    description ("[...] is not of type 'object'" for a whole document)."""
    shown = repr(instance)
    if error_message.startswith(shown) and describe_value(instance) != shown:
        return describe_value(instance) + error_message[len(shown) :]
    if len(error_message) > 200:
        return error_message[:200] + "..."
    return error_message
