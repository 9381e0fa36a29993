"""Compliance runs: evaluate many CIs, from the devices or from their backups,
and record the run in the ledger.

``run_compliance(ws, actor, select=, source="live"|"backup", features=,
inventory=, trigger=) -> ComplianceRun``

1. Everything that can be wrong with the input is found first, before a
   device is contacted or anything recorded: the selection, the rule files
   (`RuleError`: file, line, field), every CI's rules and intended
   configuration (`IntendedError`: CI, template, line), an unknown
   ``--feature``.
2. Each CI's configuration is read: ``live`` through the connectors
   (read-only: `get_config` and the show commands / NAPALM getters that
   structured features name) or ``backup``, the CI's latest backup in the
   ledger (`opskit.backups`; no device contacted). A device that cannot be
   read, or a CI without a backup, is ``unknown`` with the reason; the run goes on.
3. `opskit.compliance.evaluate` judges each CI; a configuration it cannot
   read makes that CI ``unknown`` (the reason says why).
4. One ledger transaction records a ``compliance.run`` event (actor, source,
   selection, rule and template digests, inventory digest, counts, rate,
   what triggered it) and one ``compliance.result`` per CI (state, per
   feature its state, missing / extra / remediation lines) with the
   configuration, the intended configuration and the diff as blobs (a blob
   is stored once per content: a configuration already held by its backup
   costs nothing more).

A run never changes a device. ``ComplianceRun.ok`` is True only when
everything evaluated is compliant (the CLI's exit 0).

Example:
    >>> run = run_compliance(ws, "alice", select="group:lab_switches", inventory="lab")
    >>> run.seq, run.fleet.counts
    (412, {'compliant': 3, 'non-compliant': 1, 'not-applicable': 0, 'unknown': 0})
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit.compliance.evaluate import evaluate
from opskit.compliance.facts import FactUnavailable, gather_facts
from opskit.compliance.intended import Intended, TemplateCache, render_intended, template_name
from opskit.compliance.model import CiRules, RuleSet
from opskit.compliance.results import CiCompliance, FleetCompliance, Mode, State
from opskit.compliance.rules import rules_for, workspace_rules
from opskit.errors import OpskitError, UsageError
from opskit.ledger.values import record_ready
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory import CI, Inventory
    from opskit.ledger.core import Ledger
    from opskit.workspace import Workspace

RUN_KIND = "compliance.run"
RESULT_KIND = "compliance.result"
SOURCES = ("live", "backup")
NO_BACKUP = "no backup"
DEFAULT_CONCURRENCY = 20


@dataclass(frozen=True)
class Plan:
    """What one CI is judged against, prepared before any device is read."""

    ci: CI
    rules: CiRules
    intended: Intended | None


@dataclass
class Observed:
    """One CI's configuration (and facts) as read, or why it could not be."""

    config: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    origin: str | None = None  # "live", or the backup's ledger seq ("#123")


