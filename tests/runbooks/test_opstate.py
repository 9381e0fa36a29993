"""State snapshots without devices: real public `show` outputs (ntc-templates'
fixtures) and NAPALM getter answers (NAPALM's fixtures) through the parser, the
normaliser and the differ; the NAPALM capture path on NAPALM's mock driver;
Hypothesis properties of the differ; the runbook keys' validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from ntc_templates.parse import parse_output

from opskit.connectors.napalm import NapalmConnector
from opskit.errors import RunbookError
from opskit.inventory.model import CI, CIType
from opskit.runbooks import load_runbook
from opskit.runbooks.opstate import (
    FACTS,
    VOLATILE,
    Difference,
    allows,
    diff,
    explain,
    napalm_rows,
    normalise,
)
from opskit.runbooks.opstate_capture import capture

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "opstate"

#: fixture stem -> (the command it answers, the fact it feeds)
FIXTURES = {
    "show_vlan": ("show vlan", "vlans"),
    "show_ip_route": ("show ip route", "routes"),
    "show_cdp_neighbors_detail": ("show cdp neighbors detail", "neighbors"),
    "show_lldp_neighbors_detail1": ("show lldp neighbors detail", "neighbors"),
    "show_ip_interface_brief": ("show ip interface brief", "interfaces"),
    "show_interfaces": ("show interfaces", "interfaces"),
    "show_ip_bgp_summary": ("show ip bgp summary", "bgp"),
    "show_ip_ospf_neighbor": ("show ip ospf neighbor", "ospf"),
}


def fixture_rows(stem: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows parsed now by the installed ntc-templates, rows the fixture expects)."""
    command, _ = FIXTURES[stem]
    raw = (DATA / "cisco_ios" / f"cisco_ios_{stem}.raw").read_text()
    expected = yaml.safe_load((DATA / "cisco_ios" / f"cisco_ios_{stem}.yml").read_text())
    return parse_output(platform="cisco_ios", command=command, data=raw), expected["parsed_sample"]


@pytest.mark.parametrize("stem", sorted(FIXTURES))
def test_real_outputs_parse_as_published_and_normalise_without_volatile_fields(stem: str) -> None:
    parsed, expected = fixture_rows(stem)
    assert parsed == expected
    fact = FIXTURES[stem][1]
    state = normalise(fact, parsed)
    assert state and state == normalise(fact, list(reversed(parsed)))  # order does not matter
    assert diff({fact: state}, {fact: state}) == []
    if fact != "routes":
        for entry in state.values():
            assert not set(entry) & VOLATILE[fact]


def test_normalised_real_state_reads_as_the_device_printed_it() -> None:
    vlans = normalise("vlans", fixture_rows("show_vlan")[0])
    assert vlans["10"] == {"name": "Management", "status": "active", "interfaces": []}
    brief = normalise("interfaces", fixture_rows("show_ip_interface_brief")[0])
    assert brief["Ethernet0/2"]["link_status"] == "administratively down"
    assert brief["Ethernet0/0.11"] == {
        "ip_address": "10.0.1.38",
        "link_status": "up",
        "protocol_status": "up",
    }
    # The published capture holds two devices' output: a repeated name keeps both.
    both = normalise("interfaces", fixture_rows("show_interfaces")[0])["GigabitEthernet0/2"]
    assert [e["link_status"] for e in both["duplicate"]] == ["administratively down", "up"]
    routes = normalise("routes", fixture_rows("show_ip_route")[0])
    assert routes["default"] == ["O via 194.0.0.2"]  # "Gateway of last resort is 194.0.0.2"
    assert routes["count"] == sum(routes["by_protocol"].values()) > 20
    bgp = normalise("bgp", fixture_rows("show_ip_bgp_summary")[0])
    assert bgp["10.0.0.1"] == {"remote_as": "65000", "state": "Established"}
    assert bgp["10.0.0.10"]["state"] == "Idle (Admin)"
    ospf = normalise("ospf", fixture_rows("show_ip_ospf_neighbor")[0])
    assert ospf["10.0.0.1@Port-channel1"] == {"state": "FULL/ -", "address": "10.0.1.1"}
    cdp = normalise("neighbors", fixture_rows("show_cdp_neighbors_detail")[0])
    assert cdp["GigabitEthernet1/0/16>desktop-switch"]["port"] == "GigabitEthernet0/1"


