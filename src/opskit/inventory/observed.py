"""Observed state: facts discovered from devices, the CMDB record of changes,
and the drift between declared and observed state.

Connectors record facts (`ObservedStore.record_facts`), the change engine
records each CI's outcome after a change (`record_change`, also for failed
and aborted changes), and `drift()` compares the inventory's declared
attributes, platform and host with the latest observed facts.

The tables live on the shared `opskit.db.metadata` and use only portable
types (SQLite and PostgreSQL). Timestamps are stored in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
)

from opskit.db import metadata
from opskit.errors import InventoryError
from opskit.inventory.core import Inventory
from opskit.inventory.model import CI

observed_facts = Table(
    "observed_facts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ci", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("value", JSON, nullable=True),
    Column("source", String(255), nullable=False),
    Column("observed_at", DateTime(timezone=True), nullable=False),
    Index("ix_observed_facts_ci_name_at", "ci", "name", "observed_at"),
)

ci_changes = Table(
    "ci_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ci", String(255), nullable=False),
    Column("change_id", String(255), nullable=False),
    Column("status", String(64), nullable=False),
    Column("config_hash", String(128), nullable=True),
    Column("detail", Text, nullable=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Index("ix_ci_changes_ci_at", "ci", "at"),
)

# Facts that change on their own and say nothing about the CI's specification.
VOLATILE_FACTS = frozenset({"uptime", "uptime_seconds", "last_seen", "collected_at"})
# Facts compared with the CI's own fields rather than with its attributes.
FIELD_FACTS = ("platform", "host")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Fact:
    """One observed value of a fact, with who reported it and when (UTC);
    unpacks as `value, source, at`.
    """

    value: Any
    source: str
    at: datetime

    def __iter__(self):  # type: ignore[no-untyped-def]
        # Unpacks as (value, source, at).
        return iter((self.value, self.source, self.at))


@dataclass(frozen=True)
class CIChange:
    """The CMDB's record of one change on one CI: its outcome (`status`), the
    configuration hash after it and when; `to_dict()` gives e.g. `{"ci": "sw1",
    "change_id": "CHG-000001", "status": "ok", "config_hash": "sha256:...",
    "detail": None, "at": "2026-12-01T22:05:00+00:00"}`.
    """

    ci: str
    change_id: str
    status: str
    config_hash: str | None
    at: datetime
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "change_id": self.change_id,
            "status": self.status,
            "config_hash": self.config_hash,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


class ObservedStore:
    """Reads and writes observed facts and CI change records."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # Idempotent: only creates what is missing.
        metadata.create_all(engine, tables=[observed_facts, ci_changes])

    # -- facts --
    def record_facts(
        self,
        ci: str,
        facts: Mapping[str, Any],
        source: str,
        *,
        at: datetime | None = None,
    ) -> int:
        """Stores one observation of `facts` (name -> JSON value) for `ci`."""
        when = _as_utc(at) if at else utcnow()
        rows = []
        for name, value in facts.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise InventoryError(
                    f"fact {name!r} of {ci!r} is not JSON-serialisable ({type(value).__name__})"
                ) from None
            rows.append(
                {"ci": ci, "name": str(name), "value": value, "source": source, "observed_at": when}
            )
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(observed_facts), rows)
        return len(rows)

    def latest_facts(self, ci: str) -> dict[str, Fact]:
        """The most recent value of every fact observed for `ci`."""
        return self.latest_facts_many([ci]).get(ci, {})

    def latest_facts_many(self, cis: Iterable[str] | None = None) -> dict[str, dict[str, Fact]]:
        """Latest facts of several CIs (all when None), in one query per 500 CIs."""
        names = None if cis is None else list(dict.fromkeys(cis))
        result: dict[str, dict[str, Fact]] = {}
        chunks = (
            [None] if names is None else [names[i : i + 500] for i in range(0, len(names), 500)]
        )
        with self.engine.connect() as connection:
            for chunk in chunks:
                query = select(
                    observed_facts.c.ci,
                    observed_facts.c.name,
                    observed_facts.c.value,
                    observed_facts.c.source,
                    observed_facts.c.observed_at,
                ).order_by(observed_facts.c.observed_at, observed_facts.c.id)
                if chunk is not None:
                    if not chunk:
                        continue
                    query = query.where(observed_facts.c.ci.in_(chunk))
                for row in connection.execute(query):
                    # Ordered oldest first: later rows overwrite earlier ones.
                    result.setdefault(row.ci, {})[row.name] = Fact(
                        row.value, row.source, _as_utc(row.observed_at)
                    )
        return result

    # -- the CMDB record of changes --
    def record_change(
        self,
        ci: str,
        change_id: str,
        status: str,
        config_hash: str | None = None,
        *,
        detail: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """Records the outcome of change `change_id` on `ci` (any status,
        including failed and aborted)."""
        self.record_changes(change_id, [(ci, status, config_hash)], detail=detail, at=at)

    def record_changes(
        self,
        change_id: str,
        outcomes: Iterable[tuple[str, str, str | None]],
        *,
        detail: str | None = None,
        at: datetime | None = None,
        connection: Connection | None = None,
    ) -> None:
        """Records the outcome of change `change_id` on several CIs at once,
        one `(ci, status, config_hash)` each, in one statement, for example
        `record_changes("CHG-000001", [("sw1", "ok", "sha256:9f..."),
        ("sw2", "failed", None)])`. With `connection` the rows are written in
        the caller's transaction and commit or roll back with it; otherwise in
        a transaction of their own."""
        when = _as_utc(at) if at else utcnow()
        rows = [
            {
                "ci": ci,
                "change_id": change_id,
                "status": status,
                "config_hash": config_hash,
                "detail": detail,
                "at": when,
            }
            for ci, status, config_hash in outcomes
        ]
        if not rows:
            return
        if connection is not None:
            connection.execute(insert(ci_changes), rows)
            return
        with self.engine.begin() as own:
            own.execute(insert(ci_changes), rows)

    def last_change(self, ci: str) -> CIChange | None:
        changes = self.changes(ci, limit=1)
        return changes[0] if changes else None

    def changes(self, ci: str, *, limit: int | None = None) -> list[CIChange]:
        """Change records of `ci`, newest first."""
        query = (
            select(ci_changes)
            .where(ci_changes.c.ci == ci)
            .order_by(ci_changes.c.at.desc(), ci_changes.c.id.desc())
        )
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as connection:
            return [
                CIChange(
                    row.ci, row.change_id, row.status, row.config_hash, _as_utc(row.at), row.detail
                )
                for row in connection.execute(query)
            ]


# -- drift -------------------------------------------------------------------------
class DriftKind(StrEnum):
    """How a declared field and its observation disagree."""

    MISSING = "missing"  # declared, but no device reported it
    DIFFERS = "differs"  # declared and observed disagree
    UNDECLARED = "undeclared"  # observed, but the CMDB does not declare it


@dataclass(frozen=True)
class DriftItem:
    """One field of one CI whose declared and observed values disagree, with the
    observation's source and time, e.g. `DriftItem("sw1", "attributes.os_version",
    DriftKind.DIFFERS, declared="17.9", observed="17.12", source="napalm")`.
    """

    ci: str
    field: str  # "platform", "host" or "attributes.<name>"
    kind: DriftKind
    declared: Any = None
    observed: Any = None
    source: str | None = None
    observed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "field": self.field,
            "kind": self.kind.value,
            "declared": self.declared,
            "observed": self.observed,
            "source": self.source,
            "observed_at": self.observed_at.isoformat() if self.observed_at else None,
        }