@dataclass
class ComplianceRun:
    """A recorded run: its ledger seq, source and per-CI results."""

    source: str
    fleet: FleetCompliance
    seq: int | None = None
    result_seqs: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Exit 0: every CI evaluated is compliant (none non-compliant or unknown)."""
        return self.fleet.compliant

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "source": self.source, "ok": self.ok, **self.fleet.to_dict()}


#: One CI's run entry: its plan, its configuration as read, its result.
Judged = tuple[Plan, Observed, CiCompliance]


# -- 1. the input, checked before anything else ------------------------------
def plan_run(
    ws: Workspace,
    inventory: Inventory,
    select: str | None,
    features: Sequence[str] = (),
    ruleset: RuleSet | None = None,
    planned: Mapping[str, Plan] | None = None,
    templates: TemplateCache | None = None,
) -> list[Plan]:
    """The CIs with rules among the selected ones, each with its rules and
    intended configuration (raises the first input error). `planned`: plans
    made already, by CI name (taken as they are, in their place);
    `templates`: compiled templates to render from (and to add to), for a
    caller that plans many times."""
    if ruleset is None and not planned:
        ruleset = workspace_rules(ws)  # its errors first, whatever is selected
    # Every CI of the run renders the same compiled templates.
    templates = templates if templates is not None else TemplateCache()
    plans = []
    for ci in inventory.select(select):
        if planned and ci.name in planned:
            plans.append(planned[ci.name])
            continue
        # With plans made already, loaded for the first CI without one (the
        # change engine's end of rollout has them all: no rule file read again).
        ruleset = ruleset if ruleset is not None else workspace_rules(ws)
        rules = rules_for(ci, ruleset, inventory)
        if not rules.features:
            continue
        intended = None
        if (ws.templates_dir / template_name(ci)).is_file():
            intended = render_intended(ci, inventory, ws.templates_dir, templates)
        plans.append(Plan(ci, rules, intended))
    known = {f.name for plan in plans for f in plan.rules.features}
    unknown = [name for name in features if name not in known]
    if unknown:
        have = ", ".join(sorted(known)) or "none"
        raise UsageError(
            f"--feature {unknown[0]!r}: the selected CIs have no such feature ({have})"
        )
    return plans


# -- 2. reading configurations -------------------------------------------------
def read_live(plan: Plan, pool: ConnectionPool) -> Observed:
    """The running configuration and the facts structured features read
    (`opskit.compliance.facts.gather_facts`: show commands through the
    connector that read the configuration, NAPALM getters through napalm)."""
    from opskit.backups.take import fetch

    fetched = fetch(plan.ci, pool)
    if fetched.running is None:
        return Observed(reason=f"{fetched.status}: {fetched.reason}")
    observed = Observed(config=fetched.running, origin="live")
    if plan.rules.facts_needed:
        observed.facts = _facts(plan, pool, fetched.connector or "netmiko")
    return observed


def _facts(plan: Plan, pool: ConnectionPool, connector: str) -> dict[str, Any]:
    from opskit.connectors import supports

    with pool.session(plan.ci, connector) as conn:
        facts = gather_facts(conn, plan.rules)
    getters = {c.source for c in plan.rules.facts_needed if c.getter}
    missing = {k for k, v in facts.items() if k in getters and isinstance(v, FactUnavailable)}
    if missing and connector != "napalm" and supports("napalm", plan.ci.platform):
        try:
            with pool.session(plan.ci, "napalm") as conn:
                more = gather_facts(conn, plan.rules)
        except OpskitError:
            return facts  # the getters stay unavailable, with their reason
        facts.update({k: v for k, v in more.items() if k in missing})
    return facts


def read_backups(ledger: Ledger, plans: Sequence[Plan]) -> dict[str, Observed]:
    """Each CI's latest backup from the ledger (no device contacted)."""
    from opskit.backups.history import config_of, latest_backups

    latest = latest_backups(ledger, [p.ci.name for p in plans])
    observed = {}
    for plan in plans:
        backup = latest.get(plan.ci.name)
        if backup is None:
            observed[plan.ci.name] = Observed(reason=NO_BACKUP)
        else:
            config = config_of(ledger, backup)
            observed[plan.ci.name] = Observed(config=config, origin=f"#{backup.seq}")
    return observed


# -- 3. judging ----------------------------------------------------------------
def judge(plan: Plan, observed: Observed, features: Sequence[str] = ()) -> CiCompliance:
    """One CI's result (``unknown`` with the reason when it could not be read)."""
    ci = plan.ci
    digests = {
        "rules_digest": plan.rules.digest,
        "template_digest": plan.intended.template_digest if plan.intended else None,
        "inventory_digest": plan.intended.inventory_digest if plan.intended else None,
    }
    wanted = [(f.name, f.mode) for f in plan.rules.features if not features or f.name in features]
    if observed.config is None:
        reason = observed.reason or "not read"
        return CiCompliance.unknown(ci.name, ci.platform, reason, features=wanted, **digests)
    try:
        result = evaluate(ci, observed.config, plan.intended, plan.rules, facts=observed.facts)
    except OpskitError as exc:
        reason = f"cannot evaluate: {exc}"
        return CiCompliance.unknown(ci.name, ci.platform, reason, features=wanted, **digests)
    if features:
        kept = tuple(f for f in result.features if f.feature in features)
        result = dataclasses.replace(result, features=kept)
    return result


