"""Source-neutral records and their mapping to CIs.

An adapter (`opskit.inventory.sources.nautobot`; a NetBox one would be the
same) turns what its source of truth serves into `SourceObject`s; this module
turns those into the CI dictionaries of an opskit inventory file, with the
workspace's `MappingTables` (`sot/<source>.yaml`). Any object that cannot be
mapped raises `SyncError` naming it, so a sync is all or nothing.

Example: a Nautobot device becomes

    {"name": "core-sw1", "type": "switch", "platform": "cisco_ios",
     "host": "10.0.1.1", "site": "dc1", "owner": "netops", "department": "network",
     "lifecycle": "operational",
     "attributes": {"source_id": "5c1…", "role": "Core Switch", "model": "C9300",
                    "tags": ["pci"], "os_version": "17.9"},
     "relationships": [{"connected_to": "core-sw2"}]}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ValidationError

CI_TYPES = frozenset(
    [
        "router",
        "switch",
        "firewall",
        "load_balancer",
        "server",
        "database",
        "middleware",
        "application",
        "storage",
        "security",
        "other",
    ]
)
LIFECYCLES = frozenset(["planned", "commissioned", "operational", "maintenance", "decommissioned"])
RELATION_KINDS = ("depends_on", "runs_on", "hosted_by", "member_of", "connected_to")
TABLES = ("platforms", "statuses", "roles", "relationships")
CI_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*\Z")
PLATFORM = re.compile(r"[a-z][a-z0-9_]*\Z")

# Nautobot's default device and VM statuses; a status not here, nor in the
# workspace's table, stops the sync (see docs/source-of-truth.md).
DEFAULT_LIFECYCLES: Mapping[str, str] = {
    "Planned": "planned",
    "Inventory": "planned",
    "Staged": "commissioned",
    "Active": "operational",
    "Offline": "maintenance",
    "Failed": "maintenance",
    "Decommissioning": "decommissioned",
}


class SyncError(ValidationError):
    """A source of truth that cannot be read or mapped; nothing was written."""


@dataclass(frozen=True)
class SourceObject:
    """A device or virtual machine as a source of truth serves it.

    `relations` maps a relationship kind to the names of the objects it points
    at, e.g. ``{"runs_on": ("esx1", "esx2"), "connected_to": ("core-sw2",)}``.
    `drivers` is the platform's network-driver mapping, e.g.
    ``{"netmiko": "cisco_ios", "napalm": "ios"}``.
    """

    kind: str
    source_id: str
    name: str
    platform: str | None = None
    drivers: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None
    site: str | None = None
    role: str | None = None
    tenant: str | None = None
    tenant_group: str | None = None
    status: str | None = None
    model: str | None = None
    serial: str | None = None
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    relations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name it: ``device 'core-sw1' (id 5c1…)``."""
        return f"{self.kind.replace('_', ' ')} {self.name!r} (id {self.source_id})"


@dataclass(frozen=True)
class MappingTables:
    """The workspace's overrides (`sot/<source>.yaml`), all optional:

    platforms: {"Cisco IOS": cisco_ios}      # source platform name -> netmiko type
    statuses: {Quarantine: maintenance}      # source status -> lifecycle
    roles: {"Core Switch": switch}           # source role -> CI type
    relationships: {uplink_of: depends_on}   # relationship key -> relationship kind
    default_platform: linux                  # objects without a platform

    A mapped relationship's association reads "source <kind> destination":
    with ``{power_from: depends_on}``, a device on the source side of a
    ``power_from`` association `depends_on` the device on its destination side.
    """

    platforms: Mapping[str, str] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    roles: Mapping[str, str] = field(default_factory=dict)
    relationships: Mapping[str, str] = field(default_factory=dict)
    default_platform: str | None = None

    @classmethod
    def load(cls, path: Path) -> MappingTables:
        """Reads the table file; a missing file means no overrides."""
        from opskit.yamlfile import load_yaml

        if not path.exists():
            return cls()
        data, _locator = load_yaml(path)
        data = data or {}
        if not isinstance(data, Mapping):
            raise SyncError("expected a mapping", file=path)
        for key, value in data.items():
            if key not in (*TABLES, "default_platform"):
                raise SyncError(f"unknown key {key!r}", file=path, field=str(key))
            if key != "default_platform" and not _text_map(value):
                raise SyncError("expected a mapping of text to text", file=path, field=key)
        tables = cls(
            platforms=dict(data.get("platforms") or {}),
            statuses=dict(data.get("statuses") or {}),
            roles=dict(data.get("roles") or {}),
            relationships=dict(data.get("relationships") or {}),
            default_platform=data.get("default_platform"),
        )
        tables.check(path)
        return tables

    def check(self, path: Path) -> None:
        for name, value in self.statuses.items():
            if value not in LIFECYCLES:
                raise SyncError(
                    f"{value!r} is not a lifecycle", file=path, field=f"statuses.{name}"
                )
        for name, value in self.roles.items():
            if value not in CI_TYPES:
                raise SyncError(f"{value!r} is not a CI type", file=path, field=f"roles.{name}")
        for name, value in self.relationships.items():
            if value not in RELATION_KINDS:
                raise SyncError(
                    f"{value!r} is not a relationship kind ({', '.join(RELATION_KINDS)})",
                    file=path,
                    field=f"relationships.{name}",
                )
        for name, value in self.platforms.items():
            if not PLATFORM.match(value):
                raise SyncError(
                    f"{value!r} is not a platform", file=path, field=f"platforms.{name}"
                )


