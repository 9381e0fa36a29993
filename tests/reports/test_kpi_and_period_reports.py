"""The KPI, change log, compliance and backup reports of the lab workspace:
figures recomputed by hand from the changes the fixture ran, targets from
the policy, compliance figures equal to the real compliance runs that
recorded them, and a ledger that does not verify."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from markupsafe import escape

from opskit import reports
from opskit.backups.history import config_of, latest_backups
from opskit.changes import ChangeService
from opskit.compliance.results import State
from opskit.compliance.runs import run_compliance
from opskit.ledger import Ledger
from opskit.ledger.store import EVENTS
from opskit.reports.kpi import buckets, percentile
from opskit.reports.model import Period
from opskit.workspace import EXAMPLES_DIR, Workspace
from tests.audit_support import cli, lab_workspace, rolled_back_change
from tests.reports.conftest import Reported

pytestmark = [pytest.mark.lab]


def _copy(reported: Reported, tmp_path: Path) -> Workspace:
    """A copy of the shared workspace (policy, ledger, keys) to change. The
    database is copied with SQLite's backup API: reading its file directly
    and closing it would drop this process's POSIX locks on it, under the
    connections the other tests still hold."""
    target = tmp_path / "ws"
    shutil.copytree(reported.ws.root, target, ignore=shutil.ignore_patterns("opskit.db*"))
    database = reported.ws.state_dir / "opskit.db"
    with (
        closing(sqlite3.connect(database)) as source,
        closing(sqlite3.connect(target / database.relative_to(reported.ws.root))) as copy,
    ):
        source.backup(copy)
    return Workspace.open(target)


def test_kpis_from_the_changes_that_ran(reported: Reported) -> None:
    report = reports.kpi_report(reported.ws, by="week", lang="en")
    figures = report.data["figures"]
    # The fixture's changes: one completed, one rolled back, and a later one
    # (not run) naming INC-4711 on the first one's switch.
    success = figures["change_success_rate"]
    assert (success["value"], success["numerator"], success["denominator"]) == (50.0, 1, 2)
    assert figures["rollback_rate"]["value"] == 50.0
    assert figures["emergency_share"]["value"] == 0.0
    assert figures["emergency_share"]["denominator"] == 3
    failures = figures["changes_caused_failures"]
    assert failures["failed"] == [reported.rolled_back]
    [link] = failures["incident_links"]
    assert link["change"] == reported.completed and link["linked_by"] == reported.incident
    assert link["incidents"] == ["INC-4711"] and link["cis"] == ["lab-sw01"]
    assert failures["value"] == 2
    for key in ("approval_lead_time", "time_to_implement"):
        assert figures[key]["samples"] == 2
        assert 0 < figures[key]["median"] <= figures[key]["p90"] < 1  # hours: seconds here
    # The workspace has no compliance rules, so nothing measured compliance
    # (not even after the changes): said so, not a number.
    assert figures["compliance_rate"]["measured"] is False
    assert figures["compliance_rate"]["value"] is None
    # The trend: one entry per ISO week of the period, the changes in the last.
    assert [e["figures"]["change_success_rate"]["denominator"] for e in report.data["trend"]][
        -1
    ] == 2
    md = reports.render(report, "md")
    assert "| Compliance rate | not yet measured |" in md


def test_targets_from_the_policy_mark_each_figure(reported: Reported, tmp_path: Path) -> None:
    ws = _copy(reported, tmp_path)
    with ws.policy_path.open("a") as policy:
        policy.write(
            "kpi_targets:\n  change_success_rate: 95\n  rollback_rate: 60\n"
            "  approval_lead_time_hours: 24\nreport_language: zh_CN\n"
        )
    report = reports.kpi_report(ws)
    assert report.header.language == "zh_CN"  # from the policy
    figures = report.data["figures"]
    assert (figures["change_success_rate"]["target"], figures["change_success_rate"]["met"]) == (
        95.0,
        False,
    )
    assert figures["rollback_rate"]["met"] is True
    assert figures["approval_lead_time"]["met"] is True
    assert figures["emergency_share"]["met"] is None  # no target
    md = reports.render(report, "md")
    assert "| 变更成功率 | 50% | 1 / 2 | ≥ 95% | **未达标** |" in md
    assert "因变更导致的服务中断次数" in md and "变更审批周期" in md


def test_compliance_results_in_the_ledger_are_reported(reported: Reported, tmp_path: Path) -> None:
    ws = _copy(reported, tmp_path)
    before = reports.compliance_report(ws, lang="en")
    assert (before.data["measured"], before.rows) == (False, [])
    assert "not yet measured" in reports.render(before, "md")
    # The shipped rules back in, then two real runs: from the backups (the
    # pre-change snapshots: without VLAN 311), then live; the later one counts.
    shutil.copytree(EXAMPLES_DIR / "compliance", ws.compliance_dir)
    run_compliance(ws, "ci-bot", source="backup")
    live = run_compliance(ws, "ci-bot", source="live")
    fleet = live.fleet
    judged = {
        (result.ci, feature.feature): feature.state is State.COMPLIANT
        for result in fleet.results
        for feature in result.features
        if feature.state in (State.COMPLIANT, State.NON_COMPLIANT)
    }
    assert not all(judged.values()), "the lab's VLAN 311 is not in the intended configuration"
    report = reports.compliance_report(ws, lang="en")
    assert {(row["ci"], row["feature"]): row["compliant"] for row in report.rows} == judged
    assert {row["seq"] for row in report.rows} <= set(live.result_seqs.values())
    assert report.rows[0]["compliant"] is False  # the failures first
    # The rates are the run's own: per CI overall, per feature.
    assert report.data["rate"] == round(100 * fleet.rate(), 1)  # type: ignore[operator]
    # With the counts it comes from (the CIs with a judged feature).
    compliant = sum(1 for r in fleet.results if r.state is State.COMPLIANT)
    evaluated = sum(1 for r in fleet.results if r.state is not State.UNKNOWN)
    shown = f"({compliant} / {evaluated} CI)"
    assert (report.data["compliant_cis"], report.data["cis"]) == (compliant, evaluated)
    assert shown in reports.render(report, "md") and shown in reports.render(report, "html")
    assert {f["feature"]: f["rate"] for f in report.data["features"]} == {
        name: round(100 * rate, 1)
        for name in fleet.feature_counts()
        if (rate := fleet.rate(name)) is not None
    }
    html = reports.render(report, "html")
    assert report.rows[0]["detail"]  # why it fails: missing / extra lines or the reason
    assert "<svg" in html and str(escape(report.rows[0]["detail"])) in html
    kpi = reports.kpi_report(ws, lang="en").data["figures"]["compliance_rate"]
    counts = fleet.counts
    assert (kpi["numerator"], kpi["denominator"]) == (
        counts["compliant"],
        counts["compliant"] + counts["non-compliant"],
    )
    assert kpi["value"] == report.data["rate"]


def test_a_feature_that_no_longer_applies_is_no_longer_counted(
    reported: Reported, tmp_path: Path
) -> None:
    ws = _copy(reported, tmp_path)
    shutil.copytree(EXAMPLES_DIR / "compliance", ws.compliance_dir)
    ledger = Ledger.open(ws)
    running = config_of(ledger, latest_backups(ledger, ["lab-sw01"])["lab-sw01"])
    # Judged from given configurations, as after a change: first with a static
    # route the intended configuration lacks, then with it removed again.
    routed = running + "ip route 10.9.9.0 255.255.255.0 10.0.0.1\n"
    first = run_compliance(ws, "ci-bot", select="name:lab-sw01", configs={"lab-sw01": routed})
    assert first.fleet.results[0].feature("routing").state is State.NON_COMPLIANT
    assert ("lab-sw01", "routing") in _judged(reports.compliance_report(ws))
    again = run_compliance(ws, "ci-bot", select="name:lab-sw01", configs={"lab-sw01": running})
    assert again.fleet.results[0].feature("routing").state is State.NOT_APPLICABLE
    report = reports.compliance_report(ws)
    assert ("lab-sw01", "routing") not in _judged(report)
    assert "routing" not in {f["feature"] for f in report.data["features"]}


def _judged(report: reports.Report) -> set[tuple[str, str]]:
    return {(row["ci"], row["feature"]) for row in report.rows}


def test_the_change_log_and_its_filters(reported: Reported) -> None:
    everything = reports.changes_report(reported.ws, lang="en")
    assert [row["id"] for row in everything.rows] == [
        reported.completed,
        reported.rolled_back,
        reported.incident,
    ]
    rolled = everything.rows[1]
    assert (rolled["outcome"], rolled["hosts_rolled_back"], rolled["approvers"]) == (
        "rolled_back",
        1,
        "bob",
    )
    only_sw02 = reports.changes_report(reported.ws, select="name:lab-sw02")
    assert [row["id"] for row in only_sw02.rows] == [reported.rolled_back]
    assert reports.changes_report(reported.ws, runbook="other-runbook").rows == []


def test_the_backup_log_names_the_ci_without_a_backup(reported: Reported) -> None:
    report = reports.backups_report(reported.ws, lang="en")
    by_ci = {row["ci"]: row for row in report.rows}
    assert by_ci["lab-sw01"]["status"] == "ok" and by_ci["lab-sw01"]["change_id"]
    assert by_ci["lab-sw02"]["status"] == "ok"
    stale = reports.backups_report(reported.ws, max_age_hours=0.0)
    assert {row["status"] for row in stale.rows} == {"stale"}


def test_a_ledger_that_does_not_verify_says_so_first(reported: Reported, tmp_path: Path) -> None:
    ws = _copy(reported, tmp_path)
    # Someone with the database file drops the append-only guard and edits a review.
    with closing(sqlite3.connect(ws.state_dir / "opskit.db")) as connection, connection:
        connection.execute(f"DROP TRIGGER {EVENTS}_no_update")
        edited = connection.execute(
            f"UPDATE {EVENTS} SET record = replace(record, 'VLAN 311 live', 'VLAN 999 live') "
            "WHERE kind = 'change.closed' AND record LIKE '%VLAN 311 live%'"
        )
        assert edited.rowcount == 1
    for fmt in ("md", "html", "csv"):
        result = cli("report", "kpi", "--format", fmt, ws=ws)
        assert result.returncode == 1
        # The first line of the text; in HTML the first thing in the page.
        first = result.stdout.split("<body>\n")[-1].splitlines()[0]
        assert "THE LEDGER DOES NOT VERIFY: seq" in first, first
        assert "THE LEDGER DOES NOT VERIFY: seq" in result.stderr
    report = reports.change_report(ws, reported.completed, lang="zh_CN")
    assert not report.ok
    assert reports.render(report, "md").startswith("**账本校验未通过: seq")


def test_weeks_and_months_of_a_period() -> None:
    period = Period(datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 12, 10, tzinfo=UTC))
    weeks = buckets(period, "week")
    assert [w.since.date().isoformat() for w in weeks] == ["2026-11-25", "2026-11-30", "2026-12-07"]
    assert weeks[-1].until == period.until
    months = buckets(Period(period.since, datetime(2027, 1, 2, tzinfo=UTC)), "month")
    assert [m.since.strftime("%Y-%m") for m in months] == ["2026-11", "2026-12", "2027-01"]


def test_the_90th_percentile_is_the_nearest_rank() -> None:
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


@pytest.mark.postgres
def test_reports_from_a_postgresql_ledger(postgres_db: str, tmp_path: Path) -> None:
    """The team backend: the same reports from a ledger on a real PostgreSQL server."""
    with lab_workspace(tmp_path / "pg", db=postgres_db) as ws:
        svc = ChangeService(ws)
        rolled = rolled_back_change(svc, "lab-sw01", 331)
        evidence = reports.change_report(ws, rolled, lang="zh_CN")
        kpi = reports.kpi_report(ws, lang="en")
    assert evidence.ok and evidence.data["hosts"][0]["rollback"]["proof"]["equal"] is True
    assert reports.render(evidence, "md").startswith(f"# 变更证据报告: {rolled}")
    assert kpi.data["figures"]["rollback_rate"]["value"] == 100.0
