"""Fuzzing the change process: random sequences of `opskit change` commands by
random people (a Hypothesis state machine), without touching a device.

After every command: no traceback, one error line, and a refused command
changed nothing but its own `change.refused` record. After every sequence:
`opskit audit verify` still accepts the ledger, and every change's state in
the tables is the state its last ledger event moved it to.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path

import typer.main
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, rule

from opskit.cli import app
from tests.fuzz.support import (
    CliResult,
    assert_one_line_error,
    assert_unchanged,
    make_workspace,
    run_cli,
    snapshot,
)

PEOPLE = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "ci-bot", "mallory"])
CREATE = {
    "vlan-interface@1.0.0": ["vlan_id=10", "vlan_name=users", "interface=FastEthernet0/1"],
    "config-backup@1.0.0": [],
    "inspection@1.0.0": ["cpu_max_percent=70"],
}
# What a successful command leaves the change in.
AFTER = {
    "create": {"draft"},
    "submit": {"submitted"},
    "assess": {"assessed", "approved"},
    "approve": {"assessed", "approved"},
    "reject": {"rejected"},
    "cancel": {"cancelled", "canceled"},
    "close": {"closed"},
}
CHANGE_COMMANDS = set(typer.main.get_command(app).commands["change"].commands)  # type: ignore[attr-defined]

_ROOT: list[Path] = []


def _template() -> Path:
    """One workspace built once per process; every sequence starts from a copy."""
    if not _ROOT:
        base = Path(tempfile.mkdtemp(prefix="opskit-fuzz-process-"))
        make_workspace(base / "template").close()
        _ROOT.append(base)
    return _ROOT[0] / "template"


class ChangeProcess(RuleBasedStateMachine):
    changes = Bundle("changes")

    @initialize()
    def workspace(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="opskit-fuzz-run-"))
        self.root = self.scratch / "ws"
        shutil.copytree(_template(), self.root)

    def teardown(self) -> None:
        if hasattr(self, "root"):
            verified = run_cli("audit", "verify", workspace=self.root)
            assert verified.code == 0, str(verified)
            self.assert_states_match_the_ledger()
            shutil.rmtree(self.scratch, ignore_errors=True)

    # -- running a command -------------------------------------------------------------
    def run(self, actor: str, *args: str) -> CliResult:
        before = snapshot(self.root)
        result = run_cli("--as", actor, "change", *args, workspace=self.root)
        assert_one_line_error(result)
        if result.code != 0:
            assert_unchanged(before, snapshot(self.root), refusal=True)
        return result

    def state_of(self, change_id: str) -> str:
        shown = run_cli("change", "show", change_id, "--json", workspace=self.root)
        assert shown.code == 0, str(shown)
        return str(json.loads(shown.stdout)["state"])

    def check(self, command: str, change_id: str, result: CliResult) -> None:
        if result.code == 0:
            state = self.state_of(change_id)
            assert state in AFTER[command], f"{command} {change_id} left it {state}"

    def assert_states_match_the_ledger(self) -> None:
        db = sqlite3.connect(f"file:{self.root / '.opskit' / 'opskit.db'}?mode=ro", uri=True)
        try:
            rows = dict(db.execute("SELECT id, state FROM changes"))
            for change_id, state in rows.items():
                moves = [
                    json.loads(record).get("payload", {}).get("to")
                    for (record,) in db.execute(
                        "SELECT record FROM ledger_events WHERE change_id = ? ORDER BY seq",
                        (change_id,),
                    )
                ]
                moves = [m for m in moves if m]
                assert moves and moves[-1] == state, f"{change_id}: table {state}, ledger {moves}"
        finally:
            db.close()

    # -- rules -------------------------------------------------------------------------
    @rule(target=changes, actor=PEOPLE, runbook=st.sampled_from(sorted(CREATE)))
    def create(self, actor: str, runbook: str) -> str:
        params = [arg for param in CREATE[runbook] for arg in ("--param", param)]
        result = self.run(
            actor, "create", "--runbook", runbook, "--select", "core-sw1", "--title", "fuzz",
            *params, "--json",
        )  # fmt: skip
        if result.code != 0:
            return "CHG-999999"  # a change that does not exist: every command refuses it
        change_id = str(json.loads(result.stdout)["id"])
        self.check("create", change_id, result)
        return change_id

    @rule(change=changes, actor=PEOPLE)
    def submit(self, change: str, actor: str) -> None:
        self.check("submit", change, self.run(actor, "submit", change))

    @rule(change=changes, actor=PEOPLE)
    def assess(self, change: str, actor: str) -> None:
        self.check("assess", change, self.run(actor, "assess", change, "--no-predict"))

    @rule(change=changes, actor=PEOPLE, comment=st.sampled_from([None, "ok", "l\u00e4uft"]))
    def approve(self, change: str, actor: str, comment: str | None) -> None:
        extra = ["--comment", comment] if comment else []
        self.check("approve", change, self.run(actor, "approve", change, *extra))

    @rule(change=changes, actor=PEOPLE)
    def reject(self, change: str, actor: str) -> None:
        self.check("reject", change, self.run(actor, "reject", change, "--reason", "no"))

    @rule(change=changes, actor=PEOPLE)
    def cancel(self, change: str, actor: str) -> None:
        if "cancel" in CHANGE_COMMANDS:  # item 11 adds it; fuzzed as soon as it exists
            self.check("cancel", change, self.run(actor, "cancel", change, "--reason", "fuzz"))

    @rule(change=changes, actor=PEOPLE)
    def close(self, change: str, actor: str) -> None:
        self.check("close", change, self.run(actor, "close", change, "--review", "done"))

    @rule(change=changes, actor=PEOPLE)
    def read(self, change: str, actor: str) -> None:
        before = snapshot(self.root)
        for args in (("show", change), ("list", "--json"), ("verify-approvals", change)):
            result = run_cli("--as", actor, "change", *args, workspace=self.root)
            assert_one_line_error(result)
        assert_unchanged(before, snapshot(self.root))


ChangeProcess.TestCase.settings = settings(
    settings.default, stateful_step_count=8, max_examples=max(8, settings.default.max_examples // 3)
)
test_change_process = ChangeProcess.TestCase
