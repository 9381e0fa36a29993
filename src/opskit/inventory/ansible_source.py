"""Reading an Ansible inventory through Ansible's own code, as plain data.

`read_source` runs Ansible's InventoryManager on the inventory file and its
vars plugins (`group_vars/` and `host_vars/` beside it), and returns every
group with its parents, direct hosts and variables, every host with its own
variables and the effective variables Ansible computes for it (what
`ansible-inventory --list` prints), and where each variable was written
(file and line, from Ansible's origin tags) for error messages.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings as python_warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import InventoryError
from opskit.inventory.numbers import first_non_finite


@dataclass(frozen=True)
class Where:
    """Where a variable or a name was written."""

    file: str
    line: int | None = None


@dataclass
class SourceGroup:
    """An Ansible group as its files declare it: parents, direct hosts, its
    variables and where each was written.
    """

    name: str
    parents: list[str]  # without `all`
    hosts: list[str]  # direct members
    vars: dict[str, Any]
    where: dict[str, Where] = field(default_factory=dict)  # variable -> origin


@dataclass
class SourceHost:
    """An Ansible host: its own variables, what `ansible-inventory --list` gives
    it in effect, and where each was written.
    """

    name: str
    vars: dict[str, Any]  # its own variables (inventory file and host_vars/)
    effective: dict[str, Any]  # what ansible-inventory --list gives it
    where: dict[str, Where] = field(default_factory=dict)
    declared: Where | None = None


@dataclass
class AnsibleSource:
    """An Ansible inventory as read for import: `all` variables, groups and
    hosts, each variable with its origin (`where`).
    """

    path: Path
    all_vars: dict[str, Any]
    all_where: dict[str, Where]
    groups: dict[str, SourceGroup]  # without all and ungrouped
    hosts: dict[str, SourceHost]

    def where(self, level: tuple[str, str | None], key: str | None = None) -> Where:
        """The origin of variable `key` at a level (("host", name), ("group",
        name) or ("all", None)), else of the host, else the inventory file."""
        kind, name = level
        table: Mapping[str, Where] = self.all_where
        declared = None
        if kind == "host" and name in self.hosts:
            table, declared = self.hosts[name].where, self.hosts[name].declared
        elif kind == "group" and name in self.groups:
            table = self.groups[name].where
        if key is not None and key in table:
            return table[key]
        return declared or Where(str(self.path))


# Variables Ansible adds itself, never written by anyone (as ansible-inventory drops them).
def _internal_vars() -> frozenset[str]:
    from ansible import constants

    return frozenset(constants.INTERNAL_STATIC_VARS)


def read_source(path: Path) -> AnsibleSource:
    """The inventory at `path` as Ansible reads it. InventoryError (naming the
    file and, when Ansible says, the line) when Ansible cannot parse it."""
    given, path = path, path.resolve()  # vars plugins need an absolute path
    with _quiet() as chatter:
        try:
            loader, manager, variables = _ansible(path)
            return _collect(path, loader, manager, variables)
        except InventoryError:
            raise
        except Exception as exc:  # Ansible raises its own AnsibleError types
            raise _parse_error(given, path, exc, chatter.getvalue()) from None


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Ansible prints its warnings; the error says what matters."""
    chatter = io.StringIO()
    with (
        python_warnings.catch_warnings(),
        contextlib.redirect_stderr(chatter),
        contextlib.redirect_stdout(chatter),
    ):
        python_warnings.simplefilter("ignore")
        yield chatter


def _ansible(path: Path) -> tuple[Any, Any, Any]:
    try:
        from ansible import constants
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
        from ansible.plugins.loader import init_plugin_loader
        from ansible.vars.manager import VariableManager
    except ImportError as exc:  # pragma: no cover - ansible is a dependency
        raise InventoryError(f"Ansible is not installed: {exc}") from None
    init_plugin_loader()
    # Fail instead of warning when no inventory plugin can parse the source.
    constants.INVENTORY_UNPARSED_IS_FAILED = True  # type: ignore[attr-defined]
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(path)])
    return loader, manager, VariableManager(loader=loader, inventory=manager)


def _parse_error(given: Path, path: Path, exc: Exception, chatter: str) -> InventoryError:
    """One line: what the YAML and INI plugins said, else Ansible's error."""
    causes = re.findall(r"Failed to parse inventory with '(?:yaml|ini)' plugin: (.+)", chatter)
    if causes:
        message = "; ".join(dict.fromkeys(c.strip() for c in causes))
    else:
        message = str(exc)
        if "<<< caused by >>>" in message:
            message = message.split("<<< caused by >>>", 1)[1]
        message = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    line = re.search(rf"{re.escape(str(path))}:(\d+)", f"{exc} {chatter}")
    return InventoryError(
        f"Ansible cannot parse it: {message}", file=given, line=int(line[1]) if line else None
    )


