"""A broken `opskit.yaml` is one PolicyError naming the file, the line and the
field, with suggestions, and it is refused before anything is recorded."""

from __future__ import annotations

import base64
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.errors import PolicyError
from opskit.policy import load_policy
from opskit.workspace import Workspace

PEOPLE = """\
people:
  alice: {roles: [requester, implementer]}
  bob: {roles: [change_manager, cab]}
  carol: {roles: [cab]}
  dave: {roles: [governance]}
"""


def refused(tmp_path: Path, text: str, *, inventories: tuple[str, ...] = ("example",)) -> str:
    """The one-line message `load_policy` refuses `text` with."""
    (tmp_path / "inventories").mkdir(parents=True, exist_ok=True)
    for name in inventories:
        (tmp_path / "inventories" / name).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "opskit.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_policy(path, inventories_dir=tmp_path / "inventories")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:")
    return message[len(str(path)) :]


@pytest.mark.parametrize("text", ["", "\n", "# just a comment\n", "{}\n"])
def test_an_empty_policy_is_refused(tmp_path: Path, text: str) -> None:
    assert refused(tmp_path, text) == (
        ":1: the policy is empty: it must list at least the people and their roles"
        " ('opskit init --force' writes a starter policy)"
    )


def test_an_unsupported_version(tmp_path: Path) -> None:
    message = refused(tmp_path, PEOPLE + "version: 99\n")
    assert message == ":6 [version]: unsupported policy version 99; this opskit reads version 1"


def test_an_unreachable_quorum(tmp_path: Path) -> None:
    text = PEOPLE + "approvals:\n  medium: {roles: [cab], count: 5}\n"
    assert refused(tmp_path, text) == (
        ":7 [approvals.medium.count]: needs 5 approval(s) from cab, but only 2 person(s)"
        " hold that role (bob, carol): the quorum can never be reached"
    )


def test_a_quorum_only_a_requester_could_complete(tmp_path: Path) -> None:
    # carol may request: her own changes would need bob and herself (four-eyes forbids it).
    text = PEOPLE.replace("carol: {roles: [cab]}", "carol: {roles: [cab, requester]}")
    text += "approvals:\n  medium: {roles: [cab], count: 2}\n"
    assert refused(tmp_path, text) == (
        ":7 [approvals.medium.count]: needs 2 approval(s) from cab, but only 1 person(s)"
        " other than the requester carol hold that role (bob): a requester cannot approve"
        " their own change (four-eyes), so the quorum can never be reached for carol"
    )


def test_a_default_quorum_only_a_requester_could_complete(tmp_path: Path) -> None:
    text = PEOPLE.replace("dave: {roles: [governance]}", "dave: {roles: [governance, requester]}")
    message = refused(tmp_path, text)
    assert message.startswith(
        ":1 [approvals.high]: needs 1 approval(s) by default from governance, but only 0"
    )


def test_a_quorum_met_without_any_requester_is_accepted(tmp_path: Path) -> None:
    text = PEOPLE.replace("carol: {roles: [cab]}", "carol: {roles: [cab, requester]}")
    text += "  erin: {roles: [cab]}\napprovals:\n  medium: {roles: [cab], count: 2}\n"
    path = tmp_path / "opskit.yaml"
    path.write_text(text)
    assert load_policy(path).approvals.medium.count == 2


def test_a_default_rule_nobody_can_meet(tmp_path: Path) -> None:
    # No CAB member at all: the default medium rule (2 from cab) can never be met.
    text = "people:\n  bob: {roles: [change_manager, governance]}\n"
    message = refused(tmp_path, text)
    assert message.startswith(":1 [approvals.medium]: needs 2 approval(s) by default from cab")


def test_an_unreachable_freeze_override(tmp_path: Path) -> None:
    text = PEOPLE + (
        "freezes:\n"
        "  - name: year-end\n"
        '    start: "2026-12-20T00:00:00+01:00"\n'
        '    end: "2027-01-04T00:00:00+01:00"\n'
        "    emergency_override: {roles: [governance], count: 2}\n"
    )
    assert refused(tmp_path, text).startswith(
        ":10 [freezes[0].emergency_override.count]: needs 2 approval(s) from governance"
    )


@pytest.mark.parametrize(
    "key",
    [
        "not base64!",
        base64.b64encode(b"x" * 31).decode(),  # base64, but not 32 bytes
        "-----BEGIN PUBLIC KEY-----",
    ],
)
def test_a_malformed_signing_key(tmp_path: Path, key: str) -> None:
    text = PEOPLE + f"  erin: {{roles: [auditor], signing_key: '{key}'}}\n"
    assert refused(tmp_path, text) == (
        ":6 [people.erin.signing_key]: not an Ed25519 public key: expected the base64 of its"
        " 32 raw bytes, as printed by 'opskit change keygen'"
    )


