"""Property tests: random Ansible inventories (unicode, dashes and dots in
names, empty and nested groups, variables of every type at every level,
integer mapping keys) round-trip through import -> export, and random broken
ones are refused with one line naming the file.

Most examples are compared with Ansible's own Python API in this process (the
code ansible-inventory runs); a few with the real `ansible-inventory` binary,
which is slow."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import InventoryError, OpskitError
from opskit.inventory.ansible_import import import_ansible_inventory
from tests.ansible_support import (
    assert_same_listing,
    canonical_vars,
    comparable,
    drop_bookkeeping,
    round_trip,
    typed,
)

SETTINGS = settings(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LETTERS = "abkmxyzčřéß"
host_name = st.text(LETTERS + "0123456789-._", min_size=0, max_size=8).flatmap(
    lambda rest: st.sampled_from(LETTERS).map(lambda first: first + rest)
)
group_name = (
    st.text(LETTERS + "0123456789-_.", min_size=0, max_size=6)
    .flatmap(lambda rest: st.sampled_from(LETTERS).map(lambda first: first + rest))
    .filter(lambda n: n not in ("all", "ungrouped"))
)
var_name = st.from_regex(r"\Av_[a-z0-9_]{0,6}\Z")
scalar = st.one_of(
    st.integers(-(2**40), 2**40),
    st.booleans(),
    st.text("abc xyzřé-:/0123", max_size=10),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.none(),
)
KEYS = st.one_of(st.integers(0, 9), st.text("abc", min_size=1))  # integer keys too
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.integers(0, 9), st.text("abc", min_size=1)), inner, max_size=3
        ),
    ),
    max_leaves=6,
)
special = st.one_of(
    st.tuples(st.just("ansible_host"), st.sampled_from(["192.0.2.1", "h.example", "{{ v_a }}"])),
    st.tuples(st.just("ansible_ssh_host"), st.just("198.51.100.9")),
    st.tuples(st.just("ansible_port"), st.integers(1, 65535)),
    st.tuples(st.sampled_from(["ansible_user", "ansible_ssh_user"]), st.just("ops")),
    st.tuples(st.just("ansible_connection"), st.sampled_from(["local", "ssh"])),
    st.tuples(
        st.just("ansible_network_os"), st.sampled_from(["ios", "cisco.ios.ios", "arista.eos.eos"])
    ),
)


def variables() -> st.SearchStrategy[dict[str, Any]]:
    plain = st.dictionaries(var_name, value, max_size=3)
    return st.tuples(plain, st.lists(special, max_size=2)).map(lambda t: {**t[0], **dict(t[1])})


@st.composite
def inventories(draw: st.DrawFn) -> dict[str, Any]:
    groups = draw(st.lists(group_name, max_size=5, unique=True))
    hosts = draw(st.lists(host_name, max_size=5, unique=True))
    tree: dict[str, Any] = {}
    for index, name in enumerate(groups):
        entry: dict[str, Any] = {}
        members = draw(st.lists(st.sampled_from(hosts), max_size=3, unique=True)) if hosts else []
        if members:
            entry["hosts"] = {m: None for m in members}
        group_vars = draw(variables())
        if group_vars:
            entry["vars"] = group_vars
        earlier = groups[:index]
        entry["_parents"] = (
            draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True)) if earlier else []
        )
        tree[name] = entry
    nested = _nest(tree)
    host_vars = {h: draw(variables()) or None for h in hosts}
    return {"all": {"vars": draw(variables()) or None, "hosts": host_vars, "children": nested}}


def _nest(tree: dict[str, Any]) -> dict[str, Any]:
    """Groups with parents go under their parents' children (by reference)."""
    top: dict[str, Any] = {}
    for name, entry in tree.items():
        parents = entry.pop("_parents")
        body = {k: v for k, v in entry.items() if v}
        if not parents:
            top[name] = body
        for parent in parents:
            tree[parent].setdefault("children", {})[name] = body
            body = {}  # defined once; other parents only reference it
    return {k: v for k, v in top.items()}