def test_a_port_going_down_and_a_new_vlan_are_the_differences_and_counters_are_not() -> None:
    rows, _ = fixture_rows("show_interfaces")
    vlan_rows, _ = fixture_rows("show_vlan")
    before = {"interfaces": normalise("interfaces", rows), "vlans": normalise("vlans", vlan_rows)}
    later = copy.deepcopy(rows)
    name = later[1]["interface"]
    later[1]["link_status"] = "administratively down"
    for row in later:  # traffic flowed meanwhile: counters and timers moved
        row["input_packets"] = str(int(row["input_packets"] or 0) + 1000)
        row["last_input"] = "00:00:01"
    added = [
        *vlan_rows,
        {"vlan_id": "361", "vlan_name": "web", "status": "active", "interfaces": []},
    ]
    after = {"interfaces": normalise("interfaces", later), "vlans": normalise("vlans", added)}
    found = diff(before, after)
    assert [d.describe() for d in found] == [
        f'interfaces.{name}.link_status: "up" -> "administratively down"',
        'vlans.361: added {"interfaces": [], "name": "web", "status": "active"}',
    ]
    explained, unexplained = explain(found, [f"vlans.{361}"])
    assert [d.path for d in explained] == ["vlans.361"]
    assert [d.path for d in unexplained] == [f"interfaces.{name}.link_status"]


def test_napalm_getter_answers_normalise_like_the_show_commands() -> None:
    answers = {
        "interfaces": json.loads((DATA / "napalm-ios" / "get_interfaces.json").read_text()),
        "vlans": json.loads((DATA / "napalm-ios" / "get_vlans.json").read_text()),
        "neighbors": json.loads(
            (DATA / "napalm-ios" / "get_lldp_neighbors_detail.json").read_text()
        ),
        "bgp": json.loads(
            (
                REPO / "tests/data/napalm-validate/mocked/strict_pass/get_bgp_neighbors.json"
            ).read_text()
        ),
    }
    state = {fact: normalise(fact, napalm_rows(fact, a)) for fact, a in answers.items()}
    assert state["interfaces"]["GigabitEthernet0/1"]["link_status"] == "up"
    assert state["interfaces"]["GigabitEthernet0/1"]["description"] == "to iosvl2-2"
    assert "last_flapped" not in state["interfaces"]["GigabitEthernet0/1"]
    assert state["vlans"]["1"]["name"] == "default"
    assert state["neighbors"]["GigabitEthernet1>eos-spine1.ntc.com"]["port"] == "Management1"
    assert state["bgp"]["192.0.2.3"] == {"remote_as": "65001", "state": "Down"}


def test_napalm_capture_uses_read_only_getters_on_the_mock_driver(tmp_path: Path) -> None:
    answers = tmp_path / "mock"
    answers.mkdir()
    for name in ("get_interfaces", "get_vlans", "get_lldp_neighbors_detail"):
        source = DATA / "napalm-ios" / f"{name}.json"
        (answers / f"{name}.1").write_text(source.read_text())
    (answers / "get_bgp_neighbors.1").write_text(
        json.dumps({"exception": "NotImplementedError", "message": "no BGP here"})
    )
    ci = CI(
        name="mock-r1",
        type=CIType.ROUTER,
        platform="cisco_ios",
        host="192.0.2.1",
        credentials={"username": "admin"},
        connection_options={"napalm": {"driver": "mock", "optional_args": {"path": str(answers)}}},
    )
    with NapalmConnector(ci) as conn:
        state = capture(conn, "cisco_ios", FACTS)
    assert state["vlans"]["1"]["name"] == "default"
    assert state["ospf"] == {"unavailable": "no NAPALM getter"}
    assert set(state["bgp"]) == {"unavailable"}


# -- properties of the differ ---------------------------------------------------
keys = st.text(alphabet="abcxyz019/.", min_size=1, max_size=6)
leaves = st.one_of(
    st.text(max_size=5), st.integers(), st.booleans(), st.lists(st.text(max_size=3), max_size=3)
)
trees = st.recursive(leaves, lambda inner: st.dictionaries(keys, inner, max_size=4), max_leaves=12)
snapshots = st.dictionaries(
    st.sampled_from(FACTS), st.dictionaries(keys, trees, max_size=4), max_size=4
)
patterns = st.lists(st.text(alphabet="abcxyz019/.*?", min_size=1, max_size=8), max_size=4)


@given(snapshots)
def test_a_snapshot_has_no_difference_with_itself(state: dict[str, Any]) -> None:
    assert diff(state, copy.deepcopy(state)) == []


@given(snapshots, snapshots)
def test_the_differ_is_symmetric_in_added_and_removed(a: dict[str, Any], b: dict[str, Any]) -> None:
    swap = {"added": "removed", "removed": "added", "changed": "changed"}
    forward = diff(a, b)
    backward = diff(b, a)
    assert sorted((swap[d.kind], d.path, d.after, d.before) for d in forward) == sorted(
        (d.kind, d.path, d.before, d.after) for d in backward
    )


@given(snapshots, snapshots, patterns)
def test_allowed_patterns_only_remove_differences(
    a: dict[str, Any], b: dict[str, Any], allow: list[str]
) -> None:
    found = diff(a, b)
    explained, unexplained = explain(found, allow)
    assert sorted(map(repr, explained + unexplained)) == sorted(map(repr, found))
    assert all(not any(allows(p, d.path) for p in allow) for d in unexplained)
    assert explain(found, [])[1] == found
    assert explain(found, [*allow, "*"])[1] == []


