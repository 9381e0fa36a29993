"""Rule files: loading, refusals (one line: file, line, field), digests,
a CI's rules from its platform and groups, CMDB values."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.compliance import Mode, RuleError, load_rules, rules_for, workspace_rules
from opskit.compliance.overlap import literal_prefix, overlapping
from opskit.inventory import load_inventory
from opskit.workspace import Workspace
from opskit.yamlfile import dump_yaml
from tests.compliance.support import REPO, make_ci, write_rules
from tests.fuzz import strategies as gen
from tests.fuzz.support import assert_api_error

NTP = {"name": "ntp", "mode": "must-contain", "match": ["^ntp "], "lines": "ntp server 1.1.1.1"}
VLANS = {"name": "vlans", "mode": "intended", "match": ["^vlan "]}


def test_the_shipped_rules_load_with_a_version_and_a_digest() -> None:
    rules = workspace_rules(REPO)
    assert workspace_rules(str(REPO)).digest == rules.digest
    assert workspace_rules(Workspace(root=REPO)).digest == rules.digest
    assert rules.versions == {"cisco_ios.yaml": "1.0.0", "datacentre.yaml": "1.0.0"}
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", rules.digest)
    inventory = load_inventory(REPO / "inventories" / "example")
    core = rules_for(inventory.get("core-sw1"), rules, inventory)
    assert core.files == ("cisco_ios.yaml", "datacentre.yaml")
    assert core.feature("ntp").lines == ("ntp server 10.0.0.123",)  # from group dc1
    assert rules_for(inventory.get("access-sw3"), rules).features == ()  # arista_eos


def test_the_digest_ignores_layout_and_key_order_but_not_content(tmp_path: Path) -> None:
    one = write_rules(tmp_path / "a", [NTP, VLANS])
    other = tmp_path / "b" / "rules.yaml"
    other.parent.mkdir()
    other.write_text(
        "features:\n"
        "  - {match: ['^ntp '], lines: ntp server 1.1.1.1, mode: must-contain, name: ntp}\n"
        "  - {mode: intended, name: vlans, match: ['^vlan ']}\n"
        "platform: cisco_ios\nversion: 1.0.0\n"
    )
    assert load_rules(one).digest == load_rules(other).digest
    changed = write_rules(tmp_path / "c", [{**NTP, "lines": "ntp server 2.2.2.2"}, VLANS])
    assert load_rules(changed).digest != load_rules(one).digest


def _refusal(path: Path) -> RuleError:
    with pytest.raises(RuleError) as caught:
        load_rules(path)
    assert_api_error(caught.value, sorted(path.glob("*.yaml")) if path.is_dir() else [path])
    return caught.value


@pytest.mark.parametrize(
    ("features", "field", "says"),
    [
        ([{**NTP, "colour": "red"}], "features[0].colour", "unknown field 'colour'"),
        ([{"name": "x", "mode": "intended"}], "features[0].match", "missing required field"),
        ([{**VLANS, "match": ["^vlan ("]}], "features[0].match[0]", "not a valid regular"),
        ([{**VLANS, "lines": "vlan 1"}], "features[0].lines", "not used by mode intended"),
        ([{**NTP, "ordered": True}], "features[0].ordered", "not used by mode must-contain"),
        ([{**NTP, "lines": "ntp server {{ ci.ntp"}], "features[0].lines", "syntax error"),
        ([{**NTP, "when": "ci.site =="}], "features[0].when", "syntax error"),
        ([{**NTP, "mode": "sometimes"}], "features[0].mode", "is not one of"),
    ],
)
def test_a_malformed_rule_is_one_line_naming_file_line_and_field(
    tmp_path: Path, features: list[dict[str, Any]], field: str, says: str
) -> None:
    error = _refusal(write_rules(tmp_path, features))
    assert error.field == field and says in str(error)
    assert error.line is not None and error.line > 1


def test_two_features_that_could_claim_one_line_are_refused_at_load(tmp_path: Path) -> None:
    both = write_rules(
        tmp_path / "one", [VLANS, {**VLANS, "name": "vlan-ten", "match": ["^vlan 10"]}]
    )
    error = _refusal(both)
    assert "may claim lines of feature 'vlans'" in str(error) and "'vlan 10'" in str(error)
    assert error.line == 8  # the second feature
    twice = write_rules(tmp_path / "two", [NTP, {**NTP}])
    assert "feature 'ntp' is also defined" in str(_refusal(twice))


def test_files_for_the_same_cis_may_not_overlap_but_other_groups_may(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    write_rules(folder, [VLANS], file="all.yaml")
    write_rules(folder, [{**VLANS, "name": "dc-vlans"}], file="dc.yaml", groups=["dc1"])
    error = _refusal(folder)
    assert error.file == str(folder / "dc.yaml") and "all.yaml" in str(error)
    (folder / "all.yaml").unlink()
    write_rules(folder, [{**VLANS, "name": "lab-vlans"}], file="lab.yaml", groups=["lab"])
    rules = load_rules(folder)  # dc1 and lab: no CI of both groups is known yet
    with pytest.raises(RuleError, match="both apply to sw1"):
        rules_for(make_ci("sw1", groups=["dc1", "lab"]), rules)
    assert [f.name for f in rules_for(make_ci(groups=["lab"]), rules).features] == ["lab-vlans"]


def test_cmdb_values_are_rendered_and_an_undefined_one_names_ci_file_and_field(
    tmp_path: Path,
) -> None:
    path = write_rules(
        tmp_path,
        [{**NTP, "lines": "ntp server {{ ci.ntp_server }}"},
         {**VLANS, "when": "ci.site == 'dc1'"}],
    )  # fmt: skip
    rules = load_rules(path)
    bound = rules_for(make_ci(ntp_server="10.0.0.123", site="dc2"), rules)
    assert bound.feature("ntp").lines == ("ntp server 10.0.0.123",)
    assert bound.feature("vlans").applies is False
    with pytest.raises(RuleError) as caught:
        rules_for(make_ci("sw9"), rules)
    assert_api_error(caught.value, [path])
    assert caught.value.field == "lines" and "sw9" in str(caught.value)
    assert "ntp_server" in str(caught.value)


def test_a_value_holding_a_line_break_is_refused(tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path, [{**NTP, "lines": "ntp server {{ ci.ntp }}"}]))
    with pytest.raises(RuleError, match="line break"):
        rules_for(make_ci(ntp="1.1.1.1\nno aaa new-model"), rules)


def test_literal_prefixes() -> None:
    assert literal_prefix("^ntp server") == "ntp server"
    assert literal_prefix(r"^ip\ route ") == "ip route "
    assert literal_prefix("^logging (host|trap)") == "logging "
    assert literal_prefix("^interfaces? ") == "interface"
    assert literal_prefix(r"^vlan \d+") == "vlan "
    assert literal_prefix("^(ntp|clock)") == ""
    assert overlapping(["^ntp |^clock "], ["^snmp-server "]) is None
    assert overlapping(["^(ntp|clock)"], ["^snmp"]) is not None


# -- properties --------------------------------------------------------------------
WORDS = st.sampled_from(["ntp", "vlan", "interface", "ip", "route", "logging", "snmp-server",
                         "aaa", "line", "router", "bgp", "Gi", "10", " ", "-", ".", "(", "|",
                         "?", "*", "+", "\\", "[a-z]", "\\d", "^", "$"])  # fmt: skip
PATTERNS = st.lists(WORDS, min_size=1, max_size=5).map("".join)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(PATTERNS, min_size=1, max_size=3),
       second=st.lists(PATTERNS, min_size=1, max_size=3),
       lines=st.lists(st.lists(WORDS, max_size=6).map("".join), max_size=20))  # fmt: skip
def test_patterns_said_disjoint_never_claim_one_line(
    first: list[str], second: list[str], lines: list[str]
) -> None:
    try:
        compiled = [re.compile("|".join(p)) for p in (first, second)]
    except re.error:
        return
    if overlapping(first, second) is not None:
        return
    prefixes = [literal_prefix(a) for p in first + second for a in p.split("|")]
    for line in [*lines, *(p + tail for p in prefixes for tail in lines[:3])]:
        assert not (compiled[0].match(line) and compiled[1].match(line)), line


def _document(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": "1.2.0", "platform": "cisco_ios", "features": features}


FEATURES = st.lists(
    st.sampled_from([NTP, VLANS,
                     {"name": "snmp", "mode": "must-not-contain", "match": ["^snmp-server "],
                      "regex": True, "lines": "snmp-server community (public|private).*"},
                     {"name": "state", "mode": "structured",
                      "check": {"command": "show vlan", "validate": {"list": [{"vlan_id": "1"}]}}},
                     {"name": "acl", "mode": "intended", "ordered": True,
                      "match": ["^ip access-list "]}]),
    min_size=1, max_size=5, unique_by=lambda f: f["name"],
)  # fmt: skip


@given(features=FEATURES, data=st.data())
def test_any_rule_file_loads_or_is_refused_in_one_line(
    tmp_path_factory: pytest.TempPathFactory, features: list[dict[str, Any]], data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("rules")
    document = _document(features)
    path = folder / "rules.yaml"
    path.write_text(dump_yaml(document))
    rules = load_rules(path)  # the valid document loads
    assert [f.name for f in rules.files[0].features] == [f["name"] for f in features]
    assert rules.files[0].features[0].mode is Mode(features[0]["mode"])
    broken = data.draw(st.one_of(gen.mutated_data(document).map(dump_yaml).map(str.encode),
                                 gen.mutated_text(dump_yaml(document))))  # fmt: skip
    path.write_bytes(broken)
    try:
        load_rules(path)
    except Exception as exc:
        assert_api_error(exc, [path])


def test_the_shipped_schema_is_json_schema_and_takes_the_examples() -> None:
    """Editors validate rule files with the shipped schema and ordinary validators."""
    import jsonschema
    import yaml

    from opskit.compliance.rules import rules_schema

    jsonschema.Draft202012Validator.check_schema(rules_schema())
    validator = jsonschema.Draft202012Validator(rules_schema())
    for path in sorted((REPO / "compliance").glob("*.yaml")):
        assert list(validator.iter_errors(yaml.safe_load(path.read_text()))) == [], path
