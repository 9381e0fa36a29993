"""The per-host executor against the lab: emulated IOS switches (fake-switches),
real sshd hosts, real ansible-runner runs, NAPALM's mock driver and the real
ledger. Every test puts the devices back as it found them."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit import configdiff
from opskit.connectors.netmiko import NetmikoConnector
from opskit.connectors.pool import ConnectionPool
from opskit.hoststate import HostState
from opskit.inventory.model import CI, CIType
from opskit.ledger import Ledger
from opskit.runbooks import RunbookCatalog, Snapshot, rollback_host, run_host
from opskit.runbooks.executor import predict_diff
from opskit.runbooks.inspection import backup_log, run_inspection
from opskit.secrets import REDACTOR
from opskit.workspace import Workspace
from tests.fixtures.lab import restored_switch, running_config
from tests.fixtures.processes import read_bytes_elsewhere
from tests.recording import Recorder

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VLAN = {"vlan_id": 351, "vlan_name": "exec-test", "interface": "FastEthernet0/9"}


@pytest.fixture
def catalog() -> RunbookCatalog:
    return RunbookCatalog(REPO)


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(max_sessions=10) as connection_pool:
        yield connection_pool


running = running_config


@pytest.fixture
def switch(lab) -> Iterator[CI]:
    """A lab switch, restored (and checked) after the test."""
    yield from restored_switch(lab.switches[1])


def test_vlan_interface_applied_verified_and_rolled_back_later(
    switch: CI, catalog: RunbookCatalog, pool: ConnectionPool
) -> None:
    book = catalog.get("vlan-interface@1.0.0")
    params = book.validate_params(VLAN)
    before = running(switch)
    recorder = Recorder()
    run = run_host(book, switch, params, pool=pool, recorder=recorder)
    assert run.status == HostState.COMPLETED, run.error
    assert recorder.kinds == ["host.precheck", "host.backup", "host.applied", "host.verified"]
    # The snapshot went to the recorder (the ledger's blob store) before apply.
    backup, blobs = recorder.get("host.backup")
    assert blobs is not None and configdiff.equal(blobs["config"], before, "cisco_ios")[0]
    assert backup["snapshot"]["hash"] == configdiff.config_hash(before, "cisco_ios")
    applied, _ = recorder.get("host.applied")
    step = applied["steps"][0]
    assert step["commands"][:2] == ["vlan 351", " name exec-test"]
    assert step["transcript"] and step["transcript"][0]["command"].startswith("vlan 351")
    verified, verified_blobs = recorder.get("host.verified")
    assert [e["passed"] for s in verified["steps"] for e in s["expectations"]] == [True, True, True]
    assert verified_blobs is not None and "+ name exec-test" in verified_blobs["diff"]
    now = running(switch)
    assert (
        configdiff.missing_lines(
            now, ["interface FastEthernet0/9", " switchport access vlan 351"], "cisco_ios"
        )
        == []
    )
    assert verified["config_hash"] == configdiff.config_hash(now, "cisco_ios")

    # `opskit change rollback` of the completed change: back to the snapshot, proven.
    undo = Recorder()
    snapshot = Snapshot.from_blobs(blobs, platform="cisco_ios", connector="netmiko")
    rolled = rollback_host(book, switch, snapshot, pool, undo)
    assert rolled.status == HostState.ROLLED_BACK
    proof = undo.get("host.rolled_back")[0]["proof"]
    assert proof["equal"] is True and proof["snapshot_hash"] == proof["after_hash"]
    assert proof["method"] == "remediation"
    assert configdiff.equal(before, running(switch), "cisco_ios") == (True, "")


def failing_version(ws: Workspace) -> RunbookCatalog:
    """vlan-interface 1.0.1: the same change, with a verification the device fails."""
    source = ws.runbooks_dir / "vlan-interface" / "1.0.0.yaml"
    text = source.read_text().replace("version: 1.0.0", "version: 1.0.1", 1)
    text = text.replace(
        'equals: "{{ params.vlan_name }}"', 'equals: "{{ params.vlan_name }}-expected"'
    )
    (ws.runbooks_dir / "vlan-interface" / "1.0.1.yaml").write_text(text)
    return RunbookCatalog(ws)


def test_verification_failure_triggers_auto_rollback_with_proof(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    catalog = failing_version(workspace)
    book = catalog.get("vlan-interface@1.0.1")
    before = running(switch)
    recorder = Recorder(Ledger.open(workspace))
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
    assert run.status == HostState.ROLLED_BACK, (run.error, recorder.kinds)
    assert run.failed_phase == "verify" and "exec-test-expected" in (run.error or "")
    assert recorder.kinds == [
        "host.precheck",
        "host.backup",
        "host.applied",
        "host.verify_failed",
        "host.rolled_back",
        "host.failed",
    ]
    proof = recorder.get("host.rolled_back")[0]["proof"]
    assert proof == {
        "method": "remediation",
        "snapshot_hash": configdiff.config_hash(before, "cisco_ios"),
        "after_hash": configdiff.config_hash(before, "cisco_ios"),
        "equal": True,
        "residual_diff": "",
        "ignored_volatile": list(configdiff.VOLATILE["cisco_ios"]),
    }
    restore = next(s for s in run.steps if s.phase == "rollback")
    assert "no vlan 351" in restore.commands
    # Independently of the proof: the device is exactly as before.
    assert configdiff.equal(before, running(switch), "cisco_ios") == (True, "")
    # The whole story is in the real ledger, snapshot blob included.
    ledger = recorder.ledger
    assert ledger is not None and ledger.verify().ok
    events = list(ledger.events(change_id="CHG-TEST"))
    assert [e.kind for e in events] == recorder.kinds
    snapshot_blob = ledger.get_blob(events[1].blobs["config"]).decode()
    assert configdiff.equal(snapshot_blob, before, "cisco_ios")[0]


def test_an_incomplete_rollback_is_caught_by_the_proof(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    """A rollback that forgets a line does not pass: the proof names the residue."""
    path = workspace.runbooks_dir / "vlan-interface" / "1.0.0.yaml"
    text = path.read_text().replace("version: 1.0.0", "version: 1.0.2", 1)
    text = text.replace(
        "rollback: auto\n",
        "rollback:\n  - name: remove only the VLAN\n    connector: netmiko\n"
        "    action: config\n    params:\n      lines: ['no vlan {{ params.vlan_id }}']\n",
    )
    (path.parent / "1.0.2.yaml").write_text(text)
    book = RunbookCatalog(workspace).get("vlan-interface@1.0.2")
    before = running(switch)
    with NetmikoConnector(switch) as conn:
        conn.apply_config(["vlan 351", " name exec-test", "exit", "interface FastEthernet0/9",
                           " description left behind", "exit"])  # fmt: skip
    recorder = Recorder()
    run = rollback_host(book, switch, before, pool, recorder, params=book.validate_params(VLAN))
    assert run.status == HostState.ROLLBACK_FAILED
    payload = recorder.get("host.rollback_failed")[0]
    assert payload["proof"]["equal"] is False
    assert "+ description left behind" in payload["proof"]["residual_diff"]
    assert payload["proof"]["snapshot_hash"] != payload["proof"]["after_hash"]
    # Put the switch back properly: the automatic rollback of the same snapshot.
    fixed = rollback_host(RunbookCatalog(REPO).get("vlan-interface@1.0.0"), switch, before, pool)
    assert fixed.status == HostState.ROLLED_BACK and fixed.proof and fixed.proof["equal"]


def test_dry_run_changes_nothing(switch: CI, catalog: RunbookCatalog, pool: ConnectionPool) -> None:
    book = catalog.get("vlan-interface")
    before = running(switch)
    recorder = Recorder()
    run = run_host(
        book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder, dry_run=True
    )
    assert run.status == HostState.DRY_RUN
    assert recorder.kinds == ["host.dry_run"]
    diff = run.predicted_diff or ""
    assert "+ vlan 351" in diff and "+ switchport access vlan 351" in diff
    assert running(switch) == before  # byte for byte
    assert predict_diff(book, switch, book.validate_params(VLAN), pool) == run.predicted_diff
    assert running(switch) == before


def test_a_rejected_line_rolls_back_what_was_applied(
    switch: CI, catalog: RunbookCatalog, pool: ConnectionPool
) -> None:
    book = catalog.get("vlan-interface")
    before = running(switch)
    params = book.validate_params({**VLAN, "interface": "FastEthernet0/99"})  # no such port
    recorder = Recorder()
    run = run_host(book, switch, params, pool=pool, recorder=recorder)
    assert run.failed_phase == "apply" and "rejected" in (run.error or "")
    assert run.status == HostState.ROLLED_BACK  # the VLAN created before the bad line is gone
    assert recorder.kinds == ["host.precheck", "host.backup", "host.rolled_back", "host.failed"]
    assert configdiff.equal(before, running(switch), "cisco_ios") == (True, "")


@pytest.fixture
def linux(lab) -> CI:
    if not lab.linux_hosts:
        pytest.skip("no sshd lab host (Debian's openssh-server is not installed)")
    return lab.linux_hosts[0]


def test_config_backup_and_inspection_report(
    switch: CI, linux: CI, workspace: Workspace, catalog: RunbookCatalog, pool: ConnectionPool
) -> None:
    ledger = Ledger.open(workspace)
    backup = catalog.get("config-backup")
    assert backup.standard
    recorder = Recorder(ledger)
    for ci in (switch, linux):
        run = run_host(backup, ci, backup.validate_params({}), pool=pool, recorder=recorder)
        assert run.status == HostState.COMPLETED, run.error
    log = backup_log(ledger)
    assert [entry["ci"] for entry in log] == [switch.name, linux.name]
    assert log[0]["hash"] == configdiff.config_hash(running(switch), "cisco_ios")
    assert configdiff.equal(
        ledger.get_blob(log[0]["blobs"]["config"]).decode(), running(switch), "cisco_ios"
    )[0]
    assert sorted(log[1]["blobs"]) == [
        f"file:{p}"
        for p in sorted(["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/ssh/sshd_config"])
    ]
    assert (
        ledger.get_blob(log[1]["blobs"]["file:/etc/hostname"]).decode()
        == Path("/etc/hostname").read_text()
    )

    inspection = catalog.get("inspection")
    # An unsaved edit on the switch (whether or not it was ever saved before).
    with NetmikoConnector(switch) as conn:
        conn.apply_config(["vlan 352", " name unsaved", "exit"])
    try:
        report, runs = run_inspection(inspection, [linux, switch], pool=pool, ledger=ledger)
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config(["no vlan 352"])
    assert all(r.status == HostState.COMPLETED for r in runs)
    data = report.to_dict()
    # Exceptions first: hosts with exceptions before clean hosts, and in each
    # host its exceptions before unavailable and passed checks.
    ranks = [0 if h["exceptions"] else 1 for h in data["hosts"]]
    assert ranks == sorted(ranks)
    order = {"exception": 0, "unavailable": 1, "ok": 2}
    for host in data["hosts"]:
        statuses = [order[f["status"]] for f in host["findings"]]
        assert statuses == sorted(statuses)
    # The switch's running configuration differs from its startup one.
    unsaved = [e for e in data["exceptions"] if e["ci"] == switch.name]
    assert unsaved[0]["check"] == "unsaved_config"
    assert "startup configuration" in unsaved[0]["detail"]
    by_host = {h["ci"]: h for h in data["hosts"]}
    switch_checks = {f["check"]: f["status"] for f in by_host[switch.name]["findings"]}
    assert switch_checks["version"] == "ok" and switch_checks["backup_age"] == "ok"
    # The emulator has no CPU/memory counters: reported, not invented.
    assert switch_checks["cpu"] == "unavailable"
    linux_checks = {f["check"]: f["status"] for f in by_host[linux.name]["findings"]}
    assert set(linux_checks) == {
        "version",
        "cpu",
        "memory",
        "disk",
        "interface_errors",
        "backup_age",
    }
    assert linux_checks["backup_age"] == "ok"
    markdown = report.to_markdown()
    assert (
        markdown.index("## Exceptions")
        < markdown.index("unsaved_config")
        < markdown.index("## All checks")
    )
    # A threshold the host cannot meet is an exception, with the value.
    strict = inspection.validate_params({"disk_max_percent": 0})
    [tight] = [run_host(inspection, linux, strict, pool=pool)]
    disk = [e for e in tight.exceptions if e["check"] == "disk"]
    assert disk and disk[0]["severity"] == "exception" and "out of limits" in disk[0]["detail"]


@pytest.fixture
def rotation_user() -> Iterator[str]:
    """A local account on this machine (the sshd lab host is this machine)."""
    name = f"opskit-rot-{uuid.uuid4().hex[:6]}"
    subprocess.run(
        ["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=False, capture_output=True
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.mark.slow
@pytest.mark.sshd
def test_user_rotation_keeps_the_secret_out_of_every_record(
    lab, linux: CI, rotation_user: str, workspace: Workspace, catalog: RunbookCatalog,
    pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    if os.geteuid() != 0:
        pytest.skip("creating a local account needs root")
    secret = "Canary-Rotation-Secret-7f3a91"
    monkeypatch.setenv("OPSKIT_TEST_NEW_PASSWORD", secret)
    book = catalog.get("user-rotation")
    params = book.validate_params(
        {"username": rotation_user, "new_password": {"env": "OPSKIT_TEST_NEW_PASSWORD"}}
    )
    assert secret not in json.dumps(params)  # the change holds the reference only
    ledger = Ledger.open(workspace)
    recorder = Recorder(ledger)
    linux_run = run_host(book, linux, params, pool=pool, recorder=recorder)
    assert linux_run.status == HostState.COMPLETED, linux_run.error
    shadow = subprocess.run(
        ["getent", "shadow", rotation_user], capture_output=True, text=True
    ).stdout
    assert shadow.split(":")[1].startswith("$6$")
    check = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", shadow.split(":")[1].split("$")[2], "-stdin"],
        input=secret, capture_output=True, text=True,
    )  # fmt: skip
    assert check.stdout.strip() == shadow.split(":")[1]  # the new password is the one set
    # The lab's IOS emulator keeps local users: the change completes (its
    # verify step reads the user back) and is undone here.
    switch = lab.switch
    before = running(switch)
    switch_run = run_host(book, switch, params, pool=pool, recorder=recorder)
    assert switch_run.status == HostState.COMPLETED, switch_run.error
    assert before != running(switch)
    undo = rollback_host(book, switch, switch_run.snapshot, pool, recorder, params=params)
    assert undo.status == HostState.ROLLED_BACK
    assert configdiff.equal(before, running(switch), "cisco_ios")[0]
    # Nowhere: recorder payloads and blobs, host results, transcripts, the ledger file.
    assert REDACTOR.find(secret)
    everything = recorder.dump() + json.dumps(
        [linux_run.to_dict(), switch_run.to_dict()], default=str
    )
    assert secret not in everything
    assert "********" in everything
    for event in ledger.events():
        assert secret not in json.dumps(event.to_dict())
    database = workspace.state_dir / "opskit.db"
    for path in [database, *database.parent.glob("opskit.db-*")]:
        assert secret.encode() not in read_bytes_elsewhere(path)


def package_installed(name: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
    )
    return result.stdout == "install ok installed"


@pytest.mark.slow
@pytest.mark.sshd
def test_linux_change_through_ansible_then_rolled_back(
    linux: CI, catalog: RunbookCatalog, pool: ConnectionPool, tmp_path: Path
) -> None:
    lab_linux = dataclasses.replace(
        linux,
        connection_options={**linux.connection_options,
                            "ansible": {**linux.connection_options.get("ansible", {}),
                                        "host_key_checking": False}},
    )  # fmt: skip
    book = catalog.get("linux-change")
    root = tmp_path / "demo"
    package = "" if package_installed("pv") else "pv"  # never remove what we did not install
    params = book.validate_params(
        {"root": str(root), "package": package, "message": "canary 42", "interval": 2}
    )
    recorder = Recorder()
    run = None
    try:
        run = run_host(book, lab_linux, params, pool=pool, recorder=recorder)
        assert run.status == HostState.COMPLETED, run.error
        assert recorder.kinds == ["host.precheck", "host.backup", "host.applied", "host.verified"]
        assert run.snapshot is not None and run.snapshot.absent == sorted(
            [f"{root}/etc/opskit-demo.conf", f"{root}/bin/opskit-demo-service"]
        )
        verify = next(s for s in run.steps if s.phase == "verify")
        assert [e.kind for e in verify.expectations] == ["ansible_assert"]
        assert verify.expectations[0].passed
        assert "message = canary 42" in (root / "etc" / "opskit-demo.conf").read_text()
        assert not package or package_installed(package)
        assert "+message = canary 42" in (run.diff or "")
    finally:
        undo = rollback_host(
            book,
            lab_linux,
            # Whatever happened, the machine goes back (no snapshot: nothing existed).
            (run.snapshot if run is not None else None) or Snapshot("fabric", "files", "linux"),
            pool,
            Recorder(),
            params=params,
        )
    assert undo.status == HostState.ROLLED_BACK, undo.error
    assert undo.proof is not None and undo.proof["equal"] is True
    assert not root.exists()
    assert not package or not package_installed(package)


NAPALM_RUNNING = (
    "hostname mock-r1\n!\nvlan 1\n!\ninterface GigabitEthernet0/0/0\n description uplink\n!\nend\n"
)
NAPALM_MERGED = NAPALM_RUNNING.replace("!\nend", "!\nvlan 400\n name mocked-vlan\n!\nend")


def napalm_ci(tmp_path: Path, *, complies: bool) -> CI:
    """A CI on NAPALM's mock driver: each file is one scripted device answer."""
    answers = tmp_path / "mock"
    answers.mkdir()
    config = {"startup": "", "candidate": ""}
    files: dict[str, Any] = {
        "get_facts.1": {"hostname": "mock-r1", "os_version": "16.9.4", "vendor": "Cisco"},
        "get_config.1": {**config, "running": NAPALM_RUNNING},  # the snapshot
        "load_merge_candidate.1": {},
        "compare_config.1": {"diff": "+vlan 400\n+ name mocked-vlan"},
        "commit_config.1": {},
        "get_config.2": {**config, "running": NAPALM_MERGED},  # verify
        "get_facts.2": {"hostname": "mock-r1"},
        "get_vlans.1": {"400": {"name": "mocked-vlan" if complies else "other", "interfaces": []}},
        "confirm_commit.1": {},
        # After confirm: the change; after a native rollback: the snapshot again.
        "get_config.3": {**config, "running": NAPALM_MERGED if complies else NAPALM_RUNNING},
    }
    for name, data in files.items():
        (answers / name).write_text(json.dumps(data))
    return CI(
        name="mock-r1",
        type=CIType.ROUTER,
        platform="cisco_ios",
        host="192.0.2.1",
        credentials={"username": "admin"},
        connection_options={"napalm": {"driver": "mock", "optional_args": {"path": str(answers)}}},
    )


