"""Configuration backups against the lab switches: deduplication, history
with the change engine's snapshots, diff, restore as a change (four-eyes),
an unreachable device, and no secret in anything recorded."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit import configdiff
from opskit.backups import (
    backup_diff,
    backup_history,
    config_of,
    resolve,
    restore_change,
    take_backups,
)
from opskit.changes import ChangeService
from opskit.connectors.netmiko import NetmikoConnector
from opskit.errors import ChangeError, ChangeRefused, UsageError
from opskit.ledger.core import Ledger
from opskit.ledger.store import BLOBS
from opskit.runbooks.inspection import last_backup_times
from tests.fixtures.lab import LabEnv, running_config
from tests.fixtures.processes import read_bytes_elsewhere

pytestmark = [pytest.mark.lab]


def _blob_count(ledger: Ledger) -> int:
    return next(iter(ledger.reader().query(f"SELECT count(*) FROM {BLOBS}")))[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def broken_inventory(lab: LabEnv) -> Iterator[str]:
    """The lab's inventory plus a switch nobody listens for."""
    source = (lab.inventory_path / "lab.yaml").read_text()
    first = source.index("- name: lab-sw01")
    entry = source[first : source.index("- name:", first + 1)]
    ghost = entry.replace("lab-sw01", "lab-ghost").replace(
        f"port: {lab.switch.port}", f"port: {_closed_port()}"
    )
    folder = lab.ws.inventories_dir / "lab-ghost"
    folder.mkdir(exist_ok=True)
    (folder / "lab.yaml").write_text(source.rstrip("\n") + "\n" + ghost)
    yield "lab-ghost"


def test_an_unchanged_configuration_adds_a_record_not_a_blob(lab: LabEnv) -> None:
    ledger = Ledger.open(lab.ws)
    names = [ci.name for ci in lab.switches[:2]]
    select = " or ".join(f"name:{n}" for n in names)
    first_at = datetime.now(UTC).isoformat()
    first = take_backups(lab.ws, "alice", select=select, inventory="lab")
    assert [r.status for r in first.results] != [] and first.ok
    # The emulator answers "startup-config is not present": no startup blob is made of that.
    assert not any(r.startup for r in first.results)
    blobs = _blob_count(ledger)
    again = take_backups(lab.ws, "alice", select=select, inventory="lab")
    assert [r.status for r in again.results] == ["unchanged", "unchanged"]
    assert _blob_count(ledger) == blobs
    for name in names:
        history = backup_history(ledger, name)
        assert history[-1].unchanged and history[-1].blob == history[-2].blob
        assert history[-1].startup_blob is None
        assert config_of(ledger, history[-1]) == running_config(lab.ci(name))
    # The inspection report's backup age counts a backup run's backups too.
    ages = last_backup_times(ledger, names)
    assert all(ages[n] is not None and ages[n].isoformat() >= first_at for n in names)
    assert ledger.verify().ok


def test_unreachable_device_is_recorded_and_the_run_goes_on(
    lab: LabEnv, broken_inventory: str
) -> None:
    run = take_backups(
        lab.ws, "alice", select="name:lab-ghost or name:lab-sw01", inventory=broken_inventory
    )
    by_ci = {r.ci: r for r in run.results}
    assert by_ci["lab-sw01"].ok
    assert by_ci["lab-ghost"].status == "unreachable" and not run.ok
    failed = list(Ledger.open(lab.ws).events(ci="lab-ghost", kind="backup.failed"))
    assert failed[-1].payload["status"] == "unreachable"
    assert "lab-ghost" in failed[-1].payload["reason"]