def same_value(declared: Any, observed: Any) -> bool:
    """Equal, or equal once both are written as text (17.9 == "17.9")."""
    if declared == observed:
        return True
    if isinstance(declared, bool) or isinstance(observed, bool):
        return False
    if isinstance(declared, dict | list) or isinstance(observed, dict | list):
        return False
    return str(declared) == str(observed)


@dataclass(frozen=True)
class DriftReport:
    """Drift of a selection, and which CIs could be compared at all."""

    items: list[DriftItem]
    observed: tuple[str, ...]  # selected CIs with at least one observed fact
    unobserved: tuple[str, ...]  # selected CIs never observed: not compared

    def summary(self) -> str:
        """One line for a report without differences: never "no drift" when
        nothing was observed to compare with."""
        if not self.observed:
            return (
                f"no observation recorded for any of the {len(self.unobserved)} selected CI(s),"
                " so drift cannot be checked: facts are recorded by changes whose runbook"
                " collects them (an action: facts step, as in napalm-merge) or by"
                " ObservedStore.record_facts"
            )
        line = (
            f"no drift on the {len(self.observed)} observed CI(s):"
            " declared state matches the latest observations"
        )
        if self.unobserved:
            line += f"; {len(self.unobserved)} selected CI(s) never observed (not compared)"
        return line


