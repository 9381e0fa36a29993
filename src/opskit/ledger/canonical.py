"""The canonical JSON encoding that the ledger hashes (RFC 8785 / JCS style).

It is opskit's one canonical JSON form (`opskit.digests.JSON_OPTIONS`, the
form of the inventory, runbook and binding digests too), for the values the
ledger admits. `encode_canonical` (the standard library's C encoder) and
`encode_canonical_bytes` (orjson, the append path) write the same bytes for
every admitted value; tests compare them, and `opskit.digests.canonical_json`,
on random values.

The ledger accepts only the JSON value types whose JCS encoding Python's
`json.dumps(value, **JSON_OPTIONS)` (sorted keys, no spaces, text not
escaped) produces byte for byte: str, int (within ±(2**53 - 1), the I-JSON range),
bool, None, list and dict with str keys. Floats are refused rather than
canonicalised: the ledger records identifiers, counts and texts, and a
float's shortest round-trip form is where JCS implementations disagree.
Keys containing characters outside the Basic Multilingual Plane are refused
too, because JCS sorts keys by UTF-16 code units and Python by code points;
the two orders agree on every other key. Strings must not contain U+0000,
which PostgreSQL text cannot hold.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

from opskit.digests import JSON_OPTIONS
from opskit.errors import LedgerError

MAX_SAFE_INTEGER = 2**53 - 1


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _make_encoder() -> Callable[[Any], str]:
    """`json.dumps(value, **opskit.digests.JSON_OPTIONS)` (sorted keys, `,` and
    `:` without spaces, text not escaped: the one canonical form, also that
    of `opskit.digests.canonical_json`) refusing what JSON has no type for,
    with the C encoder built once: `JSONEncoder.encode` builds a new one (and
    a circular-reference memo) on every call, a fifth of the cost of a small
    record. Callers check the value first (`acceptable`), which rules out cycles."""
    item_separator, key_separator = JSON_OPTIONS["separators"]
    make = json.encoder.c_make_encoder
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.JSONEncoder(allow_nan=False, **JSON_OPTIONS).encode
    assert JSON_OPTIONS["sort_keys"] and not JSON_OPTIONS["ensure_ascii"]
    chunks = make(
        None,  # no circular-reference memo
        _refuse,
        json.encoder.encode_basestring,  # not ensure_ascii
        None,  # no indent
        key_separator,
        item_separator,
        True,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )
    join = "".join

    def encode(value: Any) -> str:
        return join(chunks(value, 0))

    return encode


encode_canonical = _make_encoder()
_encode = encode_canonical

# The hot path encodes with orjson, which writes the same bytes as
# `encode_canonical` for every value `acceptable` admits (sorted keys compare
# by code point in both, the same escapes, no spaces; tests compare the two
# on random values) at a quarter of the cost, and refuses integers beyond
# 2**53, non-string keys, lone surrogates and (passed through to `_refuse`)
# subclasses, dates and dataclasses by itself.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_STRICT_INTEGER
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)


def encode_canonical_bytes(value: Any) -> bytes:
    """The UTF-8 of `encode_canonical(value)`, for a value `acceptable` admits.

    Raises TypeError (orjson.JSONEncodeError) for what it cannot encode,
    such as a string with a lone surrogate.
    """
    return orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS)


def check_value(value: Any, where: str = "payload") -> None:
    """Raises LedgerError when `value` holds a type the canonical form excludes."""
    # The fast walk only answers yes or no; the slow one finds the culprit's path.
    if not acceptable(value) or "\\u0000" in _encode(value):
        _explain(value, where)


_SCALARS = frozenset({str, bool, type(None)})


def acceptable(value: Any) -> bool:
    """True when `value` has only the allowed types, keys and integer range.

    U+0000 is not looked for here: callers search the encoded text for
    `\\u0000` instead (one C-speed scan), then `explain` names the place.
    """
    kind = type(value)
    if kind is dict:
        try:
            keys = "".join(value)  # TypeError unless every key is a string
        except TypeError:
            return False
        if not keys.isascii() and max(keys) > "\uffff":
            return False
        items = value.values()
    elif kind is list:
        items = value
    elif kind in _SCALARS:
        return True
    else:
        return kind is int and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    for item in items:
        kind = type(item)
        if kind in _SCALARS:
            continue
        if kind is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            return False
        if not acceptable(item):
            return False
    return True


_LEAVES = frozenset({str, int, bool, type(None)})


def plain_types(value: dict[str, Any] | list[Any]) -> bool:
    """True when everything inside `value` is exactly a str, int, bool,
    None, dict or list: the half of `acceptable` that orjson cannot do.

    The append path leaves the rest to its encoding: `encode_canonical_bytes`
    refuses integers beyond ±(2**53-1) (exactly that bound), non-string keys
    and lone surrogates, and its output shows U+0000 (an escape) and keys
    outside the BMP (4-byte UTF-8, see `NON_BMP_UTF8`). What orjson would
    write but the ledger refuses, floats, tuples, Enums, UUIDs, is found here.
    Half the cost of `acceptable`: no key join, no integer comparisons.
    """
    for item in value.values() if type(value) is dict else value:
        kind = type(item)
        if kind in _LEAVES:
            continue
        if kind is dict:  # one level inline: most payloads nest a dict or two
            for inner in item.values():
                inner_kind = type(inner)
                if inner_kind in _LEAVES or (
                    (inner_kind is dict or inner_kind is list) and plain_types(inner)
                ):
                    continue
                return False
            continue
        if kind is list and plain_types(item):
            continue
        return False
    return True


# The lead byte of a 4-byte UTF-8 sequence: a character beyond U+FFFF.
NON_BMP_UTF8 = re.compile(rb"[\xf0-\xf4]")


def explain(value: Any, where: str) -> None:
    """Raises LedgerError naming the first unacceptable part of `value`, if any."""
    _explain(value, where)


def _explain(value: Any, where: str) -> None:
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise LedgerError(f"{where}: text contains U+0000, which the ledger cannot store")
        return
    if value is None or kind is bool:
        return
    if kind is int:
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            return
        raise LedgerError(f"{where}: integer {value} is outside ±(2**53-1)")
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise LedgerError(f"{where}: key {key!r} is not a string")
            if not key.isascii() and max(key) > "\uffff":
                raise LedgerError(f"{where}: key {key!r} has a character outside the BMP")
            if "\x00" in key:
                raise LedgerError(f"{where}: key {key!r} contains U+0000")
            _explain(item, f"{where}.{key}")
        return
    if kind is list:
        for index, item in enumerate(value):
            _explain(item, f"{where}[{index}]")
        return
    if kind is float:
        raise LedgerError(f"{where}: floats are not allowed in the ledger (use a string or int)")
    raise LedgerError(f"{where}: {kind.__name__} is not a JSON value the ledger accepts")


def canonical_json(value: Any) -> str:
    """The canonical text of `value` (after `check_value`)."""
    text = _encode(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise LedgerError("payload: contains a lone surrogate, not valid Unicode") from None
    return text


GENESIS_HASH = "0" * 64


def record_digest(canonical: str) -> str:
    """SHA-256 of the record's canonical UTF-8 text, lowercase hex."""
    return hashlib.sha256(canonical.encode()).hexdigest()


def chain_hash(prev_hash: str, digest: str) -> str:
    """SHA-256 over the ASCII of the previous hash followed by the record digest."""
    return hashlib.sha256((prev_hash + digest).encode()).hexdigest()