def test_a_real_signing_key_is_accepted(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from opskit.changes.signing import public_key_b64

    key = public_key_b64(Ed25519PrivateKey.generate())
    (tmp_path / "inventories" / "example").mkdir(parents=True)
    path = tmp_path / "opskit.yaml"
    path.write_text(PEOPLE + f"  erin: {{roles: [auditor], signing_key: '{key}'}}\n")
    policy = load_policy(path, inventories_dir=tmp_path / "inventories")
    assert policy.people["erin"].signing_key == key


def test_an_inventory_that_does_not_exist(tmp_path: Path) -> None:
    text = "inventory: exmaple\n" + PEOPLE
    assert refused(tmp_path, text, inventories=("example", "lab")) == (
        f":1 [inventory]: no inventory 'exmaple' in {tmp_path / 'inventories'};"
        " did you mean 'example'?"
    )
    text = "inventory: prod\n" + PEOPLE
    assert refused(tmp_path, text, inventories=("example", "lab")).endswith(
        "no inventory 'prod' in " + str(tmp_path / "inventories") + " (have: example, lab)"
    )
    # The default ("example") must exist too.
    assert refused(tmp_path / "bare", PEOPLE, inventories=()) == (
        f":1 [inventory]: no inventory 'example' (the default) in {tmp_path / 'bare/inventories'}:"
        " it has none; 'opskit init --examples' adds the shipped ones"
    )


def test_an_inventory_name_outside_inventories(tmp_path: Path) -> None:
    message = refused(tmp_path, "inventory: ../../etc\n" + PEOPLE)
    assert message.startswith(":1 [inventory]: '../../etc' is not an inventory name")
    # Too long for a file name: an error of its own, not the file system's OSError.
    message = refused(tmp_path, f"inventory: {'a' * 300}\n" + PEOPLE)
    assert message.endswith("is not an inventory name: use a folder name under inventories/")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            PEOPLE + "inventroy: example\n",
            ":6 [inventroy]: unknown field 'inventroy'; did you mean 'inventory'?",
        ),
        (
            PEOPLE + "approvals:\n  mediun: {roles: [cab], count: 2}\n",
            ":7 [approvals.mediun]: unknown field 'mediun'; did you mean 'medium'?",
        ),
        (
            PEOPLE + "  erin: {rols: [auditor]}\n",
            ":6 [people.erin.rols]: unknown field 'rols'; did you mean 'roles'?",
        ),
        (
            "people:\n  bob: {roles: [change_manager, goverance]}\n",
            ":2 [people.bob.roles[1]]: must be one of requester, change_manager, cab, governance,"
            " implementer, auditor (got 'goverance'); did you mean 'governance'?",
        ),
    ],
)
def test_unknown_names_get_a_suggestion(tmp_path: Path, text: str, expected: str) -> None:
    assert refused(tmp_path, text).startswith(expected)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("retention_days: .nan", "retention_days"),
        ("version: .inf", "version"),
        ("approvals: {low: {roles: [change_manager], count: -.inf}}", "approvals.low.count"),
        ("concurrency: [{group: core, max_changing: .NaN}]", "concurrency[0].max_changing"),
    ],
)
def test_nan_and_infinity_are_refused(tmp_path: Path, line: str, field: str) -> None:
    message = refused(tmp_path, PEOPLE + line + "\n")
    assert re.fullmatch(rf":6 \[{re.escape(field)}\]: -?(nan|inf) is not a finite number", message)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # YAML reads 22:00 as 1320 (base 60), which would become 00:22.
        (
            "windows: [{name: nightly, start: 22:00, end: '05:00'}]",
            ':6 [windows[0].start]: must be a time of day in quotes, e.g. "22:00" (got 1320)',
        ),
        (
            "freezes: [{name: f, start: 0, end: 1}]",
            ":6 [freezes[0].start]: must be a date and time with an offset",
        ),
        ("require_signed_approvals: 1", ":6 [require_signed_approvals]: must be true or false"),
        (
            "approvals: {low: {roles: [change_manager], count: true}}",
            ":6 [approvals.low.count]: must be an integer (got True)",
        ),
        (
            "windows: [{name: w, start: '1:00', end: '2:00', days: []}]",
            ":6 [windows[0].days]: must not be empty",
        ),
        ("retention_days: 0", ":6 [retention_days]: must be at least 1 (got 0)"),
    ],
)
def test_values_pydantic_would_coerce_are_refused(tmp_path: Path, line: str, expected: str) -> None:
    assert refused(tmp_path, PEOPLE + line + "\n").startswith(expected)


def test_invalid_yaml_is_a_policy_error(tmp_path: Path) -> None:
    assert refused(tmp_path, "people: [\n").startswith(":2: invalid YAML")
    assert refused(tmp_path, "people: {}\npeople: {}\n").startswith(":2: invalid YAML: duplicate")


def opskit(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(ws), "--as", "alice", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def ledger_rows(ws: Workspace) -> int:
    with sqlite3.connect(ws.state_dir / "opskit.db") as db:
        return db.execute("SELECT count(*) FROM ledger_events").fetchone()[0]


@pytest.mark.parametrize(
    "text",
    ["", "version: 99\n", PEOPLE + "approvals:\n  medium: {roles: [cab], count: 5}\n"],
    ids=["empty", "version", "quorum"],
)
def test_a_broken_policy_records_nothing(workspace: Workspace, text: str) -> None:
    """Before the fix an empty policy let `change create` fail on "alice is not
    a requester" and that refusal was written to the ledger."""
    before = ledger_rows(workspace)
    workspace.policy_path.write_text(text)
    result = opskit(
        workspace.root,
        "change",
        "create",
        "--runbook",
        "config-backup@1.0.0",
        "--select",
        "group:core",
        "--title",
        "backup",
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"{workspace.policy_path}:" in line
    assert ledger_rows(workspace) == before


@pytest.mark.parametrize(
    ("runner", "field"),
    [
        ("{kind: process, processes: 0}", "runner.processes"),
        ("{kind: process, processes: many}", "runner.processes"),
        ("{kind: forks}", "runner.kind"),
    ],
)
def test_a_bad_runner_names_its_field(tmp_path: Path, runner: str, field: str) -> None:
    message = refused(tmp_path, PEOPLE + f"runner: {runner}\n")
    assert message.startswith(f":6 [{field}]: "), message
