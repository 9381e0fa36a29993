"""Building an `Inventory` from validated files: merge, resolve, check.

Precedence, lowest first: `defaults` < the CI's groups (parents before
children; among the groups a CI lists, later wins) < the CI itself. The
mappings `attributes` and `connection_options` merge deeply, `credentials`
merge key by key (a secret reference is a leaf: a more specific one replaces
it), scalars override, and `groups` lists are united. Groups must exist and
form no cycle, CI names are unique, relationships name existing CIs and the
dependency edges form no cycle; the first fault is one `InventoryError`
naming file, line and field (`cis[3].relationships[0]: depends_on: unknown
CI 'sw9'; did you mean 'sw1'?`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opskit.errors import InventoryError
from opskit.inventory.model import (
    CI,
    DEPENDENCY_KINDS,
    CIType,
    Criticality,
    Group,
    Lifecycle,
    RelationKind,
    Relationship,
)
from opskit.inventory.validation import did_you_mean, locate
from opskit.secrets import SecretRef
from opskit.yamlfile import field_path

if TYPE_CHECKING:
    from opskit.inventory.core import Inventory

MERGED_MAPPINGS = ("attributes", "connection_options", "credentials")
# Merged key by key, but each value is a leaf: a secret reference ({env: X},
# {file: Y}...) from a more specific level replaces the inherited one whole.
LEAF_MAPPINGS = ("credentials",)
_KINDS = {kind.value: kind for kind in RelationKind}
_TYPES = {t.value: t for t in CIType}
_LIFECYCLES = {v.value: v for v in Lifecycle}
_CRITICALITIES = {v.value: v for v in Criticality}


# -- merging ----------------------------------------------------------------------
def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: `override` wins for scalars and lists, mappings merge recursively."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = deep_merge(current, value)
        else:
            out[key] = value
    return out


def merge_vars(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """One precedence step: mappings merge deeply, `groups` unite, scalars override."""
    out = dict(base)
    for key, value in override.items():
        current = out.get(key)
        if current is None:
            out[key] = value
        elif key in LEAF_MAPPINGS:
            out[key] = {**current, **value}
        elif key in MERGED_MAPPINGS:
            out[key] = deep_merge(current, value)
        elif key == "groups":
            out[key] = list(dict.fromkeys([*current, *value]))
        else:
            out[key] = value
    return out


# -- the builder: merge, resolve, check ---------------------------------------------
class _Origin(NamedTuple):
    file_index: int
    loc: tuple[str | int, ...]


class InventoryBuilder:
    """Builds one `Inventory` from the validated files of a folder.

    `files`, `texts` and `parsed` are parallel lists (path, text, the
    mapping `validation.check_and_validate` returned), in path order.
    `build(Inventory)` returns the inventory or raises the first fault as
    an `InventoryError` naming file, line and field; it is called once."""

    def __init__(
        self, root: Path, files: list[Path], texts: list[str], parsed: list[dict[str, Any]]
    ) -> None:
        self.root = root
        self.files = files
        self.texts = texts
        self.parsed = parsed
        self.base_dir = root.resolve()
        self.sources = [str(file) for file in files]
        self._secret_memo: dict[tuple[str, str], SecretRef] = {}
        self._credentials_memo: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}

    def error(self, message: str, origin: _Origin, *extra: str | int) -> InventoryError:
        loc = (*origin.loc, *extra)
        file = self.files[origin.file_index]
        line = locate(file, self.texts[origin.file_index], loc)
        return InventoryError(message, file=file, line=line, field=field_path(loc))

    def where(self, origin: _Origin, *extra: str | int) -> str:
        file = self.files[origin.file_index]
        line = locate(file, self.texts[origin.file_index], (*origin.loc, *extra))
        return f"{file}:{line}" if line else str(file)

    # -- groups --
    def collect(self) -> tuple[dict[str, Any], dict[str, tuple[dict[str, Any], _Origin]], list]:
        defaults: dict[str, Any] = {}
        groups: dict[str, tuple[dict[str, Any], _Origin]] = {}
        cis: list[tuple[dict[str, Any], _Origin]] = []
        for index, data in enumerate(self.parsed):
            if "defaults" in data:
                defaults = merge_vars(defaults, data["defaults"])
            for name, group in (data.get("groups") or {}).items():
                origin = _Origin(index, ("groups", name))
                if name in groups:
                    first = self.where(groups[name][1])
                    raise self.error(
                        f"duplicate group {name!r} (first declared at {first})", origin
                    )
                groups[name] = (group, origin)
            for position, ci in enumerate(data.get("cis") or ()):
                cis.append((ci, _Origin(index, ("cis", position))))
        return defaults, groups, cis

    def resolve_groups(
        self, raw: dict[str, tuple[dict[str, Any], _Origin]]
    ) -> tuple[dict[str, Group], dict[str, tuple[str, ...]]]:
        """Checks parents exist and form no cycle; returns each group's ancestry,
        parents before children, ending with the group itself."""
        for group, origin in raw.values():
            for position, parent in enumerate(group.get("groups") or ()):
                if parent not in raw:
                    raise self.error(
                        f"unknown group {parent!r}" + did_you_mean(parent, list(raw)),
                        origin,
                        "groups",
                        position,
                    )
        lineage: dict[str, tuple[str, ...]] = {}

        def visit(name: str, trail: tuple[str, ...]) -> tuple[str, ...]:
            if name in lineage:
                return lineage[name]
            if name in trail:
                cycle = " -> ".join((*trail[trail.index(name) :], name))
                raise self.error(f"group cycle: {cycle}", raw[name][1], "groups")
            order: dict[str, None] = {}
            for parent in raw[name][0].get("groups") or ():
                order.update(dict.fromkeys(visit(parent, (*trail, name))))
            order[name] = None
            lineage[name] = tuple(order)
            return lineage[name]

        for name in raw:
            visit(name, ())
        groups = {
            name: Group(
                name=name,
                parents=tuple(group.get("groups") or ()),
                vars=group.get("vars") or {},
                description=group.get("description"),
                ansible_name=group.get("ansible_name"),
                source=str(self.files[origin.file_index]),
            )
            for name, (group, origin) in raw.items()
        }
        return groups, lineage

    # -- the whole build --
    def build(self, inventory_class: type[Inventory]) -> Inventory:
        defaults, raw_groups, raw_cis = self.collect()
        groups, lineage = self.resolve_groups(raw_groups)
        default_groups = tuple(defaults.get("groups") or ())
        for position, name in enumerate(default_groups):
            if name not in groups:
                origin = self._defaults_origin()
                raise self.error(
                    f"unknown group {name!r}" + did_you_mean(name, list(groups)),
                    origin,
                    "groups",
                    position,
                )
        bases: dict[tuple[str, ...], tuple[tuple[str, ...], dict[str, Any]]] = {}
        origins: dict[str, _Origin] = {}
        cis: dict[str, CI] = {}
        lines = [_NameLines(text) for text in self.texts]
        for raw, origin in raw_cis:
            name = raw["name"]
            if name in origins:
                first = self.where(origins[name], "name")
                raise self.error(
                    f"duplicate CI {name!r} (first declared at {first})", origin, "name"
                )
            origins[name] = origin
            declared = tuple(raw.get("groups") or ())
            key = (*declared, *default_groups)
            base = bases.get(key)
            if base is None:
                for position, group_name in enumerate(declared):
                    if group_name not in groups:
                        raise self.error(
                            f"unknown group {group_name!r}"
                            + did_you_mean(group_name, list(groups)),
                            origin,
                            "groups",
                            position,
                        )
                base = bases[key] = self._group_base(
                    defaults, groups, lineage, declared, default_groups
                )
            member_of, inherited = base
            merged = merge_vars(inherited, raw)
            merged["groups"] = member_of
            merged["declared_groups"] = key
            cis[name] = self._make_ci(merged, origin, lines[origin.file_index].line(name))
        self._check_relationships(cis, origins)
        return inventory_class(path=self.root, cis=cis, groups=groups, files=tuple(self.files))

    def _defaults_origin(self) -> _Origin:
        for index, data in enumerate(self.parsed):
            if "defaults" in data:
                return _Origin(index, ("defaults",))
        return _Origin(0, ())

    def _group_base(
        self,
        defaults: dict[str, Any],
        groups: dict[str, Group],
        lineage: dict[str, tuple[str, ...]],
        declared: tuple[str, ...],
        default_groups: tuple[str, ...],
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The CI's full group membership in precedence order, and the variables
        defaults and those groups give it."""
        order: dict[str, None] = {}
        for group_name in (*default_groups, *declared):
            order.update(dict.fromkeys(lineage[group_name]))
        merged = {k: v for k, v in defaults.items() if k != "groups"}
        for group_name in order:
            merged = merge_vars(merged, groups[group_name].vars)
        # The CI lists its own groups first, then what it inherits.
        member_of = tuple(dict.fromkeys((*declared, *order)))
        return member_of, merged

    def _secret(self, kind: str, value: Any) -> SecretRef:
        memo_key = (kind, repr(value))
        ref = self._secret_memo.get(memo_key)
        if ref is None:
            ref = SecretRef.parse({kind: value})
            if ref.file and not os.path.isabs(ref.file) and not ref.file.startswith("~"):
                # Relative file references are relative to the inventory folder.
                ref = SecretRef(file=str(self.base_dir / ref.file))
            self._secret_memo[memo_key] = ref
        return ref

    def _make_ci(self, merged: dict[str, Any], origin: _Origin, line: int | None) -> CI:
        for required in ("type", "platform"):
            if required not in merged:
                raise self.error(
                    f"missing required field {required!r} (set it on the CI, "
                    "one of its groups or the defaults)",
                    origin,
                )
        values = dict(_CI_DEFAULTS)
        values.update(merged)  # every key of merged data is a CI field (schema-checked)
        values["type"] = _TYPES[values["type"]]
        values["lifecycle"] = _LIFECYCLES[values["lifecycle"]]
        values["criticality"] = _CRITICALITIES[values["criticality"]]
        if values["credentials"]:
            values["credentials"] = self._credentials(values["credentials"])
        else:
            values["credentials"] = {}
        relationships = values["relationships"]
        if relationships:
            edges = sorted({(k, t) for item in relationships for k, t in item.items()})
            values["relationships"] = tuple(
                _frozen(Relationship, {"kind": _KINDS[k], "target": t}) for k, t in edges
            )
        values["connection_options"] = values["connection_options"] or {}
        values["attributes"] = values["attributes"] or {}
        values["source"] = self.sources[origin.file_index]
        values["line"] = line
        return _frozen(CI, values)

    def _credentials(self, raw: dict[str, Any]) -> dict[str, SecretRef | str]:
        """Secret references parsed; CIs inheriting the same mapping share the result."""
        memo = self._credentials_memo.get(id(raw))
        # The memo holds `raw` itself, so its id cannot be reused by another dict.
        if memo is not None and memo[0] is raw:
            return memo[1]
        credentials: dict[str, SecretRef | str] = {}
        for key, value in raw.items():
            if isinstance(value, str):  # only a username may be plain (schema-checked)
                credentials[key] = value
            else:
                ((kind, ref_value),) = value.items()
                credentials[key] = self._secret(kind, ref_value)
        self._credentials_memo[id(raw)] = (raw, credentials)
        return credentials

    def _check_relationships(self, cis: dict[str, CI], origins: dict[str, _Origin]) -> None:
        def relationship_position(ci: CI, kind: str, target: str) -> int:
            raw = self.parsed[origins[ci.name].file_index]["cis"][origins[ci.name].loc[1]]
            for position, item in enumerate(raw.get("relationships") or ()):
                if item.get(kind) == target:
                    return position
            return 0

        for ci in cis.values():
            for rel in ci.relationships:
                if rel.target not in cis:
                    position = relationship_position(ci, rel.kind.value, rel.target)
                    raise self.error(
                        f"{rel.kind.value}: unknown CI {rel.target!r}"
                        + did_you_mean(rel.target, list(cis)),
                        origins[ci.name],
                        "relationships",
                        position,
                    )
        cycle = find_dependency_cycle(cis)
        if cycle:
            first, second = cycle[0], cycle[1]
            kind = next(
                r.kind.value
                for r in cis[first].relationships
                if r.target == second and r.kind in DEPENDENCY_KINDS
            )
            raise self.error(
                f"dependency cycle: {' -> '.join(cycle)}",
                origins[first],
                "relationships",
                relationship_position(cis[first], kind, second),
            )