def _text_map(value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def to_ci(obj: SourceObject, tables: MappingTables) -> dict[str, Any]:
    """One object as a CI dictionary; raises `SyncError` naming the object."""
    if not CI_NAME.match(obj.name):
        raise SyncError(f"{obj.label}: name is not a valid CI name (letters, digits, _ . @ -)")
    ci: dict[str, Any] = {
        "name": obj.name,
        "type": _ci_type(obj, tables),
        "platform": _platform(obj, tables),
    }
    optional = {
        "host": obj.host,
        "site": obj.site,
        "owner": obj.tenant,
        "department": obj.tenant_group,
        "lifecycle": _lifecycle(obj, tables),
    }
    ci.update({key: value for key, value in optional.items() if value})
    ci["attributes"] = _attributes(obj)
    relationships = [
        {kind: target}
        for kind in RELATION_KINDS
        for target in sorted(set(obj.relations.get(kind, ())))
        if target != obj.name
    ]
    if relationships:
        ci["relationships"] = relationships
    return ci


def _platform(obj: SourceObject, tables: MappingTables) -> str:
    if obj.platform is None:
        if tables.default_platform:
            return tables.default_platform
        raise SyncError(f"{obj.label}: has no platform (set one, or default_platform)")
    driver = tables.platforms.get(obj.platform) or obj.drivers.get("netmiko")
    if not driver:
        raise SyncError(
            f"{obj.label}: platform {obj.platform!r} has no netmiko mapping "
            "(set its network driver, or map it under platforms:)"
        )
    if not PLATFORM.match(driver):
        raise SyncError(f"{obj.label}: platform {obj.platform!r} maps to bad type {driver!r}")
    return driver


def _lifecycle(obj: SourceObject, tables: MappingTables) -> str | None:
    if obj.status is None:
        return None
    lifecycle = tables.statuses.get(obj.status) or DEFAULT_LIFECYCLES.get(obj.status)
    if lifecycle is None:
        raise SyncError(
            f"{obj.label}: status {obj.status!r} has no lifecycle mapping (map it under statuses:)"
        )
    return lifecycle


def _ci_type(obj: SourceObject, tables: MappingTables) -> str:
    if obj.role and obj.role in tables.roles:
        return tables.roles[obj.role]
    guess = (obj.role or "").strip().lower().replace(" ", "_").replace("-", "_")
    if guess in CI_TYPES:
        return guess
    return "server" if obj.kind == "virtual_machine" else "other"


def _attributes(obj: SourceObject) -> dict[str, Any]:
    attributes: dict[str, Any] = {"source_id": obj.source_id, "source_kind": obj.kind}
    described = {"role": obj.role, "model": obj.model, "serial": obj.serial}
    attributes.update({key: value for key, value in described.items() if value})
    if obj.tags:
        attributes["tags"] = sorted(obj.tags)
    # Custom fields keep their keys; the fixed keys above win on a collision.
    for key, value in sorted(obj.custom_fields.items()):
        if value is not None and key not in attributes:
            attributes[key] = value
    return attributes


def to_inventory_data(
    objects: Iterable[SourceObject], tables: MappingTables
) -> tuple[dict[str, Any], list[str]]:
    """All objects as inventory data ``{"cis": [...]}`` sorted by name, plus
    notes (relationships left out because their target was not synced).
    Raises `SyncError` on the first object that cannot be mapped, or on a
    name that two objects share."""
    seen: dict[str, SourceObject] = {}
    cis: list[dict[str, Any]] = []
    for obj in objects:
        if obj.name in seen:
            raise SyncError(f"duplicate name {obj.name!r}: {seen[obj.name].label} and {obj.label}")
        seen[obj.name] = obj
        cis.append(to_ci(obj, tables))
    notes: list[str] = []
    for ci in cis:
        kept = []
        for relation in ci.get("relationships", []):
            ((kind, target),) = relation.items()
            if target in seen:
                kept.append(relation)
            else:
                notes.append(f"{ci['name']}: {kind} {target!r} left out (not synced)")
        if kept:
            ci["relationships"] = kept
        else:
            ci.pop("relationships", None)
    cis.sort(key=lambda ci: ci["name"])
    return {"cis": cis}, notes
