"""A runbook as a readable procedure for the operations manual (Markdown).

``render_markdown(runbook, templates_dir=None) -> str``: purpose, risk,
targets, a parameters table, each phase's steps as a numbered procedure
(with the configuration a template renders where it is static, and the
Jinja2 placeholders shown as ``{{ params.x }}`` otherwise), verification
criteria, the rollback plan, the rollout strategy, the revision history and
the digest that pins this exact version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opskit.runbooks.model import Runbook, Step
from opskit.runbooks.parameters import MULTILINE_KEY

_PHASE_TITLES = {
    "precheck": "Prechecks",
    "apply": "Implementation",
    "verify": "Verification",
    "rollback": "Rollback steps",
}


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("|", "\\|").replace("\n", " ")


def _parameters_table(schema: Mapping[str, Any]) -> list[str]:
    props: Mapping[str, Any] = schema.get("properties", {}) or {}
    if not props:
        return ["This runbook takes no parameters.", ""]
    required = set(schema.get("required", []))
    lines = [
        "| Parameter | Type | Required | Default | Constraints | Description |",
        "|---|---|---|---|---|---|",
    ]
    for name, spec in props.items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = "secret reference" if spec.get("secret") else _type_of(spec)
        constraints = []
        for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "enum"):
            if key in spec:
                constraints.append(f"{key}: {_cell(spec[key])}")
        if "format" in spec:
            constraints.append(f"format: {_cell(spec['format'])} (enforced)")
        if spec.get("type") == "number":
            constraints.append("finite (no NaN or infinity)")
        if spec.get(MULTILINE_KEY):
            constraints.append("may span lines (one configuration line each)")
        elif spec.get("type") == "string" and not spec.get("secret"):
            constraints.append("one line, no control characters")
        lines.append(
            f"| `{name}` | {_cell(kind)} | {'yes' if name in required else 'no'} | "
            f"{_cell(spec['default']) if 'default' in spec else ''} | "
            f"{'; '.join(constraints)} | {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def _type_of(spec: Mapping[str, Any]) -> str:
    if "type" in spec:
        kind = spec["type"]
        return " or ".join(kind) if isinstance(kind, list) else str(kind)
    choices = [
        c.get("type") for c in spec.get("anyOf", spec.get("oneOf", [])) if isinstance(c, Mapping)
    ]
    return " or ".join(str(c) for c in choices if c) or "any"


def _step_block(number: int, step: Step, templates_dir: Path | None) -> list[str]:
    where = f" — only on {', '.join(step.platforms)}" if step.platforms else ""
    lines = [f"{number}. **{step.name}** ({step.connector} `{step.action}`){where}"]
    if step.description:
        lines.append(f"   {step.description}")
    params = dict(step.params)
    template = params.pop("template", None)
    commands = params.pop("commands", None) or params.pop("lines", None)
    if template is not None:
        text = None
        if templates_dir is not None and (templates_dir / template).is_file():
            text = (templates_dir / template).read_text(encoding="utf-8").rstrip("\n")
        lines.append(f"   Configuration from template `{template}`:")
        if text is not None:
            lines += ["", "   ```", *(f"   {t}" for t in text.splitlines()), "   ```", ""]
    if commands:
        items = [commands] if isinstance(commands, str) else list(commands)
        lines += ["", "   ```", *(f"   {c}" for c in items), "   ```", ""]
    for key, value in params.items():
        lines.append(f"   - `{key}`: `{_cell(value)}`")
    for expectation in step.expect:
        lines.append(f"   - Expect: {expectation.describe()}")
    if step.on_fail == "warn":
        lines.append("   - A failed check is reported as an exception; it does not fail the host.")
    return lines


def render_markdown(runbook: Runbook, templates_dir: Path | None = None) -> str:
    if templates_dir is None and runbook.path is not None:
        templates_dir = runbook.path.resolve().parents[2] / "templates"
    requires = ", ".join(sorted(c.value for c in runbook.requires))
    out: list[str] = [f"# Runbook {runbook.name} {runbook.version}", ""]
    out += ["## Purpose", "", runbook.description, ""]
    out += [
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| Owner | {runbook.owner} |",
        f"| Risk | {runbook.risk} |",
        f"| Change types | {', '.join(runbook.change_types)} |",
        f"| Standard (pre-approved) change | {'yes' if runbook.standard else 'no'} |",
        f"| Platforms | {', '.join(runbook.targets.platforms)} |",
        f"| Default targets | `{runbook.targets.select or '(given by the change)'}` |",
        f"| Requires | {requires or 'nothing special'} |",
        f"| Digest | `{runbook.digest}` |",
        "",
    ]
    out += ["## Parameters", "", *_parameters_table(runbook.parameters)]
    out += ["## Procedure", ""]
    number = 0
    for phase in ("precheck", "apply", "verify"):
        steps = runbook.steps(phase)
        if phase == "apply":
            out += ["### Backup", ""]
            backup = runbook.backup
            if backup.enabled:
                what = (
                    ", ".join(backup.files)
                    if backup.files
                    else f"the {backup.source} configuration"
                )
                via = backup.connector or "the first apply step's connector"
                out.append(
                    f"Before any change, snapshot {what} of each host through {via}; the "
                    "snapshot is stored in the ledger's blob store before the first apply step."
                )
                for platform, override in backup.by_platform.items():
                    out.append(f"- On {platform}: {_cell(dict(override))}")
            else:
                out.append("No backup: this runbook does not change the configuration.")
            out.append("")
        if not steps:
            continue
        out += [f"### {_PHASE_TITLES[phase]}", ""]
        for step in steps:
            number += 1
            out += _step_block(number, step, templates_dir)
        out.append("")
    out += ["## Rollback plan", ""]
    out += [f"- {line.strip()}" for line in runbook.rollback_plan()]
    out.append("")
    if runbook.rollback_steps:
        for index, step in enumerate(runbook.rollback_steps, 1):
            out += _step_block(index, step, templates_dir)
        out.append("")
    out += ["## Rollout strategy", "", *(f"- {line}" for line in runbook.strategy.describe()), ""]
    out += ["## Revision history", ""]
    if runbook.history:
        out += ["| Version | Date | Author | Summary |", "|---|---|---|---|"]
        for rev in runbook.history:
            out.append(f"| {rev.version} | {rev.date} | {rev.author} | {_cell(rev.summary)} |")
    else:
        out.append("No revision record.")
    out.append("")
    if runbook.files:
        out += ["## Referenced files", "", "| File | SHA-256 |", "|---|---|"]
        out += [f"| `{path}` | `{digest}` |" for path, digest in runbook.files.items()]
        out.append("")
    return "\n".join(out)
