"""The witness's HTTP face (C2SP tlog-witness) on the standard library's server.

- ``POST /add-checkpoint``: `Witness.add_checkpoint` (see `opskit.witness.core`).
- ``GET /<hex SHA-256 of the origin>/checkpoint``: the latest checkpoint it
  cosigned for that log, with the log's signature and its cosignature (404 if
  none): the monitoring endpoint of tlog-witness.

Every other path is 404, other methods 405. A body larger than
`MAX_BODY` or without a Content-Length is refused with 400. Errors are one
text line. Requests are logged to stderr as one line each (method, path,
status), never with their bodies.

Example:

    >>> server = make_server(Path("w1"), "127.0.0.1", 0)
    >>> server.server_address
    ('127.0.0.1', 40713)
    >>> server.serve_forever()
"""

from __future__ import annotations

import hashlib
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from opskit.tlog.note import COSIGNATURE_V1, Signer
from opskit.witness.core import Answer, Witness
from opskit.witness.keys import load_signer
from opskit.witness.state import WitnessState

# 100 signatures and 63 hashes fit in well under this.
MAX_BODY = 64 * 1024


class WitnessServer(ThreadingHTTPServer):
    """A threading HTTP server that holds one `Witness`."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], witness: Witness) -> None:
        self.witness = witness
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as tlog-witness recommends
    server: WitnessServer
    server_version = "opskit-witness"
    # A client that connects and sends nothing must not hold a thread forever.
    timeout = 30

    def do_POST(self) -> None:
        if self.path != "/add-checkpoint":
            self._send(Answer(404, b"not found\n"))
            return
        body = self._body()
        if body is None:
            return
        self._send(self.server.witness.add_checkpoint(body))

    def do_GET(self) -> None:
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or parts[1] != "checkpoint":
            self._send(Answer(404, b"not found\n"))
            return
        for origin in self.server.witness.state.origins():
            if hashlib.sha256(origin.encode()).hexdigest() == parts[0]:
                head = self.server.witness.state.head(origin)
                if head.note:
                    self._send(Answer(200, head.note.encode()))
                    return
        self._send(Answer(404, b"no checkpoint cosigned for this log\n"))

    def _method_not_allowed(self) -> None:
        self._send(Answer(405, b"method not allowed\n"))

    do_PUT = do_DELETE = do_PATCH = _method_not_allowed

    def _body(self) -> bytes | None:
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            self.close_connection = True
            self._send(Answer(400, b"a request needs a Content-Length\n"))
            return None
        length = int(length_text)
        if length > MAX_BODY:
            self.close_connection = True
            self._send(Answer(400, f"request body over {MAX_BODY} bytes\n".encode()))
            return None
        return self.rfile.read(length)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status, HTTPStatus(answer.status).phrase)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"opskit-witness: {self.address_string()} {format % args}\n")


def make_server(folder: Path, host: str, port: int) -> WitnessServer:
    """A server for the witness in `folder` (its key and state), bound, not yet serving."""
    signer: Signer = load_signer(folder)
    if signer.verifier.sig_type != COSIGNATURE_V1:
        raise ValueError("a witness key signs cosignature/v1 (type 0x04)")
    return WitnessServer((host, port), Witness(WitnessState.open(folder), signer))