def test_diff_restore_change_four_eyes_and_history(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    ledger = Ledger.open(lab.ws)
    original = running_config(ci)
    take_backups(lab.ws, "alice", select=f"name:{ci.name}", inventory="lab")
    with NetmikoConnector(ci) as conn:
        conn.apply_config(["vlan 377", " name drifted", "exit"])
    take_backups(lab.ws, "alice", select=f"name:{ci.name}", inventory="lab")
    history = backup_history(ledger, ci.name)
    clean, drifted = history[-2], history[-1]
    text = backup_diff(ledger, resolve(history, "latest~1", ci=ci.name), history[-1])
    assert "+vlan 377" in text and "+ name drifted" in text

    svc = ChangeService(lab.ws)
    change = restore_change(svc, ci.name, "latest~1", requester="alice", inventory="lab")
    assert change.runbook_ref == "config-lines@1.0.0"
    assert change.parameters["lines"] == {ci.name: ["no vlan 377"]}
    svc.submit(change.id, "alice")
    assessed = svc.assess(change.id, "bob")
    assert "- vlan 377" in assessed.predicted_diff[ci.name]["diff"]
    with pytest.raises(ChangeRefused, match="four-eyes"):
        svc.approve(change.id, "alice")
    svc.approve(change.id, "bob")
    svc.approve(change.id, "carol")
    summary = svc.apply(change.id, "alice")
    assert summary["state"] == "completed"
    assert configdiff.equal(running_config(ci), original, "cisco_ios")[0]
    # The change's own pre-change snapshot is in the same history, not copied.
    snapshot = backup_history(ledger, ci.name)[-1]
    assert (snapshot.origin, snapshot.change_id) == ("change", change.id)
    assert snapshot.blob == drifted.blob
    assert not list(ledger.events(change_id=change.id, kind="backup.taken"))
    with pytest.raises(ChangeError, match="already equals"):
        restore_change(svc, ci.name, str(clean.seq), requester="alice", inventory="lab")


def test_cli_run_list_diff(lab: LabEnv) -> None:
    def opskit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opskit", "-w", str(lab.ws.root), "--as", "alice", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    name = lab.switch.name
    # Two runs, so `latest~1` exists however the tests were spread over workers.
    for _ in range(2):
        ran = opskit("backup", "run", "--inventory", "lab", "--select", f"name:{name}", "--json")
        assert ran.returncode == 0, ran.stderr
    listed = opskit("backup", "list", name)
    assert listed.returncode == 0 and "backup" in listed.stdout
    same = opskit("backup", "diff", name, "--from", "latest~1")
    assert same.returncode == 0 and "no difference" in same.stdout
    bad = opskit("backup", "diff", name, "--from", "latest~99999")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    unknown = opskit("backup", "diff", "no-such-ci")
    assert unknown.returncode == 2 and "no backup recorded" in unknown.stderr


def test_a_configuration_holding_a_secret_is_never_recorded(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    password = (lab.ws.state_dir / "lab" / "password").read_text().strip()
    ledger = Ledger.open(lab.ws)
    with NetmikoConnector(ci) as conn:
        conn.apply_config(["interface FastEthernet0/9", f" description {password}", "exit"])
    try:
        run = take_backups(lab.ws, "alice", select=f"name:{ci.name}", inventory="lab")
        assert run.results[0].status == "failed"
        assert "secret" in (run.results[0].reason or "")
    finally:
        with NetmikoConnector(ci) as conn:
            conn.apply_config(["interface FastEthernet0/9", " no description", "exit"])
    database = lab.ws.state_dir / "opskit.db"
    for path in database.parent.glob("opskit.db*"):
        assert password.encode() not in read_bytes_elsewhere(path)
    assert ledger.verify().ok


ISO_TIMES = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())


@given(st.text(max_size=40) | ISO_TIMES | st.dates().map(str))
def test_any_ref_is_a_backup_or_one_usage_error(ref: str) -> None:
    from opskit.backups.history import Backup

    history = [
        Backup(
            seq,
            f"2026-12-0{seq}T00:00:00.000000Z",
            "a",
            "sw",
            "backup",
            "running",
            "cisco_ios",
            f"sha256:{seq:064x}",
            f"sha256:{seq:064x}",
        )
        for seq in (1, 2, 3)
    ]
    try:
        found = resolve(history, ref, ci="sw")
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert found in history


def test_a_time_beyond_utc_is_one_usage_error() -> None:
    from opskit.backups.history import Backup

    at = "2026-12-01T00:00:00.000000Z"
    history = [Backup(1, at, "a", "sw", "backup", "running", None, None, "sha256:" + "0" * 64)]
    with pytest.raises(UsageError, match="ISO date"):  # was an OverflowError traceback
        resolve(history, "9999-12-31T23:59:59-23:59", ci="sw")
    assert resolve(history, "9999-12-31", ci="sw") == history[0]  # the end of that day
