"""Runbook step actions, declared once, as data.

Every action a runbook step may name is an `ActionSpec` here: the built-in
ones (`BUILTIN`), which the executor maps onto the `Connector` interface for
every connector, and each built-in connector's own (`CONNECTOR_ACTIONS`),
which the executor hands to `Connector.perform`. A spec says whether the
action *mutates* the device (an operation: configuration, a save, a
playbook) or only reads it (a fact: a configuration fetch, getters), as
pyinfra separates facts from operations, and what a dry run can tell of its
effect on the running configuration (`Effect`).

    >>> BUILTIN["get_config"].mutates, BUILTIN["config"].mutates
    (False, True)
    >>> sorted(CONNECTOR_ACTIONS["napalm"])
    ['confirm', 'getters', 'rollback', 'validate']

This module imports nothing but the standard library: validating a runbook's
steps (`step_actions`) loads no connector and no vendor library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Effect(StrEnum):
    """What a dry run knows of an action's effect on the running configuration."""

    NONE = "none"  # never changes it: the prediction is "no change"
    DIFF = "diff"  # the diff the step reports is its effect; no diff: unknown
    CHECKED = "checked"  # run in check mode: "unchanged" is a prediction, skipped is unknown


@dataclass(frozen=True)
class ActionSpec:
    """One step action: its name, whether it mutates the device, what it does."""

    name: str
    mutates: bool
    summary: str
    effect: Effect = Effect.CHECKED
    #: None: a built-in action (every connector); else the connector that offers it
    connector: str | None = None


def _builtin(name: str, mutates: bool, effect: Effect, summary: str) -> ActionSpec:
    return ActionSpec(name, mutates, summary, effect)


#: The executor's own actions, for every connector with the capability.
BUILTIN: Mapping[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        _builtin("config", True, Effect.DIFF, "applies configuration lines (merge or replace)"),
        _builtin("commands", True, Effect.DIFF, "runs show / shell commands"),
        _builtin("get_config", False, Effect.NONE, "fetches a configuration or a file"),
        _builtin("config_compare", False, Effect.NONE, "running vs startup: unsaved changes"),
        _builtin("save", True, Effect.NONE, "writes the configuration to startup"),
        _builtin("facts", False, Effect.NONE, "the connector's facts"),
        _builtin("restore_snapshot", True, Effect.CHECKED, "puts the backup snapshot back"),
    )
}


def connector_actions(connector: str, **specs: tuple[bool, str]) -> Mapping[str, ActionSpec]:
    """A connector's own actions: ``name=(mutates, summary)`` each."""
    return {
        name: ActionSpec(name, mutates, summary, Effect.CHECKED, connector)
        for name, (mutates, summary) in specs.items()
    }


#: Each built-in connector's own actions (its class's ``actions`` is this table).
CONNECTOR_ACTIONS: Mapping[str, Mapping[str, ActionSpec]] = {
    "netmiko": connector_actions("netmiko"),
    "napalm": connector_actions(
        "napalm",
        getters=(False, "runs NAPALM getters (`getters`: their names)"),
        validate=(False, "NAPALM validate against a validation document"),
        confirm=(True, "confirms a pending commit-confirm"),
        rollback=(True, "the device's rollback of the last commit"),
    ),
    "fabric": connector_actions(
        "fabric",
        run=(True, "runs shell commands"),
        sudo=(True, "runs shell commands with sudo"),
        put=(True, "uploads a file (`mode`)"),
        get=(False, "downloads a file"),
    ),
    "ansible": connector_actions(
        "ansible",
        playbook=(True, "runs a playbook from playbooks/"),
        module=(True, "runs one Ansible module"),
    ),
}


def step_actions(own: Mapping[str, ActionSpec]) -> frozenset[str]:
    """Every action a step may ask of a connector whose own actions are ``own``."""
    return frozenset(BUILTIN) | frozenset(own)


__all__ = [
    "BUILTIN",
    "CONNECTOR_ACTIONS",
    "ActionSpec",
    "Effect",
    "connector_actions",
    "step_actions",
]
