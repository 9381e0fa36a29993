"""`opskit init` leaves a workspace where the first commands and a first change work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.workspace import EXAMPLES_DIR

REPO = Path(__file__).resolve().parents[2]


def opskit(cwd: Path, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSKIT_USER": user}
    env.pop("OPSKIT_WORKSPACE", None)
    return subprocess.run(
        [sys.executable, "-m", "opskit", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" or "Traceback" not in result.stderr
    return result.stdout


def test_the_examples_are_the_repositorys() -> None:
    """They ship as package data: src/opskit/examples links to the repository's folders."""
    for sub in ("inventories", "runbooks", "playbooks", "templates"):
        assert (EXAMPLES_DIR / sub).resolve() == (REPO / sub).resolve()


@pytest.mark.lab
def test_a_new_workspace_works_at_once(tmp_path: Path) -> None:
    ok(opskit(tmp_path, "init", "ws"))
    ws = tmp_path / "ws"
    assert "valid inventory example" in ok(opskit(ws, "inventory", "validate"))
    listed = json.loads(ok(opskit(ws, "runbook", "list", "--json")))
    assert {"config-backup", "vlan-interface"} <= {book["name"] for book in listed["runbooks"]}
    assert listed["errors"] == []
    ok(opskit(ws, "lab", "up", "--devices", "1", "--linux", "0"))
    try:
        created = ok(
            opskit(
                ws,
                "change",
                "create",
                "--runbook",
                "vlan-interface@1.0.0",
                "--inventory",
                "lab",
                "--select",
                "lab-sw01",
                "--param",
                "vlan_id=42",
                "--param",
                "vlan_name=users",
                "--param",
                "interface=FastEthernet0/3",
                "--title",
                "first change",
            )
        )
        change_id = created.split()[0]
        assert change_id.startswith("CHG-")
        ok(opskit(ws, "change", "submit", change_id))
        assessed = ok(opskit(ws, "change", "assess", change_id, user="bob"))
        assert "vlan 42" in assessed  # the predicted diff, from the lab switch
    finally:
        opskit(ws, "lab", "down")


def test_an_empty_runbook_listing_says_what_to_do(tmp_path: Path) -> None:
    ok(opskit(tmp_path, "init", "ws"))
    ws = tmp_path / "ws"
    for book in (ws / "runbooks").iterdir():
        for file in book.iterdir():
            file.unlink()
        book.rmdir()
    listed = ok(opskit(ws, "runbook", "list")).strip()
    assert listed == (
        f"no runbooks in {ws / 'runbooks'}: copy one from {EXAMPLES_DIR / 'runbooks'},"
        " or run 'opskit init --examples' to add the shipped examples"
    )
    policy = (ws / "opskit.yaml").read_text()
    assert ok(opskit(ws, "init", "--examples")).startswith("7 example file(s) added")
    assert (ws / "opskit.yaml").read_text() == policy  # the policy is kept
    assert "vlan-interface" in ok(opskit(ws, "runbook", "list", "--json"))


def test_init_keeps_existing_files_and_can_skip_examples(tmp_path: Path) -> None:
    mine = tmp_path / "ws" / "runbooks" / "vlan-interface" / "1.0.0.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("# mine\n")
    ok(opskit(tmp_path, "init", "ws"))
    assert mine.read_text() == "# mine\n"
    out = ok(opskit(tmp_path, "init", "bare", "--no-examples"))
    assert "no examples copied" in out
    assert not any((tmp_path / "bare" / "runbooks").iterdir())
