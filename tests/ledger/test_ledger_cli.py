"""`opskit audit ...` as a user runs it: real subprocesses, exit codes, and
`verify-bundle` on a machine without any workspace."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from opskit.workspace import Workspace
from tests.fixtures.postgres import attacker_sql

OPSKIT = [sys.executable, "-m", "opskit"]


def run(
    *args: str, ws: Workspace | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    if ws is not None:
        env["OPSKIT_WORKSPACE"] = str(ws.root)
        env["OPSKIT_USER"] = "alice"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*OPSKIT, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


@pytest.fixture
def filled(workspace: Workspace) -> Workspace:
    ledger = Ledger.open(workspace)
    ledger.append("change.noted", actor="alice", payload={"title": "vlan 120"}, change_id="C1")
    ledger.append("change.noted", actor="bob", payload={"title": "ntp"}, change_id="C2")
    ledger.append(
        "host.backup", actor="ci", payload={}, change_id="C1", ci="sw1", blobs={"config": "x"}
    )
    return workspace


@pytest.mark.slow
def test_audit_commands(filled: Workspace, tmp_path: Path) -> None:
    ws = filled
    result = run("audit", "verify", ws=ws)
    assert result.returncode == 0, result.stderr
    assert "ledger OK: 3 events" in result.stdout

    result = run("audit", "log", "--change", "C1", "--json", ws=ws)
    assert [e["seq"] for e in json.loads(result.stdout)] == [1, 3]
    result = run("audit", "log", "--ci", "sw1", ws=ws)
    assert "host.backup" in result.stdout and "vlan 120" not in result.stdout

    checkpoint = tmp_path / "cp.json"
    result = run("audit", "checkpoint", "--out", str(checkpoint), ws=ws)
    assert result.returncode == 0, result.stderr
    assert json.loads(checkpoint.read_text())["actor"] == "alice"
    assert json.loads(checkpoint.read_text())["seq"] == 3

    result = run("audit", "pubkey", ws=ws)
    assert result.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    pubkey = tmp_path / "workspace.pub"
    pubkey.write_text(result.stdout)

    bundle = tmp_path / "evidence" / "c1.json"
    result = run("audit", "export", "--change", "C1", "--out", str(bundle), ws=ws)
    assert result.returncode == 0, result.stderr

    # Another machine: no workspace, a different folder, only opskit installed.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run("audit", "verify-bundle", str(bundle), "--pubkey", str(pubkey), cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert "OK: change C1: 2 events; completeness cannot be proven" in result.stdout

    data = json.loads(bundle.read_text())
    data["events"][0]["record"] = data["events"][0]["record"].replace("vlan 120", "vlan 666")
    bundle.write_text(json.dumps(data))
    result = run("audit", "verify-bundle", str(bundle), "--json", cwd=elsewhere)
    assert result.returncode == 1
    assert "seq 1 is not in the checkpoint's tree" in json.loads(result.stdout)["problems"][1]

    # The ledger itself is tampered with: verify names the place and exits 1,
    # in one line however many records were touched (--json lists them all).
    attacker_sql(ws.db_url, "UPDATE ledger_events SET actor = 'mallory' WHERE seq = 2")
    attacker_sql(ws.db_url, "DELETE FROM ledger_blobs")
    result = run("audit", "verify", ws=ws)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "FAILED at seq 2: changed content" in result.stderr
    assert "(and 1 more problem(s): --json lists them)" in result.stderr
    result = run("audit", "verify", "--json", ws=ws)
    assert result.returncode == 1
    problems = json.loads(result.stdout)["problems"]
    assert [p["seq"] for p in problems] == [2, 3] and "missing blob" in problems[1]["problem"]


def test_audit_errors_are_one_line(filled: Workspace, tmp_path: Path) -> None:
    result = run("audit", "export", "--change", "C404", "--out", str(tmp_path / "x"), ws=filled)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: export: no ledger events for change 'C404'"
    result = run("audit", "verify-bundle", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "No such file" in result.stderr
    result = run("audit", "pubkey", "--format", "xml", ws=filled)
    assert result.returncode == 2
    result = run("audit", "verify", cwd=tmp_path)  # not a workspace
    assert result.returncode == 1 and "not an opskit workspace" in result.stderr
    # An unwritable destination (here a folder) is one line, not an OSError traceback.
    for command in (("export", "--change", "C1"), ("checkpoint",)):
        result = run("audit", *command, "--out", str(tmp_path), ws=filled)
        assert result.returncode == 1
        assert result.stderr.strip() == f"error: {tmp_path}: cannot write (Is a directory)"


@pytest.mark.slow
def test_an_unusable_database_is_one_line(workspace: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database\n" * 100)
    unreachable = "postgresql://nobody:hunter2@127.0.0.1:1/x"  # nothing listens on port 1
    for url, message in (
        (f"sqlite:///{junk}", "file is not a database"),
        (unreachable, "connection failed"),
        (f"sqlite:///{tmp_path}/missing/dir/x.db", "unable to open database file"),
    ):
        for command in (("audit", "verify"), ("change", "list")):
            result = run("--db", url, *command, ws=workspace)
            assert result.returncode == 1, result.stderr
            assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
            assert "hunter2" not in result.stderr
    assert junk.read_bytes() == b"this is not a database\n" * 100
