"""The canary-secret test: plant unique secret values as credentials, run every
connector (netmiko, napalm, fabric, ansible) including error paths, then
search everything returned and everything written to disk for them.

The canaries: a fresh random value used as a Linux host's key passphrase and
sudo password, as an Ansible secret var and as a wrong device password; and
the lab's own random device password and enable secret. Commands that print
a secret on purpose (`cat` of the secret file) prove the redaction of
outputs rather than merely the absence of secrets.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from opskit.connectors import get_connector
from opskit.connectors.ansible import execute
from opskit.connectors.base import Connector
from opskit.connectors.fabric import FabricConnector
from opskit.errors import OpskitError
from opskit.inventory.model import CI
from opskit.secrets import SecretRef
from tests.fixtures.processes import crash_context
from tests.fixtures.sshd import SshdLabHost

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.sshd]

# Files above this size are not searched (none of ours comes close).
MAX_SCAN_BYTES = 50 * 1024 * 1024

CANARY_PLAYBOOK = """\
- name: Canary
  hosts: all
  gather_facts: false
  tasks:
    - name: Show the secret var
      ansible.builtin.debug:
        msg: "the secret is {{ canary_var }}"
    - name: Print the secret file
      ansible.builtin.command: cat {canary_file}
      when: opskit_secrets is defined and ansible_network_os is not defined
    - name: Print every credential
      ansible.builtin.debug:
        var: opskit_secrets
    - name: Show the version
      cisco.ios.ios_command:
        commands: [show version]
      when: ansible_network_os is defined
    - name: Fail with the secret on stderr
      ansible.builtin.shell: cat {canary_file} >&2; exit 3
      when: ansible_network_os is not defined
      ignore_errors: true
"""


def _scan(root: Path, needles: list[bytes], *, since: float, skip: set[Path]) -> list[str]:
    """Files under `root` written since `since` that contain a needle."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root, onerror=lambda _: None):
        dirs[:] = [d for d in dirs if Path(folder, d) not in skip]
        for name in files:
            path = Path(folder, name)
            if path in skip:
                continue
            try:
                info = path.lstat()
                if not path.is_file() or path.is_symlink() or info.st_size > MAX_SCAN_BYTES:
                    continue
                if max(info.st_mtime, info.st_ctime) < since:
                    continue
                data = path.read_bytes()
            except OSError:
                continue  # vanished, or another test's private file
            if any(needle in data for needle in needles):
                found.append(str(path))
    return found


