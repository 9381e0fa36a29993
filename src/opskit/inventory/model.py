"""The CMDB's configuration item (CI) and its relationships.

Plain, frozen dataclasses: loading and validation (`opskit.inventory.loader`)
produce them, everything else only reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opskit.secrets import SecretRef


class CIType(StrEnum):
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
    PLANNED = "planned"
    COMMISSIONED = "commissioned"
    OPERATIONAL = "operational"
    MAINTENANCE = "maintenance"
    DECOMMISSIONED = "decommissioned"


class Criticality(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class RelationKind(StrEnum):
    DEPENDS_ON = "depends_on"
    CONNECTED_TO = "connected_to"
    RUNS_ON = "runs_on"
    HOSTED_BY = "hosted_by"
    MEMBER_OF = "member_of"


@dataclass(frozen=True)
class Relationship:
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
    # Where the CI was declared, for error messages.
    source: str | None = None
    line: int | None = None

    def __hash__(self) -> int:
        return hash(self.name)
