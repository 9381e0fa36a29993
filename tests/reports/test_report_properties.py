"""Property tests: whatever text the ledger holds (titles, reviews: written
by people) reaches every format intact and inert, and any --since/--until a
person types is a period or one ReportError."""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from markupsafe import escape

from opskit import reports
from opskit.errors import LedgerError
from opskit.ledger import Ledger
from opskit.reports.model import ReportError, make_period, parse_moment
from opskit.workspace import Workspace, init_workspace
from tests.fuzz.strategies import CONTROL_TEXT, TEXT, TRICKY_TEXT

INJECTION = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "</pre><img src=http://example.com/x>",
        "| a | b |",
        "[link](http://example.com)",
        "{{ 7*7 }}",
        "{% raw %}",
        "%(since)s",
        "&amp; &lt;",
        "```",
        "变更<b>成功</b>率",
    ]
)
LEDGER_TEXT = st.one_of(TEXT, TRICKY_TEXT, CONTROL_TEXT, INJECTION)
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path_factory.mktemp("report-props") / "ws")
    yield ws
    ws.close()


def _change(ledger: Ledger, title: str, review: str) -> str:
    change_id = f"CHG-{next(_numbers):06d}"
    created = {"title": title, "requester": "alice", "type": "normal", "targets": ["sw1"]}
    closed = {"review": {"review": review, "outcome": "cancelled", "by": "alice"}}
    try:
        with ledger.batch() as batch:
            batch.append("change.created", actor="alice", change_id=change_id, payload=created)
            batch.append("change.closed", actor="alice", change_id=change_id, payload=closed)
    except LedgerError:
        assume(False)  # text the ledger refuses never reaches a report
    return change_id


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(title=LEDGER_TEXT, review=LEDGER_TEXT, lang=st.sampled_from(["en", "zh_CN"]))
def test_ledger_text_reaches_every_format_intact_and_inert(
    workspace: Workspace, title: str, review: str, lang: str
) -> None:
    change_id = _change(Ledger.open(workspace), title, review)
    log = reports.changes_report(workspace, lang=lang)
    html = reports.render(log, "html")
    assert str(escape(title)) in html
    assert "<script" not in html and "<img" not in html
    [row] = [r for r in json.loads(reports.render(log, "json"))["rows"] if r["id"] == change_id]
    assert row["title"] == title
    [line] = [
        r for r in csv.DictReader(io.StringIO(reports.render(log, "csv"))) if r["id"] == change_id
    ]
    assert line["title"] == title
    markdown = reports.render(log, "md")
    assert sum(1 for text in markdown.split("\n") if text.startswith(f"| {change_id} |")) == 1
    evidence = reports.render(reports.change_report(workspace, change_id, lang=lang), "html")
    assert str(escape(review)) in evidence and "<script" not in evidence


MOMENTS = st.one_of(
    st.datetimes().map(lambda d: d.isoformat()),
    st.dates().map(lambda d: d.isoformat()),
    st.text(max_size=30),
    TRICKY_TEXT,
)


@given(text=MOMENTS)
def test_any_time_text_is_a_utc_moment_or_one_report_error(text: str) -> None:
    try:
        moment = parse_moment("--since", text)
    except ReportError as exc:
        assert str(exc).startswith("--since ") and "\n" not in str(exc)
        return
    assert isinstance(moment, datetime) and moment.utcoffset() is not None


@given(since=MOMENTS, until=MOMENTS)
def test_a_period_is_ordered_or_one_report_error(since: str, until: str) -> None:
    try:
        period = make_period(since, until)
    except ReportError as exc:
        assert str(exc).startswith(("--since ", "--until ")) and "\n" not in str(exc)
        return
    except OverflowError:
        pytest.fail("a date at the end of the calendar overflowed")
    assert period.since < period.until


def test_no_text_changes_a_report_file_it_cannot_write(
    tmp_path: Path, workspace: Workspace
) -> None:
    report = reports.backups_report(workspace)
    with pytest.raises(ReportError, match="cannot write"):
        reports.write(report, "md", tmp_path)
    assert list(tmp_path.iterdir()) == []
