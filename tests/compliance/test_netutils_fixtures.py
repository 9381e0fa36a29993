"""opskit's verdicts on Golden Config's own fixtures (netutils' compliance tests).

Each fixture is a backup, an intended configuration and netutils' expected
result per feature; the features are netutils' (its ``section`` line starts
become opskit ``match`` patterns, ``ordered`` is kept). opskit must reach
the same compliant / non-compliant verdict on every feature.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from opskit.compliance import State, evaluate
from tests.compliance.support import NETUTILS, ci_rules, make_ci

# netutils' features (tests/unit/mock/config/compliance/compliance/*_feature.py).
FIXTURES = {
    "ios_basic": ("cisco_ios", [("bgp", True, ["router bgp "]), ("snmp", True, ["snmp-server "]),
                                ("ntp", False, ["ntp server "]), ("banner", True, ["banner "])]),
    "nxos_basic": ("cisco_nxos", [("bgp", True, ["router bgp "]), ("banner", True, ["banner "])]),
    "eos_basic": ("arista_eos", [("bgp", True, ["router bgp "]), ("banner", True, ["banner "])]),
    "eos_bad_banner": ("arista_eos", [("banner", True, ["banner "])]),
    "iosxr_basic": ("cisco_xr", [("host", True, ["hostname "]), ("ntp", True, ["ntp"]),
                                 ("banner", True, ["banner"])]),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_same_verdicts_as_golden_config(name: str, tmp_path: Path) -> None:
    platform, features = FIXTURES[name]
    expected = json.loads((NETUTILS / f"{name}_received.json").read_text())
    backup = (NETUTILS / f"{name}_backup.txt").read_text()
    intended = (NETUTILS / f"{name}_intended.txt").read_text()
    ci = make_ci("dev1", platform)
    rules = ci_rules(
        tmp_path,
        [{"name": f, "mode": "intended", "ordered": o,
          "match": ["^" + re.escape(p) for p in prefixes]} for f, o, prefixes in features],
        ci,
    )  # fmt: skip
    result = evaluate(ci, backup, intended, rules)
    for feature, want in expected.items():
        got = result.feature(feature)
        assert got.compliant is want["compliant"], (feature, got)
        if not want["compliant"]:
            assert got.state is State.NON_COMPLIANT
            assert got.missing or got.extra or got.reason


def test_the_drifted_snmp_location_is_missing_extra_and_remediated(tmp_path: Path) -> None:
    ci = make_ci("dev1")
    snmp_feature = {"name": "snmp", "mode": "intended", "match": ["^snmp-server "]}
    rules = ci_rules(tmp_path, [snmp_feature], ci)
    result = evaluate(
        ci,
        (NETUTILS / "ios_basic_backup.txt").read_text(),
        (NETUTILS / "ios_basic_intended.txt").read_text(),
        rules,
    )
    snmp = result.feature("snmp")
    assert snmp.missing == ("snmp-server location SFO",)
    assert snmp.extra == ("snmp-server location San Fran",)
    assert "snmp-server location SFO" in snmp.remediation
