"""Regression tests from the review of the ledger's performance changes
(orjson on the append path, COPY on PostgreSQL): each pins behaviour the
earlier, simpler code had, on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

import pytest

from opskit.errors import LedgerError, SecretError
from opskit.ledger import Ledger
from opskit.secrets import REDACTOR
from tests.fixtures.postgres import open_ledger


@pytest.fixture
def ledger(ledger_backend: str, tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    yield ledger
    ledger.engine.dispose()


def stored_rows(ledger: Ledger) -> list[tuple[object, ...]]:
    return list(
        ledger.reader().query(
            "SELECT seq, at, actor, kind, change_id, ci, record FROM ledger_events"
        )
    )


def documented_form(record: str) -> str:
    """The record re-encoded the way docs/ledger-format.md documents the canonical form."""
    return json.dumps(json.loads(record), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# COPY's text format escapes tabs, newlines, carriage returns and backslashes,
# and spells NULL `\N`: each must come back as written, "" apart from NULL.
COPY_HAZARDS = [
    "tab\there",
    "line\nbreak",
    "carriage\rreturn",
    "back\\slash",
    "\\N",
    "\\.",
    "trailing\\",
    "",
    "\\\t\\n\r\n",
    "zoë 日本 \U0001f600",
]


def test_batched_rows_keep_every_character_and_null(ledger: Ledger) -> None:
    """A batch of many rows (PostgreSQL: loaded with COPY) stores the same
    text, NULLs and empty strings as single INSERTs."""
    with ledger.batch() as batch:
        written = [
            batch.append(
                f"kind {text}" if text else "kind",
                actor=f"actor {text}",
                payload={"text": text, text.replace("\U0001f600", ""): [text]},
                change_id=text,
                ci=None if index % 2 else text,
            )
            for index, text in enumerate(COPY_HAZARDS)
        ]
    assert list(ledger.events()) == written
    for event, row in zip(written, stored_rows(ledger), strict=True):
        assert row[2:6] == (event.actor, event.kind, event.change_id, event.ci)
        assert row[6] == documented_form(row[6])  # type: ignore[arg-type]
    assert [e.seq for e in ledger.events(change_id="")] == [8]
    assert [e.seq for e in ledger.events(change_id="\\N")] == [5]
    report = ledger.verify()
    assert report.ok, report.problem
    assert report.counts["events"] == len(COPY_HAZARDS)


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"


class PlainText(str):
    pass


class Labelled(StrEnum):
    """An enum whose value differs from its text."""

    def __new__(cls, text: str, label: str) -> Labelled:
        member = str.__new__(cls, text)
        member._value_ = label
        return member

    SWITCH = ("sw1", "switch one")


def test_str_subclasses_are_stored_as_their_text(ledger: Ledger) -> None:
    """Before orjson, str subclasses in the event's fields and as payload
    keys were written as their text (what `json.dumps` writes); they must not
    now be refused as 'lone surrogates', nor stored as an Enum's value while
    the indexed column holds its text (which verify then calls tampering)."""
    events = [
        ledger.append(PlainText("host.applied"), actor="ci", payload={Outcome.OK: 3}),
        ledger.append("host.applied", actor=PlainText("alice"), change_id=PlainText("C1")),
        ledger.append("host.applied", actor="ci", ci=Labelled.SWITCH),
        ledger.append(Outcome.FAILED, actor="ci", payload={PlainText("k"): "v"}),
    ]
    rows = stored_rows(ledger)
    assert [json.loads(row[6])["kind"] for row in rows] == [
        "host.applied",
        "host.applied",
        "host.applied",
        "failed",
    ]
    assert json.loads(rows[0][6])["payload"] == {"ok": 3}  # type: ignore[arg-type]
    assert json.loads(rows[2][6])["ci"] == rows[2][5] == "sw1"  # type: ignore[arg-type]
    assert all(row[6] == documented_form(row[6]) for row in rows)  # type: ignore[arg-type]
    assert [e.seq for e in ledger.events(ci="sw1")] == [events[2].seq]
    report = ledger.verify()
    assert report.ok, report.problem


def test_deeply_nested_payload_is_accepted_as_before(ledger: Ledger) -> None:
    """orjson stops at 255 levels of nesting; the documented encoder (and the
    ledger before orjson) does not. Such a payload is still appended."""
    nested: list[object] = []
    for _ in range(300):
        nested = [nested]
    event = ledger.append("x", actor="ci", payload={"deep": nested})
    assert next(ledger.events()).payload == event.payload == {"deep": nested}
    assert ledger.verify().ok


def test_payload_nested_past_the_recursion_limit_is_one_line(ledger: Ledger) -> None:
    """Deeper than Python can walk: a LedgerError, not a RecursionError traceback."""
    nested: list[object] = []
    for _ in range(5_000):
        nested = [nested]
    with pytest.raises(LedgerError, match=r"^append x: payload is nested too deeply$"):
        ledger.append("x", actor="ci", payload={"deep": nested})
    assert ledger.head()[0] == 0


@pytest.mark.parametrize("secret", ['Pässw"rd', "zoë\nsecond line"])
def test_secret_with_non_ascii_and_an_escaped_character_is_refused(
    ledger: Ledger, secret: str
) -> None:
    REDACTOR.register(secret)
    with pytest.raises(SecretError):
        ledger.append("x", actor="ci", payload={"note": f"the password is {secret}"})
    assert list(ledger.events()) == []
