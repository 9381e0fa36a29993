"""The demo's verifiable end (`opskit.demo.verifiable`) with a real witness
process: the change's checkpoints are cosigned, its bundle verifies against
the trust policy with the witness's cosignature, and afterwards the witness
is stopped and the policy is as it was."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from opskit.changes.journal import Journal
from opskit.demo import verifiable
from opskit.workspace import Workspace, init_workspace


def test_the_demo_bundle_verifies_with_the_witness(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = init_workspace(tmp_path / "demo")
    policy_before = (ws.root / "opskit.yaml").read_text()
    seen: dict[str, Any] = {}

    def body() -> dict[str, Any]:
        live = Workspace.open(ws.root)
        seen["witnesses"] = [w.url for w in live.policy.witnesses]
        journal = Journal(live)
        for n in range(3):
            journal.record("change.noted", actor="alice", change_id="CHG-D", payload={"n": n})
        journal.record("change.closed", actor="alice", change_id="CHG-D", payload={})
        journal.checkpoint("alice")  # end of the change: cosigned by the witness
        return {"changes": {"CHG-D": "closed"}}

    result = verifiable.run(ws.root, body)
    out = capsys.readouterr().out
    assert "bundle CHG-D.bundle.json OK" in out and "complete: closed at seq 4" in out
    assert "witnesses: demo-witness" in out
    note = json.loads(Path(result["bundle"]).read_text())["checkpoint"]
    assert "— demo.example/witness " in note
    assert (ws.root / "opskit.yaml").read_text() == policy_before
    with pytest.raises(urllib.error.URLError):  # the witness was stopped
        urllib.request.urlopen(seen["witnesses"][0] + "/add-checkpoint", timeout=5)
