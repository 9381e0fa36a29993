"""NaN and infinities: YAML reads them (`.nan`, `-.Inf`, `1e999`) but a CMDB
cannot compare or store them as JSON, so inventories refuse them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

# Each pattern starts with a literal character, which the regex engine scans
# for quickly; one pattern with alternatives would cost a third of a large
# inventory's load. Only a text that matches is searched value by value.
_MAYBE_NON_FINITE = (
    re.compile(r"\.[nNiI][aAnN][nNfF]"),  # .nan / .inf in any case
    re.compile(r"e[+\d]\d\d"),  # an exponent that may overflow (e999, e+308)
    re.compile(r"E[+\d]\d\d"),
)


def may_hold_non_finite(text: str) -> bool:
    """False when no value in the YAML `text` can be NaN or infinite."""
    return any(pattern.search(text) for pattern in _MAYBE_NON_FINITE)


def first_non_finite(
    data: Any, loc: tuple[str | int, ...] = ()
) -> tuple[tuple[str | int, ...], float] | None:
    """The location (keys and indexes) and value of the first NaN or infinity
    inside `data`, or None."""
    if isinstance(data, float) and not math.isfinite(data):
        return loc, data
    if isinstance(data, Mapping):
        items: Any = data.items()
    elif isinstance(data, list | tuple):
        items = enumerate(data)
    else:
        return None
    for key, value in items:
        found = first_non_finite(value, (*loc, key))
        if found is not None:
            return found
    return None
