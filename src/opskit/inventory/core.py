"""The loaded inventory: lookup, selection, impact analysis, graph and digest."""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import digests
from opskit.digests import sha256_bytes
from opskit.errors import InventoryError
from opskit.inventory.gcpause import paused_gc
from opskit.inventory.model import (
    CI,
    CRITICALITY_ORDER,
    DEPENDENCY_KINDS,
    Criticality,
    Group,
    RelationKind,
)
from opskit.inventory.select import compile_selection, select

DIGEST_FORMAT = 1


@dataclass(frozen=True)
class Edge:
    """`source` --kind--> `target`: for dependency kinds, source needs target."""

    source: str
    kind: RelationKind
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "kind": self.kind.value, "target": self.target}


@dataclass(frozen=True)
class ImpactedCI:
    """A CI a change to the targets impacts, found `depth` dependency steps away
    through `via`; `to_dict()` gives e.g. `{"name": "app1", "depth": 2, "via":
    "srv1", "kind": "runs_on", "criticality": "high", ...}`.
    """

    name: str
    depth: int  # 1 = depends directly on a target
    via: str  # the CI it depends on, one step closer to the targets
    kind: RelationKind  # the relationship from this CI to `via`
    type: str
    owner: str | None
    department: str | None
    site: str | None
    criticality: Criticality
    lifecycle: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "depth": self.depth,
            "via": self.via,
            "kind": self.kind.value,
            "type": self.type,
            "owner": self.owner,
            "department": self.department,
            "site": self.site,
            "criticality": self.criticality.value,
            "lifecycle": self.lifecycle,
        }


@dataclass(frozen=True)
class ImpactReport:
    """Every CI that depends on the targets, directly or transitively."""

    targets: tuple[str, ...]
    impacted: tuple[ImpactedCI, ...]
    owners: tuple[str, ...]  # of the targets and of every impacted CI
    highest_criticality: Criticality  # over targets and impacted CIs

    @property
    def names(self) -> list[str]:
        return [item.name for item in self.impacted]

    def to_dict(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "impacted": [item.to_dict() for item in self.impacted],
            "owners": list(self.owners),
            "highest_criticality": self.highest_criticality.value,
        }