def _collect(path: Path, loader: Any, manager: Any, variables: Any) -> AnsibleSource:
    from ansible.vars.plugins import get_vars_from_inventory_sources

    def plugin_vars(entity: Any) -> dict[str, Any]:
        return dict(get_vars_from_inventory_sources(loader, manager._sources, [entity], "all"))

    internal = _internal_vars()
    groups: dict[str, SourceGroup] = {}
    all_vars: dict[str, Any] = {}
    all_where: dict[str, Where] = {}
    for group in manager.groups.values():
        raw = {**group.get_vars(), **plugin_vars(group)}
        own = {str(k): v for k, v in raw.items() if k not in internal}
        where = {key: _where(value, path) for key, value in raw.items() if key in own}
        if group.name == "all":
            all_vars, all_where = own, where
            continue
        if group.name == "ungrouped":
            continue
        groups[str(group.name)] = SourceGroup(
            name=str(group.name),
            parents=sorted(str(p.name) for p in group.parent_groups if p.name != "all"),
            hosts=[str(h.name) for h in group.hosts],
            vars=own,
            where=where,
        )
    hosts: dict[str, SourceHost] = {}
    for host in manager.get_hosts():
        raw = {**host.vars, **plugin_vars(host)}
        effective = variables.get_vars(host=host, include_hostvars=False, stage="all")
        hosts[str(host.name)] = SourceHost(
            name=str(host.name),
            vars={str(k): v for k, v in raw.items() if k not in internal},
            effective={str(k): v for k, v in effective.items() if k not in internal},
            where={str(k): _where(v, path) for k, v in raw.items()},
            declared=_where(host.name, path),
        )
    source = AnsibleSource(path, all_vars, all_where, groups, hosts)
    _refuse_undecodable(source)
    _refuse_non_finite(source)
    return source


def _where(value: Any, default: Path) -> Where:
    try:
        from ansible._internal._datatag._tags import Origin
    except ImportError:  # pragma: no cover - Ansible before 2.19 has no origin tags
        return Where(str(default))
    origin = Origin.get_tag(value)
    if origin is None or not origin.path:
        return Where(str(default))
    return Where(_shorter(origin.path), origin.line_num)


def _shorter(file: str) -> str:
    try:
        return str(Path(file).relative_to(Path.cwd()))
    except ValueError:
        return file


def _levels(source: AnsibleSource) -> list[tuple[tuple[str, str | None], Mapping[str, Any]]]:
    return [
        (("all", None), source.all_vars),
        *((("group", name), g.vars) for name, g in source.groups.items()),
        *((("host", name), h.vars) for name, h in source.hosts.items()),
    ]


def _refuse_undecodable(source: AnsibleSource) -> None:
    """Ansible reads bytes that are not UTF-8 as lone surrogates ('\\udcff'),
    which no YAML file, database or terminal can hold: refused, shown as the bytes."""
    for kind, names in (("group", source.groups), ("host", source.hosts)):
        for name in names:
            if _LONE_SURROGATE.search(name):
                raise InventoryError(
                    f"{kind} name {_as_bytes(name)}: not UTF-8 text",
                    file=source.path,
                    line=_line_of(source.path, name),
                )
    for level, variables in _levels(source):
        for key, value in variables.items():
            if _undecodable(key) or _undecodable(value):
                where = source.where(level, key)
                subject = f"{level[0]} {level[1]}: " if level[1] else ""
                raise InventoryError(
                    f"{subject}variable {_as_bytes(key)}: holds text that is not UTF-8",
                    file=where.file,
                    line=where.line,
                )


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _undecodable(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_LONE_SURROGATE.search(value))
    if isinstance(value, Mapping):
        return any(_undecodable(k) or _undecodable(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return any(_undecodable(item) for item in value)
    return False


def _as_bytes(text: str) -> str:
    """Quoted, the undecodable bytes as \\xNN escapes (and control characters escaped)."""
    shown = _encoded(text).decode("utf-8", "backslashreplace")
    return repr(shown).replace("\\\\", "\\")


def _encoded(text: str) -> bytes:
    """The bytes Ansible read (surrogateescape), or escapes for other lone surrogates."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace")


def _line_of(path: Path, text: str) -> int | None:
    needle = _encoded(text)
    try:
        lines = path.read_bytes().split(b"\n")
    except OSError:
        return None
    return next((number for number, line in enumerate(lines, 1) if needle in line), None)


def _refuse_non_finite(source: AnsibleSource) -> None:
    """NaN and infinities are not data a CMDB can compare or store as JSON."""
    for level, variables in _levels(source):
        for key, value in variables.items():
            bad = non_finite_path(value)
            if bad is not None:
                where = source.where(level, key)
                subject = f"{level[0]} {level[1]}: " if level[1] else ""
                raise InventoryError(
                    f"{subject}{key}{bad}: NaN and infinities are not allowed",
                    file=where.file,
                    line=where.line,
                )


def non_finite_path(value: Any) -> str | None:
    """The path (".a[0]") of the first NaN or infinity inside `value`, or None."""
    found = first_non_finite(value)
    if found is None:
        return None
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in found[0])
