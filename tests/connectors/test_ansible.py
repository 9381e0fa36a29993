"""The Ansible connector: real ansible-runner runs against localhost, a real
sshd host and the emulated IOS devices. Each run costs seconds, so the tests
are few and each checks several things."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.connectors.ansible import AnsibleConnector, diff_text, run_playbook
from opskit.connectors.base import CommandRejected, Connector, ConnectorTimeout
from opskit.connectors.fabric import FabricConnector
from opskit.errors import ConnectorError, RunbookError
from opskit.hoststate import HostState
from opskit.inventory.model import CI, CIType
from opskit.secrets import REDACTOR
from tests.connector_contract import ConnectorContract
from tests.fixtures.lab import known_hosts_mentions
from tests.fixtures.servers import free_port
from tests.fixtures.sshd import SshdLabHost

pytestmark = pytest.mark.slow

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
LOCALHOST = CI(
    name="localhost",
    type=CIType.SERVER,
    platform="linux",
    connection_options={"ansible": {"ansible_connection": "local"}},
)
# Installed by linux_change.yml on the sshd host (this machine) and removed again.
DEMO_PACKAGE = "tree"


def lab_ci(ci: CI) -> CI:
    """A lab CI with host key checking off (lab hosts get new keys every start)."""
    options = {k: dict(v) for k, v in ci.connection_options.items()}
    options.setdefault("ansible", {})["host_key_checking"] = False
    return dataclasses.replace(ci, connection_options=options)


@pytest.fixture
def linux(sshd_host: SshdLabHost) -> CI:
    return lab_ci(sshd_host.ci)


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """Where the runs make their private data dirs; must be empty afterwards.

    Short (in /tmp) so that Ansible's sockets live in the private data dir too.
    """
    path = Path(tempfile.mkdtemp(prefix="ow", dir="/tmp"))
    try:
        yield path
        assert list(path.iterdir()) == [], "a private data dir was left behind"
    finally:
        shutil.rmtree(path, ignore_errors=True)


def package_installed(name: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Status}", name], capture_output=True, text=True
    )
    return result.stdout.strip() == "install ok installed"


def process_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.sshd
def test_playbook_on_localhost_sshd_host_and_an_unreachable_host(linux: CI, work_dir: Path) -> None:
    dead = dataclasses.replace(linux, name="dead01", port=free_port())
    events: list[dict[str, Any]] = []
    hosts = run_playbook(
        [LOCALHOST, linux, dead],
        "ping.yml",
        playbooks_dir=PLAYBOOKS,
        work_dir=work_dir,
        on_event=events.append,
    )
    assert [(t.task, t.status) for t in hosts["localhost"]] == [("Ping the host", HostState.OK)]
    assert [(t.task, t.status) for t in hosts[linux.name]] == [("Ping the host", HostState.OK)]
    (unreachable,) = hosts["dead01"]
    assert unreachable.status == HostState.UNREACHABLE
    assert "Connection refused" in unreachable.message
    # Events were streamed back while the run went on.
    assert {"playbook_on_start", "runner_on_ok", "playbook_on_stats"} <= {
        e["event"] for e in events
    }


@pytest.mark.sshd
def test_module_runs_and_a_failed_task_is_rejected(linux: CI, work_dir: Path) -> None:
    connector = AnsibleConnector(linux, options={"work_dir": work_dir})
    result = connector.perform(
        "module", {"name": "ansible.builtin.command", "args": {"cmd": "uname -r"}}
    )
    assert result.status == HostState.CHANGED  # the command module always says changed
    assert result.data["tasks"][0]["data"]["stdout"] == os.uname().release

    with pytest.raises(CommandRejected, match="failed: non-zero return code") as caught:
        connector.perform(
            "module",
            {"name": "ansible.builtin.shell", "args": {"cmd": "echo broken >&2; exit 3"}},
        )
    assert "ansible module ansible.builtin.shell" in str(caught.value)
    assert [e.status for e in connector.transcript] == [HostState.OK, HostState.REJECTED]
    assert "broken" in connector.transcript[-1].output

    # The common interface: commands (one run for all) and facts.
    uname, answer = connector.send_commands(["uname -s", "echo $((6 * 7))"])
    assert (uname.output, answer.output) == ("Linux", "42")
    facts = connector.get_facts()
    assert facts["ansible_kernel"] == os.uname().release


def test_a_missing_or_broken_playbook_is_one_clear_error(work_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(RunbookError, match=r"playbook nope\.yml not found"):
        run_playbook([LOCALHOST], "nope.yml", playbooks_dir=PLAYBOOKS, work_dir=work_dir)
    (tmp_path / "broken.yml").write_text(
        "- hosts: all\n  tasks:\n    - ansible.builtin.nosuchmodule: {}\n"
    )
    with pytest.raises(
        ConnectorError, match=r"couldn't resolve module/action 'ansible.builtin.nosuchmodule'"
    ):
        run_playbook([LOCALHOST], "broken.yml", playbooks_dir=tmp_path, work_dir=work_dir)


def test_a_run_over_its_timeout_is_stopped_with_everything_it_started(
    work_dir: Path, tmp_path: Path
) -> None:
    marker = f"sleep {4000 + os.getpid() % 1000}"  # unique to this test run
    (tmp_path / "slow.yml").write_text(
        f"- hosts: all\n  gather_facts: false\n  tasks:\n    - ansible.builtin.command: {marker}\n"
    )
    with pytest.raises(ConnectorTimeout, match="exceeded 2 s"):
        run_playbook([LOCALHOST], "slow.yml", playbooks_dir=tmp_path, work_dir=work_dir, timeout=2)
    still_running = [p for p in Path("/proc").glob("[0-9]*") if _cmdline(p) == marker.split()]
    assert still_running == []


def _cmdline(proc: Path) -> list[str]:
    try:
        return (proc / "cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


@pytest.mark.sshd
def test_linux_change_check_diff_apply_idempotent_and_rollback(
    linux: CI, tmp_path: Path, work_dir: Path
) -> None:
    root = tmp_path / "demo"
    # Never remove a package this test did not install.
    package = "" if package_installed(DEMO_PACKAGE) else DEMO_PACKAGE
    change = {
        "path": "linux_change.yml",
        "extra_vars": {"demo_root": str(root), "demo_package": package, "demo_interval": 1},
    }
    connector = AnsibleConnector(linux, options={"playbooks_dir": PLAYBOOKS, "work_dir": work_dir})
    pid = None
    try:
        preview = connector.perform("playbook", {**change, "check": True, "diff": True})
        assert preview.changed
        assert preview.diff is not None and "+interval = 1" in preview.diff
        assert not root.exists()  # check mode changed nothing
        assert not package or not package_installed(package)

        applied = connector.perform("playbook", {**change, "diff": True})
        assert applied.status == HostState.CHANGED
        assert "interval = 1" in (root / "etc" / "opskit-demo.conf").read_text()
        pid = int((root / "run" / "opskit-demo.pid").read_text())
        assert process_alive(pid)
        assert not package or package_installed(package)

        again = connector.perform("playbook", change)
        assert again.status == HostState.OK and not again.changed
        statuses = {t["task"]: t["status"] for t in again.data["tasks"]}
        assert statuses["Start the service"] == HostState.OK
    finally:
        rollback = connector.perform(
            "playbook", {"path": "linux_rollback.yml", "extra_vars": {"demo_root": str(root)}}
        )
    assert rollback.changed
    assert not root.exists()
    assert pid is None or not process_alive(pid)
    assert not package or not package_installed(package)
    assert [e.command for e in connector.transcript] == [
        "ansible-playbook linux_change.yml --check --diff",
        "ansible-playbook linux_change.yml --diff",
        "ansible-playbook linux_change.yml",
        "ansible-playbook linux_rollback.yml",
    ]


@pytest.fixture
def local_user(sshd_host: SshdLabHost) -> Iterator[str]:
    """A throwaway local account on the sshd host, made and removed through Fabric."""
    name = f"opskit-{uuid.uuid4().hex[:8]}"
    with FabricConnector(sshd_host.ci) as fabric:
        fabric.sudo(f"useradd --no-create-home --shell /usr/sbin/nologin {name}")
        try:
            yield name
        finally:
            fabric.sudo(f"userdel {name}")


@pytest.mark.sshd
@pytest.mark.filterwarnings("ignore:'crypt' is deprecated:DeprecationWarning")
def test_user_password_rotation_keeps_the_secret_out_of_everything(
    linux: CI, local_user: str, work_dir: Path, tmp_path: Path
) -> None:
    pytest.importorskip("passlib", reason="Ansible's password_hash filter needs passlib")
    new_password = f"rotated-{uuid.uuid4().hex}"
    secret_file = tmp_path / "new-password"
    secret_file.write_text(new_password)
    events: list[dict[str, Any]] = []
    connector = AnsibleConnector(linux, options={"playbooks_dir": PLAYBOOKS, "work_dir": work_dir})
    result = connector.perform(
        "playbook",
        {
            "path": "user_rotation_linux.yml",
            "extra_vars": {"rotation_user": local_user},
            "secret_vars": {"new_password": {"file": str(secret_file)}},
        },
    )
    assert result.changed, result
    # The account really has the new password.
    shadow_hash = next(
        line.split(":")[1]
        for line in Path("/etc/shadow").read_text().splitlines()
        if line.startswith(f"{local_user}:")
    )
    from passlib.hash import sha512_crypt

    assert sha512_crypt.verify(new_password, shadow_hash)
    # ...and the password is nowhere in what came back.
    assert new_password in REDACTOR.values
    returned = repr(result) + repr(connector.transcript) + repr(events)
    assert new_password not in returned


def test_diff_text_renders_ansible_diffs() -> None:
    assert diff_text(None) is None
    text = diff_text(
        [{"before": "a\nb\n", "after": "a\nc\n", "before_header": "f", "after_header": "f"}]
    )
    assert text is not None and "-b" in text and "+c" in text
    assert diff_text({"prepared": "+ vlan 10"}) == "+ vlan 10"
    assert diff_text({"before": {"state": "absent"}, "after": {"state": "directory"}}) == (
        "--- before\n+++ after\n@@ -1 +1 @@\n-state: absent\n+state: directory"
    )


@pytest.mark.lab
def test_ios_config_through_network_cli(lab: Any, work_dir: Path) -> None:
    # The lab's own CI: its inventory turns host key checking off.
    switch = lab.dedicated_switch
    connector = AnsibleConnector(switch, options={"playbooks_dir": PLAYBOOKS, "work_dir": work_dir})
    vlan = {"ios_parents": ["vlan 3901"], "ios_lines": ["name opskit-ansible"]}
    try:
        preview = connector.perform(
            "playbook", {"path": "ios_config.yml", "extra_vars": vlan, "check": True, "diff": True}
        )
        assert preview.changed and preview.diff == "+ vlan 3901\n+ name opskit-ansible"
        assert "opskit-ansible" not in _show_vlans(connector)

        applied = connector.perform("playbook", {"path": "ios_config.yml", "extra_vars": vlan})
        assert applied.status == HostState.CHANGED
        assert "3901 opskit-ansible" in _show_vlans(connector)

        again = connector.perform("playbook", {"path": "ios_config.yml", "extra_vars": vlan})
        assert not again.changed
    finally:
        connector.apply_config(["no vlan 3901"])
    assert "opskit-ansible" not in _show_vlans(connector)
    # Nothing about the lab's random port went into the user's known_hosts.
    assert switch.host is not None and switch.port is not None
    assert not known_hosts_mentions(switch.host, switch.port)


def _show_vlans(connector: AnsibleConnector) -> str:
    (result,) = connector.send_commands(["show vlan brief"])
    return result.output


# -- the connector contract (tests/connector_contract.py), on the sshd host ----------
class TestAnsibleContract(ConnectorContract):
    connector_class = AnsibleConnector
    probe_command = "uname -s"

    @pytest.fixture
    def connector(self, linux: CI, work_dir: Path) -> Iterator[AnsibleConnector]:
        with AnsibleConnector(linux, options={"work_dir": work_dir}) as conn:
            yield conn  # type: ignore[misc]

    @pytest.mark.xfail(
        strict=True,
        reason="get_facts returns Ansible's own ansible_* facts, with no `hostname` key "
        "(a known gap the contract found; left as it is while issue 11 keeps behaviour)",
    )
    def test_facts_name_the_host(self, connector: Connector) -> None:
        super().test_facts_name_the_host(connector)
