"""The append path's value checks, split between a type-only walk and the
orjson encoding (integer range, keys, lone surrogates) and the encoded text
(U+0000, keys beyond the BMP), must refuse and accept exactly what the full
check (`acceptable`, then `explain` for the message) does, with its message."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum, IntEnum
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import LedgerError
from opskit.ledger import Ledger, model
from opskit.ledger.canonical import acceptable, explain, plain_types
from opskit.ledger.model import Clock
from opskit.ledger.verify import _PREFIX, COLUMNS_CHECK
from tests.fixtures.postgres import open_ledger
from tests.ledger.test_ledger import _random_value


class Colour(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Text(str):
    pass


# Values orjson writes without complaint but the ledger refuses, values
# orjson refuses, and values both accept (str-subclass keys only in the
# documented encoder).
BAD_LEAVES: list[Any] = [
    0.5,
    1.0,
    float("nan"),
    float("inf"),
    (1, 2),
    (),
    2**53,
    -(2**53),
    2**64,
    Colour.RED,
    Level.HIGH,
    uuid.UUID(int=7),
    {1, 2},
    b"bytes",
    Text("sub"),
    OrderedDict(a=1),
    datetime(2026, 1, 1, tzinfo=UTC),
    "nul\x00inside",
    "lone \ud83d half",
    {1: "int key"},
    {None: "none key"},
    {"\U0001f600": "astral key"},
    {"k\x00": "nul key"},
    {"ok": [1, {"deep": 0.25}]},
]
GOOD_LEAVES: list[Any] = [
    2**53 - 1,
    -(2**53 - 1),
    True,
    None,
    "\U0001f600 astral value",
    {"\uffff": "top of the BMP key"},
    {Text("subclass key"): 1},
    "back\\slash \\u0000 as text",
    {"text \\u0000": "escaped backslash, no U+0000"},
]


def _plant(rng: random.Random, value: Any, leaf: Any) -> Any:
    """`value` with `leaf` put somewhere inside it (or replacing it)."""
    if type(value) is dict and value and rng.random() < 0.7:
        key = rng.choice(list(value))
        return {**value, key: _plant(rng, value[key], leaf)}
    if type(value) is list and value and rng.random() < 0.7:
        index = rng.randrange(len(value))
        return [*value[:index], _plant(rng, value[index], leaf), *value[index + 1 :]]
    if type(value) is dict:
        return {**value, "planted": leaf}
    return [value, leaf]


def _expected_error(payload: dict[str, Any]) -> str | None:
    """What the ledger refused before the split: the full walk, then U+0000
    and lone surrogates in the documented encoding."""
    where = "append x: payload"
    try:
        if not acceptable(payload):
            explain(payload, where)
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        if "\\u0000" in text:
            explain(payload, where)
        text.encode()
    except LedgerError as exc:
        return str(exc)
    except UnicodeEncodeError:
        return "append x: text with a lone surrogate is not Unicode"
    return None


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", None)
    yield ledger
    ledger.engine.dispose()


def test_the_split_checks_refuse_and_accept_what_the_full_check_does(
    sqlite_ledger: Ledger,
) -> None:
    rng = random.Random(20260510)
    accepted: list[dict[str, Any]] = []
    refused = 0
    with sqlite_ledger.batch() as batch:
        for index in range(3_000):
            payload = {"base": _random_value(rng)}
            if index % 3:
                leaf = rng.choice(BAD_LEAVES if index % 3 == 1 else GOOD_LEAVES)
                payload = _plant(rng, payload, leaf)
            expected = _expected_error(payload)
            if expected is None:
                event = batch.append("x", actor="ci", payload=payload)
                assert event.payload == payload
                accepted.append(payload)
            else:
                with pytest.raises(LedgerError) as info:
                    batch.append("x", actor="ci", payload=payload)
                assert str(info.value) == expected
                refused += 1
    assert refused > 500 and len(accepted) > 1_500
    records = [
        record for (record,) in sqlite_ledger.reader().query("SELECT record FROM ledger_events")
    ]
    for record, payload in zip(records, accepted, strict=True):
        documented = json.dumps(
            json.loads(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        assert record == documented
        assert json.loads(record)["payload"] == json.loads(json.dumps(payload))
    assert sqlite_ledger.verify().ok


@pytest.mark.parametrize("field", ["kind", "actor", "change_id", "ci"])
def test_u0000_in_an_event_field_is_named(sqlite_ledger: Ledger, field: str) -> None:
    fields: dict[str, Any] = {"kind": "x", "actor": "ci", "change_id": "C1", "ci": "sw1"}
    fields[field] = "a\x00b"
    kind = fields.pop("kind")
    message = rf"^append '[^']*': {field} must be a string without U\+0000$"
    with pytest.raises(LedgerError, match=message):
        sqlite_ledger.append(kind, payload={"n": 1}, **fields)
    assert sqlite_ledger.head()[0] == 0


def test_plain_types() -> None:
    assert plain_types({"a": [1, "x", None, True, {"b": []}], "c": {}})
    assert plain_types([])
    for bad in (0.5, (1,), Colour.RED, Text("s"), OrderedDict(), {1}):
        # At every depth: the first nested dict is checked inline, deeper ones recursively.
        nested = ({"a": bad}, {"a": {"b": bad}}, {"a": {"b": [bad]}}, {"a": {"b": {"c": bad}}})
        for payload in nested:
            assert not plain_types(payload), payload
        assert not plain_types([{"b": bad}])


def test_clock_text_at_second_edges_and_when_the_clock_goes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    for ns in (
        1_767_225_600_000_000_000,
        1_767_225_600_000_000_999,
        1_767_225_600_000_001_000,
        1_767_225_600_999_999_999,
        1_767_225_601_000_000_000,
        1_767_225_599_500_000_000,  # back by a second and a half
        0,
        4_102_444_800_123_456_789,
    ):
        monkeypatch.setattr(model, "_time_ns", lambda ns=ns: ns)
        second, rest = divmod(ns, 1_000_000_000)
        expected = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        assert clock.now() == f"{expected}{rest // 1000:06d}Z"


def test_sqlite_columns_check_prefix_is_the_json_quote_form() -> None:
    """verify's SQLite columns check builds the record prefix with one
    json_object; it must be the text the json_quote()s joined by || make,
    for every kind of text, NULLs and non-text values."""
    values: list[Any] = [
        "plain",
        'q"uote',
        "back\\slash",
        "tab\tnew\nline\r\x01\x1f\x7f",
        "zoë 日本 \U0001f600 \u2028",
        "",
        "ends in 0",
        "ends in }",
        "0}",
        None,
        7,
        -1.5,
    ]
    check = " ".join(COLUMNS_CHECK["sqlite"].split())
    expression = re.fullmatch(r".* WHERE instr\(record, (.*)\) IS NOT 1", check)
    assert expression is not None
    old = f"SELECT {_PREFIX.format(q='json_quote', n='coalesce')} FROM t"
    with sqlite3.connect(":memory:") as db:
        db.execute("CREATE TABLE t (actor, at, kind, change_id, ci)")
        rng = random.Random(5)
        rows = [tuple(rng.choice(values) for _ in range(5)) for _ in range(500)]
        db.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?)", rows)
        new = db.execute(f"SELECT {expression.group(1)} FROM t").fetchall()
        assert new == db.execute(old).fetchall()
