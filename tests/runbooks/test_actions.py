"""Step actions as data: each is declared once (opskit.connectors.actions) and
the executor's behaviour reads the declaration, not a list of names."""

from __future__ import annotations

import pytest

from opskit.connectors.actions import BUILTIN, CONNECTOR_ACTIONS, Effect
from opskit.runbooks.actions import RUNNERS, connector_action, runner_for
from opskit.runbooks.results import StepRun
from opskit.runbooks.steps import predicted_diff


def step(
    action: str, *, diff: str | None = None, status: str = "ok", changed: bool = False
) -> StepRun:
    return StepRun("apply", action, "netmiko", action, status=status, changed=changed, diff=diff)


def test_every_built_in_action_has_one_runner_and_the_rest_go_to_the_connector() -> None:
    assert set(RUNNERS) == set(BUILTIN)
    for name in BUILTIN:
        assert runner_for(name) is RUNNERS[name]
    for own in CONNECTOR_ACTIONS.values():
        for name in own:
            assert runner_for(name) is connector_action, name


def test_reads_are_facts_and_writes_are_operations() -> None:
    reads = {name for name, spec in BUILTIN.items() if not spec.mutates}
    assert reads == {"get_config", "facts", "config_compare"}
    assert not CONNECTOR_ACTIONS["napalm"]["getters"].mutates
    assert CONNECTOR_ACTIONS["ansible"]["playbook"].mutates


@pytest.mark.parametrize("name", sorted(n for n, s in BUILTIN.items() if s.effect is Effect.NONE))
def test_an_action_without_effect_predicts_no_change(name: str) -> None:
    assert predicted_diff([step(name)]) == ""


def test_a_diff_action_without_a_diff_cannot_be_predicted() -> None:
    assert predicted_diff([step("config", diff="+vlan 10")]) == "+vlan 10"
    assert predicted_diff([step("config")]) is None
    assert predicted_diff([step("commands")]) is None


def test_a_checked_action_predicts_unchanged_but_not_skipped() -> None:
    assert predicted_diff([step("playbook")]) == ""
    assert predicted_diff([step("playbook", status="skipped")]) is None
    assert predicted_diff([step("playbook", status="changed", changed=True)]) is None
    assert predicted_diff([step("get_config"), step("config", diff="+a"), step("save")]) == "+a"
