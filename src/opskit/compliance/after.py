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

`AfterChange` does the same in two parts, so that most of the work is done
while the rollout still works on other hosts: `AfterChange.judge` evaluates
hosts as they finish (the rollout calls it from the background writer of its
host index, off every device's path; a host a worker process ran is judged
from the configuration its `host.verified` record holds, read back), and
`AfterChange.finish` judges whatever is left and records the one compliance
run, as `after_change` does. A host judged early counts only if it is still
a modified host with the same configuration at the end (it was judged
against the rules, templates and inventory of that moment; its result
records their digests); anything that went wrong early is done again at the
end, where it is reported as before. With `apart=True` (the rollout's choice
for 50 hosts or more) the judging runs in a helper process
(`opskit.compliance.apart`), off the interpreter the device threads share;
what it does not return is judged at the end here.

Example (the summary's ``compliance`` entry):
    {"run_seq": 431, "state": "compliant",
     "hosts": {"lab-sw01": {"state": "compliant",
                            "transitions": ["feature vlans: non-compliant -> compliant"]}}}
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opskit.compliance.results import State
from opskit.compliance.runs import ConfigJudge
from opskit.errors import OpskitError
from opskit.hoststate import HostState

# Up to this many hosts, their records are read host by host (hosts a worker
# process ran, read back as they finish); more, the change's at once.
FEW_HOSTS = 20

if TYPE_CHECKING:
    from opskit.changes.summary import HostSummary
    from opskit.compliance.apart import JudgeProcess
    from opskit.compliance.runs import Judged
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

    if not names:  # every host ran here: nothing to read back
        return {}
    ledger = Ledger.open(ws)
    # A few hosts (as they finish): their own records; else the change's at once.
    events = (
        (e for n in names for e in ledger.events(change_id=change_id, ci=n, kind="host.verified"))
        if len(names) <= FEW_HOSTS
        else ledger.events(change_id=change_id, kind="host.verified")
    )
    digests: dict[str, str] = {}
    for event in events:
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
    judged: Mapping[str, Judged] | None = None,
) -> dict[str, Any]:
    """``{"compliance": {...}}`` for the change's summary, or {} when the
    workspace has no compliance rules or no host was modified. `outcomes`:
    the rollout's per-host summaries (`opskit.changes.summary.HostSummary`);
    `judged`: hosts judged already (`AfterChange.judge`), used when they are
    modified hosts and were judged from the same configuration."""
    names = changed_hosts(outcomes)
    if not names or not (ws.root / "compliance").is_dir():
        return {}
    configs = recorded_configs(ws, change_id, [n for n in names if outcomes[n].run is None])
    configs.update({n: c for n, c in post_change_configs(outcomes).items() if n in names})
    kept = {
        n: entry
        for n, entry in (judged or {}).items()
        if n in configs and entry[1].config == configs[n]
    }
    try:
        return {"compliance": _evaluate(ws, change_id, actor, names, inventory, configs, kept)}
    except OpskitError as exc:
        return {"compliance": {"error": f"compliance not evaluated after the change: {exc}"}}


class AfterChange:
    """`after_change` in two parts (see the module docstring). Thread-safe."""

    def __init__(
        self,
        ws: Workspace,
        change_id: str,
        actor: str,
        inventory: str | None = None,
        *,
        apart: bool = False,
    ) -> None:
        """`apart`: judge in a helper process (`opskit.compliance.apart`),
        off the interpreter the rollout's device threads share."""
        self.ws = ws
        self.change_id = change_id
        self.actor = actor
        self.inventory = inventory
        self._judged: dict[str, Judged] = {}
        self._lock = threading.Lock()
        self._judge = ConfigJudge(ws, inventory, origin=f"{change_id} verify")
        self._enabled = (ws.root / "compliance").is_dir()
        self._apart: JudgeProcess | None = None
        if apart and self._enabled:
            self._apart = _start_apart(ws, change_id, inventory)

    @property
    def helper_pid(self) -> int | None:
        """The helper process's pid, when this judges apart."""
        return self._apart.pid if self._apart is not None else None

    def wait_for_helper(self, timeout: float) -> bool:
        """Whether the helper process is ready to judge, waiting up to
        `timeout` s (False without one). `finish` does not wait for a
        helper that is not ready: a caller that wants its results waits here."""
        return self._apart is not None and self._apart.wait_ready(timeout)

    def judge(self, outcomes: Iterable[HostSummary]) -> None:
        """Judges the hosts among `outcomes` that the change modified, from
        the configuration their verification fetched (in the helper process
        when there is one). Never raises: a host it could not judge is
        judged by `finish`."""
        if not self._enabled:
            return
        done = {o.ci: o for o in outcomes}
        names = changed_hosts(done)
        configs = {n: c for n, c in post_change_configs(done).items() if n in names}
        remote = [n for n in names if done[n].run is None]  # run by a worker process
        if remote:
            with contextlib.suppress(Exception):  # only a head start (see above)
                configs.update(recorded_configs(self.ws, self.change_id, remote))
        if not configs:
            return
        if self._apart is not None and self._apart.send(configs):
            return
        self._judge_here(configs)

    def _judge_here(self, configs: Mapping[str, str]) -> None:
        try:
            with self._lock:
                self._judged.update(self._judge(configs))
        except Exception:  # only a head start: `finish` judges these hosts again
            return

    def finish(self, outcomes: Mapping[str, HostSummary]) -> dict[str, Any]:
        """What `after_change` returns, with the hosts `judge` judged."""
        self.close()
        with self._lock:
            judged = dict(self._judged)
        return after_change(
            self.ws, self.change_id, self.actor, outcomes, self.inventory, judged=judged
        )

    def close(self) -> None:
        """Ends the helper process, keeping what it judged (nothing to do
        without one; `finish` calls it)."""
        apart, self._apart = self._apart, None
        if apart is not None:
            judged = apart.collect()
            with self._lock:
                self._judged.update(judged)


def _start_apart(ws: Workspace, change_id: str, inventory: str | None) -> JudgeProcess | None:
    from opskit.compliance.apart import JudgeProcess

    try:
        return JudgeProcess(ws, change_id, inventory or ws.policy.inventory)
    except OSError:  # no process to be had: judged here, as before
        return None


def _evaluate(
    ws: Workspace,
    change_id: str,
    actor: str,
    names: list[str],
    inventory: str | None,
    configs: dict[str, str],
    judged: Mapping[str, Judged],
) -> dict[str, Any]:
    from opskit.backups.linechange import selection_of
    from opskit.compliance.history import latest_feature_states_of
    from opskit.compliance.runs import run_compliance
    from opskit.ledger.core import Ledger

    ledger = Ledger.open(ws)
    before = latest_feature_states_of(ledger, names)
    run = run_compliance(
        ws,
        actor,
        select=selection_of(names),
        source="live",
        inventory=inventory,
        trigger={"change_id": change_id},
        configs=configs,
        configs_origin=f"{change_id} verify",
        judged=judged,
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


__all__ = [
    "AfterChange",
    "after_change",
    "changed_hosts",
    "post_change_configs",
    "recorded_configs",
]
