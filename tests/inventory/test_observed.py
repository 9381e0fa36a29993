"""Observed facts, the CMDB change record and drift, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from opskit.db import create_schema, open_engine
from opskit.errors import InventoryError
from opskit.inventory import load_inventory
from opskit.inventory.observed import DriftKind, ObservedStore, drift

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_db")
    engine = open_engine(url)
    create_schema(engine)
    yield engine
    engine.dispose()


def test_latest_facts_win_per_name(engine: Engine) -> None:
    store = ObservedStore(engine)
    store.record_facts("sw1", {"os_version": "17.9", "model": "C9300"}, "napalm", at=T0)
    store.record_facts(
        "sw1", {"os_version": "17.12", "vlans": [10, 20]}, "netmiko", at=T0 + timedelta(hours=1)
    )
    store.record_facts("sw2", {"os_version": "4.30"}, "napalm", at=T0)
    facts = store.latest_facts("sw1")
    assert set(facts) == {"os_version", "model", "vlans"}
    value, source, at = facts["os_version"]
    assert (value, source, at) == ("17.12", "netmiko", T0 + timedelta(hours=1))
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
    assert facts["vlans"].value == [10, 20]
    assert facts["model"].source == "napalm"
    assert store.latest_facts("unknown") == {}


def test_facts_must_be_json(engine: Engine) -> None:
    store = ObservedStore(engine)
    with pytest.raises(InventoryError, match="fact 'when' of 'sw1' is not JSON-serialisable"):
        store.record_facts("sw1", {"ok": 1, "when": datetime.now(UTC)}, "test")
    assert store.latest_facts("sw1") == {}  # nothing partial


def test_change_record_newest_first(engine: Engine) -> None:
    store = ObservedStore(engine)
    assert store.last_change("sw1") is None
    store.record_change("sw1", "CHG-1", "succeeded", "sha256:aa", at=T0)
    store.record_change("sw1", "CHG-2", "failed", None, detail="rolled back", at=T0 + timedelta(1))
    store.record_change("sw2", "CHG-2", "aborted", at=T0 + timedelta(2))
    last = store.last_change("sw1")
    assert last is not None
    assert (last.change_id, last.status, last.config_hash, last.detail) == (
        "CHG-2",
        "failed",
        None,
        "rolled back",
    )
    assert [c.change_id for c in store.changes("sw1")] == ["CHG-2", "CHG-1"]
    assert json.loads(json.dumps(last.to_dict()))["status"] == "failed"


def test_change_records_of_many_cis_share_the_callers_transaction(engine: Engine) -> None:
    """What a rollout's index writes: the CMDB records of the hosts it
    finished, with its own rows in one transaction: they commit together or
    not at all."""
    store = ObservedStore(engine)
    outcomes = [("sw1", "ok", "sha256:aa"), ("sw2", "failed", None)]
    with pytest.raises(RuntimeError, match="after the records"), engine.begin() as connection:
        store.record_changes("CHG-1", outcomes, at=T0, connection=connection)
        assert store.last_change("sw1") is None  # not visible before the commit
        raise RuntimeError("after the records")
    assert store.last_change("sw1") is None and store.last_change("sw2") is None
    with engine.begin() as connection:
        store.record_changes("CHG-1", outcomes, at=T0, connection=connection)
    store.record_changes("CHG-2", [("sw2", "ok", "sha256:bb")], at=T0 + timedelta(1))
    store.record_changes("CHG-3", [])  # nothing to record: no row, no error
    assert [(c.change_id, c.status, c.config_hash, c.at) for c in store.changes("sw2")] == [
        ("CHG-2", "ok", "sha256:bb", T0 + timedelta(1)),
        ("CHG-1", "failed", None, T0),
    ]
    assert store.last_change("sw1") == store.changes("sw1")[0]
    assert store.changes("sw1")[0].detail is None


def test_drift_compares_declared_and_observed(engine: Engine) -> None:
    inventory = load_inventory(EXAMPLE)
    store = ObservedStore(engine)
    core = inventory.get("core-sw1")
    facts = {
        "model": core.attributes["model"],  # matches
        "os_version": "17.12.1",  # differs from 17.9.4
        "serial": core.attributes["serial"],
        "timezone": "Asia/Shanghai",
        "ntp_server": "10.0.0.123",
        "config_backup": "daily",
        "vendor": "Cisco",  # undeclared
        "uptime": 123456,  # volatile: ignored
        "platform": "cisco_xe",  # differs from cisco_ios
        "host": core.host,  # matches
    }
    store.record_facts("core-sw1", facts, "napalm:get_facts", at=T0)
    # Numbers and text compare by value: 64 == "64".
    server = inventory.get("db-srv1")
    server_facts = {k: str(v) for k, v in server.attributes.items() if k != "serial"}
    store.record_facts("db-srv1", server_facts, "fabric", at=T0)
    items = drift(inventory, store)
    found = {(i.ci, i.field, i.kind) for i in items}
    assert found == {
        ("core-sw1", "attributes.os_version", DriftKind.DIFFERS),
        ("core-sw1", "attributes.vendor", DriftKind.UNDECLARED),
        ("core-sw1", "platform", DriftKind.DIFFERS),
        ("db-srv1", "attributes.serial", DriftKind.MISSING),
    }
    os_item = next(i for i in items if i.field == "attributes.os_version")
    assert (os_item.declared, os_item.observed, os_item.source) == (
        "17.9.4",
        "17.12.1",
        "napalm:get_facts",
    )
    assert json.loads(json.dumps([i.to_dict() for i in items]))
    # A selection limits the comparison; unobserved CIs are not reported.
    assert {i.ci for i in drift(inventory, store, "group:servers")} == {"db-srv1"}
    assert drift(inventory, store, "group:access") == []


def test_drift_uses_the_latest_observation(engine: Engine) -> None:
    inventory = load_inventory(EXAMPLE)
    store = ObservedStore(engine)
    pg = inventory.get("pg-main")
    store.record_facts("pg-main", {**pg.attributes, "version": "16.3"}, "sql", at=T0)
    assert [i.field for i in drift(inventory, store, "pg-main")] == ["attributes.version"]
    store.record_facts("pg-main", {"version": "16.4"}, "sql", at=T0 + timedelta(minutes=5))
    assert drift(inventory, store, "pg-main") == []