def drift(
    inventory: Inventory,
    store: ObservedStore,
    select: str | None = None,
    *,
    ignore: Iterable[str] = VOLATILE_FACTS,
) -> list[DriftItem]:
    """Differences between declared and latest observed state of the selected CIs
    (`drift_report(...).items`)."""
    return drift_report(inventory, store, select, ignore=ignore).items


def drift_report(
    inventory: Inventory,
    store: ObservedStore,
    select: str | None = None,
    *,
    ignore: Iterable[str] = VOLATILE_FACTS,
) -> DriftReport:
    """Differences between declared and latest observed state of the selected CIs.

    Only CIs with at least one observed fact are compared (an unobserved CI
    has no observed state to disagree with; the report lists them). Per CI:
    every declared attribute with no fact of the same name is `missing`, one
    whose fact differs is `differs`, and every fact with no declared attribute
    is `undeclared` (except volatile facts such as uptime). `platform` and
    `host` facts are compared with the CI's fields.
    """
    cis = inventory.select(select)
    ignored = frozenset(ignore)
    observed = store.latest_facts_many(ci.name for ci in cis)
    items: list[DriftItem] = []
    seen: list[str] = []
    unseen: list[str] = []
    for ci in cis:
        facts = observed.get(ci.name)
        if facts:
            seen.append(ci.name)
            items.extend(_compare(ci, facts, ignored))
        else:
            unseen.append(ci.name)
    return DriftReport(items, tuple(seen), tuple(unseen))


def _compare(ci: CI, facts: dict[str, Fact], ignored: frozenset[str]) -> list[DriftItem]:
    items = []
    for name in FIELD_FACTS:
        fact = facts.get(name)
        declared = getattr(ci, name)
        if fact is not None and declared is not None and not same_value(declared, fact.value):
            items.append(
                DriftItem(
                    ci.name, name, DriftKind.DIFFERS, declared, fact.value, fact.source, fact.at
                )
            )
    for name in sorted(ci.attributes):
        declared = ci.attributes[name]
        fact = facts.get(name)
        if fact is None:
            items.append(DriftItem(ci.name, f"attributes.{name}", DriftKind.MISSING, declared))
        elif not same_value(declared, fact.value):
            items.append(
                DriftItem(
                    ci.name,
                    f"attributes.{name}",
                    DriftKind.DIFFERS,
                    declared,
                    fact.value,
                    fact.source,
                    fact.at,
                )
            )
    for name in sorted(facts):
        if name in ci.attributes or name in FIELD_FACTS or name in ignored:
            continue
        fact = facts[name]
        items.append(
            DriftItem(
                ci.name,
                f"attributes.{name}",
                DriftKind.UNDECLARED,
                None,
                fact.value,
                fact.source,
                fact.at,
            )
        )
    return items
