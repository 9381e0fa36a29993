"""The contract every connector keeps, checked for each one by its own tests.

Modelled on NAPALM's ``napalm/base/test/getters.py``: a connector's test file
subclasses `ConnectorContract`, names the class (``connector_class``) and
gives a ``connector`` fixture, an open session on the connector's real lab
peer. The class-level checks need no device: the connector is registered
under its name, every method of the `Connector` interface it overrides keeps
the base signature (``test_method_signatures`` in NAPALM), the interface is
documented (the base docstrings are the specification) and its own actions
are declared data. The live checks run one cheap command on the peer: the
transcript, facts, and capabilities it lacks refused before the device is
touched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import pytest

from opskit.connectors import get_connector
from opskit.connectors.actions import BUILTIN, ActionSpec
from opskit.connectors.base import (
    Capability,
    CapabilityMissing,
    CommandResult,
    Connector,
    TranscriptEntry,
)
from opskit.hoststate import HostState

#: The `Connector` interface: what a runbook, the executor and the pool may call.
INTERFACE = (
    "open",
    "close",
    "capabilities_for",
    "supports",
    "require",
    "get_config",
    "send_commands",
    "apply_config",
    "confirm_commit",
    "rollback",
    "save_config",
    "get_facts",
    "perform",
    "take_transcript",
)

# A harmless configuration line: a comment on every CLI platform.
PROBE_LINE = "! opskit connector contract probe"

#: The call each capability guards; without the capability it must be refused.
GUARDED: Mapping[Capability, Callable[[Connector], object]] = {
    Capability.GET_CONFIG: lambda c: c.get_config("running"),
    Capability.CONFIG_LINES: lambda c: c.apply_config([PROBE_LINE]),
    Capability.FULL_REPLACE: lambda c: c.apply_config([PROBE_LINE], replace=True),
    Capability.COMMIT_CONFIRM: lambda c: c.confirm_commit(),
    Capability.NATIVE_ROLLBACK: lambda c: c.rollback(),
    Capability.SAVE: lambda c: c.save_config(),
}


def _shape(signature: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]


class ConnectorContract:
    """Subclass with ``connector_class`` and a ``connector`` fixture (an open session)."""

    connector_class: ClassVar[type[Connector]]
    #: a read-only command the peer answers (None: the connector runs none)
    probe_command: ClassVar[str | None] = None

    # -- without a device ---------------------------------------------------------
    def test_registered_under_its_name(self) -> None:
        assert get_connector(self.connector_class.name) is self.connector_class

    @pytest.mark.parametrize("method", INTERFACE)
    def test_method_signatures(self, method: str) -> None:
        base = inspect.signature(getattr(Connector, method))
        mine = inspect.signature(getattr(self.connector_class, method))
        assert _shape(mine) == _shape(base), method
        assert mine.return_annotation == base.return_annotation, method

    @pytest.mark.parametrize("method", INTERFACE)
    def test_the_interface_is_documented(self, method: str) -> None:
        assert inspect.getdoc(getattr(Connector, method)), f"Connector.{method} has no docstring"
        assert inspect.getdoc(getattr(self.connector_class, method))

    def test_the_class_is_documented(self) -> None:
        assert self.connector_class.__doc__ and self.connector_class.__doc__.strip()

    def test_own_actions_are_declared_and_documented(self) -> None:
        cls = self.connector_class
        assert isinstance(cls.actions, Mapping)
        for name, spec in cls.actions.items():
            assert isinstance(spec, ActionSpec) and spec.name == name, name
            assert spec.connector == cls.name, name
            assert isinstance(spec.mutates, bool) and spec.summary, name
            assert name not in BUILTIN, f"{name} is a built-in action: perform never sees it"
            assert f"``{name}``" in (inspect.getdoc(cls.perform) or ""), f"perform documents {name}"

    def test_the_capability_map_is_well_formed(self) -> None:
        cls = self.connector_class
        assert cls.capability_map, "a connector supports some platform"
        for platform, capabilities in cls.capability_map.items():
            assert isinstance(capabilities, frozenset), platform
            assert all(isinstance(c, Capability) for c in capabilities), platform
            if platform != "*":
                assert cls.supports(platform), platform
                assert cls.capabilities_for(platform) >= capabilities, platform

    # -- on the connector's lab peer ------------------------------------------------
    def test_an_open_session_transcribes_each_call(self, connector: Connector) -> None:
        assert connector.is_open
        connector.take_transcript()
        if self.probe_command is None or Capability.COMMANDS not in connector.capabilities:
            pytest.skip(f"{connector.name} runs no command on {connector.ci.platform}")
        results = connector.send_commands([self.probe_command])
        assert [type(r) for r in results] == [CommandResult]
        assert results[0].command == self.probe_command and isinstance(results[0].output, str)
        entries = connector.take_transcript()
        assert entries and all(isinstance(e, TranscriptEntry) for e in entries)
        assert all(e.status == HostState.OK and e.duration >= 0 for e in entries)
        assert all(isinstance(e.started, datetime) and e.started.tzinfo for e in entries)
        assert connector.take_transcript() == []  # taken: cleared

    def test_facts_name_the_host(self, connector: Connector) -> None:
        facts = connector.get_facts()
        assert isinstance(facts, dict) and facts.get("hostname"), facts

    def test_missing_capabilities_are_refused_before_touching_the_device(
        self, connector: Connector
    ) -> None:
        missing = [c for c in GUARDED if c not in connector.capabilities]
        if not missing:
            pytest.skip(f"{connector.name} has every guarded capability here")
        for capability in missing:
            before = len(connector.transcript)
            with pytest.raises(CapabilityMissing):
                GUARDED[capability](connector)
            assert len(connector.transcript) == before, f"{capability} touched the device"

    def test_an_undeclared_action_is_refused(self, connector: Connector) -> None:
        with pytest.raises(CapabilityMissing, match="no action 'contract-probe'"):
            connector.perform("contract-probe", {})
