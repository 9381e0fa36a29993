"""JUnit XML for CI pipelines (`--junit FILE`), written with junitparser.

What a pipeline shows as test results, from the typed results as they are:

- `change_junit(summary)`: a `ChangeSummary` after `change apply`. One
  testsuite per host; one testcase per step the host ran (``apply: create
  the VLAN``), or one testcase ``host`` when this process ran no step there
  (a host restored by a later rollback, a host never started). A failed
  step or host is a ``<failure>`` with the reason; a host the rollout never
  started is ``<skipped>``. The host's diff (the diff its steps made, or
  its predicted diff, when the run stopped before the diff) is the suite's
  ``<system-out>``.
- `dry_run_junit(result)`: the predictions of `change apply --dry-run`. One
  testsuite per host with one testcase ``predicted diff``: a failure when
  the prediction differs from the one the change was assessed (and
  approved) with, skipped when no prediction can be made; the predicted
  diff is the suite's ``<system-out>``.
- `inspection_junit(result)`: an `opskit inspect` result. One testsuite per
  host, one testcase per check: an exception is a failure (its detail the
  message), an unavailable check is skipped, a host that could not be
  inspected is one failed testcase ``host``.
- `compliance_junit(fleet)`: a `FleetCompliance`. One testsuite per CI, one
  testcase per feature: non-compliant is a failure (the missing and extra
  lines in the message text, the CI's remediation in ``<system-out>``),
  unknown (and not-applicable) is skipped with its reason.

The documents follow the Apache Ant JUnit schema most CI systems read
(every suite has ``<properties>``, ``<system-out>``, ``<system-err>``, a
``timestamp`` in UTC without an offset, a ``hostname``, ``package`` and
``id``); tests validate them against that schema. Every text goes through
the secret redactor first: a secret value never reaches the file.

Example::

    >>> xml = change_junit(service.apply("CHG-000007", "ci-bot"))
    >>> write_junit(xml, Path("apply.xml"))
    >>> [(s.name, s.tests, s.failures) for s in xml]
    [('CHG-000007.lab-sw01', 3, 0), ('CHG-000007.lab-sw02', 3, 1)]
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

from opskit.errors import UsageError
from opskit.hoststate import NEVER_STARTED, HostState
from opskit.secrets import redact

if TYPE_CHECKING:
    from opskit.changes.summary import ChangeSummary, HostSummary
    from opskit.compliance.results import CiCompliance, FleetCompliance
    from opskit.reports.inspect import InspectionResult
    from opskit.runbooks.inspection import HostInspection
    from opskit.runbooks.results import StepRun

# Host states of a change in which the rollout never started the host.


def change_junit(
    summary: ChangeSummary, predicted: Mapping[str, Mapping[str, Any]] | None = None
) -> JUnitXml:
    """A change after its rollout (see the module); `predicted` is the
    change's assessed predictions (`ChangeRequest.predicted_diff`), shown for
    a host whose run stopped before it made a diff."""
    suites = []
    for name, host in sorted(summary.hosts.items()):
        suite = _suite(f"{summary.change_id}.{name}", {"change": summary.change_id, "host": name})
        suite.add_property("runbook", summary.runbook)
        suite.add_property("status", str(host.status))
        steps = host.run.steps if host.run is not None else []
        for step in steps:
            suite.add_testcase(_step_case(step, f"{summary.change_id}.{name}"))
        if not steps:
            suite.add_testcase(_host_case(host, f"{summary.change_id}.{name}"))
        elif host.failed and not any(step.failed for step in steps):
            # The steps passed but the host did not end as planned (e.g. its
            # batch's error budget rolled it back): say so in one more case.
            suite.add_testcase(_host_case(host, f"{summary.change_id}.{name}"))
        expected = ((predicted or {}).get(name) or {}).get("diff") or ""
        suites.append(_finish(suite, _host_diff(host) or expected))
    return _document(suites)


def dry_run_junit(result: Mapping[str, Any]) -> JUnitXml:
    """The predictions of a dry run (`ChangeService.apply(dry_run=True)`)."""
    change_id = str(result["change_id"])
    matches: Mapping[str, bool] = result.get("matches_assessment") or {}
    suites = []
    for name, entry in sorted((result.get("predicted_diff") or {}).items()):
        suite = _suite(f"{change_id}.{name}", {"change": change_id, "host": name})
        suite.add_property("dry_run", "true")
        case = TestCase("predicted diff", classname=f"{change_id}.{name}", time=0)
        if not entry.get("available"):
            reason = entry.get("reason") or "the connector cannot predict it"
            case.result = [Skipped(message=_clean(f"cannot predict the diff ({reason})"))]
        elif name in matches and not matches[name]:
            case.result = [
                _failure(
                    "the predicted diff differs from the one the change was assessed with",
                    "binding",
                    entry.get("diff") or "",
                )
            ]
        suite.add_testcase(case)
        suites.append(_finish(suite, entry.get("diff") or ""))
    return _document(suites)


def inspection_junit(result: InspectionResult) -> JUnitXml:
    """An inspection (`opskit.reports.run_recorded_inspection`)."""
    suites = []
    for host in result.report.hosts:
        classname = f"inspection.{host.ci}"
        suite = _suite(classname, {"runbook": result.runbook, "host": host.ci})
        suite.add_property("ledger_seq", str(result.seq))
        for case in _inspection_cases(host, classname):
            suite.add_testcase(case)
        suites.append(_finish(suite, ""))
    return _document(suites)


def compliance_junit(fleet: FleetCompliance) -> JUnitXml:
    """A compliance run's results, one suite per CI (see the module)."""
    suites = []
    for ci in fleet.results:
        classname = f"compliance.{ci.ci}"
        suite = _suite(classname, {"host": ci.ci, "state": str(ci.state)})
        for case in _compliance_cases(ci, classname):
            suite.add_testcase(case)
        suites.append(_finish(suite, "\n".join(ci.remediation)))
    return _document(suites)