def judge_given(plan: Plan, config: str, origin: str) -> Judged:
    """A CI judged from a configuration the caller gives (not read), on its
    configuration features only (`configuration_only`)."""
    seen = Observed(config=config, origin=origin)
    return plan, seen, configuration_only(judge(plan, seen))


class ConfigJudge:
    """Judges CIs from configurations the caller gives (`judge_given`), the
    workspace's inventory and rules loaded once, on first use. Not
    thread-safe. Used by the change engine for its modified hosts, in its
    process or in a helper process (`opskit.compliance.apart`)."""

    def __init__(self, ws: Workspace, inventory: str | None, origin: str) -> None:
        self.ws = ws
        self.inventory = inventory
        self.origin = origin
        self._input: tuple[Inventory, RuleSet] | None = None
        # Compiled once for all the batches it is given (a file edited
        # meanwhile is compiled anew: the cache is keyed by content).
        self._templates = TemplateCache()

    def __call__(self, configs: Mapping[str, str]) -> dict[str, Judged]:
        """{ci: Judged} for the CIs of `configs` (CI -> configuration) that
        have rules; raises the first input error (a template, a rule file)."""
        from opskit.backups.linechange import selection_of

        inventory, ruleset = self._prepared()
        if not configs:
            return {}
        selected = selection_of(configs)
        plans = plan_run(self.ws, inventory, selected, ruleset=ruleset, templates=self._templates)
        return {p.ci.name: judge_given(p, configs[p.ci.name], self.origin) for p in plans}

    def _prepared(self) -> tuple[Inventory, RuleSet]:
        if self._input is None:
            from opskit.inventory import load_workspace_inventory

            name = self.inventory or self.ws.policy.inventory
            self._input = (load_workspace_inventory(self.ws, name), workspace_rules(self.ws))
        return self._input


def configuration_only(result: CiCompliance) -> CiCompliance:
    """The result without its structured features: what a configuration
    alone can tell (a structured feature needs live facts)."""
    kept = tuple(f for f in result.features if f.mode is not Mode.STRUCTURED)
    return dataclasses.replace(result, features=kept)


# -- 4. recording ----------------------------------------------------------------
def diff_text(result: CiCompliance) -> str:
    """The result's differences as text: per feature not compliant, the
    missing lines as "+", the extra ones as "-"."""
    parts = []
    for feature in result.features:
        if feature.state is not State.NON_COMPLIANT:
            continue
        lines = [f"+{line}" for line in feature.missing] + [f"-{line}" for line in feature.extra]
        if feature.reason:
            lines.append(f"# {feature.reason}")
        parts.append(f"feature {feature.feature} ({feature.mode}): non-compliant\n")
        parts.append("".join(line + "\n" for line in lines))
    return "".join(parts)


def result_payload(
    result: CiCompliance, run_seq: int, source: str, origin: str | None
) -> dict[str, Any]:
    """The ``compliance.result`` payload: the result without the feature
    texts (the configuration and the intended one are blobs), redacted."""
    data = result.to_dict(texts=False)
    data.update(run=run_seq, source=source, origin=origin)
    # A device line may hold a registered secret (a password in a
    # description): shown masked, never refused mid-run.
    return record_ready(data)


def _blobs(result: CiCompliance, observed: Observed, plan: Plan) -> dict[str, str]:
    blobs = {}
    if observed.config is not None:
        blobs["config"] = observed.config
    if plan.intended is not None:
        blobs["intended"] = plan.intended.text
    diff = diff_text(result)
    if diff:
        blobs["diff"] = diff
    # A blob holding a secret is not stored at all (the ledger would refuse the run).
    return {name: text for name, text in blobs.items() if not REDACTOR.find(text)}


def run_payload(
    source: str,
    select: str | None,
    features: Sequence[str],
    plans: Sequence[Plan],
    inventory: Inventory,
    fleet: FleetCompliance,
    trigger: Mapping[str, Any] | None,
) -> dict[str, Any]:
    templates = {p.intended.template: p.intended.template_digest for p in plans if p.intended}
    return record_ready(
        {
            "source": source,
            "select": select,
            "features": list(features),
            "rules_digest": plans[0].rules.digest if plans else None,
            "rule_files": sorted({f for p in plans for f in p.rules.files}),
            "templates": dict(sorted(templates.items())),
            "inventory_digest": inventory.digest,
            "cis": len(fleet.results),
            "counts": fleet.counts,
            "rate": fleet.rate(),
            "feature_counts": fleet.feature_counts(),
            "trigger": dict(trigger or {}),
        }
    )


