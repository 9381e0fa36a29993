"""The connector registry: one name per connector, imported only when used.

    from opskit.connectors import get_connector, capabilities
    Netmiko = get_connector("netmiko")          # the class, imported lazily
    connector_names()                           # opskit's four + entry-point plugins
    actions("netmiko")                          # what a runbook step may ask of it
                                                # (opskit.connectors.actions declares them)
    capabilities("napalm", "juniper_junos")     # frozenset of Capability

Connectors are found by name in `opskit.connectors.registry` (the
``opskit.connectors`` entry-point group: third parties add their own).
Only the connector modules import vendor libraries (netmiko, napalm,
fabric, ansible-runner); importing this package imports none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opskit.connectors.actions import CONNECTOR_ACTIONS, step_actions
from opskit.connectors.base import (
    ActionResult,
    ApplyResult,
    AuthenticationError,
    Capability,
    CapabilityMissing,
    CommandRejected,
    CommandResult,
    Connector,
    ConnectorTimeout,
    TranscriptEntry,
    UnreachableError,
)
from opskit.connectors.registry import REGISTRY, UnknownConnector
from opskit.secrets import SecretRef

if TYPE_CHECKING:
    from opskit.inventory.model import CI


def get_connector(name: str) -> type[Connector]:
    """The connector class registered as `name` (imported on first use; see
    `opskit.connectors.registry` for how third parties register one)."""
    return REGISTRY.get(name)


def connector_names() -> list[str]:
    """Every registered connector's name: opskit's own and third parties'."""
    return REGISTRY.names()


def actions(name: str) -> frozenset[str]:
    """Every action a runbook step may ask of connector `name`: the built-in
    ones and its own (`opskit.connectors.actions`), without importing it."""
    own = CONNECTOR_ACTIONS.get(name)
    if own is None:
        own = get_connector(name).actions  # not one of opskit's: its class declares them
    return step_actions(own)


def capabilities(connector: str, platform: str) -> frozenset[Capability]:
    """What `connector` can do on `platform` (empty when it does not support it)."""
    return get_connector(connector).capabilities_for(platform)


def supports(connector: str, platform: str) -> bool:
    return get_connector(connector).supports(platform)


def credential(ci: CI, key: str) -> str | None:
    """Resolves one credential of `ci` at connect time (and registers it for redaction).

    A plain string (a username) is returned as is; a reference is resolved,
    a relative file reference against the folder of the inventory file that
    declared the CI.
    """
    value = ci.credentials.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    base_dir = Path(ci.source).parent if ci.source else None
    return SecretRef.parse(value, where=f"{ci.name}.credentials.{key}").resolve(base_dir=base_dir)


__all__ = [
    "ActionResult",
    "ApplyResult",
    "AuthenticationError",
    "Capability",
    "CapabilityMissing",
    "CommandRejected",
    "CommandResult",
    "Connector",
    "ConnectorTimeout",
    "TranscriptEntry",
    "UnknownConnector",
    "UnreachableError",
    "actions",
    "capabilities",
    "connector_names",
    "credential",
    "get_connector",
    "supports",
]
