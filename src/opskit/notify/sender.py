"""Delivering the outbox: signed POSTs, at least once, with backoff.

Each pending row is posted to its webhook with these headers:

| header | value |
| --- | --- |
| `Content-Type` | `application/json` |
| `X-Opskit-Event` | the event kind, e.g. `change.approved` |
| `X-Opskit-Delivery` | the row's delivery id (the same on every retry) |
| `X-Opskit-Seq` | the ledger seq of the event |
| `X-Opskit-Signature-256` | `sha256=` + HMAC-SHA256(secret, raw body), hex |

A 2xx answer marks the row delivered. Anything else (an error status, a
refused connection, a timeout) is an attempt recorded with its error; the
row is due again after an exponential backoff with jitter, and after the
webhook's `max_attempts` it is `failed`. Rows go out in ledger order per
webhook: a webhook that fails holds back only its own later rows.

A sender claims a row by moving its `next_at` past the attempt's timeout
(a lease), so concurrent senders never post the same row at once; a sender
killed mid-post leaves the row pending, due again when the lease ends.
The receiver may therefore see an event twice: it deduplicates by seq
(with the event kind: a seq is one ledger event).

Rows of a `writeback:` route are written back to the source of truth
instead (`opskit.notify.nautobot`), with the same attempts, backoff,
ordering and lease; an error is one line in the row's `last_error`.

Example report of `deliver`: ``Delivery(delivered=3, retried=1, failed=0)``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, tuple_, update

from opskit.errors import OpskitError
from opskit.notify.nautobot import NautobotWriter
from opskit.notify.store import DELIVERED, FAILED, PENDING, outbox
from opskit.processes import pid_alive
from opskit.secrets import REDACTOR, SecretRef

if TYPE_CHECKING:
    from pathlib import Path

    from opskit.policy import Policy, Webhook, Writeback
    from opskit.workspace import Workspace

log = logging.getLogger("opskit.notify")
SIGNATURE_HEADER = "X-Opskit-Signature-256"
# The lease beyond the webhook's timeout while a sender posts a row.
LEASE_MARGIN = 30.0
BATCH_ROWS = 100


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Backoff:
    """Delay before attempt n+1: min(cap, base * 2**(n-1)), times a random
    factor in [0.5, 1] (jitter: receivers coming back are not stampeded)."""

    base: float = 2.0
    cap: float = 3600.0

    def delay(self, attempts: int) -> float:
        return min(self.cap, self.base * 2 ** max(attempts - 1, 0)) * random.uniform(0.5, 1.0)


@dataclass
class Delivery:
    """What one `deliver` pass did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0


