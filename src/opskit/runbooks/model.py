"""The runbook model: what a validated runbook file becomes.

Frozen dataclasses, built only by `opskit.runbooks.loader`. Everything else
reads them:

- `Runbook`: ``name``, ``version``, ``ref`` ("name@version"), ``digest``
  ("sha256:..." over the canonical content and every referenced file),
  ``risk``, ``change_types``, ``standard``, ``targets`` (`Targets`),
  ``parameters`` (a JSON Schema), ``requires`` (frozenset of `Capability`),
  ``history``, the phases ``precheck``/``apply``/``verify`` (tuples of `Step`),
  ``backup`` (`BackupSpec`), ``state_snapshot`` (`StateSnapshotSpec` or
  None), ``rollback`` ("auto", "none" or a tuple of
  `Step`), ``strategy`` (`Strategy`), ``path`` and ``files`` (referenced
  files with their own digests).
- `Runbook.validate_params(params) -> dict`: validates a change's parameters
  against the runbook's parameter schema (defaults filled in), raising
  `RunbookError` naming the parameter. Secret parameters (``secret: true`` in
  the schema) must be secret references (``{env: VAR}``...) and stay
  references: they are resolved only by the executor, at run time.
- `Runbook.implementation_plan() / rollback_plan() -> list[str]`: the
  human-readable procedure a change request embeds.
- `Runbook.steps_for(phase, platform)`: the steps of a phase that apply to a
  platform (a step's ``platforms`` narrows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from opskit.connectors.base import Capability
from opskit.errors import RunbookError
from opskit.runbooks.parameters import FORMAT_CHECKER, check_value, short_schema_message
from opskit.secrets import SecretRef
from opskit.yamlfile import field_path

PHASES = ("precheck", "backup", "apply", "verify", "rollback")
EXPECTATION_KINDS = (
    "regex",
    "contains",
    "not_contains",
    "textfsm",
    "napalm_validate",
    "ansible_assert",
    "config_contains",
    "config_not_contains",
)

OnFailure = Literal["rollback_host", "rollback_all", "stop"]


@dataclass(frozen=True)
class Expectation:
    """One check of a step's output: `kind` (one of `EXPECTATION_KINDS`) and its
    `spec` as the runbook wrote it. `describe()` words it for people, e.g.
    `"running configuration contains: vlan 42"`.
    """

    kind: str  # one of EXPECTATION_KINDS
    spec: Any
    description: str | None = None

    def describe(self) -> str:
        if self.description:
            return self.description
        spec = self.spec
        if self.kind == "textfsm":
            parts = [f"TextFSM '{spec['template']}'"]
            if spec.get("where"):
                parts.append("where " + ", ".join(f"{k}={v}" for k, v in spec["where"].items()))
            if "field" in spec:
                for op in ("equals", "matches", "min", "max"):
                    if op in spec:
                        parts.append(f"{spec['field']} {op} {spec[op]!r}")
            if spec.get("absent"):
                parts.append("has no such row")
            return " ".join(parts)
        if self.kind in ("config_contains", "config_not_contains"):
            verb = "contains" if self.kind == "config_contains" else "does not contain"
            lines = spec if isinstance(spec, str) else " / ".join(line.strip() for line in spec)
            return f"running configuration {verb}: {lines}"
        if self.kind == "napalm_validate":
            return "NAPALM validate document complies"
        if self.kind == "ansible_assert":
            return "Ansible assert task(s) pass" + (f": {spec}" if isinstance(spec, str) else "")
        return f"output {self.kind.replace('_', ' ')} {spec!r}"


@dataclass(frozen=True)
class Step:
    """One step of a runbook phase: which `connector` runs which `action` with
    which `params` (templates, rendered per host), what to `expect` of it, on
    which `platforms` (empty: all). `where` names it in messages, e.g.
    `"apply[0] 'configure vlan'"`.
    """

    phase: str
    index: int
    name: str
    connector: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    expect: tuple[Expectation, ...] = ()
    platforms: tuple[str, ...] = ()
    # "warn": a failed expectation is an exception in the result, not a failure.
    on_fail: Literal["fail", "warn"] = "fail"
    check: str | None = None  # label of an inspection check
    description: str | None = None
    line: int | None = None

    @property
    def where(self) -> str:
        return f"{self.phase}[{self.index}] '{self.name}'"

    def applies_to(self, platform: str) -> bool:
        return not self.platforms or platform in self.platforms


@dataclass(frozen=True)
class BackupSpec:
    """What the pre-change snapshot captures: the `running` (or `startup`)
    configuration, or `files` on a Linux host; `for_platform(p)` applies a
    platform's overrides.
    """

    enabled: bool = True
    connector: str | None = None  # default: the first apply step's connector
    source: str = "running"
    files: tuple[str, ...] = ()  # Linux: files captured instead of a device config
    platforms: tuple[str, ...] = ()
    by_platform: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_platform(self, platform: str) -> BackupSpec:
        """The backup spec with the platform's overrides applied."""
        override = self.by_platform.get(platform)
        if not override:
            return self
        return BackupSpec(
            enabled=self.enabled,
            connector=override.get("connector", self.connector),
            source=override.get("source", self.source),
            files=tuple(override.get("files", self.files)),
            platforms=self.platforms,
        )


