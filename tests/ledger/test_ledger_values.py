"""One converter of values to the ledger's JSON, one float rule, every path.

The change engine records a payload through the journal (converted there),
the rollout and the executor hand over payloads already converted
(`record_ready`); a float must be stored the same whichever path records it,
and exactly (its text reads back as the very float).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from opskit.changes import hostrun
from opskit.changes.journal import Journal
from opskit.changes.records import jsonable
from opskit.ledger import Ledger
from opskit.ledger.changelink import LINK_FIELD
from opskit.ledger.values import MAX_SAFE_INTEGER, float_text, record_ready, to_ledger_json
from opskit.runbooks import executor
from opskit.workspace import init_workspace

FLOATS = {
    "tenth": 0.1,
    "precise": 0.123456789012,
    "whole": 3.0,
    "negative": -2.5,
    "tiny": 5e-324,
    "zero": -0.0,
    "nan": math.nan,
    "inf": -math.inf,
}


class Color(Enum):
    RED = 1


class Mode(StrEnum):
    FAST = "fast"


def test_the_float_rule() -> None:
    assert float_text(0.1) == "0.1"
    assert float_text(0.123456789012) == "0.123456789012"  # not the 6 digits of "%.6g"
    assert float_text(3.0) == 3 and type(float_text(3.0)) is int
    assert float_text(float(MAX_SAFE_INTEGER)) == MAX_SAFE_INTEGER
    assert float_text(1e20) == "1e+20"
    assert (float_text(math.nan), float_text(-math.inf)) == ("nan", "-inf")


@given(st.floats(allow_nan=False))
def test_a_float_reads_back_exactly(value: float) -> None:
    text = float_text(value)
    if isinstance(text, int):
        assert abs(text) <= MAX_SAFE_INTEGER and text == value
    else:
        assert float(text) == value


def test_the_other_values() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    value = {
        Color.RED: Color.RED,
        "mode": Mode.FAST,
        "when": when,
        "pair": (1, 2.5),
        "set": {"b", "a"},
        7: None,
        "path": Path("/x"),
    }
    assert to_ledger_json(value) == {
        "1": "1",
        "mode": "fast",
        "when": "2026-01-02T03:04:05+00:00",
        "pair": [1, "2.5"],
        "set": ["a", "b"],
        "7": None,
        "path": "/x",
    }


def test_a_float_is_stored_the_same_through_every_path(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", examples=False)
    ledger = Ledger.open(ws)
    journal = Journal(ws, ledger=ledger)
    payload = {"values": dict(FLOATS), "listed": list(FLOATS.values())}
    ways = {
        # the change process's own events (service, change store, journal)
        "journal": lambda: journal.record("t", actor="a", change_id="C1", payload=payload),
        "jsonable": lambda: ledger.append("t", actor="a", payload=jsonable(payload)),
        # the rollout's own step payloads
        "hostrun": lambda: journal.record(
            "t", actor="a", change_id="C1", payload=hostrun.record_ready(payload), prepared=True
        ),
        # the executor's steps
        "executor": lambda: journal.record(
            "t", actor="a", change_id="C1", payload=executor.record_ready(payload), prepared=True
        ),
        "record_ready": lambda: ledger.append("t", actor="a", payload=record_ready(payload)),
    }
    for record in ways.values():
        record()
    rows = list(ledger.reader().query("SELECT record FROM ledger_events ORDER BY seq"))
    stored = {name: json.loads(row[0])["payload"] for name, row in zip(ways, rows, strict=True)}
    # Ledger format 2: an event of a change also carries its link to the
    # change's previous event; the values themselves must be the same.
    linked = {name for name, p in stored.items() if LINK_FIELD in p}
    assert linked == {"journal", "hostrun", "executor"}
    stored = {name: {k: v for k, v in p.items() if k != LINK_FIELD} for name, p in stored.items()}
    expected = {
        "tenth": "0.1",
        "precise": "0.123456789012",
        "whole": 3,
        "negative": "-2.5",
        "tiny": "5e-324",
        "zero": 0,
        "nan": "nan",
        "inf": "-inf",
    }
    for name, payload_stored in stored.items():
        assert payload_stored == {"values": expected, "listed": list(expected.values())}, name
    # The very same bytes, not only equal values.
    texts = {json.dumps(p, sort_keys=True) for p in stored.values()}
    assert len(texts) == 1
    assert ledger.verify().ok


def test_a_whole_float_beyond_the_integer_range_is_stored_as_text(tmp_path: Path) -> None:
    ledger = Ledger.open(init_workspace(tmp_path / "ws", examples=False))
    event = ledger.append("t", actor="a", payload=record_ready({"big": 1e20, "neg": -(2.0**60)}))
    assert event.payload == {"big": "1e+20", "neg": "-1.152921504606847e+18"}
    assert jsonable({"big": 1e20}) == hostrun.record_ready({"big": 1e20}) == {"big": "1e+20"}


def test_the_executor_converts_a_big_whole_float_as_the_ledger_does() -> None:
    assert executor.record_ready({"big": 1e20}) == record_ready({"big": 1e20})


def test_the_table_check_accepts_floats_recorded_before_the_one_rule() -> None:
    """Ledgers written before the one float rule hold the change process's
    floats as 6 significant digits (a parameter 0.123456789012 as
    "0.123457", 3.0 as "3"); the table's float still agrees with them."""
    from opskit.changes.tablecheck import _same

    params = {"ratio": 0.123456789012, "count": 3.0, "name": "x", "list": [2.5]}
    now = jsonable(params)
    before = {"ratio": "0.123457", "count": "3", "name": "x", "list": ["2.5"]}
    assert _same(params, now, "parameters")
    assert _same(params, before, "parameters")
    assert not _same(params, {**before, "ratio": "0.2"}, "parameters")
    assert not _same(params, {**now, "count": 4}, "parameters")
    assert not _same({"name": "x"}, {"name": "y"}, "parameters")
