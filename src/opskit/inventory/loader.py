"""Loading an inventory folder: parse, validate, merge, check, all or nothing.

The fast path parses every file with yaml-rs (Rust) and validates it with a
compiled JSON Schema (fastjsonschema): together about 20x faster than PyYAML
plus jsonschema. Neither reports line numbers, so only when the fast path
finds a fault is that one file parsed again with `opskit.yamlfile.load_yaml`,
whose `Locator` turns the faulty field's path into a line. Every fault is an
`InventoryError` naming the file, the line and the field; nothing partial is
ever returned.

Precedence, lowest first: `defaults` < the CI's groups (parents before
children; among the groups a CI lists, later wins) < the CI itself. The
mappings `attributes` and `connection_options` merge deeply, `credentials`
merge key by key (a secret reference is a leaf: a more specific one replaces
it), scalars override, and `groups` lists are united.

A parsed and validated inventory may be cached (pickle) under `cache_dir`,
keyed by a digest of every file's path and bytes; any edit misses the cache.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import os
import pickle
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import fastjsonschema
import yaml_rs

from opskit.errors import InventoryError, ValidationError, WorkspaceError
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
from opskit.inventory.numbers import first_non_finite, may_hold_non_finite
from opskit.inventory.schema import SECRET_REF_MARK, load_shipped_schema
from opskit.secrets import SecretRef
from opskit.yamlfile import field_path, load_yaml

if TYPE_CHECKING:
    from opskit.inventory.core import Inventory
    from opskit.workspace import Workspace

YAML_SUFFIXES = (".yaml", ".yml")
MERGED_MAPPINGS = ("attributes", "connection_options", "credentials")
# Merged key by key, but each value is a leaf: a secret reference ({env: X},
# {file: Y}...) from a more specific level replaces the inherited one whole.
LEAF_MAPPINGS = ("credentials",)
# Bumped whenever the cached form changes, so that old caches are ignored.
CACHE_FORMAT = 1
_KINDS = {kind.value: kind for kind in RelationKind}
_TYPES = {t.value: t for t in CIType}
_LIFECYCLES = {v.value: v for v in Lifecycle}
_CRITICALITIES = {v.value: v for v in Criticality}


# -- public entry points --------------------------------------------------------
def load_inventory(path: str | Path, *, cache_dir: Path | None = None) -> Inventory:
    """Loads and validates the inventory folder `path` (every *.yaml / *.yml in it,
    recursively, in path order). Raises InventoryError naming file, line, field."""
    with paused_gc():
        return _load(Path(path), cache_dir)


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector while building a large, acyclic
    structure: otherwise its passes over the growing heap, triggered by every
    700 new containers, take more time than the parsing itself.

    On the way out the objects alive are moved to the collector's permanent
    generation (`gc.freeze`): the inventory holds no reference cycles, so it
    never needs scanning, and the first full collection after a large load
    would otherwise cost as much as the validation. Objects still die by
    reference counting as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()


def _load(root: Path, cache_dir: Path | None) -> Inventory:
    from opskit.inventory.core import Inventory

    if not root.is_dir():
        raise InventoryError(f"{root}: no such inventory folder")
    files = _inventory_files(root)
    if not files:
        raise InventoryError(f"{root}: no *.yaml files in the inventory folder")
    contents = [_read(file) for file in files]
    key = _cache_key(root, files, contents)
    cache_file = _cache_file(cache_dir, root) if cache_dir is not None else None
    if cache_file is not None:
        cached = _read_cache(cache_file, key)
        if cached is not None:
            return cached
    texts = [_decode(file, raw) for file, raw in zip(files, contents, strict=True)]
    parsed = [
        _check_and_validate(file, text, data)
        for file, text, data in zip(files, texts, map(_parse, texts), strict=True)
    ]
    inventory: Inventory = _Builder(root, files, texts, parsed).build(Inventory)
    if cache_file is not None:
        _write_cache(cache_file, key, inventory)
    return inventory


def load_workspace_inventory(ws: Workspace, name: str | None = None) -> Inventory:
    """Loads inventory `name` (default: the policy's `inventory`) of a workspace,
    cached under the workspace's state folder. A name is one folder under
    `inventories/`: `.`, `..` or a path would load folders that are not an
    inventory (all of them at once, the workspace itself)."""
    from opskit.policy_check import INVENTORY_NAME

    if name is not None and not INVENTORY_NAME.match(name):
        have = sorted(p.name for p in ws.inventories_dir.glob("*") if p.is_dir())
        listed = f" (have: {', '.join(have)})" if have else ""
        raise WorkspaceError(
            f"{name!r} is not an inventory name: use a folder name under inventories/{listed}"
        )
    path = ws.inventory_path(name)
    return load_inventory(_display_path(path), cache_dir=ws.state_dir / "cache")


# -- files ----------------------------------------------------------------------
def _inventory_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden folders (.git, editors' state) are not part of the inventory.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if filename.endswith(YAML_SUFFIXES) and not filename.startswith("."):
                found.append(Path(dirpath) / filename)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _display_path(path: Path) -> Path:
    """Shorter paths in messages: relative to the current folder when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror}", file=file) from None