# Every CI field with its default, for building CIs without __init__.
_CI_DEFAULTS: dict[str, Any] = {
    name: None for name in ("host", "port", "owner", "department", "site", "source", "line")
} | {
    "description": None,
    "ansible_name": None,
    "declared_groups": (),
    "groups": (),
    "lifecycle": Lifecycle.OPERATIONAL.value,
    "criticality": Criticality.MEDIUM.value,
    "relationships": (),
    "credentials": None,
    "connection_options": None,
    "attributes": None,
}


def _frozen(cls: type[Any], values: dict[str, Any]) -> Any:
    """Builds a frozen dataclass without its __init__: a frozen __init__ sets
    each field through object.__setattr__, which dominates building 50,000 CIs.
    `values` must name every field (the loader always does)."""
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance


def find_dependency_cycle(cis: Mapping[str, CI]) -> list[str] | None:
    """A cycle of dependency edges as [a, b, ..., a], or None. Iterative DFS, linear."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in cis:
        if start in state:
            continue
        path: list[str] = [start]
        stack: list[Iterator[str]] = [iter(_dependency_targets(cis[start]))]
        state[start] = 1
        while stack:
            target = next(stack[-1], None)
            if target is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            mark = state.get(target)
            if mark == 1:
                return [*path[path.index(target) :], target]
            if mark is None and target in cis:
                state[target] = 1
                path.append(target)
                stack.append(iter(_dependency_targets(cis[target])))
    return None


def _dependency_targets(ci: CI) -> list[str]:
    return [r.target for r in ci.relationships if r.kind in DEPENDENCY_KINDS]


class _NameLines:
    """Best-effort line of each CI (`- name: x` / `- {name: x`) without a
    line-aware parse; exact lines come from the slow path when needed."""

    # Searching for the literal "name:" first is twice as fast as anchoring
    # a pattern at every line start.
    _NAME = re.compile(r"name:[ \t]*['\"]?([^'\",}\s]+)")
    _ITEM_START = re.compile(r"[ \t]*-[ \t]+\{?[ \t]*\Z")

    def __init__(self, text: str) -> None:
        self._text = text
        self._lines: dict[str, int] | None = None

    def line(self, name: str) -> int | None:
        if self._lines is None:
            text = self._text
            lines: dict[str, int] = {}
            position, line_number = 0, 1
            for match in self._NAME.finditer(text):
                start = match.start()
                if not self._ITEM_START.match(text, text.rfind("\n", 0, start) + 1, start):
                    continue
                line_number += text.count("\n", position, start)
                position = start
                lines.setdefault(match[1], line_number)
            self._lines = lines
        return self._lines.get(name)
