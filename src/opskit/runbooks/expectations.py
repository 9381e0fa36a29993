"""Verification expectations: does a step's result meet the runbook's criteria?

``evaluate(expectations, output, *, conn, ci, templates_dir) -> list[ExpectationResult]``

- ``regex`` / ``contains`` / ``not_contains``: on the step's output text.
- ``textfsm``: the output parsed with an ntc-templates template (``template``
  is the command, e.g. "show vlan brief", for the CI's platform) or a
  TextFSM file under ``templates/``; rows are filtered by ``where`` (field →
  value), then ``field`` must ``equals`` / ``matches`` (regex) / be ``min`` ..
  ``max`` in at least one row; without a criterion a matching row must exist;
  ``absent: true`` requires that none exists; ``all: true`` requires every
  matching row to meet the criteria (thresholds: errors, disk use).
- ``napalm_validate``: the validation document goes through the napalm
  connector's ``validate`` action (NAPALM ``compliance_report``); passes when
  the report says ``complies``.
- ``ansible_assert``: the step was an Ansible run; passes when it succeeded
  and (given task names) those assert tasks ran and passed.
- ``config_contains`` / ``config_not_contains``: a freshly fetched running
  configuration contains (or not) these lines, hierarchically (hier_config):
  ``["interface Fa0/1", " description x"]`` means that description under
  that interface.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit import configdiff
from opskit.connectors.base import ActionResult
from opskit.errors import OpskitError, RunbookError
from opskit.hoststate import SUCCEEDED, HostState

if TYPE_CHECKING:
    from opskit.connectors.base import Connector
    from opskit.inventory.model import CI
    from opskit.runbooks.model import Expectation


@dataclass
class ExpectationResult:
    """The verdict on one expectation of a step: `passed`, or not with
    `detail` saying what was found; `unavailable` when the device gave nothing
    to check. `to_dict()` is what the ledger records, e.g. `{"kind": "contains",
    "description": "output contains 'Vlan42'", "passed": True, "detail": "",
    "unavailable": False}`.
    """

    kind: str
    description: str
    passed: bool
    detail: str = ""
    #: the device gave nothing to check (no output, nothing parsed)
    unavailable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "description": self.description,
            "passed": self.passed,
            "detail": self.detail,
            "unavailable": self.unavailable,
        }


class _Unavailable(Exception):
    """The device's answer holds nothing to evaluate."""


@dataclass
class StepOutput:
    """What one step's action produced, as the expectations see it: the whole
    text, the output of each command, parsed data, the action's result, the
    running configuration when the step fetched one, and checks the action
    established itself (`config_compare`).
    """

    text: str
    by_command: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    result: ActionResult | None = None
    #: the running configuration, when the step fetched it (get_config)
    config: str | None = None
    #: results the action itself established (e.g. config_compare)
    checks: list[ExpectationResult] = field(default_factory=list)


def parse_textfsm(
    template: str, text: str, platform: str, templates_dir: Path | None
) -> list[dict[str, Any]]:
    """Rows parsed from ``text`` with an ntc-templates command or a template file."""
    if template.endswith((".textfsm", ".template", ".tpl")):
        import textfsm

        if templates_dir is None:
            raise RunbookError(f"TextFSM template {template}: no templates folder")
        try:
            with (templates_dir / template).open() as handle:
                fsm = textfsm.TextFSM(handle)
        except OSError as exc:
            raise RunbookError(f"TextFSM template {template}: {exc.strerror}") from None
        rows = fsm.ParseText(text)
        return [dict(zip(fsm.header, row, strict=True)) for row in rows]
    from ntc_templates.parse import parse_output

    try:
        return list(parse_output(platform=platform, command=template, data=text))
    except Exception as exc:  # ntc-templates raises its own exception type for unknown commands
        raise RunbookError(
            f"no TextFSM template for {template!r} on {platform}: {exc}".splitlines()[0]
        ) from None


def _text_for(spec_template: str, output: StepOutput) -> str:
    if spec_template in output.by_command:
        return output.by_command[spec_template]
    return output.text


