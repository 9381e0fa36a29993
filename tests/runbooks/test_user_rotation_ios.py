"""The shipped user-rotation runbook on an emulated IOS switch: the lab's
fake-switches model knows `username ... secret` (hashed, type 9) and lets the
local user log in, so the rotation is checked on the device itself, and the
random secret is searched for in everything the run recorded."""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import uuid
from collections.abc import Iterator

import pytest

from opskit.connectors import AuthenticationError
from opskit.connectors.netmiko import NetmikoConnector
from opskit.connectors.pool import ConnectionPool
from opskit.hoststate import HostState
from opskit.inventory.model import CI
from opskit.ledger import Ledger
from opskit.runbooks import RunbookCatalog, rollback_host
from opskit.runbooks.executor import run_host
from opskit.secrets import REDACTOR, SecretRef
from opskit.workspace import Workspace
from tests.fixtures.lab import restored_switch, running_config
from tests.fixtures.processes import read_bytes_elsewhere
from tests.recording import Recorder

pytestmark = [pytest.mark.lab, pytest.mark.slow]

SECRET_VAR = "OPSKIT_TEST_IOS_ROTATION_SECRET"
OLD_SECRET_VAR = "OPSKIT_TEST_IOS_ROTATION_OLD_SECRET"


running = running_config


def user_lines(config: str, name: str) -> list[str]:
    return [line for line in config.splitlines() if line.startswith(f"username {name} ")]


def as_user(ci: CI, name: str, secret_var: str) -> CI:
    """The same switch, logged in to as the local user (password by reference)."""
    credentials = {**ci.credentials, "username": name, "password": SecretRef(env=secret_var)}
    return dataclasses.replace(ci, credentials=credentials)


def can_log_in(ci: CI) -> bool:
    try:
        with NetmikoConnector(ci) as conn:
            conn.send_commands(["show privilege"])
    except AuthenticationError:
        return False
    return True


@pytest.fixture
def switch(lab) -> Iterator[CI]:
    """A lab switch, checked (and restored) to be exactly as found after the test."""
    yield from restored_switch(lab.switches[2])


def test_ios_user_rotation_changes_the_secret_and_records_it_nowhere(
    switch: CI, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"rot{uuid.uuid4().hex[:6]}"
    old_secret = "Old-" + secrets.token_urlsafe(12)
    new_secret = "Rot-" + secrets.token_urlsafe(18)
    monkeypatch.setenv(OLD_SECRET_VAR, old_secret)
    monkeypatch.setenv(SECRET_VAR, new_secret)
    # The account exists with an old secret before the change.
    with NetmikoConnector(switch) as conn:
        conn.apply_config([f"username {name} privilege 15 secret {old_secret}"])
    try:
        before = running(switch)
        [old_line] = user_lines(before, name)
        assert re.fullmatch(
            rf"username {name} privilege 15 secret 9 \$9\$\S{{14}}\$\S{{43}}", old_line
        )
        assert old_secret not in before  # the device keeps only the hash
        assert can_log_in(as_user(switch, name, OLD_SECRET_VAR))

        book = RunbookCatalog(workspace).get("user-rotation@1.0.0")
        params = book.validate_params({"username": name, "new_password": {"env": SECRET_VAR}})
        assert new_secret not in json.dumps(params)  # the parameters hold the reference only
        ledger = Ledger.open(workspace)
        recorder = Recorder(ledger, change_id="CHG-ROT")
        with ConnectionPool(max_sessions=4) as pool:
            run = run_host(book, switch, params, pool=pool, recorder=recorder)
            assert run.status == HostState.COMPLETED, run.error
            assert recorder.kinds == ["host.backup", "host.applied", "host.verified"]

            # The rotation happened on the device: a new hash, and only the new secret logs in.
            rotated = running(switch)
            [new_line] = user_lines(rotated, name)
            assert new_line.startswith(f"username {name} privilege 15 secret 9 $9$")
            assert new_line != old_line
            assert can_log_in(as_user(switch, name, SECRET_VAR))
            assert not can_log_in(as_user(switch, name, OLD_SECRET_VAR))

            # Rolling the change back restores the old hash (hier_config: `no username`
            # then the snapshot's line with its type 9 hash), proven equal.
            undo = rollback_host(book, switch, run.snapshot, pool, recorder, params=params)
            assert undo.status == HostState.ROLLED_BACK, undo.error
            assert undo.proof is not None and undo.proof["equal"] is True
            assert user_lines(running(switch), name) == [old_line]
            assert can_log_in(as_user(switch, name, OLD_SECRET_VAR))

        # The new secret is nowhere: recorder payloads and blobs, host results with
        # their transcripts, the ledger's events and its database files.
        assert REDACTOR.find(new_secret)  # it was resolved and registered
        applied = next(step for step in run.steps if step.phase == "apply")
        assert applied.transcript, "the apply step has a transcript"
        everything = recorder.dump() + json.dumps([run.to_dict(), undo.to_dict()], default=str)
        assert f"username {name} privilege 15 secret ********" in everything
        assert new_secret not in everything
        for event in ledger.events():
            assert new_secret not in json.dumps(event.to_dict(), default=str)
        database = workspace.state_dir / "opskit.db"
        files = [database, *database.parent.glob("opskit.db-*")]
        files += [path for path in workspace.root.rglob("*") if path.is_file()]
        for path in files:
            assert new_secret.encode() not in read_bytes_elsewhere(path), path
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config([f"no username {name}"])
