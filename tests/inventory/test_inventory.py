"""The inventory (CMDB): loading, errors, precedence, selection, impact, digest."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import jsonschema
import pytest
import yaml

from opskit.errors import InventoryError
from opskit.inventory import CI, Criticality, RelationKind, load_inventory
from opskit.inventory.schema import (
    inventory_schema,
    load_shipped_schema,
    policy_schema,
)
from opskit.inventory.select import SelectionError
from opskit.secrets import REDACTOR, SecretRef

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "example"


def write_inventory(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def load_error(tmp_path: Path, files: dict[str, str]) -> str:
    root = write_inventory(tmp_path / "inv", files)
    with pytest.raises(InventoryError) as info:
        load_inventory(root)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load_inventory(EXAMPLE)


# -- the example estate ---------------------------------------------------------------
def test_example_estate_loads_with_every_field(example) -> None:  # type: ignore[no-untyped-def]
    assert len(example) == 16
    types = sorted(str(ci.type) for ci in example)
    assert types.count("switch") == 6 and types.count("router") == 3
    assert {"firewall", "database", "application", "load_balancer"} <= set(types)
    for ci in example:
        # The loader builds CIs without __init__: every field must be set.
        assert set(vars(ci)) == set(CI.__dataclass_fields__), ci.name
        assert ci.source and ci.source.endswith(".yaml")
        # Every CI knows the line it is declared on.
        assert Path(ci.source).read_text().splitlines()[ci.line - 1].strip() == f"- name: {ci.name}"
    assert example.get("core-sw1").source.endswith("network.yaml")


def test_shipped_schemas_are_current() -> None:
    assert load_shipped_schema("inventory.json") == inventory_schema(), (
        "run: python -m opskit.inventory.schema"
    )
    assert load_shipped_schema("policy.json") == json.loads(json.dumps(policy_schema())), (
        "run: python -m opskit.inventory.schema"
    )


def test_example_files_validate_with_a_standard_validator() -> None:
    """Editors use the shipped schema with ordinary validators: it must be valid
    JSON Schema and accept the example files."""
    schema = load_shipped_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    for path in sorted(EXAMPLE.glob("*.yaml")):
        errors = list(validator.iter_errors(yaml.safe_load(path.read_text())))
        assert not errors, (path, errors[0].message if errors else None)


# -- errors: file, line, field -----------------------------------------------------------
CI_HEAD = "cis:\n  - name: a\n    type: switch\n    platform: cisco_ios\n"


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD + "    groups: [core\n  - name: b\n"})
    assert "invalid YAML" in message
    assert "x.yaml:6" in message or "x.yaml:5" in message


def test_duplicate_yaml_key_is_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD + "    type: router\n"})
    assert "x.yaml:5" in message and "duplicate key 'type'" in message


def test_unknown_field_names_line_and_field(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD + "    ownr: netops\n"})
    assert "x.yaml:5 [cis[0].ownr]" in message
    assert "unknown field 'ownr'" in message and "did you mean 'owner'" in message


def test_wrong_enum_and_type(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD.replace("switch", "swich")})
    assert "x.yaml:3 [cis[0].type]" in message and "did you mean 'switch'" in message
    message = load_error(tmp_path / "2", {"x.yaml": CI_HEAD + "    port: twenty-two\n"})
    assert "x.yaml:5 [cis[0].port]" in message and "must be an integer" in message


def test_unknown_top_level_key(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": "hosts: {}\n"})
    assert "x.yaml:1 [hosts]" in message and "unknown field 'hosts'" in message


def test_duplicate_ci_names_both_places(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        {
            "a.yaml": CI_HEAD,
            "b.yaml": "# second file\ncis:\n  - name: b\n    type: switch\n    platform: linux\n"
            "  - name: a\n    type: router\n    platform: linux\n",
        },
    )
    assert "b.yaml:6 [cis[1].name]" in message
    assert "duplicate CI 'a'" in message and "a.yaml:2" in message


def test_dangling_relationship(tmp_path: Path) -> None:
    message = load_error(
        tmp_path,
        {
            "x.yaml": CI_HEAD
            + "    relationships:\n      - connected_to: a\n      - depends_on: fw9\n"
        },
    )
    assert "x.yaml:7 [cis[0].relationships[1]]" in message
    assert "depends_on: unknown CI 'fw9'" in message


def test_dependency_cycle_is_named(tmp_path: Path) -> None:
    text = """\
        cis:
          - {name: a, type: server, platform: linux, relationships: [{depends_on: b}]}
          - {name: b, type: server, platform: linux, relationships: [{runs_on: c}]}
          - name: c
            type: server
            platform: linux
            relationships: [{connected_to: a}, {hosted_by: a}]
        """
    message = load_error(tmp_path, {"x.yaml": text})
    assert "dependency cycle: a -> b -> c -> a" in message
    assert "x.yaml:2 [cis[0].relationships[0]]" in message


def test_connected_to_rings_are_not_cycles(tmp_path: Path) -> None:
    root = write_inventory(
        tmp_path,
        {
            "x.yaml": """\
                cis:
                  - {name: a, type: switch, platform: linux, relationships: [{connected_to: b}]}
                  - {name: b, type: switch, platform: linux, relationships: [{connected_to: a}]}
                """
        },
    )
    assert len(load_inventory(root)) == 2


def test_unknown_group_and_group_cycle(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD + "    groups: [core]\n"})
    assert "x.yaml:5 [cis[0].groups[0]]" in message and "unknown group 'core'" in message
    message = load_error(
        tmp_path / "2",
        {"g.yaml": "groups:\n  p: {groups: [q]}\n  q:\n    groups: [p]\n", "x.yaml": CI_HEAD},
    )
    assert "group cycle: p -> q -> p" in message and "g.yaml:" in message


def test_missing_type_after_merge(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": "cis:\n  - name: a\n    platform: linux\n"})
    assert "x.yaml:2 [cis[0]]" in message and "missing required field 'type'" in message


def test_plain_string_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = CI_HEAD + "    credentials:\n      username: admin\n      password: hunter2secret\n"
    message = load_error(tmp_path, {"x.yaml": text})
    assert "x.yaml:7 [cis[0].credentials.password]" in message
    assert "plain-text secret refused" in message
    assert "hunter2secret" not in message
    # In group vars too.
    groups = "groups:\n  g:\n    vars:\n      credentials: {enable_secret: s3cr3t!}\n"
    message = load_error(tmp_path / "2", {"g.yaml": groups})
    assert "g.yaml:4 [groups.g.vars.credentials.enable_secret]" in message
    assert "s3cr3t!" not in message


def test_errors_leave_nothing_behind_and_bypass_a_stale_cache(tmp_path: Path) -> None:
    root = write_inventory(tmp_path / "inv", {"x.yaml": CI_HEAD})
    cache = tmp_path / "cache"
    assert len(load_inventory(root, cache_dir=cache)) == 1
    (root / "x.yaml").write_text(CI_HEAD + "    lifecycle: retired\n")
    with pytest.raises(InventoryError, match=r"x.yaml:5 \[cis\[0\].lifecycle\]"):
        load_inventory(root, cache_dir=cache)


def test_not_a_folder_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such inventory folder"):
        load_inventory(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InventoryError, match=r"no \*\.yaml files"):
        load_inventory(tmp_path / "empty")


# -- precedence ------------------------------------------------------------------------
PRECEDENCE = {
    "00-common.yaml": """\
        defaults:
          owner: default-owner
          site: default-site
          criticality: low
          credentials: {username: admin, password: {env: DEFAULT_PW}}
          attributes: {a: defaults, b: defaults, c: defaults, d: defaults, nested: {x: 1, y: 1}}
        groups:
          network:
            vars:
              criticality: medium
              platform: cisco_ios
              attributes: {b: network, c: network, d: network, nested: {y: 2}}
              credentials: {enable_secret: {file: secrets/enable}}
          core:
            groups: [network]
            vars: {criticality: high, type: switch, attributes: {c: core, d: core}}
          dc1:
            vars: {site: dc1, attributes: {d: dc1}}
        """,
    "network/core.yaml": """\
        cis:
          - name: sw1
            groups: [core, dc1]
            attributes: {e: ci, nested: {z: 3}}
          - name: sw2
            groups: [dc1, core]
            owner: ci-owner
            credentials: {password: {env: SW2_PW}}
        """,
}


def test_inheritance_precedence(tmp_path: Path) -> None:
    inventory = load_inventory(write_inventory(tmp_path / "inv", PRECEDENCE))
    sw1 = inventory.get("sw1")
    # defaults < network (parent) < core (child) < dc1 (listed later) < the CI.
    assert sw1.attributes == {
        "a": "defaults",
        "b": "network",
        "c": "core",
        "d": "dc1",
        "e": "ci",
        "nested": {"x": 1, "y": 2, "z": 3},
    }
    assert (sw1.owner, sw1.site, sw1.criticality) == ("default-owner", "dc1", Criticality.HIGH)
    assert (str(sw1.type), sw1.platform) == ("switch", "cisco_ios")
    # The CI's own groups first, then what it inherits.
    assert sw1.groups == ("core", "dc1", "network")
    # Among listed groups, later wins: sw2 lists core after dc1.
    sw2 = inventory.get("sw2")
    assert sw2.attributes["d"] == "core" and sw2.owner == "ci-owner"
    # Credentials merge deeply; the CI overrides one entry.
    assert sw2.credentials["username"] == "admin"
    assert sw2.credentials["password"] == SecretRef(env="SW2_PW")
    assert sw1.credentials["password"] == SecretRef(env="DEFAULT_PW")


def test_relative_file_secret_resolves_against_the_inventory_folder(tmp_path: Path) -> None:
    root = write_inventory(tmp_path / "inv", {**PRECEDENCE, "secrets/enable": "en4ble-s3cret\n"})
    (root / "secrets" / "enable").write_text("en4ble-s3cret\n")
    sw1 = load_inventory(root).get("sw1")
    ref = sw1.credentials["enable_secret"]
    assert isinstance(ref, SecretRef) and Path(ref.file).is_absolute()  # type: ignore[arg-type]
    assert ref.resolve() == "en4ble-s3cret"
    assert REDACTOR.find("enable is en4ble-s3cret")
    # The secret value is nowhere in the CI's data, only the reference.
    assert "en4ble-s3cret" not in json.dumps(sw1.to_data())


# -- selection -------------------------------------------------------------------------
def names(inventory, expression, **kwargs) -> list[str]:  # type: ignore[no-untyped-def]
    return [ci.name for ci in inventory.select(expression, **kwargs)]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("core-*", ["core-sw1", "core-sw2"]),
        ("name:access-sw[12]", ["access-sw1", "access-sw2"]),
        ("fw1", ["fw1"]),
        ("group:core", ["core-sw1", "core-sw2"]),
        ("group:security", ["fw1"]),
        ("platform:arista_eos", ["access-sw3", "access-sw4"]),
        ("type:database", ["pg-main"]),
        ("site:dc2", ["access-sw4", "edge-r2"]),
        ("lifecycle:maintenance", ["access-sw4"]),
        ("criticality:high", ["access-sw1", "access-sw2", "db-srv1"]),
        ("owner:secops", ["fw1"]),
        ("host:10.0.2.*", ["access-sw1", "access-sw2", "access-sw3"]),
        ("department:business-systems", ["billing", "lb-web"]),
        ("attr.model=C9300-48P", ["access-sw1", "access-sw2"]),
        ("attr.cpus=64", ["db-srv1"]),
        ("attr.rack=B01", ["access-sw3"]),
    ],
)
def test_each_selection_term(example, expression: str, expected: list[str]) -> None:  # type: ignore[no-untyped-def]
    assert names(example, expression) == expected


def test_selection_combinations(example) -> None:  # type: ignore[no-untyped-def]
    assert names(example, "group:network and not type:switch") == ["edge-r1", "edge-r2", "fw1"]
    assert names(example, "type:database or type:load_balancer") == ["lb-web", "pg-main"]
    assert names(example, "group:access and (site:dc2 or platform:arista_eos)") == [
        "access-sw3",
        "access-sw4",
    ]
    # and binds tighter than or; keywords are case-insensitive.
    assert names(example, "fw1 OR group:core AND site:dc2") == ["fw1"]
    assert names(example, "not (group:network or group:linux)") == []
    assert names(example, "site:\"dc1\" and name:'pg-*'") == ["pg-main"]


def test_decommissioned_only_when_asked(example) -> None:  # type: ignore[no-untyped-def]
    assert "legacy-r0" not in names(example, None)
    assert "legacy-r0" not in names(example, "group:edge")
    assert "legacy-r0" not in names(example, "lifecycle:*")
    assert names(example, "lifecycle:decommissioned") == ["legacy-r0"]
    assert "legacy-r0" in names(example, "group:edge", include_decommissioned=True)
    assert len(example.select(None, include_decommissioned=True)) == len(example)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("group:core and", "expression ends too early at column 15"),
        ("(group:core", "missing ')' at column 12"),
        ("group:core)", "unexpected ')' (expected no ')' here) at column 11"),
        ("colour:red", "unknown key 'colour'"),
        ("group:", "group: needs a value at column 1"),
        ("attr.model", "attribute terms are attr.NAME=VALUE at column 1"),
        ('site:"dc1', "unbalanced quote"),
        ("and fw1", "unexpected 'and' at column 1"),
        ("fw1 fw2", "unexpected 'fw2' (expected 'and', 'or' or the end) at column 5"),
    ],
)
def test_selection_syntax_errors_name_the_position(example, expression: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SelectionError) as info:
        example.select(expression)
    assert fragment in str(info.value)


def test_unknown_name_or_group_in_selection_suggests(example) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(
        InventoryError, match="unknown CI 'core-sw3'; did you mean 'core-sw2', 'core-sw1'"
    ):
        example.select("core-sw3")
    with pytest.raises(InventoryError, match="unknown group 'cores'; did you mean 'core'"):
        example.select("group:cores")
    with pytest.raises(InventoryError, match="unknown CI 'pgmain'; did you mean 'pg-main'"):
        example.get("pgmain")


# -- impact ----------------------------------------------------------------------------
def test_impact_is_transitive_with_owners(example) -> None:  # type: ignore[no-untyped-def]
    report = example.impact(["db-srv1"])
    assert [(i.name, i.depth, i.via, str(i.kind)) for i in report.impacted] == [
        ("pg-main", 1, "db-srv1", "runs_on"),
        ("billing", 2, "pg-main", "depends_on"),
    ]
    assert report.owners == ("appteam", "dba", "platform")
    assert report.highest_criticality is Criticality.CRITICAL
    assert json.loads(json.dumps(report.to_dict()))["impacted"][1]["owner"] == "appteam"


def test_impact_through_the_network_layers(example) -> None:  # type: ignore[no-untyped-def]
    report = example.impact("fw1")
    depth = {item.name: item.depth for item in report.impacted}
    assert depth["core-sw1"] == 1 and depth["access-sw1"] == 2 and depth["app-srv1"] == 3
    assert depth["billing"] == 4  # via app-srv1 (runs_on) or lb-web/pg-main
    # Not impacted: what fw1 depends on, links, and other branches.
    assert "edge-r1" not in depth and "access-sw4" not in depth
    # Decommissioned CIs are never in an impact report.
    assert "legacy-r0" not in {i.name for i in example.impact("edge-r1").impacted}
    assert set(report.owners) == {"appteam", "dba", "netops", "platform", "secops"}


def test_impact_of_several_targets_and_unknown(example) -> None:  # type: ignore[no-untyped-def]
    report = example.impact(["lb-web", "pg-main"])
    assert report.names == ["billing"]
    assert report.targets == ("lb-web", "pg-main")
    with pytest.raises(InventoryError, match="unknown CI 'nope'"):
        example.impact(["nope"])


def test_graph_edges(example) -> None:  # type: ignore[no-untyped-def]
    edges = {(e.source, e.kind, e.target) for e in example.graph()}
    assert ("pg-main", RelationKind.RUNS_ON, "db-srv1") in edges
    assert ("core-sw1", RelationKind.CONNECTED_TO, "core-sw2") in edges
    assert len(edges) == sum(len(ci.relationships) for ci in example)


# -- digest ----------------------------------------------------------------------------
DIGEST_ONE_FILE = """\
defaults: {owner: ops, credentials: {username: admin, password: {file: pw.txt}}}
groups:
  core: {vars: {criticality: high, attributes: {role: core}}}
