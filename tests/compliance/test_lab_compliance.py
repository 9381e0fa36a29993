"""The shipped rules and intended template against the lab's emulated IOS
switches: their real running configurations and `show vlan` (TextFSM), the
deliberately non-compliant feature (vlans: the users VLAN is missing), and
its remediation applied to a switch, then rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opskit import configdiff
from opskit.compliance import (
    CiCompliance,
    State,
    evaluate,
    gather_facts,
    load_rules,
    render_intended,
    rules_for,
    workspace_rules,
)
from opskit.connectors.netmiko import NetmikoConnector
from opskit.inventory import CI
from tests.compliance.support import write_rules
from tests.fixtures.lab import LabEnv, running_config

pytestmark = pytest.mark.lab


def _observed(lab: LabEnv, ci: CI) -> tuple[str, dict[str, Any]]:
    rules = rules_for(ci, workspace_rules(lab.ws.root), lab.inventory)
    with NetmikoConnector(ci) as conn:
        return conn.get_config(), gather_facts(conn, rules)


def _evaluate(lab: LabEnv, ci: CI) -> CiCompliance:
    rules = rules_for(ci, workspace_rules(lab.ws.root), lab.inventory)
    intended = render_intended(ci, lab.inventory, lab.ws.templates_dir)
    running, facts = _observed(lab, ci)
    return evaluate(ci, running, intended, rules, facts=facts)


def test_a_lab_switch_against_the_shipped_rules(lab: LabEnv) -> None:
    result = _evaluate(lab, lab.switch)
    states = {f.feature: f.state for f in result.features}
    assert states == {
        "system": State.COMPLIANT,
        "vlans": State.NON_COMPLIANT,  # the example's deliberate drift
        "interfaces": State.COMPLIANT,
        "routing": State.NOT_APPLICABLE,
        "vlan-state": State.COMPLIANT,  # VLAN 1 active, parsed by ntc-templates
    }
    vlans = result.feature("vlans")
    assert vlans.missing == ("vlan 10", "  name users") and vlans.extra == ()
    assert vlans.remediation == ("vlan 10", "  name users", "  exit")
    assert result.unmanaged == ()
    assert result.template_digest and result.inventory_digest == lab.inventory.digest
    assert result.config_digest == configdiff.config_hash(running_config(lab.switch), "cisco_ios")


def test_the_remediation_makes_the_switch_compliant_and_rolling_back_restores_it(
    lab: LabEnv,
) -> None:
    ci = lab.dedicated_switch
    # The example's drift (VLAN 10 missing), whatever earlier tests left on
    # this switch (the dedicated one may be left changed).
    with NetmikoConnector(ci) as conn:
        conn.apply_config(["no vlan 10"])
    before = running_config(ci)
    drifted = _evaluate(lab, ci)
    assert drifted.feature("vlans").state is State.NON_COMPLIANT
    with NetmikoConnector(ci) as conn:
        conn.apply_config(list(drifted.feature("vlans").remediation))
    try:
        fixed = _evaluate(lab, ci)
        assert fixed.feature("vlans").state is State.COMPLIANT
        assert fixed.feature("vlan-state").state is State.COMPLIANT
        after = running_config(ci)
    finally:
        with NetmikoConnector(ci) as conn:
            conn.apply_config(configdiff.remediation(running_config(ci), before, "cisco_ios"))
    assert configdiff.equal(running_config(ci), before, "cisco_ios")[0]
    assert "vlan 10" in after
    assert _evaluate(lab, ci).feature("vlans").state is State.NON_COMPLIANT


def test_a_structured_check_sees_a_suspended_vlan(lab: LabEnv) -> None:
    """What configuration text cannot show: the VLAN's state, from `show vlan`."""
    ci = lab.switch
    running, facts = _observed(lab, ci)
    assert set(facts) == {"show vlan"}
    suspended = facts["show vlan"].replace("active", "suspended", 1)
    rules = rules_for(ci, workspace_rules(lab.ws.root), lab.inventory)
    result = evaluate(ci, running, None, rules, facts={"show vlan": suspended})
    state = result.feature("vlan-state")
    assert state.state is State.NON_COMPLIANT
    assert state.missing == ("{'vlan_id': '1', 'status': 'active'}",)


def test_a_getter_the_connector_cannot_run_makes_the_feature_unknown(
    lab: LabEnv, tmp_path: Path
) -> None:
    ci = lab.switch
    write_rules(tmp_path, [{"name": "vlan-db", "mode": "structured",
                            "check": {"getter": "get_vlans", "validate": {"1": {}}}}])  # fmt: skip
    rules = rules_for(ci, load_rules(tmp_path))
    with NetmikoConnector(ci) as conn:
        facts = gather_facts(conn, rules)
        running = conn.get_config()
    result = evaluate(ci, running, None, rules, facts=facts)
    assert result.feature("vlan-db").state is State.UNKNOWN
    assert result.feature("vlan-db").reason == (
        "get_vlans: the netmiko connector has no NAPALM getters"
    )


def test_a_napalm_getter_checked_against_a_document(lab: LabEnv, tmp_path: Path) -> None:
    from opskit.connectors.napalm import NapalmConnector

    ci = lab.switch
    check = {"getter": "get_vlans", "validate": {"1": {"name": "default"}}}
    write_rules(tmp_path, [{"name": "vlan-db", "mode": "structured", "check": check}])
    rules = rules_for(ci, load_rules(tmp_path))
    with NapalmConnector(ci) as conn:
        facts = gather_facts(conn, rules)
    result = evaluate(ci, "hostname x", None, rules, facts=facts)
    assert result.feature("vlan-db").state is State.COMPLIANT, result.feature("vlan-db")
    wrong = {"1": {"name": "users"}}
    write_rules(tmp_path, [{"name": "vlan-db", "mode": "structured",
                            "check": {**check, "validate": wrong}}])  # fmt: skip
    rules = rules_for(ci, load_rules(tmp_path))
    result = evaluate(ci, "hostname x", None, rules, facts=facts)
    assert result.feature("vlan-db").state is State.NON_COMPLIANT
