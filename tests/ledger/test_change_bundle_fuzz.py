"""verify-bundle on arbitrarily damaged change bundles (format 2): a report or
one OpskitError line, never another exception, and never "ok" for a bundle
whose signed, proven or linked content changed."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.changes.journal import Journal
from opskit.errors import OpskitError
from opskit.ledger import Ledger
from opskit.ledger.bundlecheck import verify_change_bundle
from opskit.ledger.proofs import log_vkey
from opskit.tlog.trust import TrustPolicy, parse_policy
from opskit.workspace import init_workspace
from tests.ledger.test_bundle_fuzz import JSON, paths

# Not covered by any hash or signature: labels of withheld events, and the
# `note` the exporter adds to a purged blob.
UNHASHED = {"kind", "withheld", "note"}


@pytest.fixture(scope="module")
def genuine(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, Any], TrustPolicy]]:
    root = tmp_path_factory.mktemp("change-bundle-fuzz")
    ws = init_workspace(root / "ws")
    journal = Journal(ws)
    journal.record("change.created", actor="alice", change_id="C1", payload={"title": "x"})
    journal.record("change.created", actor="bob", change_id="C2", payload={})
    journal.record(
        "host.backup", actor="ci", change_id="C1", ci="sw1", payload={}, blobs={"config": "sw1\n"}
    )
    journal.record("host.output", actor="ci", change_id="C1", ci="sw1", payload={"n": 1})
    journal.record("change.closed", actor="alice", change_id="C1", payload={})
    journal.ledger.export_bundle("C1", root / "c1.json", withhold={4})
    policy = parse_policy(f"log {log_vkey(Ledger.open(ws))}\nquorum none\n")
    yield json.loads((root / "c1.json").read_text()), policy
    ws.close()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(choice=st.integers(min_value=0), value=JSON)
def test_a_damaged_change_bundle_is_a_report_or_one_line(
    genuine: tuple[dict[str, Any], TrustPolicy], tmp_path: Path, choice: int, value: Any
) -> None:
    data, policy = genuine
    assert verify_change_bundle(_write(tmp_path, data), policy).ok
    damaged = copy.deepcopy(data)
    targets = paths(damaged)[1:]
    where = targets[choice % len(targets)]
    holder = damaged
    for step in where[:-1]:
        holder = holder[step]
    original = holder[where[-1]]
    holder[where[-1]] = value
    try:
        report = verify_change_bundle(_write(tmp_path, damaged), policy)
    except OpskitError as exc:
        assert "\n" not in str(exc)
        return
    if value != original and not (set(where) & UNHASHED):
        assert not report.ok, where


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(data))
    return path