@pytest.mark.parametrize("complies", [True, False])
def test_napalm_merge_with_commit_confirm_and_native_rollback(
    tmp_path: Path, catalog: RunbookCatalog, pool: ConnectionPool, complies: bool
) -> None:
    book = catalog.get("napalm-merge")
    ci = napalm_ci(tmp_path, complies=complies)
    params = book.validate_params(
        {
            "lines": ["vlan 400", " name mocked-vlan"],
            "confirm_seconds": 120,
            "validation": {"get_vlans": {"400": {"name": "mocked-vlan"}}},
        }
    )
    recorder = Recorder()
    run = run_host(book, ci, params, pool=pool, recorder=recorder)
    applied = recorder.get("host.applied")[0]["steps"][0]
    assert "commit_config revert_in=120" in [t["command"] for t in applied["transcript"]]
    assert applied["diff"] == "+vlan 400\n+ name mocked-vlan"
    if complies:
        assert run.status == HostState.COMPLETED, run.error
        assert recorder.kinds == [
            "host.precheck",
            "host.backup",
            "host.applied",
            "host.confirmed",
            "host.verified",
        ]
        assert [t["command"] for t in recorder.get("host.confirmed")[0]["transcript"]] == [
            "confirm_commit"
        ]
    else:
        assert run.status == HostState.ROLLED_BACK
        assert "does not comply" in (run.error or "")
        assert "host.confirmed" not in recorder.kinds  # never confirmed: reverted instead
        payload = recorder.get("host.rolled_back")[0]
        assert payload["proof"]["method"] == "native_rollback" and payload["proof"]["equal"]
        restore = payload["steps"][0]
        # The native rollback, then the fetch that proved it (no second fetch).
        assert [t["command"] for t in restore["transcript"]] == ["rollback", "get_config running"]
        assert restore["data"]["attempts"][0]["method"] == "native_rollback"