class Evidence:
    """Everything the connectors returned or raised, as text to search."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.errors: list[str] = []

    def add(self, *objects: Any) -> None:
        self.items.extend(repr(o) for o in objects)

    def expect_error(self, call: Callable[[], Any]) -> OpskitError:
        try:
            call()
        except OpskitError as exc:
            self.errors.append(type(exc).__name__)
            self.add(str(exc), exc.args, getattr(exc, "output", None), exc.__cause__)
            return exc
        raise AssertionError("the error path did not fail")

    def transcript_of(self, connector: Connector) -> None:
        self.add([entry.to_dict() for entry in connector.transcript])


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    value = f"canary-{uuid.uuid4().hex}"
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    path = secrets_dir / "canary"
    path.write_text(value + "\n")
    path.chmod(0o600)
    yield value, path


def protected_key(sshd_host: SshdLabHost, passphrase: str, path: Path) -> Path:
    """The lab client key, encrypted with `passphrase` (written without a process)."""
    key = serialization.load_ssh_private_key(sshd_host.host.key_path.read_bytes(), None)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    path.chmod(0o600)
    return path


def test_no_secret_reaches_results_errors_logs_or_disk(
    lab: Any,
    sshd_host: SshdLabHost,
    canary: tuple[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    started = time.time() - 1
    caplog.set_level(logging.DEBUG)
    value, canary_file = canary
    secrets_dir = canary_file.parent
    switch: CI = lab.switch
    lab_password = switch.credentials["password"]
    lab_enable = switch.credentials["enable_secret"]
    assert isinstance(lab_password, SecretRef) and isinstance(lab_enable, SecretRef)
    canaries = [value, lab_password.resolve(), lab_enable.resolve()]
    evidence = Evidence()
    work_dir = Path(tempfile.mkdtemp(prefix="oc", dir="/tmp"))  # short: sockets live there

    linux = dataclasses.replace(
        sshd_host.ci,
        name="canary-linux",
        credentials={
            "username": sshd_host.host.user,
            "key_file": SecretRef(file=str(protected_key(sshd_host, value, secrets_dir / "key"))),
            "key_passphrase": SecretRef(file=str(canary_file)),
            "sudo_password": SecretRef(file=str(canary_file)),
        },
        connection_options={"ansible": {"host_key_checking": False}},
    )
    ansible_switch = dataclasses.replace(
        switch,
        connection_options={
            **switch.connection_options,
            "ansible": {**switch.connection_options.get("ansible", {}), "host_key_checking": False},
        },
    )
    wrong_password = {**switch.credentials, "password": SecretRef(file=str(canary_file))}

    try:
        # -- fabric: outputs that contain the secret, an error path, a wrong login
        with FabricConnector(linux) as fabric:
            printed = fabric.run(f"cat {canary_file}")
            assert printed.stdout.strip() == "********"  # redacted, not absent
            evidence.add(printed, fabric.sudo("id -un"), fabric.get_facts())
            evidence.expect_error(lambda: fabric.run(f"cat {canary_file} >&2; exit 7"))
            evidence.transcript_of(fabric)
        no_key = dataclasses.replace(
            linux,
            credentials={"username": "root", "password": SecretRef(file=str(canary_file))},
        )
        evidence.expect_error(
            lambda: FabricConnector(no_key, options={"connect_timeout": 5}).open()
        )

        # -- netmiko: show commands, a rejected line, a wrong password, session log
        netmiko_cls = get_connector("netmiko")
        session_log = tmp_path / "netmiko-session.log"
        with netmiko_cls(switch, options={"session_log": str(session_log)}) as netmiko:
            evidence.add(netmiko.send_commands(["show running-config", "show version"]))
            evidence.expect_error(lambda: netmiko.apply_config(["interface Nowhere0/99"]))
            evidence.transcript_of(netmiko)
        wrong_netmiko = netmiko_cls(dataclasses.replace(switch, credentials=wrong_password))
        evidence.expect_error(wrong_netmiko.open)
        evidence.transcript_of(wrong_netmiko)

        # -- napalm: getters, a failing configuration load, a wrong password
        napalm_cls = get_connector("napalm")
        napalm = napalm_cls(switch)
        try:
            napalm.open()
            evidence.add(napalm.get_config(), napalm.get("get_vlans"))
            # No SCP on the emulator: loading a candidate fails there.
            evidence.expect_error(lambda: napalm.apply_config(["vlan 3999"]))
        finally:
            napalm.close()
        evidence.transcript_of(napalm)
        wrong_napalm = napalm_cls(dataclasses.replace(switch, credentials=wrong_password))
        evidence.expect_error(wrong_napalm.open)
        evidence.transcript_of(wrong_napalm)

        # -- ansible: the protected key, a secret var, printed secrets, a failed task,
        #    the lab device, and the device with a wrong password (unreachable)
        playbooks = tmp_path / "playbooks"
        playbooks.mkdir()
        (playbooks / "canary.yml").write_text(CANARY_PLAYBOOK.format(canary_file=canary_file))
        wrong_ansible = dataclasses.replace(
            ansible_switch, name="canary-wrong", credentials=wrong_password
        )
        events: list[dict[str, Any]] = []
        run = execute(
            [linux, ansible_switch],
            playbook="canary.yml",
            playbooks_dir=playbooks,
            secret_vars={"canary_var": SecretRef(file=str(canary_file))},
            work_dir=work_dir,
            on_event=events.append,
        )
        # A run of its own: Ansible keys network_cli's persistent connections by
        # host, port and user, so in one run it would reuse the good session.
        wrong_run = execute(
            [wrong_ansible],
            playbook="canary.yml",
            playbooks_dir=playbooks,
            secret_vars={"canary_var": SecretRef(file=str(canary_file))},
            work_dir=work_dir,
            on_event=events.append,
        )
        evidence.add(run, wrong_run, events)
        statuses = {host: run.host_status(host).value for host in run.hosts}
        # canary-linux's failing task has ignore_errors; its commands count as changes.
        assert statuses == {"canary-linux": "changed", switch.name: "ok"}, run.output
        assert wrong_run.host_status("canary-wrong").value == "auth_failed", wrong_run.output
        printed_by_ansible = [
            t for t in run.hosts["canary-linux"] if t.task == "Print the secret file"
        ]
        assert printed_by_ansible[0].data["stdout"] == "********"
        assert list(work_dir.iterdir()) == []  # the private data dir is gone
        evidence.add(caplog.text)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)

    assert evidence.errors == [
        "CommandRejected",  # fabric: exit 7
        "AuthenticationError",  # fabric: wrong login
        "CommandRejected",  # netmiko: rejected line
        "AuthenticationError",  # netmiko: wrong password
        evidence.errors[4],  # napalm: the candidate load fails (whichever error type)
        "AuthenticationError",  # napalm: wrong password
    ]
    returned = "\n".join(evidence.items)
    leaks = [
        returned[max(0, returned.index(c) - 300) : returned.index(c) + 60]
        for c in canaries
        if c in returned
    ]
    assert not leaks, "a secret value was returned, raised or logged"

    needles = [c.encode() for c in canaries]
    lab_secret_files = {Path(lab_password.file or ""), Path(lab_enable.file or "")}
    skip = {secrets_dir, *(p.resolve() for p in lab_secret_files)}
    roots = {
        Path(tempfile.gettempdir()),
        lab.ws.root,
        sshd_host.host.workdir,
        Path.home() / ".ansible",
    }
    # Scanned from another process: opening and closing a SQLite database of
    # this process's workspaces here (the session's lab, under /tmp) would drop
    # SQLite's POSIX locks on it (`tests.fixtures.processes.read_bytes_elsewhere`).
    with ProcessPoolExecutor(1, mp_context=crash_context()) as scanner:
        scans = [
            scanner.submit(_scan, root, needles, since=started, skip=skip)
            for root in roots
            if root.exists()
        ]
        written = [f for scan in scans for f in scan.result()]
    assert written == [], "a secret value was written to disk"
    assert session_log.exists()
