"""What a sync would change: CIs added, removed and changed (field by field).

Example: ``SyncPlan(added=["edge-rtr3"], removed=["old-sw9"],
changed={"core-sw1": [FieldChange("platform", "cisco_ios", "cisco_nxos")]})``;
`lines()` renders it as ``+ edge-rtr3``, ``- old-sw9``,
``~ core-sw1 platform: "cisco_ios" -> "cisco_nxos"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldChange:
    """One field of one CI: its value before and after (None: absent)."""

    field: str
    before: Any
    after: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "before": self.before, "after": self.after}


@dataclass
class SyncPlan:
    """The difference between the inventory on disk and the source's."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def lines(self) -> list[str]:
        out = [f"+ {name}" for name in self.added]
        out += [f"- {name}" for name in self.removed]
        for name, changes in self.changed.items():
            out += [f"~ {name} {c.field}: {_shown(c.before)} -> {_shown(c.after)}" for c in changes]
        return out

    def summary(self) -> str:
        return f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": {k: [c.to_dict() for c in v] for k, v in self.changed.items()},
            "notes": self.notes,
        }


def _shown(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def plan_sync(before: Iterable[Mapping[str, Any]], after: Iterable[Mapping[str, Any]]) -> SyncPlan:
    """Compares two lists of CI dictionaries by name. Attributes are compared
    key by key (``attributes.os_version``), other fields whole."""
    old = {ci["name"]: ci for ci in before}
    new = {ci["name"]: ci for ci in after}
    plan = SyncPlan(added=sorted(new.keys() - old.keys()), removed=sorted(old.keys() - new.keys()))
    for name in sorted(old.keys() & new.keys()):
        changes = _field_changes(old[name], new[name])
        if changes:
            plan.changed[name] = changes
    return plan


def _field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    changes = []
    for key in sorted(old.keys() | new.keys()):
        if key == "attributes":
            changes += _field_changes_prefixed(old.get(key) or {}, new.get(key) or {})
        elif old.get(key) != new.get(key):
            changes.append(FieldChange(key, old.get(key), new.get(key)))
    return changes


def _field_changes_prefixed(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    return [
        FieldChange(f"attributes.{key}", old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]
