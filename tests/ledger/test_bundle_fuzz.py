"""verify-bundle on arbitrarily damaged bundles: a report or one LedgerError
line, never another exception, and never "ok" for a changed bundle."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import LedgerError
from opskit.ledger import verify_bundle
from opskit.ledger.bundle import export_bundle as export_v1
from opskit.ledger.keys import PUBLIC_KEY_FILE
from tests.fixtures.postgres import open_ledger

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], Path]]:
    root = tmp_path_factory.mktemp("bundle-fuzz")
    ledger = open_ledger(f"sqlite:///{root / 'ledger.db'}", root / "keys")
    ledger.append("change.created", actor="alice", payload={"title": "x"}, change_id="C1")
    ledger.append("change.created", actor="bob", payload={}, change_id="C2")
    ledger.append("host.backup", actor="ci", payload={}, change_id="C1", ci="sw1",
                  blobs={"config": "hostname sw1\n"})  # fmt: skip
    path = export_v1(ledger, "C1", root / "c1.json")
    yield json.loads(path.read_text()), root / "keys" / PUBLIC_KEY_FILE
    ledger.engine.dispose()


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(data, dict):
        for key, value in data.items():
            found += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += paths(value, (*prefix, index))
    return found


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(choice=st.integers(min_value=0), value=JSON)
def test_a_damaged_bundle_is_a_report_or_one_line(
    genuine: tuple[dict[str, Any], Path], tmp_path: Path, choice: int, value: Any
) -> None:
    data, pub = genuine
    damaged = copy.deepcopy(data)
    targets = paths(damaged)[1:]
    where = targets[choice % len(targets)]
    holder = damaged
    for step in where[:-1]:
        holder = holder[step]
    original = holder[where[-1]]
    holder[where[-1]] = value
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damaged))
    try:
        report = verify_bundle(path, public_key=pub)
    except LedgerError as exc:
        assert "\n" not in str(exc)
        return
    # Labels of withheld records are not hashed; anything else changed must show.
    label = where[-1] in ("kind", "change_id") and len(where) == 3
    unhashed = label or where[0] == "key_id"
    if value != original and not unhashed:
        assert not report.ok, where
