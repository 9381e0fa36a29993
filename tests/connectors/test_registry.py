"""Connectors are found through the ``opskit.connectors`` entry-point group:
a third-party package installed next to opskit is found by name, validated
in runbooks and run by the executor, without opskit knowing it beforehand."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.connectors import actions, connector_names, get_connector
from opskit.connectors.actions import BUILTIN
from opskit.connectors.pool import ConnectionPool
from opskit.connectors.registry import (
    BUILTIN_CONNECTORS,
    REGISTRY,
    ConnectorRegistry,
    UnknownConnector,
)
from opskit.errors import RunbookError
from opskit.hoststate import HostState
from opskit.inventory.model import CI, CIType
from opskit.runbooks import load_runbook, run_host

# A third party's connector: runs shell commands on this machine.
ACME_MODULE = '''
from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from opskit.connectors.actions import ActionSpec, connector_actions
from opskit.connectors.base import (
    ActionResult, Capability, CommandResult, Connector,
)
from opskit.hoststate import HostState


class AcmeConnector(Connector):
    """Runs shell commands on the local machine."""

    name = "acme"
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {
        "linux": frozenset({Capability.COMMANDS}),
    }
    actions: ClassVar[Mapping[str, ActionSpec]] = connector_actions(
        "acme", kernel=(False, "the kernel's name")
    )

    def open(self) -> None:
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        results = []
        for command in commands:
            with self.record(command) as entry:
                done = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
                entry.output = done.stdout
            results.append(CommandResult(command, done.stdout))
        return results

    def perform(self, action: str, params: Mapping[str, Any]) -> ActionResult:
        (result,) = self.send_commands(["uname -s"])
        return ActionResult(status=HostState.OK, output=result.output)
'''

RUNBOOK = """\
name: acme-check
version: 1.0.0
description: Runs a command through a third-party connector.
owner: ops
risk: low
targets:
  platforms: [linux]
apply:
  - name: say hello
    connector: acme
    action: commands
    params:
      commands: ["echo hello from acme"]
    expect:
      - contains: hello from acme
  - name: the kernel
    connector: acme
    action: kernel
backup: false
rollback: none
"""


def install(site: Path, entry_points: str) -> None:
    """A real (unpacked) distribution: the package and its dist-info metadata."""
    (site / "acme_opskit").mkdir(parents=True)
    (site / "acme_opskit" / "__init__.py").write_text(ACME_MODULE)
    info = site / "acme_opskit-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-opskit\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (info / "RECORD").write_text("")


@pytest.fixture
def acme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    install(
        site,
        """\
        [opskit.connectors]
        acme = acme_opskit:AcmeConnector
        netmiko = acme_opskit:AcmeConnector
        """,
    )
    REGISTRY.refresh()
    with pytest.raises(UnknownConnector, match="unknown connector 'acme'"):
        get_connector("acme")  # not installed yet
    REGISTRY.refresh()
    # The package of this test's site, not one another test imported before.
    monkeypatch.delitem(sys.modules, "acme_opskit", raising=False)
    monkeypatch.syspath_prepend(str(site))
    yield site
    monkeypatch.undo()
    sys.modules.pop("acme_opskit", None)  # nor ours for the next test
    REGISTRY.refresh()


def test_a_connector_registered_by_entry_point_is_found(acme: Path) -> None:
    cls = get_connector("acme")
    assert cls.__name__ == "AcmeConnector"
    assert Path(str(sys.modules[cls.__module__].__file__)).is_relative_to(acme)
    assert set(connector_names()) == {*BUILTIN_CONNECTORS, "acme"}
    assert actions("acme") == set(BUILTIN) | {"kernel"}
    # A third party cannot take over one of opskit's names.
    assert get_connector("netmiko").__module__ == "opskit.connectors.netmiko"


def test_a_runbook_runs_through_the_third_party_connector(acme: Path, tmp_path: Path) -> None:
    path = tmp_path / "ws" / "runbooks" / "acme-check" / "1.0.0.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(RUNBOOK)
    book = load_runbook(path)
    ci = CI(name="localhost", type=CIType.SERVER, platform="linux")
    with ConnectionPool(max_sessions=2) as pool:
        run = run_host(book, ci, {}, pool=pool)
    assert run.status == HostState.COMPLETED, run.error
    hello, kernel = run.steps
    assert hello.output == "hello from acme\n" and hello.transcript[0]["command"].startswith("echo")
    assert kernel.output.strip() == "Linux"


def test_a_runbook_naming_an_action_the_connector_lacks_is_refused(
    acme: Path, tmp_path: Path
) -> None:
    path = tmp_path / "ws" / "runbooks" / "acme-check" / "1.0.0.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(RUNBOOK.replace("action: kernel", "action: reboot"))
    with pytest.raises(RunbookError, match="connector acme has no action 'reboot'"):
        load_runbook(path)


def test_without_metadata_opskit_s_own_connectors_are_still_found() -> None:
    """As in an editable install whose metadata predates the entry points:
    a group no installed distribution declares."""
    fresh = ConnectorRegistry(group="opskit.connectors.nobody-declares-this")
    assert fresh.names() == sorted(BUILTIN_CONNECTORS)
    assert fresh.get("fabric").__name__ == "FabricConnector"