def python_listing(path: Path) -> dict[str, Any]:
    """What ansible-inventory --list computes, through the same Python API."""
    from ansible import constants
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.plugins.loader import init_plugin_loader
    from ansible.vars.manager import VariableManager

    init_plugin_loader()
    loader = DataLoader()
    manager = InventoryManager(loader=loader, sources=[str(path.resolve())])
    variables = VariableManager(loader=loader, inventory=manager)
    groups = {
        str(g.name): {
            "hosts": sorted(str(h.name) for h in g.hosts) if g.name != "all" else [],
            "children": sorted(str(c.name) for c in g.child_groups),
        }
        for g in manager.groups.values()
    }
    nested = {c for name, g in groups.items() if name != "all" for c in g["children"]}
    groups["all"]["children"] = [c for c in groups["all"]["children"] if c not in nested]
    hostvars = {}
    for host in manager.get_hosts():
        effective = variables.get_vars(host=host, include_hostvars=False, stage="all")
        hostvars[str(host.name)] = {
            str(k): v for k, v in effective.items() if k not in constants.INTERNAL_STATIC_VARS
        }
    return {"groups": groups, "hostvars": hostvars}


def write_inventory(folder: Path, inventory: dict[str, Any]) -> Path:
    path = folder / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=True), encoding="utf-8")
    return path


@settings(SETTINGS, max_examples=25)
@given(inventory=inventories())
def test_random_inventories_round_trip(inventory: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = write_inventory(Path(folder), inventory)
        before = python_listing(source)
        exported, notes = round_trip(source, Path(folder) / "work")
        assert not [n for n in notes if "cannot be represented" in n], notes
        after = python_listing(exported)
    expected = comparable(before, original=True)
    got = drop_bookkeeping(comparable(after, original=False), expected)
    assert got["groups"] == expected["groups"]
    assert {h: typed(v) for h, v in got["hostvars"].items()} == {
        h: typed(canonical_vars(v)) for h, v in expected["hostvars"].items()
    }


@settings(SETTINGS, max_examples=3)
@given(inventory=inventories())
def test_random_inventories_round_trip_through_the_real_binary(inventory: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        source = write_inventory(Path(folder), inventory)
        assert_same_listing(source, Path(folder) / "work")


FAULTS = [
    "      v_bad: .nan\n",
    "      v_bad: [1, {x: -.inf}]\n",
    "      ansible_port: 70000\n",
    "      ansible_port: ssh\n",
    "      opskit_type: toaster\n",
    "      opskit_lifecycle: [1]\n",
    "    : broken\n",
    "  hosts: [\n",
    "\tv: 1\n",
]


@settings(SETTINGS, max_examples=30)
@given(
    inventory=inventories(),
    fault=st.sampled_from(FAULTS),
    where=st.integers(0, 200),
    noise=st.text(" :[]{}-#,'\"\t\n.!&*|>%@`a1", max_size=4),
)
def test_broken_inventories_give_one_line_naming_the_file(
    inventory: dict[str, Any], fault: str, where: int, noise: str
) -> None:
    """A fault (or noise) anywhere: the import either succeeds (the text is
    still a valid inventory) or raises one line naming the file; never another
    exception, never a temporary file."""
    inventory["all"]["hosts"] = inventory["all"]["hosts"] or {"h0": None}
    text = yaml.safe_dump(inventory, allow_unicode=True)
    lines = text.splitlines(keepends=True)
    host_line = next(i for i, line in enumerate(lines) if re.match(r"^  hosts:", line))
    lines.insert(host_line + 1, "    hfault:\n" + fault)
    text = "".join(lines)
    position = where % (len(text) + 1)
    text = text[:position] + noise + text[position:]
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "hosts.yml"
        source.write_text(text, encoding="utf-8")
        try:
            import_ansible_inventory(source)
        except InventoryError as exc:
            message = str(exc)
            assert "\n" not in message
            assert message.startswith(str(source)), message
            assert "opskit-import-" not in message
        except OpskitError as exc:  # pragma: no cover - the wrong kind of error
            raise AssertionError(f"not an InventoryError: {exc!r}") from exc


def test_the_faults_are_refused_on_their_own(tmp_path: Path) -> None:
    """Without noise every fault but the YAML ones is a refusal naming the line."""
    for index, fault in enumerate(FAULTS[:6]):
        text = "all:\n  hosts:\n    h0:\n    hfault:\n" + fault
        source = tmp_path / f"hosts{index}.yml"
        source.write_text(text, encoding="utf-8")
        try:
            import_ansible_inventory(source)
        except InventoryError as exc:
            assert str(exc).startswith(f"{source}:5"), str(exc)
        else:
            raise AssertionError(f"accepted: {fault!r}")
