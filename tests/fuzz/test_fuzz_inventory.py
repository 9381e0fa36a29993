"""Fuzzing the inventory loader (the CMDB's files) and `opskit inventory`."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml_rs
from hypothesis import given
from hypothesis import strategies as st

from opskit.inventory import load_inventory
from opskit.inventory.ansible import to_ansible_inventory, write_inventory_folder
from opskit.inventory.ansible_import import import_ansible_inventory
from opskit.secrets import SecretRef
from opskit.workspace import Workspace
from tests.fuzz import strategies as gen
from tests.fuzz.support import (
    assert_api_error,
    assert_no_traceback,
    assert_one_line_error,
    assert_unchanged,
    run_cli,
    snapshot,
)

_counter = itertools.count()


def write_folder(root: Path, files: list[Any]) -> list[Path]:
    """Writes each content (data, or raw bytes) as one file of a fresh folder."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    paths = []
    for index, content in enumerate(files):
        path = root / f"part{index}.yaml"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(gen.yaml_text(content), encoding="utf-8")
        paths.append(path)
    return paths


def assert_contains(expected: Any, actual: Any, where: str) -> None:
    """Every value given in `expected` is in `actual` (merging may add more)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            assert key in actual, f"{where}: {key!r} was lost"
            assert_contains(value, actual[key], f"{where}.{key}")
    else:
        assert type(actual) is type(expected) and actual == expected, (
            f"{where}: wrote {expected!r}, read back {actual!r}"
        )


# -- valid inventories round-trip -------------------------------------------------
@given(contents=gen.inventories())
def test_valid_inventory_loads_with_every_value_it_was_given(
    scratch: Path, contents: list[dict[str, Any]]
) -> None:
    folder = scratch / f"valid{next(_counter)}"
    write_folder(folder, contents)
    inv = load_inventory(folder)
    given_cis = [ci for content in contents for ci in content.get("cis", [])]
    assert sorted(ci.name for ci in inv) == sorted(ci["name"] for ci in given_cis)
    for raw in given_cis:
        data = inv.get(raw["name"]).to_data()
        for key in ("host", "port", "owner", "site", "description", "attributes"):
            if key in raw:
                assert_contains(raw[key], data[key], f"{raw['name']}.{key}")


@given(contents=gen.inventories())
def test_inventory_load_dump_load_keeps_the_content_and_digest(
    scratch: Path, contents: list[dict[str, Any]]
) -> None:
    number = next(_counter)
    first = load_inventory(write_folder(scratch / f"a{number}", contents)[0].parent)
    # The merged CIs and the groups, written back as one file of the same format.
    dumped = {
        "groups": {name: group.to_data() for name, group in first.groups.items()},
        "cis": [ci.to_data() for ci in first],
    }
    second = load_inventory(write_folder(scratch / f"b{number}", [dumped])[0].parent)
    assert second.canonical_data() == first.canonical_data()
    assert second.digest == first.digest


# -- broken inventories: one clear line, never a traceback ------------------------
@given(contents=gen.inventories(), data=st.data())
def test_broken_inventory_is_refused_with_one_line_naming_the_file(
    scratch: Path, contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    target = data.draw(st.integers(0, len(contents) - 1), label="file")
    broken = list(contents)
    if data.draw(st.booleans(), label="text mutation"):
        broken[target] = data.draw(gen.mutated_text(gen.yaml_text(contents[target])))
    else:
        broken[target] = data.draw(gen.mutated_data(contents[target]))
    paths = write_folder(scratch / f"broken{next(_counter)}", broken)
    try:
        load_inventory(paths[0].parent)
    except Exception as exc:
        assert_api_error(exc, paths)


def _nan_attribute(contents: list[dict[str, Any]], value: float) -> list[dict[str, Any]]:
    broken = [dict(c) for c in contents]
    for content in broken:
        if content.get("cis"):
            ci = dict(content["cis"][0])
            ci["attributes"] = {**ci.get("attributes", {}), "weight": value}
            content["cis"] = [ci, *content["cis"][1:]]
            return broken
    raise AssertionError("an inventory without CIs")  # pragma: no cover


@given(contents=gen.inventories(), value=gen.NON_FINITE)
def test_nan_and_infinity_in_attributes_are_refused(
    scratch: Path, contents: list[dict[str, Any]], value: float
) -> None:
    paths = write_folder(scratch / f"nan{next(_counter)}", _nan_attribute(contents, value))
    with pytest.raises(Exception) as caught:
        load_inventory(paths[0].parent)
    assert_api_error(caught.value, paths)


# -- the CLI on broken inventories --------------------------------------------------
@given(contents=gen.inventories(), data=st.data())
def test_inventory_commands_on_a_broken_inventory_print_one_line_and_change_nothing(
    ws: Workspace, contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    target = data.draw(st.integers(0, len(contents) - 1), label="file")
    broken = list(contents)
    broken[target] = data.draw(gen.mutated_text(gen.yaml_text(contents[target])))
    folder = ws.inventories_dir / "fuzzed"
    write_folder(folder, broken)
    command = data.draw(
        st.sampled_from(
            [
                ["inventory", "validate", "fuzzed"],
                ["inventory", "list", "-i", "fuzzed", "--json"],
                ["inventory", "graph", "-i", "fuzzed"],
                ["inventory", "export", "-i", "fuzzed", "--format", "json"],
            ]
        ),
        label="command",
    )
    before = snapshot(ws.root)
    with tempfile.TemporaryDirectory() as cwd:
        result = run_cli(*command, workspace=ws.root, cwd=Path(cwd))
    assert_one_line_error(result)
    if result.code != 0:
        assert_unchanged(before, snapshot(ws.root))


SECRET_REFS = st.one_of(
    st.builds(dict, env=gen.ENV_VAR),
    st.builds(dict, file=st.sampled_from(["secrets/enable", "/etc/opskit/pw"])),
    st.builds(dict, prompt=gen.TEXT),
    st.builds(dict, keyring=st.builds(dict, service=gen.TEXT)),
)


@given(contents=gen.inventories(), low=SECRET_REFS, high=SECRET_REFS)
def test_a_group_secret_reference_replaces_the_default_one(
    scratch: Path, contents: list[dict[str, Any]], low: dict[str, Any], high: dict[str, Any]
) -> None:
    files = [dict(content) for content in contents]
    files[0]["defaults"] = {"credentials": {"username": "admin", "password": low}}
    files[0]["groups"] = {
        **files[0].get("groups", {}),
        "fuzzsecret": {"vars": {"credentials": {"password": high}}},
    }
    for content in files:
        content["cis"] = [{**ci, "groups": ["fuzzsecret"]} for ci in content.get("cis", [])]
    paths = write_folder(scratch / f"secret{next(_counter)}", files)
    try:
        inv = load_inventory(paths[0].parent)
    except Exception as exc:
        assert_api_error(exc, paths)
        return
    own = {ci["name"]: ci.get("credentials", {}) for c in files for ci in c.get("cis", [])}
    for ci in inv:
        # The most specific level wins: the CI's own credentials, else the group's.
        expected = {"username": "admin", "password": high, **own[ci.name]}
        assert ci.credentials["username"] == expected["username"]
        assert ci.credentials["password"] == _as_loaded(paths, expected["password"])


def _as_loaded(paths: list[Path], ref: dict[str, Any]) -> SecretRef:
    """The reference as the loader stores it: a relative file inside the folder."""
    file = ref.get("file")
    if file is not None and not file.startswith("/"):
        return SecretRef(file=str(paths[0].parent.resolve() / file))
    return SecretRef.parse(ref)


# -- the selection language ---------------------------------------------------------------
TERMS = st.one_of(
    gen.CI_NAME,
    st.builds(
        lambda k, v: f"{k}:{v}",
        st.sampled_from(["name", "group", "platform", "type", "site", "lifecycle", "owner", "x"]),
        st.one_of(gen.CI_NAME, st.sampled_from(["*", "core-*", "[a-", '"dc 1"', "'", ""])),
    ),
    st.builds(lambda p, v: f"attr.{p}={v}", st.sampled_from(["model", "hw.rack", "", "."]),
              st.one_of(gen.TEXT, st.sampled_from(["12", "1e999", "nan", "[", "'"]))),
    st.sampled_from(["and", "or", "not", "(", ")", "AND", "Not", '"', "'", "\\"]),
    gen.CONTROL_TEXT,
)  # fmt: skip


@given(contents=gen.inventories(), words=st.lists(TERMS, min_size=0, max_size=7))
def test_any_selection_selects_or_names_the_column_on_one_line(
    scratch: Path, contents: list[dict[str, Any]], words: list[str]
) -> None:
    inv = load_inventory(write_folder(scratch / f"sel{next(_counter)}", contents)[0].parent)
    expression = " ".join(words)
    try:
        selected = inv.select(expression)
    except Exception as exc:
        assert_api_error(exc)
        return
    assert {ci.name for ci in selected} <= {ci.name for ci in inv}


# -- valid inventories through the CLI: JSON and YAML that read back as loaded ---------------
@given(contents=gen.inventories(), data=st.data())
def test_inventory_json_and_export_hold_exactly_what_was_loaded(
    ws: Workspace, contents: list[dict[str, Any]], data: st.DataObject
) -> None:
    folder = ws.inventories_dir / "fuzzvalid"
    write_folder(folder, contents)
    inv = load_inventory(folder)
    ci = data.draw(st.sampled_from(sorted(c.name for c in inv)), label="ci")
    shown = run_cli("inventory", "show", ci, "-i", "fuzzvalid", "--json", workspace=ws.root)
    assert_no_traceback(shown)
    assert shown.code == 0, str(shown)
    details = json.loads(shown.stdout)
    assert details["attributes"] == inv.get(ci).attributes
    exported = {
        form: run_cli("inventory", "export", "-i", "fuzzvalid", "--include-decommissioned",
                      "--format", form, workspace=ws.root)
        for form in ("json", "yaml")
    }  # fmt: skip
    for result in exported.values():
        assert_no_traceback(result)
        assert result.code == 0, str(result)
    as_json = json.loads(exported["json"].stdout)
    assert yaml_rs.loads(exported["yaml"].stdout, parse_datetime=False) == as_json
    assert sorted(as_json["all"]["hosts"]) == sorted(c.name for c in inv)


# -- Ansible: export, then import through Ansible's own parser ---------------------------------
@given(contents=gen.inventories())
def test_ansible_export_then_import_keeps_hosts_groups_and_values(
    scratch: Path, contents: list[dict[str, Any]]
) -> None:
    number = next(_counter)
    inv = load_inventory(write_folder(scratch / f"ans{number}", contents)[0].parent)
    exported = scratch / f"ansible{number}.yaml"
    exported.write_text(gen.yaml_text(to_ansible_inventory(list(inv), groups=inv.groups)))
    folder = write_inventory_folder(import_ansible_inventory(exported), scratch / f"imp{number}")
    back = load_inventory(folder)
    assert sorted(ci.name for ci in back) == sorted(ci.name for ci in inv)
    assert set(back.groups) == set(inv.groups)
    for ci in inv:
        other = back.get(ci.name)
        for field in ("type", "platform", "host", "port", "lifecycle", "criticality", "site"):
            assert getattr(other, field) == getattr(ci, field), f"{ci.name}.{field}"
        assert set(other.groups) == set(ci.groups), f"{ci.name}.groups"
        assert other.attributes == ci.attributes, f"{ci.name}.attributes"


# -- Ansible: hand-written and broken Ansible inventories ------------------------------------
@st.composite
def ansible_sources(draw: st.DrawFn, scratch: Path) -> tuple[Path, bytes]:
    """An Ansible YAML or INI inventory exported from a generated one, then broken."""
    contents = draw(gen.inventories())
    inv = load_inventory(write_folder(scratch / f"src{next(_counter)}", contents)[0].parent)
    data = to_ansible_inventory(list(inv), groups=inv.groups)
    if draw(st.booleans()):
        text = gen.yaml_text(data)
        raw = draw(
            st.one_of(
                gen.mutated_text(text),
                gen.mutated_data(data).map(lambda d: gen.yaml_text(d).encode()),
            )
        )
        return scratch / f"hosts{next(_counter)}.yaml", raw
    lines = ["[all]"] + [
        f"{h} ansible_host={v.get('ansible_host', h)}" for h, v in data["all"]["hosts"].items()
    ]
    return scratch / f"hosts{next(_counter)}.ini", draw(gen.mutated_text("\n".join(lines)))


@given(data=st.data())
def test_a_broken_ansible_inventory_is_imported_or_refused_naming_the_source(
    scratch: Path, data: st.DataObject
) -> None:
    source, raw = data.draw(ansible_sources(scratch), label="source")
    source.write_bytes(raw)
    target = scratch / f"imported{next(_counter)}"
    try:
        write_inventory_folder(import_ansible_inventory(source), target)
    except Exception as exc:
        assert_api_error(exc)
        assert str(source) in str(exc) or not str(exc).startswith(str(scratch)), (
            f"the error names another file than {source}: {exc}"
        )
        assert not target.exists(), "a refused import left a folder behind"
