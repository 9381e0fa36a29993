"""The one converter of Python values to the ledger's JSON subset.

The ledger stores only strings, integers within ±(2**53 - 1), booleans, null,
lists and string-keyed objects (docs/ledger-format.md, "Values"). Every
writer of the change engine and the executor turns its values into that
subset here, so that one payload is stored the same whichever path records
it:

- a float that is a whole number within ±(2**53 - 1) becomes that integer
  (`3.0` -> `3`); any other float becomes its shortest round-trip text,
  Python's `repr` (`0.1` -> `"0.1"`, `1e+20` -> `"1e+20"`, `nan` ->
  `"nan"`): `float(text)` gives the very float back;
- an enum becomes its value's text, a datetime its ISO 8601 text, a tuple a
  list, a set a list sorted by text, a mapping a dict with text keys,
  anything else its text.

`record_ready` also redacts every string (keys too) in the same pass.

Example:
    >>> to_ledger_json({"ratio": 0.25, "count": 2.0, "when": datetime(2026, 1, 2)})
    {'ratio': '0.25', 'count': 2, 'when': '2026-01-02T00:00:00'}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from opskit.secrets import REDACTOR

# The largest integer the ledger stores (and a float holds exactly).
MAX_SAFE_INTEGER = 2**53 - 1


def float_text(value: float) -> int | str:
    """The ledger's one float rule (see the module docstring)."""
    if value.is_integer() and -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return int(value)
    return repr(value)


def _unchanged(text: str) -> str:
    return text


def to_ledger_json(value: Any, redact: Callable[[str], str] = _unchanged) -> Any:
    """`value` in the ledger's JSON subset, every string passed through
    `redact` (none by default)."""
    return _ready(value, redact)


def record_ready(value: Any) -> Any:
    """`value` as the ledger takes it, in one pass: every string redacted
    (mapping keys too), and only the ledger's JSON subset left. What this
    returns needs no further redaction or conversion on its way to the
    ledger (`Journal.record(..., prepared=True)`)."""
    return _ready(value, REDACTOR.redact)


def _ready(value: Any, redact: Callable[[str], str]) -> Any:
    # Exact types first: most values are plain str, dict, list, int.
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind is dict:
        return {
            (redact(k) if type(k) is str else _ready_key(k, redact)): _ready(v, redact)
            for k, v in value.items()
        }
    if kind is list:
        return [_ready(v, redact) for v in value]
    if value is None or kind is bool or kind is int:
        return value
    if isinstance(value, Enum):
        return redact(str(value.value))
    if isinstance(value, str):
        return redact(str(value))
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_ready_key(k, redact): _ready(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ready(v, redact) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_ready(v, redact) for v in value), key=str)
    return redact(str(value))


def _ready_key(key: Any, redact: Callable[[str], str]) -> str:
    return redact(str(key.value) if isinstance(key, Enum) else str(key))
