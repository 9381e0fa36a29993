"""The CMDB's configuration item (CI) and its relationships.

Plain, frozen dataclasses: loading and validation (`opskit.inventory.loader`)
produce them, everything else only reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from opskit.secrets import SecretRef


class CIType(StrEnum):
    """What a configuration item is (the inventory's `type`), e.g. `switch`."""

    ROUTER = "router"
    SWITCH = "switch"
    FIREWALL = "firewall"
    LOAD_BALANCER = "load_balancer"
    SERVER = "server"
    DATABASE = "database"
    MIDDLEWARE = "middleware"
    APPLICATION = "application"
    STORAGE = "storage"
    SECURITY = "security"
    OTHER = "other"


class Lifecycle(StrEnum):
    """Where a CI is in its life; the default is `operational`."""

    PLANNED = "planned"
    COMMISSIONED = "commissioned"
    OPERATIONAL = "operational"
    MAINTENANCE = "maintenance"
    DECOMMISSIONED = "decommissioned"


class Criticality(StrEnum):
    """How much depends on a CI (`low` to `critical`, default `medium`); it
    weighs in a change's risk. `CRITICALITY_ORDER` ranks them.
    """

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RelationKind(StrEnum):
    """How one CI relates to another. `DEPENDENCY_KINDS` (all but
    `connected_to`) mean "needs": they carry impact and may form no cycle.
    """

    DEPENDS_ON = "depends_on"
    CONNECTED_TO = "connected_to"
    RUNS_ON = "runs_on"
    HOSTED_BY = "hosted_by"
    MEMBER_OF = "member_of"


# `a -> b` of these kinds means "a needs b": a change to b impacts a, and a
# cycle of them is an error. `connected_to` is a physical link, not a
# dependency (rings are normal), so it is neither followed nor checked.
DEPENDENCY_KINDS = frozenset(
    {RelationKind.DEPENDS_ON, RelationKind.RUNS_ON, RelationKind.HOSTED_BY, RelationKind.MEMBER_OF}
)
CRITICALITY_ORDER = {c: i for i, c in enumerate(Criticality)}


@dataclass(frozen=True)
class Relationship:
    """An edge from the CI that declares it to `target`, e.g.
    `Relationship(RelationKind.DEPENDS_ON, "core-sw1")`.
    """

    kind: RelationKind
    target: str


@dataclass(frozen=True)
class CI:
    """One configuration item, with groups and defaults already merged in."""

    name: str
    type: CIType
    platform: str
    host: str | None = None
    port: int | None = None
    groups: tuple[str, ...] = ()
    owner: str | None = None
    department: str | None = None
    site: str | None = None
    lifecycle: Lifecycle = Lifecycle.OPERATIONAL
    criticality: Criticality = Criticality.MEDIUM
    relationships: tuple[Relationship, ...] = ()
    # Secret references only ("username" may be a plain string), never values.
    credentials: dict[str, SecretRef | str] = field(default_factory=dict)
    # Per-connector options: {"netmiko": {...}, "napalm": {...}, "ansible": {...}}.
    connection_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)
    # Where the CI was declared, for error messages. `line` is best effort on
    # the fast load path (exact whenever the loader reports an error).
    source: str | None = None
    line: int | None = None
    description: str | None = None
    # The Ansible inventory's name for it, when that name does not fit the CMDB.
    ansible_name: str | None = None
    # The groups it is declared in (its own `groups`, then the defaults'),
    # before inheritance adds their ancestors to `groups`: Ansible's direct
    # membership. Not part of the digest: it changes no merged value.
    declared_groups: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def decommissioned(self) -> bool:
        return self.lifecycle is Lifecycle.DECOMMISSIONED

    @property
    def username(self) -> str | None:
        """The plain username, when the credentials hold one."""
        value = self.credentials.get("username")
        return value if isinstance(value, str) else None

    def secret_refs(self) -> dict[str, SecretRef]:
        """The credentials that are secret references (everything but a plain username)."""
        return {k: v for k, v in self.credentials.items() if isinstance(v, SecretRef)}

    def targets(self, *kinds: RelationKind) -> list[str]:
        """Names this CI points at through relationships of `kinds` (all when empty)."""
        return [r.target for r in self.relationships if not kinds or r.kind in kinds]

    def to_data(
        self, *, base_dir: Path | None = None, _secrets: dict[Any, Any] | None = None
    ) -> dict[str, Any]:
        """The merged CI as plain JSON-able data (the inventory file form).

        File secret paths inside `base_dir` are written relative to it, so the
        data does not depend on where the inventory folder lives.
        """
        secrets = {} if _secrets is None else _secrets
        credentials = {}
        for key, value in self.credentials.items():
            if isinstance(value, str):
                credentials[key] = value
            else:
                data = secrets.get(value)
                if data is None:
                    data = secrets[value] = _secret_data(value, base_dir)
                credentials[key] = data
        data = {"name": self.name, "type": str(self.type), "platform": self.platform}
        if self.host is not None:
            data["host"] = self.host
        if self.port is not None:
            data["port"] = self.port
        data["groups"] = list(self.groups)
        if self.owner is not None:
            data["owner"] = self.owner
        if self.department is not None:
            data["department"] = self.department
        if self.site is not None:
            data["site"] = self.site
        data["lifecycle"] = str(self.lifecycle)
        data["criticality"] = str(self.criticality)
        data["relationships"] = [{str(r.kind): r.target} for r in self.relationships]
        data["credentials"] = credentials
        data["connection_options"] = self.connection_options
        data["attributes"] = self.attributes
        if self.description is not None:
            data["description"] = self.description
        if self.ansible_name is not None:
            data["ansible_name"] = self.ansible_name
        return data


def _secret_data(value: SecretRef, base_dir: Path | None) -> dict[str, Any]:
    if value.file and base_dir is not None and os.path.isabs(value.file):
        base = str(base_dir)
        if value.file.startswith(base + os.sep):
            return {"file": value.file[len(base) + 1 :]}
    return value.to_data()


@dataclass(frozen=True)
class Group:
    """A named group: parents (for inheritance) and the variables it gives its CIs."""

    name: str
    parents: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    source: str | None = None
    line: int | None = None
    ansible_name: str | None = None  # as for CI.ansible_name

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"groups": list(self.parents), "vars": self.vars}
        if self.description is not None:
            data["description"] = self.description
        if self.ansible_name is not None:
            data["ansible_name"] = self.ansible_name
        return data
