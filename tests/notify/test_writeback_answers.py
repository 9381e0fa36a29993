"""Write-back to a server that answers, but not as Nautobot does (a wrong
URL pointing at another JSON API): one line naming the server, never a
crash of the sender (a real HTTP server on loopback; no Nautobot needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opskit.errors import OpskitError
from opskit.notify.nautobot import NautobotWriter
from opskit.policy import Writeback
from opskit.workspace import Workspace

DOCUMENT = {
    "delivery": "d-0001", "event": "change.completed", "seq": 7, "hash": "ab" * 32,
    "at": "2026-12-06T00:00:00.000000Z", "actor": "alice", "change_id": "CHG-000001",
    "title": "t", "runbook": "r@1.0.0", "outcome": "completed", "inventory": None,
    "cis": ["not-in-the-inventory"], "report_url": None,
}  # fmt: skip


@contextmanager
def json_api(results: list[Any]) -> Iterator[str]:
    """A JSON API on loopback answering every GET with these search results."""
    answer = json.dumps({"count": len(results), "results": results}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=[[{"name": "x"}], ["x"], [{"id": None}]], ids=["no-id", "text", "null-id"])
def other_api(request: pytest.FixtureRequest) -> Iterator[str]:
    """A JSON API whose search results are not Nautobot's objects."""
    with json_api(request.param) as url:
        yield url


def test_an_answer_that_is_not_nautobots_is_one_line(
    workspace: Workspace, other_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NB_TOKEN", "t0ken-canary-5f2e")
    entry = Writeback(url=other_api, token={"env": "NB_TOKEN"})
    with pytest.raises(OpskitError) as refused:
        NautobotWriter(workspace, entry).write(dict(DOCUMENT))
    message = str(refused.value)
    assert message == f"nautobot {other_api}: dcim.devices: not a Nautobot answer (no object id)"


def test_a_writeback_inventory_that_does_not_exist_is_named_in_the_log(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Its CIs are looked up by name, as documented, and the log says why."""
    monkeypatch.setenv("NB_TOKEN", "t0ken-canary-5f2e")
    with json_api([]) as url:  # Nautobot has no such device
        entry = Writeback(url=url, token={"env": "NB_TOKEN"}, inventory="nb-not-synced-yet")
        document = {**DOCUMENT, "inventory": "nb-not-synced-yet"}
        with caplog.at_level("WARNING", logger="opskit.notify"):
            skipped = NautobotWriter(workspace, entry).write(document)
    assert skipped == ["not-in-the-inventory"]
    (record,) = [r for r in caplog.records if "nb-not-synced-yet" in r.getMessage()]
    assert record.getMessage().startswith(f"nautobot {url}: inventory nb-not-synced-yet not read (")
    assert record.getMessage().endswith("): its CIs are looked up by name")
    assert "t0ken-canary-5f2e" not in caplog.text