def _check_textfsm(
    spec: Mapping[str, Any], output: StepOutput, ci: CI, templates_dir: Path | None
) -> tuple[bool, str]:
    text = _text_for(spec["template"], output)
    rows = parse_textfsm(spec["template"], text, ci.platform, templates_dir)
    if not rows and not text.strip() and not spec.get("absent"):
        raise _Unavailable("the device returned no output for this check")
    where = {k.lower(): str(v) for k, v in (spec.get("where") or {}).items()}
    matching = [row for row in rows if all(str(_field(row, k)) == v for k, v in where.items())]
    if spec.get("absent"):
        return (not matching, f"{len(matching)} matching row(s)" if matching else "no matching row")
    if not matching:
        condition = f" where {where}" if where else ""
        return False, f"no row{condition} among {len(rows)} parsed row(s)"
    name = spec.get("field")
    if name is None:
        return True, f"{len(matching)} matching row(s)"
    values = [_field(row, name) for row in matching]
    checks: list[tuple[str, Any]] = [
        (op, spec[op]) for op in ("equals", "matches", "min", "max") if op in spec
    ]
    if not checks:
        return True, f"{name} = {values[0]!r}"
    matching, values, note = _drop_unreported(matching, values, name, checks)
    passed, detail = _meets(spec, matching, values, name, checks)
    return passed, detail + note


def _drop_unreported(
    rows: list[Mapping[str, Any]], values: list[Any], name: str, checks: list[tuple[str, Any]]
) -> tuple[list[Mapping[str, Any]], list[Any], str]:
    """A threshold (min/max) is not applied to a row whose value the device did
    not report (ntc-templates leaves ``output_errors`` empty for ``Vlan1``):
    such rows are set aside and named in the finding, never failed."""
    if not any(op in ("min", "max") for op, _ in checks):
        return rows, values, ""
    kept = [(row, value) for row, value in zip(rows, values, strict=True) if _reported(value)]
    if len(kept) == len(rows):
        return rows, values, ""
    unreported = [row for row, value in zip(rows, values, strict=True) if not _reported(value)]
    if not kept:
        raise _Unavailable(f"{name} not reported in any of the {len(rows)} matching row(s)")
    labels = ", ".join(_row_label(row).rstrip(": ") or "?" for row in unreported[:5])
    more = ", ..." if len(unreported) > 5 else ""
    note = f"; {name} not reported (not checked) in {len(unreported)} row(s): {labels}{more}"
    return [row for row, _ in kept], [value for _, value in kept], note


def _reported(value: Any) -> bool:
    if isinstance(value, list):
        return any(_reported(v) for v in value)
    return value is not None and str(value).strip() != ""


def _meets(
    spec: Mapping[str, Any],
    matching: list[Mapping[str, Any]],
    values: list[Any],
    name: str,
    checks: list[tuple[str, Any]],
) -> tuple[bool, str]:
    if spec.get("all"):
        bad = [
            (row, value)
            for row, value in zip(matching, values, strict=True)
            if not all(_compare(op, value, expected) for op, expected in checks)
        ]
        if not bad:
            return True, f"{name} within limits in all {len(values)} row(s)"
        shown = ", ".join(f"{_row_label(row)}{name}={value!r}" for row, value in bad[:5])
        return False, f"{len(bad)} row(s) out of limits: {shown}"
    for value in values:
        ok = True
        for op, expected in checks:
            ok = ok and _compare(op, value, expected)
        if ok:
            return True, f"{name} = {value!r}"
    return False, f"{name} is {values if len(values) > 1 else values[0]!r}"


def _row_label(row: Mapping[str, Any]) -> str:
    """The first column of a row names it (interface, mount point, metric)."""
    first = next(iter(row.values()), None)
    return f"{first}: " if isinstance(first, str) and first else ""


def _field(row: Mapping[str, Any], name: str) -> Any:
    for key, value in row.items():
        if key.lower() == name.lower():
            return value
    return None


def _compare(op: str, value: Any, expected: Any) -> bool:
    if isinstance(value, list):
        return any(_compare(op, v, expected) for v in value)
    if op == "equals":
        return str(value) == str(expected)
    if op == "matches":
        return re.search(str(expected), str(value)) is not None
    try:
        number = float(str(value).rstrip("%"))
    except ValueError:
        return False
    return number >= float(expected) if op == "min" else number <= float(expected)


def _check_napalm(spec: Any, conn: Connector) -> tuple[bool, str]:
    if not spec:
        return True, "nothing to validate"
    if conn.name != "napalm":
        raise RunbookError(f"napalm_validate needs the napalm connector (step uses {conn.name})")
    result = conn.perform("validate", {"validation": spec})
    report = result.data.get("report", result.data)
    complies = bool(report.get("complies")) if isinstance(report, Mapping) else False
    if complies:
        return True, "complies"
    failing = {
        k: v
        for k, v in (report or {}).items()
        if isinstance(v, Mapping) and v.get("complies") is False
    }
    # The getters that failed, never the whole report (it quotes device state at length).
    return False, f"does not comply: {', '.join(sorted(failing)) or 'see the compliance report'}"


