"""The JUnit writer (`opskit.reports.junit`) over the typed results as the
engine builds them: every document valid against the Ant JUnit schema and
read back by junitparser; failures carry the reason and the diff; hosts
never started are skipped; a secret value never reaches the file."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.changes.model import State
from opskit.changes.summary import ChangeSummary, HostSummary
from opskit.compliance import evaluate
from opskit.compliance.results import CiCompliance, FeatureResult, FleetCompliance, Mode
from opskit.compliance.results import State as Compliance
from opskit.errors import UsageError
from opskit.hoststate import HostState
from opskit.reports.inspect import InspectionResult
from opskit.reports.junit import (
    change_junit,
    compliance_junit,
    dry_run_junit,
    inspection_junit,
    write_junit,
)
from opskit.runbooks.inspection import Finding, HostInspection, InspectionReport
from opskit.runbooks.results import HostRun, StepRun
from opskit.secrets import MASK, REDACTOR
from tests.compliance.support import NETUTILS, ci_rules, make_ci
from tests.pipelines.junit_support import rows, system_out, validate

CANARY = "canary-" + uuid.uuid4().hex


@pytest.fixture
def canary() -> Iterator[str]:
    REDACTOR.register(CANARY)
    yield CANARY
    REDACTOR.clear()


def failed_change(secret: str) -> ChangeSummary:
    steps = [
        StepRun("apply", "create the VLAN", "netmiko", "config", status=HostState.CHANGED),
        StepRun(
            "verify",
            "the VLAN is configured",
            "netmiko",
            "get_config",
            status=HostState.FAILED,
            error=f"expected ' name blue' (community {secret})",
            output=f"vlan 42\n name red\nsnmp-server community {secret}",
        ),
    ]
    run = HostRun("sw1", "cisco_ios", "chg-test@1.0.0", HostState.FAILED, steps, diff="+vlan 42")
    return ChangeSummary(
        "CHG-000009",
        State.FAILED,
        "chg-test@1.0.0",
        "sw1: verification failed",
        {
            "sw1": HostSummary("sw1", HostState.FAILED, batch=0, ran=True, run=run, error="x"),
            "sw2": HostSummary("sw2", HostState.SKIPPED, batch=1),
        },
    )


def test_a_failed_change_is_one_suite_per_host_with_a_case_per_step(
    tmp_path: Path, canary: str
) -> None:
    path = tmp_path / "apply.xml"
    write_junit(change_junit(failed_change(canary)), path)
    assert rows(path) == [
        ("CHG-000009.sw1", "apply: create the VLAN", "ok", ""),
        ("CHG-000009.sw1", "verify: the VLAN is configured", "failure",
         f"expected ' name blue' (community {MASK})"),
        ("CHG-000009.sw2", "host", "skipped", "never started (skipped)"),
    ]  # fmt: skip
    assert system_out(path)["CHG-000009.sw1"] == "+vlan 42"
    text = path.read_text()
    assert " name red" in text  # the failed step's output is the failure's text
    assert canary not in text


def test_a_dry_run_fails_a_host_whose_prediction_moved(tmp_path: Path) -> None:
    result = {
        "change_id": "CHG-000010",
        "dry_run": True,
        "predicted_diff": {
            "sw1": {"available": True, "diff": "+vlan 7", "hash": "sha256:1"},
            "sw2": {"available": True, "diff": "+vlan 8", "hash": "sha256:2"},
            "srv1": {"available": False, "reason": "fabric cannot predict"},
        },
        "matches_assessment": {"sw1": True, "sw2": False},
    }
    path = tmp_path / "dry.xml"
    write_junit(dry_run_junit(result), path)
    assert rows(path) == [
        ("CHG-000010.srv1", "predicted diff", "skipped",
         "cannot predict the diff (fabric cannot predict)"),
        ("CHG-000010.sw1", "predicted diff", "ok", ""),
        ("CHG-000010.sw2", "predicted diff", "failure",
         "the predicted diff differs from the one the change was assessed with"),
    ]  # fmt: skip
    assert system_out(path)["CHG-000010.sw2"] == "+vlan 8"


def test_an_inspection_has_a_case_per_check(tmp_path: Path) -> None:
    report = InspectionReport(
        "2026-12-06T00:00:00Z",
        [
            HostInspection(
                "sw1",
                "cisco_ios",
                [Finding("ntp configured", "exception", "no ntp server"), Finding("cpu", "ok")],
            ),
            HostInspection("sw2", "cisco_ios", [Finding("backup age", "unavailable", "none")]),
            HostInspection("sw3", "cisco_ios", error="connection refused"),
        ],
    )
    path = tmp_path / "inspect.xml"
    write_junit(inspection_junit(InspectionResult(report, [], 12, "inspection@1", "*")), path)
    assert rows(path) == [
        ("inspection.sw1", "ntp configured", "failure", "no ntp server"),
        ("inspection.sw1", "cpu", "ok", ""),
        ("inspection.sw2", "backup age", "skipped", "none"),
        ("inspection.sw3", "host", "failure", "connection refused"),
    ]


def test_compliance_has_a_case_per_feature_with_the_missing_lines(tmp_path: Path) -> None:
    fleet = FleetCompliance(
        (
            CiCompliance(
                "sw1",
                "cisco_ios",
                (
                    FeatureResult(
                        "ntp",
                        Mode.INTENDED,
                        Compliance.NON_COMPLIANT,
                        missing=("ntp server 10.0.0.1",),
                        extra=("ntp server 10.9.9.9",),
                        remediation=("no ntp server 10.9.9.9", "ntp server 10.0.0.1"),
                    ),
                    FeatureResult("vlans", Mode.INTENDED, Compliance.COMPLIANT),
                ),
            ),
            CiCompliance.unknown(
                "sw2", "cisco_ios", "unreachable", features=[("ntp", Mode.INTENDED)]
            ),
        )
    )
    path = tmp_path / "compliance.xml"
    write_junit(compliance_junit(fleet), path)
    assert rows(path) == [
        ("compliance.sw1", "ntp", "failure", "1 missing, 1 extra"),
        ("compliance.sw1", "vlans", "ok", ""),
        ("compliance.sw2", "ntp", "skipped", "unreachable"),
    ]
    assert "- ntp server 10.0.0.1\n+ ntp server 10.9.9.9" in path.read_text()
    assert system_out(path)["compliance.sw1"] == "no ntp server 10.9.9.9\nntp server 10.0.0.1"


def test_an_unwritable_junit_path_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^--junit .*: cannot write there$"):
        write_junit(change_junit(failed_change("s")), tmp_path / "missing" / "x.xml")
    assert not (tmp_path / "missing").exists()


@settings(max_examples=50, deadline=None)
@given(
    name=st.text(min_size=1, max_size=40),
    error=st.text(max_size=200),
    output=st.text(max_size=200),
)
def test_any_text_from_a_device_still_makes_a_valid_document(
    tmp_path_factory: pytest.TempPathFactory, name: str, error: str, output: str
) -> None:
    # Device output and step names are arbitrary text (control characters,
    # lone surrogates excluded by XML itself): the file must stay valid.
    step = StepRun("apply", name, "netmiko", "config", status=HostState.FAILED, error=error,
                   output=output)  # fmt: skip
    run = HostRun("sw1", "cisco_ios", "r@1", HostState.FAILED, [step], diff=output)
    summary = ChangeSummary(
        "CHG-1", State.FAILED, "r@1", None, {"sw1": HostSummary("sw1", HostState.FAILED, run=run)}
    )
    path = tmp_path_factory.mktemp("junit") / "x.xml"
    write_junit(change_junit(summary), path)
    validate(path)


def test_compliance_of_golden_configs_own_fixtures_as_junit(tmp_path: Path) -> None:
    # netutils' IOS fixture, judged by the real engine (tests/compliance): the
    # snmp feature drifted, the others comply.
    ci = make_ci("dev1", "cisco_ios")
    features = [("bgp", "router bgp "), ("snmp", "snmp-server "), ("ntp", "ntp server ")]
    rules = ci_rules(
        tmp_path,
        [{"name": f, "mode": "intended", "match": ["^" + re.escape(p)]} for f, p in features],
        ci,
    )
    result = evaluate(
        ci,
        (NETUTILS / "ios_basic_backup.txt").read_text(),
        (NETUTILS / "ios_basic_intended.txt").read_text(),
        rules,
    )
    path = tmp_path / "compliance.xml"
    write_junit(compliance_junit(FleetCompliance((result,))), path)
    found = {case: kind for _, case, kind, _ in rows(path)}
    expected = {f.feature: "failure" if not f.compliant else "ok" for f in result.features}
    assert found == expected and found["snmp"] == "failure"
    assert system_out(path)["compliance.dev1"] == "\n".join(result.remediation)
