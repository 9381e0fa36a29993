"""Property tests (Hypothesis) for runbook parameter values: whatever a user
passes (through `--param`'s JSON-or-text parsing or a params document), the
result is the validated values or one `OpskitError` line naming the
parameter, never another exception, never the value itself when it is long."""

from __future__ import annotations

import json
import math
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import OpskitError
from opskit.inventory.model import CI, CIType
from opskit.runbooks import Runbook
from opskit.runbooks.rendercheck import render_check
from tests.runbooks.demo_support import HEADER, load_book

BOOK = (
    HEADER
    + """\
  properties:
    text: {type: string, maxLength: 200}
    banner: {type: string, x-opskit-multiline: true}
    ratio: {type: number}
    count: {type: integer}
    address: {type: string, format: ipv4}
    network: {type: string, format: ipv4-network}
    host: {type: string, format: hostname}
    items: {type: array, items: {type: string}}
apply:
  - name: say it
    connector: netmiko
    action: config
    params:
      lines:
        - "description {{ params.text | default('') }}"
        - "banner {{ params.banner | default('') }}"
        - "! {{ params.ratio | default(0) }} {{ params.address | default('') }}"
"""
)

NAMES = ["text", "banner", "ratio", "count", "address", "network", "host", "items"]
PROFILE = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> Runbook:
    return load_book(tmp_path_factory.mktemp("params"), BOOK)


def parse_param(text: str) -> Any:
    """What `opskit change create --param k=TEXT` makes of TEXT (JSON, else text)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def forbidden(text: str, multiline: bool) -> bool:
    return any(
        (ch != "\n" or not multiline)
        and (unicodedata.category(ch) in ("Cc", "Zl", "Zp") or 0x202A <= ord(ch) <= 0x202E)
        for ch in text
    )


def walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *walk_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in walk_strings(v)]
    return []


def assert_one_line_naming(exc: OpskitError, name: str, value: Any) -> None:
    message = str(exc)
    assert "\n" not in message and "\r" not in message
    assert f"parameter '{name}" in message or "a parameter name" in message, message
    for text in walk_strings(value):
        if len(text) > 40:
            assert text not in message, "a long value is echoed"


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=60),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@PROFILE
@given(name=st.sampled_from(NAMES), value=values)
def test_any_value_is_accepted_or_refused_in_one_line(book: Runbook, name: str, value: Any) -> None:
    try:
        result = book.validate_params({name: value})
    except OpskitError as exc:
        assert_one_line_naming(exc, name, value)
        return
    accepted = result[name]
    # What is accepted holds no control character and no non-finite number.
    for text in walk_strings(accepted):
        assert not forbidden(text, multiline=name == "banner")
    if isinstance(accepted, float):
        assert math.isfinite(accepted)


@PROFILE
@given(name=st.sampled_from(NAMES), text=st.text(max_size=80))
def test_cli_text_is_accepted_or_refused_in_one_line(book: Runbook, name: str, text: str) -> None:
    value = parse_param(text)
    try:
        result = book.validate_params({name: value})
    except OpskitError as exc:
        assert_one_line_naming(exc, name, value)
        return
    if isinstance(result[name], str):
        assert not forbidden(result[name], multiline=name == "banner")


@PROFILE
@given(
    before=st.text(max_size=10),
    control=st.characters(categories=["Cc", "Zl", "Zp"]),
    after=st.text(max_size=10),
)
def test_a_control_character_in_a_string_is_always_refused(
    book: Runbook, before: str, control: str, after: str
) -> None:
    with pytest.raises(OpskitError) as info:
        book.validate_params({"text": before + control + after})
    assert_one_line_naming(info.value, "text", before + control + after)


@PROFILE
@given(number=st.sampled_from([math.nan, math.inf, -math.inf]), name=st.sampled_from(NAMES))
def test_non_finite_numbers_are_always_refused(book: Runbook, number: float, name: str) -> None:
    with pytest.raises(OpskitError, match="not a finite number"):
        book.validate_params({name: number})


@PROFILE
@given(
    octets=st.lists(st.integers(min_value=0, max_value=400), min_size=4, max_size=4),
)
def test_ipv4_format_is_enforced(book: Runbook, octets: list[int]) -> None:
    address = ".".join(str(o) for o in octets)
    try:
        book.validate_params({"address": address})
    except OpskitError as exc:
        assert any(o > 255 for o in octets)
        assert_one_line_naming(exc, "address", address)
    else:
        assert all(o <= 255 for o in octets)


@PROFILE
@given(
    banner=st.lists(st.text(st.characters(exclude_categories=["Cc", "Zl", "Zp", "Cs"])), max_size=5)
)
def test_accepted_values_render_one_line_per_line(book: Runbook, banner: list[str]) -> None:
    """What validation accepts renders (a multi-line parameter: its own lines)."""
    text = "\n".join(b for b in banner if b.strip())
    try:
        values = book.validate_params({"text": "x", "banner": text})
    except OpskitError as exc:
        assert_one_line_naming(exc, "banner", text)
        return
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    assert render_check(book, [ci], values, Path("/nonexistent")) == []
