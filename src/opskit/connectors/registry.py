"""Which connector class answers to which name: opskit's own and third parties'.

A connector is found by name through the ``opskit.connectors`` entry-point
group (in the spirit of Nornir's ``PluginRegister``): a package adds one by
declaring, in its ``pyproject.toml``,

    [project.entry-points."opskit.connectors"]
    acme = "acme_opskit.connector:AcmeConnector"

and installing itself; runbooks may then name ``connector: acme``. The class
must satisfy `ConnectorClass` (in practice: subclass
`opskit.connectors.base.Connector`). opskit declares its own four connectors
the same way; `BUILTIN_CONNECTORS` answers for them when the installed
metadata does not (an editable install whose metadata predates the entry
points), and a third party cannot take over one of their names.

Nothing is imported until a connector is asked for, and the entry points
are read once, on the first lookup of a name that is not one of opskit's.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar, Protocol

from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.connectors.actions import ActionSpec
    from opskit.connectors.base import Capability, Connector
    from opskit.inventory.model import CI

ENTRY_POINT_GROUP = "opskit.connectors"

#: opskit's own connectors (also declared as entry points in pyproject.toml).
BUILTIN_CONNECTORS: Mapping[str, str] = {
    "netmiko": "opskit.connectors.netmiko:NetmikoConnector",
    "napalm": "opskit.connectors.napalm:NapalmConnector",
    "fabric": "opskit.connectors.fabric:FabricConnector",
    "ansible": "opskit.connectors.ansible:AnsibleConnector",
}


class UnknownConnector(OpskitError):
    """A runbook or caller named a connector that does not exist."""


class ConnectorClass(Protocol):
    """What a registered connector is: a class building one session to one CI."""

    name: ClassVar[str]
    actions: ClassVar[Mapping[str, ActionSpec]]

    def __call__(self, ci: CI, *, options: Mapping[str, object] | None = None) -> Connector: ...

    def capabilities_for(self, platform: str) -> frozenset[Capability]: ...

    def supports(self, platform: str) -> bool: ...


class ConnectorRegistry:
    """Connector names -> ``module:Class`` targets, the classes imported on use."""

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        self.group = group
        self._discovered: dict[str, str] | None = None
        self._classes: dict[str, type[Connector]] = {}

    def targets(self) -> dict[str, str]:
        """Every known name and its ``module:Class`` (reads the entry points)."""
        return {**self._entry_points(), **BUILTIN_CONNECTORS}

    def names(self) -> list[str]:
        return sorted(self.targets())

    def target(self, name: str) -> str:
        builtin = BUILTIN_CONNECTORS.get(name)
        if builtin is not None:
            return builtin
        target = self._entry_points().get(name)
        if target is None:
            raise UnknownConnector(
                f"unknown connector {name!r}; known connectors: {', '.join(self.names())}"
            )
        return target

    def get(self, name: str) -> type[Connector]:
        """The class registered as ``name``, imported on first use."""
        if name not in self._classes:
            module_name, _, class_name = self.target(name).partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                raise UnknownConnector(f"connector {name!r} cannot be loaded: {exc}") from None
            cls = getattr(module, class_name, None)
            if cls is None:
                raise UnknownConnector(
                    f"connector {name!r} cannot be loaded: {module_name} has no {class_name}"
                )
            self._classes[name] = cls
        return self._classes[name]

    def refresh(self) -> None:
        """Forgets what was discovered (after installing a package at run time)."""
        self._discovered = None
        self._classes.clear()

    def _entry_points(self) -> dict[str, str]:
        if self._discovered is None:
            self._discovered = {ep.name: ep.value for ep in entry_points(group=self.group)}
        return self._discovered


#: The registry `opskit.connectors.get_connector` reads.
REGISTRY = ConnectorRegistry()

__all__ = [
    "BUILTIN_CONNECTORS",
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "ConnectorClass",
    "ConnectorRegistry",
    "UnknownConnector",
]
