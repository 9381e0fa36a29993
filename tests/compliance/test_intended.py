"""Intended configurations: rendered from the CMDB with the runbooks'
sandboxed StrictUndefined Jinja2, digested, errors in one line."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.compliance import IntendedError, cmdb_context, render_intended
from opskit.compliance.intended import TemplateCache
from opskit.inventory import Inventory, load_inventory
from tests.compliance.support import REPO
from tests.fuzz import strategies as gen
from tests.fuzz.support import assert_api_error


@functools.cache
def _example_inventory() -> Inventory:
    return load_inventory(REPO / "inventories" / "example")


@pytest.fixture
def inventory() -> Inventory:
    return _example_inventory()


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(REPO / "templates", folder)
    return folder


def test_the_shipped_template_renders_the_cmdb(inventory: Inventory, templates: Path) -> None:
    intended = render_intended(inventory.get("core-sw1"), inventory, templates)
    assert intended.text.splitlines()[:4] == [
        "hostname core-sw1",
        "vlan 1",
        "vlan 10",
        " name users",
    ]
    assert intended.template == "intended/cisco_ios.j2"
    assert intended.inventory_digest == inventory.digest
    assert list(intended.files) == ["intended/cisco_ios.j2"]
    assert intended.template_digest.startswith("sha256:")


def test_groups_related_cis_and_inheritance_reach_the_template(
    inventory: Inventory, templates: Path
) -> None:
    context = cmdb_context(inventory.get("core-sw1"), inventory)
    assert context["ci"]["ntp_server"] == "10.0.0.123"  # the dc1 group's attribute
    assert context["groups"]["dc1"]["site"] == "dc1"
    assert context["related"]["fw1"]["platform"] == "cisco_asa"
    assert {"kind": "depends_on", "target": "fw1"} in context["relationships"]
    assert "credentials" not in context["ci"] and "password" not in str(context)
    (templates / "intended" / "cisco_ios.j2").write_text(
        "hostname {{ ci.name }}\n{% include 'intended/ntp.j2' %}\n"
        "{% for name, peer in related.items() %}! depends on {{ name }} ({{ peer.platform }})\n"
        "{% endfor %}"
    )
    (templates / "intended" / "ntp.j2").write_text(
        "ntp server {{ groups.dc1.attributes.ntp_server }}"
    )
    intended = render_intended(inventory.get("core-sw1"), inventory, templates)
    assert "ntp server 10.0.0.123" in intended.text
    assert "! depends on fw1 (cisco_asa)" in intended.text
    assert list(intended.files) == ["intended/cisco_ios.j2", "intended/ntp.j2"]
    before = intended.template_digest
    (templates / "intended" / "ntp.j2").write_text("ntp server 10.8.0.123")
    assert (
        render_intended(inventory.get("core-sw1"), inventory, templates).template_digest != before
    )


def test_a_run_compiles_each_template_once_per_content(
    inventory: Inventory, templates: Path
) -> None:
    entry = templates / "intended" / "cisco_ios.j2"
    entry.write_text("hostname {{ ci.name }}\n{% include 'intended/ntp.j2' %}\n")
    (templates / "intended" / "ntp.j2").write_text("ntp server 10.0.0.1")
    cache = TemplateCache()
    first = render_intended(inventory.get("core-sw1"), inventory, templates, cache)
    second = render_intended(inventory.get("core-sw2"), inventory, templates, cache)
    assert len(cache) == 2  # the entry file and its include, for both CIs
    assert second.text == "hostname core-sw2\nntp server 10.0.0.1\n"
    assert second.template_digest == first.template_digest
    # An edit during the run is a new content: compiled anew, rendered, digested.
    entry.write_text("hostname {{ ci.name }}!\n{% include 'intended/ntp.j2' %}\n")
    edited = render_intended(inventory.get("core-sw1"), inventory, templates, cache)
    assert len(cache) == 3
    assert edited.text.startswith("hostname core-sw1!\n")
    assert edited.template_digest != first.template_digest
    assert edited == render_intended(inventory.get("core-sw1"), inventory, templates)


def test_a_ci_chooses_its_template_through_its_attributes(
    inventory: Inventory, templates: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "inv"
    shutil.copytree(REPO / "inventories" / "example", folder)
    network = folder / "network.yaml"
    network.write_text(network.read_text().replace(
        "attributes: {model: MX204, serial: JN11F2A3BAFA, os_version: 22.4R3}",
        "attributes: {model: MX204, serial: JN11F2A3BAFA, os_version: 22.4R3,"
        " intended_template: intended/edge.j2}"))  # fmt: skip
    (templates / "intended" / "edge.j2").write_text("set system host-name {{ ci.name }}\n")
    changed = load_inventory(folder)
    assert render_intended(changed.get("edge-r1"), changed, templates).text == (
        "set system host-name edge-r1\n"
    )


@pytest.mark.parametrize(
    ("template", "says"),
    [
        (
            "hostname {{ ci.nope }}\n",
            "templates/intended/cisco_ios.j2 line 1: 'dict object' has no",
        ),
        ("hostname x\n{% for %}\n", "templates/intended/cisco_ios.j2 line 2"),
        ("hostname x\n{% include 'intended/gone.j2' %}\n", "gone.j2 does not exist"),
        ("hostname {{ ci.name ~ '\\nno aaa new-model' }}\n", "line break"),
        ("hostname {{ ci.name.__class__.__mro__ }}\n", "unsafe"),
    ],
)
def test_a_render_error_is_one_line_naming_ci_template_and_line(
    inventory: Inventory, templates: Path, template: str, says: str
) -> None:
    (templates / "intended" / "cisco_ios.j2").write_text(template)
    with pytest.raises(IntendedError) as caught:
        render_intended(inventory.get("core-sw2"), inventory, templates)
    assert_api_error(caught.value)
    assert str(caught.value).startswith("CI core-sw2: ") and says in str(caught.value)


def test_a_ci_without_a_template_is_told_where_to_put_one(
    inventory: Inventory, templates: Path
) -> None:
    with pytest.raises(IntendedError, match=r"templates/intended/juniper_junos\.j2 does not exist"):
        render_intended(inventory.get("edge-r1"), inventory, templates)


@settings(max_examples=60)
@given(data=st.data())
def test_any_broken_template_renders_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    inventory = _example_inventory()
    folder = tmp_path_factory.mktemp("t")
    shipped = (REPO / "templates" / "intended" / "cisco_ios.j2").read_text()
    broken = data.draw(st.one_of(
        gen.mutated_text(shipped),
        st.sampled_from(["{{ ci }}", "{% include 'x' %}", "{{ 1/0 }}", "{{ ci.name | int + 'a' }}",
                         "{% for x in range(10**9) %}{% endfor %}", "{{ ''.join }}",
                         "{% extends 'intended/cisco_ios.j2' %}", "{{ related.nope.name }}"]
                        ).map(str.encode),
    ))  # fmt: skip
    (folder / "intended").mkdir()
    (folder / "intended" / "cisco_ios.j2").write_bytes(broken)
    try:
        intended = render_intended(inventory.get("core-sw1"), inventory, folder)
    except IntendedError as exc:
        assert_api_error(exc)
        assert str(exc).startswith("CI core-sw1: ")
    else:
        assert intended.template_digest.startswith("sha256:")