def write_junit(xml: JUnitXml, path: Path) -> None:
    """Writes the document (UTF-8, pretty); an unwritable path is one line."""
    if path.is_dir() or not path.parent.is_dir():
        raise UsageError(f"--junit {path}: cannot write there")
    try:
        xml.write(str(path), pretty=True)
    except OSError as exc:
        raise UsageError(f"--junit {path}: {exc.strerror or exc}") from None


def check_junit_path(path: Path | None) -> None:
    """Refuses an unwritable `--junit` before anything runs (nothing written)."""
    if path is not None and (path.is_dir() or not path.parent.is_dir()):
        raise UsageError(f"--junit {path}: cannot write there")


# -- cases -------------------------------------------------------------------------
def _step_case(step: StepRun, classname: str) -> TestCase:
    case = TestCase(f"{step.phase}: {_clean(step.name)}", classname=classname)
    case.time = round(step.duration, 3)
    if step.failed:
        detail = step.diff or step.output or ""
        case.result = [_failure(step.error or f"step {step.status}", str(step.status), detail)]
    elif step.status == HostState.SKIPPED:
        case.result = [Skipped(message="step skipped")]
    return case


def _host_diff(host: HostSummary) -> str:
    """The diff the run made, else the diffs its steps made, else the run's
    predicted diff ("": a run that stopped before any, e.g. rolled back)."""
    run = host.run
    if run is None:
        return ""
    steps = "\n".join(step.diff for step in run.steps if step.diff)
    return run.diff or steps or run.predicted_diff or ""


def _host_case(host: HostSummary, classname: str) -> TestCase:
    case = TestCase("host", classname=classname, time=0)
    status = str(host.status)
    if status in NEVER_STARTED and not host.ran:
        case.result = [Skipped(message=f"never started ({status})")]
    elif host.failed:
        case.result = [_failure(host.error or f"host {status}", status, "")]
    return case


def _inspection_cases(host: HostInspection, classname: str) -> Iterable[TestCase]:
    if host.error:
        case = TestCase("host", classname=classname, time=0)
        case.result = [_failure(host.error, "unreachable", "")]
        yield case
    for finding in host.findings:
        case = TestCase(_clean(finding.check), classname=classname, time=0)
        if finding.status == "exception":
            case.result = [_failure(finding.detail or "exception", "exception", "")]
        elif finding.status == "unavailable":
            case.result = [Skipped(message=_clean(finding.detail or "unavailable"))]
        yield case


def _compliance_cases(ci: CiCompliance, classname: str) -> Iterable[TestCase]:
    if not ci.features:
        case = TestCase("compliance", classname=classname, time=0)
        if ci.reason:
            case.result = [Skipped(message=_clean(ci.reason))]
        yield case
    for feature in ci.features:
        case = TestCase(_clean(feature.feature), classname=classname, time=0)
        state = str(feature.state)
        if state == "non-compliant":
            lines = [*(f"- {m}" for m in feature.missing), *(f"+ {e}" for e in feature.extra)]
            counted = f"{len(feature.missing)} missing, {len(feature.extra)} extra"
            message = feature.reason or counted
            case.result = [_failure(message, state, "\n".join(lines))]
        elif state in ("unknown", "not-applicable"):
            case.result = [Skipped(message=_clean(feature.reason or state))]
        yield case


# -- the document ------------------------------------------------------------------
def _suite(name: str, properties: Mapping[str, str]) -> TestSuite:
    suite = TestSuite(_clean(name))
    suite.timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    suite.hostname = socket.gethostname() or "localhost"
    # The schema wants <properties> first (and present): added before any case.
    for key, value in properties.items():
        suite.add_property(key, _clean(value))
    return suite


def _finish(suite: TestSuite, out: str) -> TestSuite:
    # junitparser leaves out an empty suite-level system-out/err; the schema wants both.
    for tag, text in (("system-out", _clean(out)), ("system-err", "")):
        element = suite._elem.makeelement(tag, {})
        element.text = text
        suite._elem.append(element)
    suite.update_statistics()
    return suite


def _document(suites: list[TestSuite]) -> JUnitXml:
    xml = JUnitXml()
    for number, suite in enumerate(suites):
        suite._elem.set("package", suite.name or "opskit")
        suite._elem.set("id", str(number))
        xml.add_testsuite(suite)
    # The schema's <testsuites> has no counters: junitparser's would not validate.
    for key in ("tests", "failures", "errors", "skipped", "time"):
        xml._elem.attrib.pop(key, None)
    return xml


def _failure(message: str, kind: str, text: str) -> Failure:
    failure = Failure(message=_clean(message), type_=_clean(kind) or "failure")
    failure.text = _clean(text)
    return failure


def _clean(text: str) -> str:
    """Redacted, and without the control characters XML 1.0 cannot hold."""
    masked = redact(str(text))
    return "".join(c for c in masked if c in "\t\n\r" or ord(c) >= 0x20)
