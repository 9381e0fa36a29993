"""The fast section reader gives hier_config's top-level lines, on the real
corpus and on generated configurations (duplicates, banners, odd whitespace)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit import configdiff
from opskit.compliance.sections import FAST_PLATFORMS, Section, section_paths, split_sections
from tests.compliance.support import CONFIGS

CORPUS = sorted(p for p in CONFIGS.glob("*/*") if p.parent.name in FAST_PLATFORMS | {"cisco_xr"})


def _first_seen(headers: list[str]) -> list[str]:
    return list(dict.fromkeys(headers))


def _hier_headers(text: str, platform: str) -> list[str]:
    # A banner is one line of hier_config's, text included: two banners may share a first line.
    children = configdiff.parse(text, platform).children
    return [c.text if c.text.startswith("banner ") else c.text.splitlines()[0] for c in children]


def _headers(sections: list[Section]) -> list[str]:
    return _first_seen([s.banner or s.header for s in sections])


def _hier_paths(text: str, platform: str) -> set[tuple[str, ...]]:
    tree = configdiff.parse(text, platform)
    # Banners are compared by kind and body (Section.key): left out here.
    paths = {tuple(c.path()) for c in tree.all_children()}
    return {p for p in paths if not p[0].startswith("banner ")}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_top_level_lines_are_hier_configs_on_the_corpus(path: Path) -> None:
    text, platform = path.read_text(), path.parent.name
    sections = split_sections(text, platform)
    assert _headers(sections) == _hier_headers(text, platform)


LINES = st.sampled_from([
    "interface GigabitEthernet1/0/1", " description uplink", " description  two  spaces",
    "  ip address 10.0.0.1 255.255.255.0", "\tshutdown", "vlan 10", " name users", "!",
    "! a comment", "version 15.2", "hostname sw1", "ntp server 10.0.0.1", "router bgp 65000",
    " neighbor 10.0.0.2 remote-as 65001", "  address-family ipv4", "   network 10.0.0.0",
    "banner motd ^C", "banner login #", "Authorised access only", "^C", "#", "EOF",
    "line vty 0 4", " transport input ssh", "end", "", "   ", "snmp-server community x RO",
    "crypto pki certificate chain TP", " certificate 01", "  3082 0122", "  3082 0122", "  quit",
    "ip route 0.0.0.0 0.0.0.0 10.0.0.254", "hostname\u00a0odd", "logging host 10.0.0.5",
])  # fmt: skip


@settings(max_examples=150)
@given(lines=st.lists(LINES, max_size=40), platform=st.sampled_from(sorted(FAST_PLATFORMS)))
def test_generated_configurations_read_like_hier_config(lines: list[str], platform: str) -> None:
    text = "\n".join(lines)
    try:
        headers = _hier_headers(text, platform)
    except configdiff.ConfigParseError:
        with pytest.raises(configdiff.ConfigParseError):
            split_sections(text, platform, host="sw1")
        return
    sections = split_sections(text, platform)
    assert _headers(sections) == headers
    mine = {p for p in section_paths(sections) if not p[0].startswith("banner ")}
    assert mine == _hier_paths(text, platform)
