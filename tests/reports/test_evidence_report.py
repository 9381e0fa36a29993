"""The evidence report of real lab changes: what an auditor must find in it,
in every format and both languages, and no secret anywhere."""

from __future__ import annotations

import csv
import io
import json

import pytest

from opskit import reports
from opskit.configdiff import config_hash
from opskit.ledger import Ledger
from tests.audit_support import cli
from tests.reports.conftest import Reported

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_the_rolled_back_change_carries_its_proof_and_every_record(reported: Reported) -> None:
    report = reports.change_report(reported.ws, reported.rolled_back, lang="en")
    assert report.ok and report.header.ledger.verified
    data = report.data
    assert data["change"]["outcome"] == "rolled_back"
    assert data["request"]["requester"] == "alice"
    [host] = data["hosts"]
    assert host["ci"] == "lab-sw02" and host["status"] == "rolled_back"
    # The configuration before is the snapshot whose hash the rollback proves.
    [before] = host["config_before"]["files"]
    assert config_hash(before["text"], "cisco_ios") == host["config_before"]["hash"]
    proof = host["rollback"]["proof"]
    assert proof["equal"] is True
    assert proof["snapshot_hash"] == proof["after_hash"] == host["config_before"]["hash"]
    assert ["vlan 312", " name opskit-test", "exit"] in [s["commands"] for s in host["steps"]]
    assert [v["passed"] for v in host["verifications"]] == [False]
    assert data["review"]["cause"] == "naming plan wrong"
    # Every record of the change, verified, each with the first signed
    # checkpoint that covers it (the engine signs one as a change ends).
    checkpoint = report.header.ledger.checkpoint
    assert checkpoint is not None and checkpoint.actor == "erin"
    signed = [c.seq for c in Ledger.open(reported.ws).reader().checkpoints()]
    assert {row["status"] for row in report.rows} == {"verified"}
    for row in report.rows:
        assert row["checkpoint"] == min(seq for seq in signed if seq >= row["seq"])
    kinds = [row["kind"] for row in report.rows]
    assert kinds[0] == "change.created" and "host.rolled_back" in kinds


def test_approvals_are_re_verified_and_show_what_they_bound(reported: Reported) -> None:
    data = reports.change_report(reported.ws, reported.completed, lang="en").data
    assert data["approvals"]["ok"] is True
    [approval] = data["approvals"]["entries"]
    assert approval["approver"] == "bob" and approval["signed"] is False
    binding = approval["binding"]
    assert binding["targets"] == ["lab-sw01"]
    assert binding["runbook"]["digest"] == data["request"]["runbook_digest"]
    assert binding["parameters"]["vlan_id"] == 311
    factors = {f["name"]: f for f in data["assessment"]["risk"]["factors"]}
    assert factors["blast_radius"]["points"] == 2 and factors["blast_radius"]["reason"]
    assert data["assessment"]["owners_informed"] == ["netops"]
    assert "\n+vlan 311\n+ name opskit-test\n" in data["hosts"][0]["diff"]


def test_every_format_and_language_and_no_secret(reported: Reported) -> None:
    """Rendered by the real CLI in a fresh process (no secret registered
    there to mask anything): the lab's device password, its enable secret and
    the secret parameter's value appear in no report."""
    outputs = []
    for lang in ("en", "zh_CN"):
        for fmt in ("md", "html", "json", "csv"):
            result = cli(
                "report",
                "change",
                reported.completed,
                "--format",
                fmt,
                "--lang",
                lang,
                ws=reported.ws,
            )
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout)
            if fmt == "json":
                assert json.loads(result.stdout)["data"]["change"]["id"] == reported.completed
            elif fmt == "csv":
                rows = list(csv.DictReader(io.StringIO(result.stdout)))
                assert rows[0]["kind"] == "change.created"
    for kind in ("changes", "kpi", "backups", "compliance", "inspection"):
        result = cli("report", kind, "--format", "html", ws=reported.ws)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    md_zh = outputs[4]
    assert md_zh.startswith(f"# 变更证据报告: {reported.completed}")
    assert "VLAN 311 live; 配置已确认" in md_zh  # ledger text as written
    for text in outputs:
        for canary in reported.canaries:
            assert canary not in text
    # The secret parameter is recorded as its reference, and shown as such.
    assert '"env": "OPSKIT_REPORT_CANARY"' in outputs[0]


def test_an_unknown_change_is_one_line(reported: Reported) -> None:
    result = cli("report", "change", "CHG-999999", ws=reported.ws)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "error: change 'CHG-999999': no such change in the ledger"