def test_rollback_mode_never_leaves_the_host_to_the_caller(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    """Strategy `stop`: the failed host stays as it is; the engine decides later."""
    book = failing_version(workspace).get("vlan-interface@1.0.1")
    before = running(switch)
    recorder = Recorder()
    run = run_host(
        book,
        switch,
        book.validate_params(VLAN),
        pool=pool,
        recorder=recorder,
        rollback_mode="never",
    )
    assert run.status == HostState.FAILED and run.failed_phase == "verify"
    assert recorder.kinds[-2:] == ["host.verify_failed", "host.failed"]
    assert recorder.get("host.failed")[0]["rolled_back"] is False
    assert not configdiff.equal(before, running(switch), "cisco_ios")[0]  # still changed
    undo = rollback_host(book, switch, run.snapshot, pool)
    assert undo.status == HostState.ROLLED_BACK
    assert configdiff.equal(before, running(switch), "cisco_ios") == (True, "")


def test_a_connector_bug_mid_apply_still_rolls_back(
    switch: CI,
    catalog: RunbookCatalog,
    pool: ConnectionPool,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Fault injection (a real device cannot produce it): the library raises an
    unexpected exception after the lines reached the device, quoting a secret."""
    secret = "Canary-Bug-Secret-51e0"
    REDACTOR.register(secret)
    real_apply = NetmikoConnector.apply_config
    calls: list[int] = []

    def crash_after_first_apply(self: NetmikoConnector, lines: Any, **kwargs: Any) -> Any:
        result = real_apply(self, lines, **kwargs)
        calls.append(len(lines))
        if len(calls) == 1:
            raise RuntimeError(f"library bug after sending the lines (key {secret})")
        return result

    monkeypatch.setattr(NetmikoConnector, "apply_config", crash_after_first_apply)
    book = catalog.get("vlan-interface")
    before = running(switch)
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=Recorder())
    assert run.failed_phase == "apply"
    assert "internal error in netmiko config: RuntimeError" in (run.error or "")
    # The log keeps the traceback for the bug, never the secret it quoted.
    assert "crash_after_first_apply" in caplog.text and "********" in caplog.text
    assert secret not in caplog.text and secret not in (run.error or "")
    assert run.status == HostState.ROLLED_BACK and run.proof and run.proof["equal"]
    assert len(calls) == 2  # the change, then the remediation
    assert configdiff.equal(before, running(switch), "cisco_ios") == (True, "")


def test_file_snapshots_compare_absent_and_present_files() -> None:
    before = Snapshot(
        "fabric", "files", "linux", files={"/etc/app.conf": None, "/etc/hosts": "a\n"}
    )
    blobs = before.blobs()
    assert blobs == {"file:/etc/hosts": "a\n"}  # an absent file has no blob
    rebuilt = Snapshot.from_blobs(blobs, platform="linux", connector="fabric", absent=before.absent)
    assert rebuilt.hash == before.hash and rebuilt.compare(before) == (True, "")
    created = Snapshot(
        "fabric", "files", "linux", files={"/etc/app.conf": "x=1\n", "/etc/hosts": "a\n"}
    )
    equal, residual = before.compare(created)
    assert not equal and "+x=1" in residual and "/dev/null" in residual
    edited = Snapshot(
        "fabric", "files", "linux", files={"/etc/app.conf": None, "/etc/hosts": "b\n"}
    )
    equal, residual = before.compare(edited)
    assert not equal and "-a" in residual and "+b" in residual


def test_record_ready_redacts_every_string_and_keeps_the_ledger_subset() -> None:
    from datetime import UTC, datetime

    from opskit.hoststate import HostState
    from opskit.runbooks.executor import record_ready

    secret = f"rr-{uuid.uuid4().hex}"
    REDACTOR.register(secret)
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ready = record_ready(
        {
            "steps": (
                {"output": f"password {secret}\n", "duration": 1.0, "ratio": 0.25},
                {f"key {secret}": [HostState.OK, at, {"b", "a"}, None, True, 3]},
            ),
            7: secret,
        }
    )
    text = json.dumps(ready)
    assert secret not in text
    assert ready == {
        "steps": [
            {"output": "password ********\n", "duration": 1, "ratio": "0.25"},
            {"key ********": ["ok", at.isoformat(), ["a", "b"], None, True, 3]},
        ],
        "7": "********",
    }


def test_step_transcripts_carry_every_field_of_the_connector_transcript() -> None:
    from datetime import UTC, datetime

    from opskit.connectors.base import TranscriptEntry
    from opskit.hoststate import HostState
    from opskit.runbooks.records import transcript as _transcript

    entry = TranscriptEntry(
        "show version", "IOS 12.1", datetime.now(UTC), 0.0123, HostState.REJECTED
    )

    class Transcribed:
        def take_transcript(self) -> list[TranscriptEntry]:
            return [entry]

    expected = entry.to_dict()
    expected["duration_ms"] = round(expected.pop("duration") * 1000)
    assert _transcript(Transcribed()) == [expected]  # type: ignore[arg-type]