@dataclass
class Inventory:
    """A validated inventory (`load_inventory`). CIs and their mappings are
    shared, read-only data: copy a mapping before changing it.

    Lookup by name (`get`, `in`, iteration), selection (`select`, the
    language of `opskit.inventory.select`), the dependency graph (`graph`,
    `dependents`), impact analysis and a digest of the merged content::

        >>> inv = load_inventory("inventories/example")
        >>> [ci.name for ci in inv.select("group:access")]
        ['access-sw1', 'access-sw2', 'access-sw3', 'access-sw4']
        >>> inv.impact("core-sw1").to_dict()["impacted"][0]["name"]
        'access-sw1'
        >>> inv.digest[:7]
        'sha256:'
    """

    path: Path
    cis: dict[str, CI]
    groups: dict[str, Group]
    files: tuple[Path, ...] = ()
    _digest: str | None = field(default=None, repr=False)
    _dependents: dict[str, list[tuple[str, RelationKind]]] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_dependents"] = None  # cheap to rebuild, not worth storing
        return state

    # -- lookup --
    def __len__(self) -> int:
        return len(self.cis)

    def __iter__(self) -> Iterator[CI]:
        return iter(self.cis.values())

    def __contains__(self, name: object) -> bool:
        return name in self.cis

    def get(self, name: str) -> CI:
        """The CI `name`; InventoryError with close matches when there is none."""
        ci = self.cis.get(name)
        if ci is None:
            raise InventoryError(f"unknown CI {name!r}" + self._suggest(name, self.cis))
        return ci

    def members(self, group: str) -> list[CI]:
        """CIs in `group`, directly or through a child group, sorted by name."""
        if group not in self.groups:
            raise InventoryError(f"unknown group {group!r}" + self._suggest(group, self.groups))
        return sorted((ci for ci in self.cis.values() if group in ci.groups), key=_by_name)

    @staticmethod
    def _suggest(name: str, choices: Iterable[str]) -> str:
        close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.6)
        return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""

    # -- selection --
    def select(self, expr: str | None = None, include_decommissioned: bool = False) -> list[CI]:
        """CIs matching the selection expression, sorted by name (see
        `opskit.inventory.select`). Decommissioned CIs only when
        `include_decommissioned` or the expression names `lifecycle:decommissioned`.
        A plain name or group that does not exist is an error (a typo would
        otherwise silently select nothing)."""
        selection = compile_selection(expr) if expr is not None and expr.strip() else None
        if selection is not None:
            for term in selection.terms:
                if term.key == "name" and not term.is_glob and term.pattern not in self.cis:
                    raise InventoryError(
                        f"selection {expr!r}: unknown CI {term.pattern!r}"
                        + self._suggest(term.pattern, self.cis)
                    )
                if term.key == "group" and not term.is_glob and term.pattern not in self.groups:
                    raise InventoryError(
                        f"selection {expr!r}: unknown group {term.pattern!r}"
                        + self._suggest(term.pattern, self.groups)
                    )
        if selection is not None and selection.names is not None:
            # Names only (each known, checked above): looked up, not matched
            # against every CI (a change's hosts, named one by one).
            keep = include_decommissioned or selection.names_decommissioned
            named = (self.cis[name] for name in sorted(selection.names))
            return [ci for ci in named if keep or not ci.decommissioned]
        return select(self.cis.values(), selection, include_decommissioned=include_decommissioned)

    # -- relationships --
    def graph(self) -> list[Edge]:
        """Every relationship as an edge, sorted (source, kind, target)."""
        return sorted(
            (
                Edge(ci.name, rel.kind, rel.target)
                for ci in self.cis.values()
                for rel in ci.relationships
            ),
            key=lambda e: (e.source, e.kind.value, e.target),
        )

    def dependents(self, name: str) -> list[tuple[str, RelationKind]]:
        """CIs that depend directly on `name`, with the relationship kind."""
        if self._dependents is None:
            reverse: dict[str, list[tuple[str, RelationKind]]] = {}
            for ci in self.cis.values():
                for rel in ci.relationships:
                    if rel.kind in DEPENDENCY_KINDS:
                        reverse.setdefault(rel.target, []).append((ci.name, rel.kind))
            for entries in reverse.values():
                entries.sort()
            self._dependents = reverse
        return self._dependents.get(name, [])

    def impact(self, names: str | Iterable[str]) -> ImpactReport:
        """Every CI that depends on `names` directly or transitively, following
        depends_on, runs_on, hosted_by and member_of edges backwards (if `app
        depends_on db`, a change to db impacts app). Breadth-first, so `depth`
        is the shortest distance. Decommissioned CIs are not in service and are
        left out (and not followed)."""
        targets = [names] if isinstance(names, str) else list(dict.fromkeys(names))
        target_cis = [self.get(name) for name in targets]
        seen = set(targets)
        impacted: list[ImpactedCI] = []
        queue = deque((name, 0) for name in targets)
        while queue:
            current, depth = queue.popleft()
            for dependent, kind in self.dependents(current):
                if dependent in seen:
                    continue
                seen.add(dependent)
                ci = self.cis[dependent]
                if ci.decommissioned:
                    continue
                impacted.append(
                    ImpactedCI(
                        name=ci.name,
                        depth=depth + 1,
                        via=current,
                        kind=kind,
                        type=ci.type.value,
                        owner=ci.owner,
                        department=ci.department,
                        site=ci.site,
                        criticality=ci.criticality,
                        lifecycle=ci.lifecycle.value,
                    )
                )
                queue.append((dependent, depth + 1))
        impacted.sort(key=lambda item: (item.depth, item.name))
        everyone = [*target_cis, *(self.cis[item.name] for item in impacted)]
        owners = tuple(sorted({ci.owner for ci in everyone if ci.owner}))
        highest = max((ci.criticality for ci in everyone), key=CRITICALITY_ORDER.__getitem__)
        return ImpactReport(tuple(targets), tuple(impacted), owners, highest)

    # -- the content digest --
    def canonical_data(self) -> dict[str, Any]:
        """The merged content that the digest covers: every CI (merged, sorted by
        name, file secret paths relative to the folder) and the group definitions.
        Independent of key order, formatting and how the content is split in files."""
        base = self.path.resolve()
        secrets: dict[Any, Any] = {}
        return {
            "format": DIGEST_FORMAT,
            "groups": {name: self.groups[name].to_data() for name in sorted(self.groups)},
            "cis": [
                self.cis[name].to_data(base_dir=base, _secrets=secrets) for name in sorted(self.cis)
            ],
        }

    @property
    def digest(self) -> str:
        """ "sha256:<hex>" of the canonical JSON of `canonical_data()`."""
        if self._digest is None:
            with paused_gc():
                self._digest = sha256_bytes(canonical_json(self.canonical_data()))
        return self._digest


def canonical_json(data: Any) -> bytes:
    """The UTF-8 of `opskit.digests.canonical_json(data)`: what the inventory
    digest is taken over."""
    return digests.canonical_json(data).encode("utf-8")


def _by_name(ci: CI) -> str:
    return ci.name
