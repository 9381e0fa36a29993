"""`opskit report` bad input (one line each, nothing written) and
`opskit inspect` as a read-only recorded job on the lab switches."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from opskit import reports
from opskit.ledger import Ledger
from tests.audit_support import cli
from tests.reports.conftest import Reported

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def test_an_empty_period_is_an_empty_valid_report(reported: Reported, tmp_path: Path) -> None:
    for fmt in ("json", "csv", "md", "html"):
        out = tmp_path / f"empty.{fmt}"
        result = cli(
            "report",
            "changes",
            "--since",
            "2020-01-01",
            "--until",
            "2020-01-31",
            "--format",
            fmt,
            "--out",
            str(out),
            ws=reported.ws,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.strip() == (
            "no changes between 2020-01-01T00:00:00+00:00 and 2020-02-01T00:00:00+00:00"
        )
        text = out.read_text(encoding="utf-8")
        if fmt == "json":
            data = json.loads(text)
            assert data["rows"] == [] and data["data"]["count"] == 0
        elif fmt == "csv":
            assert next(csv.reader(io.StringIO(text)))[:2] == ["id", "title"]
        else:
            assert "no changes between" in text
    kpi = cli("report", "kpi", "--since", "2020-01-01", "--until", "2020-01-31", ws=reported.ws)
    assert kpi.returncode == 0 and "not yet measured" in kpi.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["changes", "--since", "2026-12-10", "--until", "2026-12-01"],
            "error: --since 2026-12-10T00:00:00+00:00 is not before --until "
            "2026-12-02T00:00:00+00:00: the period is empty",
        ),
        (["kpi", "--since", "last tuesday"], "error: --since 'last tuesday': use an ISO 8601"),
        (["kpi", "--by", "year"], "error: --by 'year': use month or week"),
        (["changes", "--format", "pdf"], "error: --format 'pdf': use one of md, html, json, csv"),
        (["kpi", "--lang", "fr"], "error: --lang 'fr': use one of zh_CN, en"),
    ],
)
def test_bad_options_are_one_line(reported: Reported, args: list[str], message: str) -> None:
    result = cli("report", *args, ws=reported.ws)
    assert result.returncode == 2 and result.stdout == ""  # a usage error, as typer's are
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(message), result.stderr


def test_an_unwritable_out_is_one_line_and_writes_nothing(
    reported: Reported, tmp_path: Path
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    for out in (blocked / "report.html", tmp_path):
        result = cli("report", "kpi", "--format", "html", "--out", str(out), ws=reported.ws)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith(f"error: {out}: cannot write (")
        assert result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_inspect_records_a_read_only_run_and_reports_exceptions_first(
    reported: Reported, tmp_path: Path
) -> None:
    ledger = Ledger.open(reported.ws)
    head = ledger.reader().head()[0]
    out = tmp_path / "inspection.md"
    # A threshold no switch can meet: every interface has 0 errors, none fewer.
    result = cli(
        "inspect",
        "--select",
        "name:lab-sw01",
        "--param",
        "backup_max_age_hours=0",
        "--json",
        "--out",
        str(out),
        ws=reported.ws,
    )
    assert result.returncode == 1, result.stderr  # exceptions found
    data = json.loads(result.stdout)
    [event] = list(ledger.reader().events(kind="inspection.run", after_seq=head))
    assert event.seq == data["seq"] and event.actor == "alice" and event.change_id is None
    assert event.payload["parameters"]["backup_max_age_hours"] == 0
    exceptions = {(e["ci"], e["check"]) for e in data["exceptions"]}
    assert ("lab-sw01", "backup_age") in exceptions
    # Read-only: the run added one event, and no change.
    kinds = [e.kind for e in ledger.reader().events(after_seq=head)]
    assert kinds == ["inspection.run"]
    assert out.read_text(encoding="utf-8").startswith("# Inspection report")

    report = reports.inspection_report(reported.ws, lang="zh_CN")
    assert report.data["run"]["seq"] == event.seq
    statuses = [row["status"] for row in report.rows]
    assert statuses[0] == "exception" and statuses == sorted(
        statuses, key=["failed", "exception", "unavailable", "ok"].index
    )
    md = reports.render(report, "md")
    assert md.startswith("# 巡检报告")
    assert md.index("## 异常") < md.index("backup_age") < md.index("## 全部检查项")
    earlier = reports.inspection_report(reported.ws, seq=reported.inspection_seq)
    assert earlier.data["run"]["selection"] == "platform:cisco_ios"


def test_inspect_bad_input_is_one_line(reported: Reported) -> None:
    for args, message in (
        (["--select", "name:nothing-here"], "error: selection 'name:nothing-here': unknown CI"),
        (["--select", "platform:junos"], "error: --select 'platform:junos': no CI the inspection"),
        (["--param", "cpu_max_percent=200"], "error: [params.cpu_max_percent]: inspection@"),
        (["--param", "nonsense"], "error: --param 'nonsense': use KEY=VALUE"),
    ):
        result = cli("inspect", *args, ws=reported.ws)
        assert result.returncode != 0 and result.stderr.startswith(message), result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