def test_a_pattern_allows_a_path_and_what_is_below_it_only() -> None:
    assert allows("vlans.351", "vlans.351") and allows("vlans.351", "vlans.351.name")
    assert not allows("vlans.35", "vlans.351")
    assert allows("vlans.*.interfaces", "vlans.1.interfaces")
    assert not allows("vlans.*.interfaces", "vlans.1.name")
    assert Difference("removed", "bgp.10.0.0.1", {"state": "Established"}).describe() == (
        'bgp.10.0.0.1: removed {"state": "Established"}'
    )


# -- the runbook keys -----------------------------------------------------------
def write_guarded(root: Path, state_block: str) -> Path:
    source = (REPO / "runbooks" / "vlan-interface-guarded" / "1.0.0.yaml").read_text()
    start = source.index("state_snapshot:")
    end = source.index("apply:")
    path = root / "runbooks" / "vlan-interface-guarded" / "1.0.0.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(source[:start] + state_block + source[end:])
    template = root / "templates" / "vlan-interface" / "vlan.j2"
    template.parent.mkdir(parents=True)
    template.write_text((REPO / "templates" / "vlan-interface" / "vlan.j2").read_text())
    return path


@pytest.mark.parametrize(
    ("block", "field", "words"),
    [
        ("state_snapshot:\n  facts: [vlans, arp]\n", "state_snapshot.facts[1]", "arp"),
        ("state_snapshot:\n  facts: [vlans]\n  allow: vlans.1\n", "state_snapshot.allow", ""),
        ("state_snapshot:\n  fact: [vlans]\n", "state_snapshot.fact", "unknown field"),
        ("state_snapshot:\n  connector: telnet\n", "state_snapshot.connector", "telnet"),
    ],
)
def test_a_bad_state_snapshot_key_is_one_line_naming_file_line_and_field(
    tmp_path: Path, block: str, field: str, words: str
) -> None:
    path = write_guarded(tmp_path, block)
    with pytest.raises(RunbookError) as caught:
        load_runbook(path, tmp_path)
    error = caught.value
    message = str(error)
    assert "\n" not in message and words in message
    assert error.field == field, message
    assert error.line is not None and error.line > 1


def test_state_snapshot_defaults_to_every_fact(tmp_path: Path) -> None:
    book = load_runbook(write_guarded(tmp_path, "state_snapshot: {}\n"), tmp_path)
    assert book.state_snapshot is not None and book.state_snapshot.facts == FACTS
    assert book.state_snapshot.allow == ()


cells = st.one_of(st.none(), st.text(max_size=8), st.lists(st.text(max_size=5), max_size=3))
row_keys = st.sampled_from(
    [
        "interface", "intf", "status", "proto", "link_status", "vlan_id", "vlan_name",
        "interfaces", "network", "prefix_length", "protocol", "nexthop_ip", "vrf",
        "local_interface", "neighbor_name", "neighbor_interface", "bgp_neighbor",
        "state_or_prefixes_received", "neighbor_as", "neighbor_id", "state", "crc",
    ]
)  # fmt: skip
device_rows = st.lists(st.dictionaries(row_keys, cells, max_size=8), max_size=6)


@given(st.sampled_from(FACTS), device_rows)
def test_any_parsed_rows_normalise_to_json_independently_of_their_order(
    fact: str, rows: list[dict[str, Any]]
) -> None:
    """What a device prints reaches the ledger: never a traceback, always JSON,
    the same whatever order the rows came in."""
    state = normalise(fact, rows)
    json.dumps(state, allow_nan=False)
    assert state == normalise(fact, list(reversed(rows)))
    assert diff({fact: state}, {fact: normalise(fact, rows)}) == []


def test_ignored_fields_are_never_differences_at_any_depth() -> None:
    before = {"interfaces": {"Gi0/1": {"mtu": "1500", "link_status": "up"}}}
    after = {"interfaces": {"Gi0/1": {"mtu": "9000", "link_status": "down"}}}
    assert [d.path for d in diff(before, after)] == [
        "interfaces.Gi0/1.link_status",
        "interfaces.Gi0/1.mtu",
    ]
    assert [d.path for d in diff(before, after, ["mtu"])] == ["interfaces.Gi0/1.link_status"]


def test_the_ignore_key_reaches_the_model(tmp_path: Path) -> None:
    block = "state_snapshot:\n  facts: [interfaces]\n  ignore: [mtu, speed]\n"
    book = load_runbook(write_guarded(tmp_path, block), tmp_path)
    assert book.state_snapshot is not None and book.state_snapshot.ignore == ("mtu", "speed")