cis:
  - name: sw1
    type: switch
    platform: cisco_ios
    host: 10.0.0.1
    groups: [core]
    relationships: [{depends_on: sw2}, {connected_to: sw2}]
    attributes: {model: C9300, os_version: "17.9"}
  - name: sw2
    type: switch
    platform: cisco_ios
    host: 10.0.0.2
"""

DIGEST_SPLIT_REORDERED = {
    "b-devices.yml": """\
        cis:
        - {host: 10.0.0.2, platform: cisco_ios, type: switch, name: sw2}
        - attributes:
            os_version: '17.9'
            model: C9300
          relationships:
          - connected_to: sw2
          - depends_on: sw2
          groups:
          - core
          host: "10.0.0.1"
          platform: cisco_ios
          type: switch
          name: sw1
        """,
    "a-groups.yaml": """\
        # groups first, defaults last, flow style
        groups: {core: {vars: {attributes: {role: core}, criticality: high}}}
        defaults:
          credentials: {password: {file: pw.txt}, username: admin}
          owner: ops
        """,
}


def test_digest_is_stable_across_order_format_and_split(tmp_path: Path) -> None:
    one = load_inventory(write_inventory(tmp_path / "one", {"all.yaml": DIGEST_ONE_FILE}))
    split = load_inventory(write_inventory(tmp_path / "split", DIGEST_SPLIT_REORDERED))
    assert one.digest.startswith("sha256:") and len(one.digest) == 7 + 64
    assert one.digest == split.digest
    # The folder's location does not matter (relative file secrets stay relative).
    moved = shutil.copytree(tmp_path / "one", tmp_path / "elsewhere" / "moved")
    assert load_inventory(moved).digest == one.digest


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('os_version: "17.9"', 'os_version: "17.10"'),
        ("host: 10.0.0.2", "host: 10.0.0.3"),
        ("criticality: high", "criticality: critical"),
        ("{depends_on: sw2}, ", ""),
        ("password: {file: pw.txt}", "password: {env: PW}"),
    ],
)
def test_digest_changes_with_content(tmp_path: Path, old: str, new: str) -> None:
    base = load_inventory(write_inventory(tmp_path / "a", {"all.yaml": DIGEST_ONE_FILE}))
    assert old in DIGEST_ONE_FILE
    changed = DIGEST_ONE_FILE.replace(old, new)
    other = load_inventory(write_inventory(tmp_path / "b", {"all.yaml": changed}))
    assert other.digest != base.digest


def test_cached_load_equals_cold_load(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cold = load_inventory(EXAMPLE)
    load_inventory(EXAMPLE, cache_dir=cache)
    assert list(cache.iterdir())
    warm = load_inventory(EXAMPLE, cache_dir=cache)
    assert warm.digest == cold.digest
    assert warm.cis == cold.cis
    assert warm.impact("db-srv1") == cold.impact("db-srv1")


def test_several_documents_in_one_file_are_refused(tmp_path: Path) -> None:
    message = load_error(tmp_path, {"x.yaml": CI_HEAD + "---\n" + CI_HEAD.replace(": a", ": b")})
    assert "x.yaml" in message and "several YAML documents" in message


def test_cache_keeps_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_inventory(tmp_path / "inv", {"x.yaml": CI_HEAD})
    cache = tmp_path / "cache"
    assert load_inventory(root, cache_dir=cache).get("a").source == str(root / "x.yaml")
    monkeypatch.chdir(tmp_path)
    assert load_inventory(Path("inv"), cache_dir=cache).get("a").source == "inv/x.yaml"


def test_the_first_faulty_file_in_path_order_is_reported(tmp_path: Path) -> None:
    files = {f"f{i}.yaml": CI_HEAD.replace(": a", f": ci{i}") for i in range(6)}
    assert len(load_inventory(write_inventory(tmp_path / "ok", files))) == 6
    files["f2.yaml"] = CI_HEAD + "    port: [22\n"
    files["f4.yaml"] = CI_HEAD.replace(": a", ": ci4") + "    bogus: 1\n"
    message = load_error(tmp_path, files)
    assert "f2.yaml:6: invalid YAML" in message
