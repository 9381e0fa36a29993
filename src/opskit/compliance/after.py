"""Compliance after every change: the changed CIs evaluated again, recorded,
and the transitions put in the change's summary.

The rollout calls `after_change` once its hosts are done (before the change
reaches its final state): the CIs the change modified are evaluated from
their post-change configuration — the running configuration the change's
verification fetched after the apply (no second device round trip), or,
for a host whose runbook fetched none, read again from the device
(read-only) — and recorded as an ordinary compliance run whose trigger
names the change (each result's origin: ``CHG-... verify`` or ``live``).
Structured features need live facts: a CI judged from its verification's
configuration is judged on its configuration features only (the next live
run judges the rest). The
change's summary gets, per CI, its state and every feature whose state
moved ("feature vlans: non-compliant -> compliant"), so the fix is seen
where the change is, and a device never stays "non-compliant" in the record
after the change that fixed it.

Nothing here can fail a change: a workspace without compliance rules adds
nothing, and any error is reported in the summary instead.

Example (the summary's ``compliance`` entry):
    {"run_seq": 431, "state": "compliant",
     "hosts": {"lab-sw01": {"state": "compliant",
                            "transitions": ["feature vlans: non-compliant -> compliant"]}}}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opskit.compliance.results import State
from opskit.errors import OpskitError
from opskit.hoststate import HostState

if TYPE_CHECKING:
    from opskit.changes.summary import HostSummary
    from opskit.workspace import Workspace


def changed_hosts(outcomes: Mapping[str, HostSummary]) -> list[str]:
    """The CIs a rollout modified (ended ok with a change made). A host a
    remote worker ran (`opskit.distributed`) carries no run in this process:
    its worker says whether it changed it; when it did not say, it counts
    when the rollout ran it and it ended ok."""
    return sorted(
        name
        for name, outcome in outcomes.items()
        if outcome.status == HostState.OK
        and (
            outcome.changed
            or (outcome.run is None and outcome.ran and outcome.remote_changed is None)
        )
    )


def recorded_configs(ws: Workspace, change_id: str, names: list[str]) -> dict[str, str]:
    """Per host, the configuration its ``host.verified`` record holds (the
    ``config`` blob the verify step fetched): the post-change configuration
    of a host a remote worker ran."""
    from opskit.ledger.core import Ledger

    ledger = Ledger.open(ws)
    digests: dict[str, str] = {}
    for event in ledger.events(change_id=change_id, kind="host.verified"):
        digest = event.blobs.get("config")
        if event.ci in names and digest:
            digests[event.ci] = digest
    blobs = ledger.reader().get_blobs(digests.values())  # a few queries, not one per host
    return {ci: blobs[digest].decode() for ci, digest in digests.items()}


def post_change_configs(outcomes: Mapping[str, HostSummary]) -> dict[str, str]:
    """Per host, the running configuration its verification fetched after
    the change (the last ``get_config`` of the verify phase), when it did."""
    configs = {}
    for name, outcome in outcomes.items():
        for step in outcome.run.steps if outcome.run else []:
            if (
                step.phase == "verify"
                and step.action == "get_config"
                and step.commands == ["get_config running"]
                and step.error is None
            ):
                configs[name] = step.output
    return configs


def after_change(
    ws: Workspace,
    change_id: str,
    actor: str,
    outcomes: Mapping[str, HostSummary],
    inventory: str | None = None,
) -> dict[str, Any]:
    """``{"compliance": {...}}`` for the change's summary, or {} when the
    workspace has no compliance rules or no host was modified. `outcomes`:
    the rollout's per-host summaries (`opskit.changes.summary.HostSummary`)."""
    names = changed_hosts(outcomes)
    if not names or not (ws.root / "compliance").is_dir():
        return {}
    configs = recorded_configs(ws, change_id, [n for n in names if outcomes[n].run is None])
    configs.update({n: c for n, c in post_change_configs(outcomes).items() if n in names})
    try:
        return {"compliance": _evaluate(ws, change_id, actor, names, inventory, configs)}
    except OpskitError as exc:
        return {"compliance": {"error": f"compliance not evaluated after the change: {exc}"}}


def _evaluate(
    ws: Workspace,
    change_id: str,
    actor: str,
    names: list[str],
    inventory: str | None,
    configs: dict[str, str],
) -> dict[str, Any]:
    from opskit.backups.linechange import selection_of
    from opskit.compliance.history import latest_feature_states
    from opskit.compliance.runs import run_compliance
    from opskit.ledger.core import Ledger

    ledger = Ledger.open(ws)
    before = {name: latest_feature_states(ledger, name) for name in names}
    run = run_compliance(
        ws,
        actor,
        select=selection_of(names),
        source="live",
        inventory=inventory,
        trigger={"change_id": change_id},
        configs=configs,
        configs_origin=f"{change_id} verify",
    )
    hosts = {}
    for result in run.fleet.results:
        previous = before.get(result.ci, {})
        # As in the history, an unknown state is not a move.
        moved = [
            f"feature {f.feature}: {previous.get(f.feature, ('-',))[0]} -> {f.state}"
            for f in result.features
            if f.state != State.UNKNOWN and previous.get(f.feature, (None,))[0] != str(f.state)
        ]
        hosts[result.ci] = {"state": str(result.state), "transitions": moved}
    return {"run_seq": run.seq, "state": str(run.fleet.state), "hosts": hosts}


__all__ = ["after_change", "changed_hosts", "post_change_configs", "recorded_configs"]