@dataclass(frozen=True)
class StateSnapshotSpec:
    """The operational state snapshot taken before and after apply
    (`opskit.runbooks.opstate`): which `facts`, the `allow` patterns (templates
    over the change's parameters) for the differences the change explains,
    through which `connector` (default: the backup's). E.g.
    `StateSnapshotSpec(facts=("vlans",), allow=("vlans.{{ params.vlan_id }}",))`.
    """

    facts: tuple[str, ...]
    allow: tuple[str, ...] = ()
    connector: str | None = None
    #: more field names never compared, beside `opstate.VOLATILE` (genie diff's --exclude)
    ignore: tuple[str, ...] = ()

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> StateSnapshotSpec:
        """From the runbook's (schema-valid) ``state_snapshot`` mapping; every fact by default."""
        from opskit.runbooks.opstate import FACTS

        return cls(
            facts=tuple(raw.get("facts") or FACTS),
            allow=tuple(raw.get("allow") or ()),
            connector=raw.get("connector"),
            ignore=tuple(raw.get("ignore") or ()),
        )


@dataclass(frozen=True)
class Strategy:
    """How a rollout schedules hosts: `canary` hosts first (a count or names),
    then batches of `batch` (a count or a percentage) with `concurrency` hosts
    at once; the error budget (`max_failed` or `max_failed_percent`) and what a
    failure does (`on_failure`). E.g. `Strategy(batch="25%").batch_size(10)` is 3.
    """

    canary: int | tuple[str, ...] = 0
    batch: int | str = "100%"
    concurrency: int = 10
    max_failed: int | None = 0
    max_failed_percent: float | None = None
    on_failure: OnFailure = "rollback_host"

    def batch_size(self, total: int) -> int:
        """Hosts per batch for ``total`` hosts (at least one)."""
        if isinstance(self.batch, str):
            percent = int(self.batch.rstrip("%"))
            return max(1, -(-total * percent // 100))
        return max(1, self.batch)

    def budget_spent(self, failed: int, total: int) -> bool:
        """True when ``failed`` hosts out of ``total`` exceed the error budget."""
        if self.max_failed_percent is not None:
            return total > 0 and failed * 100 > self.max_failed_percent * total
        return failed > (self.max_failed or 0)

    def describe(self) -> list[str]:
        canary = (
            ", ".join(self.canary) if isinstance(self.canary, tuple) else f"{self.canary} host(s)"
        )
        if self.max_failed_percent is not None:
            budget = f"at most {self.max_failed_percent:g}% of hosts may fail"
        else:
            budget = f"at most {self.max_failed or 0} host(s) may fail"
        return [
            f"Canary: {canary}",
            f"Batch size: {self.batch}",
            f"Concurrency: {self.concurrency}",
            f"Error budget: {budget}",
            f"On failure: {self.on_failure.replace('_', ' ')}",
        ]


@dataclass(frozen=True)
class Targets:
    """The platforms a runbook supports and an optional default selection."""

    platforms: tuple[str, ...]
    select: str | None = None


@dataclass(frozen=True)
class Revision:
    """One entry of a runbook's history: version, date, author, summary."""

    version: str
    date: str
    author: str
    summary: str


@dataclass(frozen=True)
class Runbook:
    """A versioned runbook as loaded and validated (`opskit.runbooks.loader`).

    Its identity is `ref` (`"vlan-interface@1.0.0"`) and its `digest`
    (`"sha256:..."`, over the document and the files it references): a change
    pins both. The phases `precheck`, `apply`, `verify` and `rollback`
    (`"auto"`: restore the snapshot) hold its steps, `strategy` how it rolls
    out, `parameters` the JSON Schema its parameters must meet.
    """

    name: str
    version: str
    description: str
    owner: str
    risk: Literal["low", "medium", "high"]
    targets: Targets
    digest: str
    change_types: tuple[str, ...] = ("normal", "emergency")
    standard: bool = False
    parameters: Mapping[str, Any] = field(default_factory=dict)
    requires: frozenset[Capability] = frozenset()
    history: tuple[Revision, ...] = ()
    precheck: tuple[Step, ...] = ()
    backup: BackupSpec = field(default_factory=BackupSpec)
    apply: tuple[Step, ...] = ()
    verify: tuple[Step, ...] = ()
    rollback: Literal["auto", "none"] | tuple[Step, ...] = "auto"
    state_snapshot: StateSnapshotSpec | None = None
    strategy: Strategy = field(default_factory=Strategy)
    path: Path | None = None
    #: referenced files (relative to the workspace) -> "sha256:..."
    files: Mapping[str, str] = field(default_factory=dict)
    #: the parsed YAML document, as loaded (for `show --json`)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def rollback_steps(self) -> tuple[Step, ...]:
        return self.rollback if isinstance(self.rollback, tuple) else ()

    def steps(self, phase: str) -> tuple[Step, ...]:
        if phase == "rollback":
            return self.rollback_steps
        return getattr(self, phase)  # type: ignore[no-any-return]

    def steps_for(self, phase: str, platform: str) -> tuple[Step, ...]:
        return tuple(s for s in self.steps(phase) if s.applies_to(platform))

    def all_steps(self) -> list[Step]:
        return [*self.precheck, *self.apply, *self.verify, *self.rollback_steps]

    def connectors(self) -> set[str]:
        return {s.connector for s in self.all_steps()}

    # -- parameters -------------------------------------------------------
    @property
    def secret_parameters(self) -> frozenset[str]:
        props = self.parameters.get("properties", {}) or {}
        return frozenset(k for k, v in props.items() if isinstance(v, Mapping) and v.get("secret"))

    def validate_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """The change's parameters, validated and with schema defaults filled in.

        Raises `RunbookError` naming the parameter at fault.
        """
        values: dict[str, Any] = dict(params or {})
        schema = dict(self.parameters or {"type": "object"})
        props: Mapping[str, Any] = schema.get("properties", {}) or {}
        secret_names = self.secret_parameters
        for name, spec in props.items():
            if name not in values and isinstance(spec, Mapping) and "default" in spec:
                values[name] = spec["default"]
        for name in secret_names:
            if name in values:
                try:
                    ref = SecretRef.parse(values[name], where=f"parameter {name}")
                except Exception as exc:
                    raise RunbookError(
                        f"{self.ref}: parameter '{name}' must be a secret reference "
                        "({env: VAR}, {file: PATH}, {keyring: ...} or {prompt: TEXT}), "
                        "never a plain value",
                        field=f"params.{name}",
                    ) from exc
                values[name] = ref.to_data()
        # Secret parameters are checked as references above; hide them from the
        # value schema (which describes the resolved value).
        check_schema = dict(schema)
        if secret_names:
            check_schema["properties"] = {
                k: ({"type": "object"} if k in secret_names else v) for k, v in props.items()
            }
        for name, value in values.items():
            if name not in secret_names:
                spec = props.get(name)
                check_value(name, value, spec if isinstance(spec, Mapping) else {}, self.ref)
        validator = Draft202012Validator(check_schema, format_checker=FORMAT_CHECKER)
        error = best_match(validator.iter_errors(values))
        if error is not None:
            where = field_path(list(error.absolute_path))
            name = where or _missing_property(error.message) or "parameters"
            message = (
                "does not match its schema"
                if name.split(".")[0].split("[")[0] in secret_names
                else short_schema_message(error.message, error.instance)
            )
            raise RunbookError(f"{self.ref}: parameter '{name}': {message}", field=f"params.{name}")
        return values

    # -- plans -------------------------------------------------------------
    def implementation_plan(self, params: Mapping[str, Any] | None = None) -> list[str]:
        """The procedure, one line per step. With the change's ``params``, the
        commands a step sends are shown rendered (CI-specific values stay as
        ``{{ ci.x }}``, secret parameters as ``<secret>``)."""
        plan: list[str] = []
        for step in self.precheck:
            plan.append(f"Precheck: {_step_line(step)}")
        if self.backup.enabled:
            what = (
                ", ".join(self.backup.files)
                if self.backup.files
                else f"{self.backup.source} configuration"
            )
            hosts = f"{', '.join(self.backup.platforms)} host" if self.backup.platforms else "host"
            plan.append(f"Backup: snapshot the {what} of each {hosts} into the ledger's blob store")
        if self.state_snapshot is not None:
            plan.append(
                "State: snapshot the operational state ("
                + ", ".join(self.state_snapshot.facts)
                + ") before apply and after it; any difference not allowed ("
                + (", ".join(self.state_snapshot.allow) or "none")
                + ") fails verification"
            )
        for step in self.apply:
            line = f"Apply: {_step_line(step)}"
            if params is not None:
                commands = self.rendered_commands(step, params)
                if commands:
                    line += ": " + " | ".join(c.strip() for c in commands)
            plan.append(line)
        for step in self.verify:
            checks = "; ".join(e.describe() for e in step.expect)
            plan.append(f"Verify: {_step_line(step)}" + (f" — expect {checks}" if checks else ""))
        strategy = self.strategy
        plan.append("Rollout: " + "; ".join(line.lower() for line in strategy.describe()))
        return plan

    def rendered_commands(self, step: Step, params: Mapping[str, Any]) -> list[str]:
        """The lines/commands of a step for these parameters, where they do not
        depend on the host ([] when the step sends none)."""
        from opskit.runbooks.templating import render_static

        templates_dir = self.path.resolve().parents[2] / "templates" if self.path else None
        shown = {k: ("<secret>" if k in self.secret_parameters else v) for k, v in params.items()}
        try:
            return render_static(step, shown, templates_dir)
        except RunbookError:
            return []

    def rollback_plan(self) -> list[str]:
        if self.rollback == "none":
            return ["No rollback: this runbook changes nothing on the targets, or cannot be undone"]
        if self.rollback == "auto":
            return [
                "Restore the pre-change snapshot taken by the backup phase:",
                "  devices with native rollback (NAPALM) use it, or replace the whole "
                "configuration;",
                "  CLI devices get the commands hier_config computes to turn the current "
                "configuration back into the snapshot;",
                "Fetch the configuration again and prove it equals the snapshot (volatile lines "
                "ignored); record both hashes and any residual difference",
            ]
        plan = [f"Rollback: {_step_line(step)}" for step in self.rollback_steps]
        if self.backup.enabled:
            plan.append(
                "Fetch the configuration again and compare it with the pre-change snapshot; "
                "record the proof"
            )
        return plan


def _step_line(step: Step) -> str:
    on = f" [{', '.join(step.platforms)}]" if step.platforms else ""
    return f"{step.name} ({step.connector} {step.action}){on}"


def _missing_property(message: str) -> str | None:
    # jsonschema: "'vlan_id' is a required property"
    if message.endswith("is a required property"):
        return message.split("'")[1] if "'" in message else None
    return None