def _decode(file: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryError("not UTF-8 text", file=file, line=line) from None


# -- fast parse + validate, precise errors on the slow path ------------------------
@lru_cache(maxsize=1)
def _validator() -> Any:
    """The shipped schema compiled to Python by fastjsonschema.

    The generated code builds every item's error-path prefix eagerly with
    `"...".format(**locals())`, which is half of its run time on large files;
    the same strings as f-strings give identical results twice as fast.
    """
    code = fastjsonschema.compile_to_code(load_shipped_schema())
    code = _EAGER_FORMAT.sub(r'f"\1"', code)
    namespace: dict[str, Any] = {}
    exec(compile(code, "<opskit inventory schema>", "exec"), namespace)
    return namespace[_ENTRY_POINT]


_EAGER_FORMAT = re.compile(r'"([^"{}]*\{[^"]*)"\.format\(\*\*locals\(\)\)')
_ENTRY_POINT = "validate_https___opskit_dev_schemas_inventory_json"


def _parse(text: str) -> Any:
    """yaml-rs data, or the YAMLDecodeError (turned into a precise error later)."""
    try:
        return yaml_rs.loads(text, parse_datetime=False)
    except yaml_rs.YAMLDecodeError as exc:
        return exc


def _check_and_validate(file: Path, text: str, data: Any) -> dict[str, Any]:
    if isinstance(data, yaml_rs.YAMLDecodeError):
        raise _yaml_error(file, text, data)
    if data is None:
        return {}
    if isinstance(data, list) and len(data) > 1 and re.search(r"^---", text, re.M):
        raise InventoryError("several YAML documents in one file; use one per file", file=file)
    if not isinstance(data, dict):
        raise InventoryError(
            "the top level must be a mapping of defaults, groups and cis", file=file, line=1
        )
    try:
        _validator()(data)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(file, text, data, exc) from None
    if may_hold_non_finite(text):
        where = first_non_finite(data)
        if where is not None:
            loc, value = where
            raise InventoryError(
                f"{value!r} is not a number a CMDB can store; NaN and infinities are not allowed",
                file=file,
                line=locate(file, text, loc),
                field=field_path(loc) or None,
            )
    return data


def _yaml_error(file: Path, text: str, exc: Exception) -> InventoryError:
    # PyYAML gives the line and a familiar message; use it when it agrees.
    try:
        load_yaml(file, text=text)
    except ValidationError as slow:
        return InventoryError(_strip_where(str(slow), file), file=file, line=slow.line)
    first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
    match = re.search(r"line (\d+)", first)
    return InventoryError(
        f"invalid YAML: {first}", file=file, line=int(match[1]) if match else None
    )


def _strip_where(message: str, file: Path) -> str:
    # The slow path's message already starts with "file:line: "; keep the rest.
    prefix = str(file)
    if message.startswith(prefix):
        return message.split(": ", 1)[1] if ": " in message else message
    return message


def locate(file: Path, text: str, loc: Sequence[str | int]) -> int | None:
    """The line of `loc` inside `file`, by the slow (line-aware) parser."""
    try:
        _, locator = load_yaml(file, text=text)
    except ValidationError:
        return None
    return locator.line(loc)


def _schema_path(data: Any, raw: Sequence[str]) -> list[str | int]:
    """fastjsonschema's ['data', 'cis', '0', 'type'] -> ['cis', 0, 'type']."""
    out: list[str | int] = []
    node = data
    for part in raw[1:]:
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            out.append(index)
            node = node[index] if index < len(node) else None
        else:
            out.append(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _schema_error(
    file: Path, text: str, data: Any, exc: fastjsonschema.JsonSchemaValueException
) -> InventoryError:
    loc = _schema_path(data, exc.path or ["data"])
    rule = exc.rule
    definition = exc.definition if isinstance(exc.definition, dict) else {}
    value = exc.value
    if definition.get("$comment") == SECRET_REF_MARK or rule == "oneOf":
        if isinstance(value, str):
            message = "plain-text secret refused; use a secret reference"
        else:
            message = "not a valid secret reference"
        message += (
            " ({env: VAR}, {file: PATH}, {keyring: {service: S, username: U}} or {prompt: TEXT})"
        )
    elif rule == "additionalProperties" and isinstance(value, dict):
        known = sorted(definition.get("properties", {}))
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            loc.append(unknown[0])
            message = f"unknown field {unknown[0]!r}" + _did_you_mean(unknown[0], known)
            if not known:
                message = f"unknown field {unknown[0]!r}"
            elif len(known) <= 12:
                message += f" (allowed: {', '.join(known)})"
        else:
            message = "invalid entry"
    elif rule == "enum":
        choices = [str(c) for c in definition.get("enum", [])]
        message = f"must be one of {', '.join(choices)} (got {value!r})" + _did_you_mean(
            str(value), choices
        )
    elif rule == "type":
        message = f"must be {_a(definition.get('type'))} (got {_type_name(value)})"
    elif rule == "required":
        missing = [r for r in definition.get("required", []) if r not in (value or {})]
        message = f"missing required field {missing[0]!r}" if missing else "missing field"
    elif rule == "pattern":
        message = f"invalid value {value!r}: must match {definition.get('pattern')}"
    elif rule in ("minProperties", "maxProperties") and loc and "relationships" in loc:
        kinds = ", ".join(k.value for k in RelationKind)
        message = f"a relationship is one {{kind: target}} pair (kinds: {kinds})"
    elif rule == "uniqueItems":
        message = "duplicate entries"
    elif rule in ("minimum", "maximum"):
        message = (
            f"must be between {definition.get('minimum')} and {definition.get('maximum')}"
            f" (got {value!r})"
        )
    else:
        message = exc.message.split(" ", 1)[1] if " " in exc.message else exc.message
    line = locate(file, text, loc)
    return InventoryError(message, file=file, line=line, field=field_path(loc) or None)


def _a(type_name: Any) -> str:
    names = {"object": "a mapping", "array": "a list", "string": "text", "integer": "an integer"}
    if isinstance(type_name, list):
        return " or ".join(names.get(t, t) for t in type_name)
    return names.get(str(type_name), str(type_name))


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "nothing"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return f"text {value!r}" if len(str(value)) < 40 else "text"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


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


class _Builder:
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
                        f"unknown group {parent!r}" + _did_you_mean(parent, list(raw)),
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
                    f"unknown group {name!r}" + _did_you_mean(name, list(groups)),
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
                            + _did_you_mean(group_name, list(groups)),
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
                        + _did_you_mean(rel.target, list(cis)),
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


# -- cache ------------------------------------------------------------------------
def _cache_key(root: Path, files: list[Path], contents: list[bytes]) -> str:
    digest = hashlib.sha256(f"opskit-inventory-cache:{CACHE_FORMAT}\0".encode())
    # The layout of the cached classes: a cache from before a model change misses.
    for cls in (CI, Group, Relationship):
        digest.update(",".join(cls.__dataclass_fields__).encode() + b"\0")
    # Both spellings: messages and CI.source use the path as given.
    digest.update(str(root).encode() + b"\0" + str(root.resolve()).encode() + b"\0")
    for file, content in zip(files, contents, strict=True):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


def _cache_file(cache_dir: Path, root: Path) -> Path:
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return cache_dir / f"inventory-{name}.pickle"


def _read_cache(cache_file: Path, key: str) -> Inventory | None:
    # The cache lives in the workspace's own state folder, written only by
    # opskit; a stale, foreign or corrupt cache is simply ignored.
    try:
        with cache_file.open("rb") as handle:
            stored_key = pickle.load(handle)
            if stored_key != key:
                return None
            return pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        return None


def _write_cache(cache_file: Path, key: str, inventory: Inventory) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".tmp{os.getpid()}")
        with temporary.open("wb") as handle:
            pickle.dump(key, handle, protocol=pickle.HIGHEST_PROTOCOL)
            inventory.digest  # noqa: B018 - computed once, stored with the cache
            pickle.dump(inventory, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, cache_file)
    except OSError:
        pass  # a read-only state folder only costs speed