def record_run(
    ledger: Ledger,
    actor: str,
    payload: dict[str, Any],
    judged: Sequence[tuple[Plan, Observed, CiCompliance]],
) -> tuple[int, dict[str, int]]:
    """The run and its results in one transaction: (run seq, {ci: result seq})."""
    seqs = {}
    with ledger.batch() as batch:
        run = batch.append(RUN_KIND, actor=actor, payload=payload)
        for plan, observed, result in judged:
            event = batch.append(
                RESULT_KIND,
                actor=actor,
                ci=result.ci,
                payload=result_payload(result, run.seq, payload["source"], observed.origin),
                blobs=_blobs(result, observed, plan),
            )
            seqs[result.ci] = event.seq
    return run.seq, seqs


# -- the whole run ---------------------------------------------------------------
def run_compliance(
    ws: Workspace,
    actor: str,
    *,
    select: str | None = None,
    source: str = "live",
    features: Sequence[str] = (),
    inventory: str | None = None,
    trigger: Mapping[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[CiCompliance], None] | None = None,
    configs: Mapping[str, str] | None = None,
    configs_origin: str = "given",
    judged: Mapping[str, Judged] | None = None,
) -> ComplianceRun:
    """Evaluates and records one compliance run (see the module docstring).
    `configs` ({ci: running configuration}) are judged as given, without
    reading those devices (the change engine's post-change configurations),
    on their configuration features only (a structured feature needs live
    facts); each of their results names `configs_origin`. `judged`: CIs the
    caller judged already (`judge_given`; the change engine judges its hosts
    as they finish), recorded as they are: not planned, read or judged again."""
    from opskit.inventory import load_workspace_inventory
    from opskit.ledger.core import Ledger

    if source not in SOURCES:
        raise UsageError(f"--source {source!r}: use one of {', '.join(SOURCES)}")
    inv = load_workspace_inventory(ws, inventory or ws.policy.inventory)
    done = dict(judged or {})
    planned = {n: j[0] for n, j in done.items()}
    plans = plan_run(ws, inv, select, features, planned=planned)
    ledger = Ledger.open(ws)
    given = dict(configs or {})
    unread = [p for p in plans if p.ci.name not in given and p.ci.name not in done]
    observed = _read(ledger, unread, source, concurrency)
    for name, config in given.items():
        observed[name] = Observed(config=config, origin=configs_origin)
    entries = []
    for plan in plans:
        entry = done.get(plan.ci.name)
        if entry is None:
            seen = observed[plan.ci.name]
            result = judge(plan, seen, features)
            if plan.ci.name in given:
                result = configuration_only(result)
            entry = (plan, seen, result)
        entries.append(entry)
        if progress is not None:
            progress(entry[2])
    fleet = FleetCompliance(tuple(result for _, _, result in entries))
    payload = run_payload(source, select, features, plans, inv, fleet, trigger)
    seq, result_seqs = record_run(ledger, actor, payload, entries)
    return ComplianceRun(source, fleet, seq, result_seqs)


def _read(
    ledger: Ledger, plans: Sequence[Plan], source: str, concurrency: int
) -> dict[str, Observed]:
    if source == "backup":
        return read_backups(ledger, plans)
    from opskit.connectors.pool import ConnectionPool

    width = max(1, min(concurrency, len(plans) or 1))
    with ConnectionPool(width) as pool, ThreadPoolExecutor(max_workers=width) as threads:
        read = list(threads.map(lambda plan: read_live(plan, pool), plans))
    return {plan.ci.name: seen for plan, seen in zip(plans, read, strict=True)}


__all__ = [
    "NO_BACKUP",
    "RESULT_KIND",
    "RUN_KIND",
    "SOURCES",
    "ComplianceRun",
    "ConfigJudge",
    "Judged",
    "Observed",
    "Plan",
    "diff_text",
    "judge",
    "judge_given",
    "plan_run",
    "read_backups",
    "read_live",
    "record_run",
    "run_compliance",
]