class Sender:
    """Posts the due outbox rows of one workspace (see the module docstring)."""

    def __init__(
        self,
        ws: Workspace,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ws = ws
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.webhooks: dict[str, Webhook] = {}
        self.writebacks: dict[str, Writeback] = {}
        self._route(ws.policy)
        self._secrets: dict[str, bytes] = {}
        self._writers: dict[str, NautobotWriter] = {}
        # The policy file as the routes were last read from it (None: read
        # at the first pass, which may come long after `ws.policy` was).
        self._policy_stamp: tuple[int, int, int] | None = None

    def deliver(self, *, force: bool = False) -> Delivery:
        """One pass over every due row (`force`: every pending row, backoff
        or lease notwithstanding)."""
        # Lookups (inventories, Nautobot objects, secrets) last one pass: a
        # background sender lives up to an hour and must see a re-sync, a
        # replaced device, a rotated secret or an edited policy.
        self._writers.clear()
        self._secrets.clear()
        self._read_routes()
        report = Delivery()
        blocked: set[str] = set()
        for row in self._pending():
            if row.url in blocked:
                continue
            outcome = self._attempt(row, force=force)
            if outcome == DELIVERED:
                report.delivered += 1
            elif outcome == FAILED:
                report.failed += 1  # done with: the later rows go on
            else:
                # Retried later or held by another sender: the webhook's
                # later rows wait, so that each receiver sees ledger order.
                blocked.add(row.url)
                report.retried += outcome == PENDING
        return report

    def _read_routes(self) -> None:
        """The routes as the policy file says now, read again when the file
        changed: a route removed meanwhile gets no further attempt (its rows
        fail, "no longer in the policy"; a changed URL is a new route), a
        changed secret, token, timeout or `max_attempts` holds from this pass.
        A file that does not load (an edit half done) leaves the routes as
        they were until it does."""
        from opskit.policy import load_policy

        stamp = _file_stamp(self.ws.policy_path)
        if stamp is None or stamp == self._policy_stamp:
            return
        self._policy_stamp = stamp  # a file that does not load is named once, not each pass
        try:
            policy = load_policy(self.ws.policy_path, inventories_dir=self.ws.inventories_dir)
        except OpskitError as exc:
            log.warning("policy not read again, routes kept: %s", REDACTOR.redact(str(exc)))
            return
        self._route(policy)

    def _route(self, policy: Policy) -> None:
        """Posts by `policy`'s webhooks and write-backs, each known by its URL."""
        self.webhooks = {hook.url: hook for hook in policy.notify}
        self.writebacks = {entry.url: entry for entry in policy.writeback}

    def _pending(self) -> Iterator[Any]:
        # Every pending row, due or not, in pages: a row in backoff holds
        # back its webhook's later rows (`_attempt` skips it until it is due).
        after = (0, 0)
        while True:
            query = (
                select(outbox)
                .where(
                    outbox.c.state == PENDING,
                    tuple_(outbox.c.seq, outbox.c.id) > tuple_(*after),
                )
                .order_by(outbox.c.seq, outbox.c.id)
                .limit(BATCH_ROWS)
            )
            with self.ws.engine.connect() as conn:
                page = list(conn.execute(query))
            yield from page
            if len(page) < BATCH_ROWS:
                return
            after = (page[-1].seq, page[-1].id)

    def has_due(self) -> bool:
        """Whether a pending row is due now."""
        query = select(outbox.c.id).where(
            outbox.c.state == PENDING, outbox.c.next_at <= self.clock()
        )
        with self.ws.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def _claim(self, row: Any, lease: float) -> bool:
        statement = (
            update(outbox)
            .where(
                outbox.c.id == row.id,
                outbox.c.state == PENDING,
                outbox.c.attempts == row.attempts,
            )
            .values(attempts=row.attempts + 1, next_at=self.clock() + lease)
        )
        with self.ws.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def _finish(self, row: Any, **values: Any) -> None:
        statement = update(outbox).where(outbox.c.id == row.id).values(**values)
        with self.ws.engine.begin() as conn:
            conn.execute(statement)

    def _attempt(self, row: Any, *, force: bool) -> str | None:
        hook = self.webhooks.get(row.url) or self.writebacks.get(row.url)
        if hook is None:
            self._finish(row, state=FAILED, last_error="the route is no longer in the policy")
            return FAILED
        if not force and row.next_at > self.clock():
            return None
        if REDACTOR.find(row.body):
            # Never sent, and never better on a retry (defence in depth: the
            # ledger refuses secrets, so the document should hold none).
            self._finish(row, state=FAILED, last_error="the document holds a secret value")
            return FAILED
        if not self._claim(row, self._lease(row, hook)):
            return None  # another sender has it
        attempt = row.attempts + 1
        try:
            status = self._post(row, hook) if hook.url in self.webhooks else self._write_back(row)
        except OpskitError as exc:
            error = REDACTOR.redact(str(exc))
        else:
            if 200 <= status < 300:
                self._finish(row, state=DELIVERED, delivered_at=self.clock(), last_error=None)
                log.info("seq %s %s -> %s: delivered (HTTP %s)", row.seq, row.kind, row.url, status)
                return DELIVERED
            error = f"HTTP {status}"
        return self._failed_attempt(row, hook, attempt, error)

    def _lease(self, row: Any, hook: Webhook | Writeback) -> float:
        """How long the row is held: one request for a webhook; for a
        write-back, up to five per CI it names (two lookups by name, the
        check for an earlier note, the note, the custom field)."""
        requests = 1
        if row.url in self.writebacks:
            requests = 5 * max(1, len(json.loads(row.body).get("cis") or ()))
        return hook.timeout * requests + LEASE_MARGIN

    def _write_back(self, row: Any) -> int:
        """Writes a `writeback:` row (`opskit.notify.nautobot`); 200 when done."""
        entry = self.writebacks[row.url]
        if row.url not in self._writers:
            self._writers[row.url] = NautobotWriter(self.ws, entry)
        skipped = self._writers[row.url].write(json.loads(row.body))
        if skipped:
            log.info("seq %s -> %s: not in the source of truth: %s", row.seq, row.url, skipped)
        return 200

    def _failed_attempt(self, row: Any, hook: Webhook | Writeback, attempt: int, error: str) -> str:
        if attempt >= hook.max_attempts:
            self._finish(row, state=FAILED, last_error=error)
            log.warning(
                "seq %s -> %s: failed for good after %s attempts: %s",
                row.seq,
                row.url,
                attempt,
                error,
            )
            return FAILED
        delay = self.backoff.delay(attempt)
        self._finish(row, next_at=self.clock() + delay, last_error=error)
        log.warning(
            "seq %s -> %s: attempt %s failed: %s; next in %.0fs",
            row.seq,
            row.url,
            attempt,
            error,
            delay,
        )
        return PENDING

    def _secret(self, hook: Webhook) -> bytes:
        if hook.url not in self._secrets:
            ref = SecretRef.parse(hook.secret, where=f"notify {hook.url}: secret")
            self._secrets[hook.url] = ref.resolve(base_dir=self.ws.root).encode()
        return self._secrets[hook.url]

    def _post(self, row: Any, hook: Webhook) -> int:
        body = row.body.encode()
        request = urllib.request.Request(
            row.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "opskit-notify",
                "X-Opskit-Event": row.kind,
                "X-Opskit-Delivery": row.delivery_id,
                "X-Opskit-Seq": str(row.seq),
                SIGNATURE_HEADER: sign(self._secret(hook), body),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=hook.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise OpskitError(f"cannot reach the webhook: {reason}") from None


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells an edited file from the one read before (None: no file)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size, info.st_ino


def deliver(ws: Workspace, *, force: bool = False, backoff: Backoff | None = None) -> Delivery:
    """Delivers what is due now (one pass); see `Sender`."""
    return Sender(ws, backoff=backoff).deliver(force=force)


def deliver_while(ws: Workspace, pid: int, *, poll: float = 0.5, limit: float = 3600.0) -> Delivery:
    """Delivers while process `pid` runs, then until nothing is due (at most
    `limit` seconds): the background sender of a CLI command."""
    sender = Sender(ws)
    total = Delivery()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        alive = pid_alive(pid)  # an unreaped zombie has exited: not alive
        report = sender.deliver()
        total.delivered += report.delivered
        total.retried += report.retried
        total.failed += report.failed
        if not alive and not sender.has_due():
            break
        time.sleep(poll)
    return total
