"""A real webhook receiver on loopback for the notification tests: an
`http.server` in a thread that checks each POST's signature the way
docs/notifications.md tells a receiver to, and keeps what it received."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers `status` (200 by default) after `delay` seconds."""

    secret: bytes
    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int = 0) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received = Received(dict(self.headers), body, receiver.verify(self.headers, body))
                with receiver._lock:
                    receiver.received.append(received)
                time.sleep(receiver.delay)
                self.send_response(receiver.status if received.signature_ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def verify(self, headers: Any, body: bytes) -> bool:
        """The receiver's check, as documented: constant-time comparison of
        the header with sha256=HMAC-SHA256(secret, raw body)."""
        expected = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, headers.get("X-Opskit-Signature-256", ""))

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def unique(self) -> list[dict[str, Any]]:
        """The documents in order of arrival, each (seq, event) once: what a
        receiver that deduplicates by seq keeps."""
        seen: set[tuple[int, str]] = set()
        kept = []
        with self._lock:
            for item in self.received:
                doc = item.document
                if item.signature_ok and (doc["seq"], doc["event"]) not in seen:
                    seen.add((doc["seq"], doc["event"]))
                    kept.append(doc)
        return kept

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        return self.wait_until(lambda docs: len(docs) >= count, timeout)

    def wait_until(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30
    ) -> list[dict[str, Any]]:
        """The documents received once `done(documents)` holds (or at `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not done(self.unique()):
            time.sleep(0.1)
        return self.unique()


def notify_policy(url: str, *, env: str = "NOTIFY_TEST_SECRET", events: str = "[all]") -> str:
    """The `notify:` section of a test policy."""
    return (
        "notify:\n"
        f"  - url: {url}\n"
        f"    events: {events}\n"
        f"    secret: {{env: {env}}}\n"
        "    timeout: 5\n"
        "    max_attempts: 20\n"
    )
