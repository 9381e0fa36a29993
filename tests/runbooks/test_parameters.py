"""Parameter values: control characters and line breaks refused (unless the
runbook says x-opskit-multiline), formats enforced with jsonschema's format
checker, NaN and infinities refused, errors one line naming the parameter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from opskit.runbooks import Runbook
from opskit.runbooks.doc import render_markdown
from tests.runbooks.demo_support import HEADER, load_book, load_refusal, params_refusal, write_book

BOOK = (
    HEADER
    + """\
  properties:
    text: {type: string}
    banner: {type: string, x-opskit-multiline: true}
    lines: {type: array, items: {type: string}}
    ratio: {type: number}
    address: {type: string, format: ipv4}
    address6: {type: string, format: ipv6}
    network: {type: string, format: ipv4-network}
    network6: {type: string, format: ipv6-network}
    interface: {type: string, format: ip-interface}
    host: {type: string, format: hostname}
    when: {type: string, format: date-time}
    link: {type: string, format: uri}
    mail: {type: string, format: email}
    extra: {type: object}
apply:
  - name: say it
    connector: netmiko
    action: config
    params:
      lines: ["description {{ params.text }}"]
"""
)


@pytest.fixture
def book(tmp_path: Path) -> Runbook:
    return load_book(tmp_path, BOOK)


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("text", "x\nno ip route 0.0.0.0 0.0.0.0 192.0.2.1", "a line feed (LF) at character 2"),
        ("text", "x\rno shutdown", "a carriage return (CR)"),
        ("text", "x\x00", "NUL"),
        ("text", "x\x01y", "U+0001"),
        ("text", "ok\u2028no shutdown", "line separator"),
        ("text", "ok\x85no shutdown", "next-line"),
        ("text", "abc\u202edcb", "U+202E"),
        ("lines", ["vlan 5", "x\nno vlan 1"], "parameter 'lines[1]'"),
        ("extra", {"a": {"b": "x\ny"}}, "parameter 'extra.a.b'"),
        ("extra", {"k\ny": 1}, "a key contains a line feed"),
        ("banner", "line one\rline two", "carriage return"),
        ("banner", "line one\nline \x07two", "U+0007 at line 2"),
    ],
)
def test_control_characters_are_refused(book: Runbook, name: str, value: object, said: str) -> None:
    message = params_refusal(book, {name: value})
    assert f"parameter '{name}" in message and said in message
    assert "no ip route" not in message and "no shutdown" not in message  # never echoed


def test_a_multiline_parameter_takes_line_feeds(book: Runbook) -> None:
    assert book.validate_params({"banner": "one\ntwo"})["banner"] == "one\ntwo"
    assert "x-opskit-multiline: true" in params_refusal(book, {"text": "one\ntwo"})


@pytest.mark.parametrize(
    ("name", "bad", "good"),
    [
        ("address", "999.1.1.1", "192.0.2.1"),
        ("address6", "2001:db8::g", "2001:db8::1"),
        ("network", "10.0.0.1/24", "10.0.0.0/24"),
        ("network6", "2001:db8::1/64", "2001:db8::/64"),
        ("interface", "10.0.0.1", "10.0.0.1/24"),
        ("host", "bad_host name", "sw1.example.net"),
        ("when", "2026-13-01T00:00:00Z", "2026-12-01T22:00:00+01:00"),
        ("link", "not a uri", "https://example.net/x"),
        ("mail", "nobody", "ops@example.net"),
    ],
)
def test_formats_are_enforced(book: Runbook, name: str, bad: str, good: str) -> None:
    assert book.validate_params({name: good})[name] == good
    message = params_refusal(book, {name: bad})
    assert f"parameter '{name}'" in message and "is not a" in message


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_wherever_they_are(book: Runbook, text: str) -> None:
    value = json.loads(text)  # what `--param ratio=NaN` parses to
    assert "not a finite number" in params_refusal(book, {"ratio": value})
    assert "parameter 'extra.deep[0]'" in params_refusal(book, {"extra": {"deep": [value]}})


def test_a_long_value_is_described_not_echoed(book: Runbook) -> None:
    message = params_refusal(book, {"ratio": "z" * 10_000})
    assert "a string of 10000 characters" in message and "zzzzzzzzzz" not in message


def test_an_unknown_format_is_refused_at_load(tmp_path: Path) -> None:
    path = write_book(tmp_path, BOOK.replace("format: ipv4}", "format: ipv4-adress}"))
    message = load_refusal(path)
    assert re.search(r"parameters\.properties\.address\.format.*ipv4-adress", message)


def test_doc_lists_formats_as_enforced(book: Runbook) -> None:
    text = render_markdown(book)
    assert "format: ipv4 (enforced)" in text and "format: ipv4-network (enforced)" in text
    assert "finite (no NaN or infinity)" in text
    assert "may span lines" in text and "one line, no control characters" in text


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ("ratio: {type: number}", "ratio: {type: number, default: .nan}", "not a finite number"),
        ("text: {type: string}", 'text: {type: string, default: "a\\nb"}', "line feed"),
        ("format: ipv4}", "format: ipv4, default: 999.1.1.1}", "'999.1.1.1' is not a 'ipv4'"),
    ],
)
def test_defaults_follow_the_same_rules_at_load(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    assert old in BOOK
    message = load_refusal(write_book(tmp_path, BOOK.replace(old, new)))
    assert ".default]" in message and said in message