def _check_ansible(spec: Any, output: StepOutput) -> tuple[bool, str]:
    result = output.result
    if result is None:
        raise RunbookError("ansible_assert needs an Ansible step (playbook or module)")
    if result.status not in SUCCEEDED:
        return False, f"the Ansible run ended {result.status}"
    names = [spec] if isinstance(spec, str) else list(spec) if isinstance(spec, list) else []
    if not names:
        return True, "every task passed"
    tasks = result.data.get("tasks", [])
    seen = {
        str(t.get("task") or t.get("name")): str(t.get("status", HostState.OK))
        for t in tasks
        if isinstance(t, Mapping)
    }
    missing = [n for n in names if n not in seen]
    failed = [n for n in names if n in seen and seen[n] not in SUCCEEDED]
    if missing or failed:
        return False, f"assert task(s) missing: {missing}, failed: {failed}"
    return True, f"assert task(s) passed: {names}"


def evaluate(
    expectations: Sequence[Expectation],
    output: StepOutput,
    *,
    conn: Connector,
    ci: CI,
    templates_dir: Path | None = None,
) -> list[ExpectationResult]:
    results = []
    running: str | None = None
    for exp in expectations:
        kind, spec = exp.kind, exp.spec
        try:
            if kind == "regex":
                match = re.search(spec, output.text, re.MULTILINE)
                passed, detail = (
                    bool(match),
                    (f"matched {match.group(0)!r}" if match else "no match"),
                )
            elif kind == "contains":
                passed = spec in output.text
                detail = "found" if passed else "not found in the output"
            elif kind == "not_contains":
                passed = spec not in output.text
                detail = "absent" if passed else "found in the output"
            elif kind == "textfsm":
                passed, detail = _check_textfsm(spec, output, ci, templates_dir)
            elif kind == "napalm_validate":
                passed, detail = _check_napalm(spec, conn)
            elif kind == "ansible_assert":
                passed, detail = _check_ansible(spec, output)
            elif kind in ("config_contains", "config_not_contains"):
                if running is None:
                    running = output.config if output.config is not None else conn.get_config()
                if kind == "config_contains":
                    missing = missing_config_lines(running, spec, ci)
                    passed, detail = (
                        not missing,
                        ("all present" if not missing else f"missing: {missing}"),
                    )
                else:
                    present = configdiff.present_lines(running, spec, ci.platform, host=ci.name)
                    passed, detail = (
                        not present,
                        ("none present" if not present else f"present: {present}"),
                    )
            else:  # pragma: no cover - the loader refuses unknown kinds
                raise RunbookError(f"unknown expectation {kind}")
        except _Unavailable as exc:
            results.append(ExpectationResult(kind, exp.describe(), False, str(exc), True))
            continue
        except OpskitError as exc:
            passed, detail = False, str(exc)
        results.append(ExpectationResult(kind, exp.describe(), passed, detail))
    return results


def missing_config_lines(running: str, lines: Sequence[str], ci: CI) -> list[str]:
    """`configdiff.missing_lines`, with hier_config reading only the sections
    the lines are in (a few lines of a configuration of thousands), once for
    the same sections across a fleet, when they hold all the lines; when any
    line is missing (or the sections could not be read apart), the whole
    configuration is read as before, so a failure reads exactly as before."""
    from opskit.compliance.sections import sections_text  # a fast reader of sections

    heads = frozenset(path[0] for path in configdiff.wanted_paths(lines, ci.platform, ci.name))
    part = sections_text(running, ci.platform, heads, host=ci.name)
    if part is not None and len(part) <= _REMEMBERED_UP_TO:
        with suppress(configdiff.ConfigParseError):  # the whole text names the line
            if _all_in_part(part, tuple(lines), ci.platform):
                return []
    return configdiff.missing_lines(running, lines, ci.platform, host=ci.name)


# The sections a change checks are the same on many hosts: their verdict is
# remembered by content (bounded: texts of up to 8 KB, 512 of them).
_REMEMBERED_UP_TO = 8192


@functools.lru_cache(maxsize=512)
def _all_in_part(part: str, lines: tuple[str, ...], platform: str | None) -> bool:
    return not configdiff.missing_lines(part, lines, platform)
