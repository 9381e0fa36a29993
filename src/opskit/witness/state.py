"""The witness's own state: its logs, their pinned keys, the last tree head it cosigned.

One SQLite file (``witness.db`` in the witness folder), written with
``synchronous=FULL`` in WAL mode, so a commit is on disk before the witness
answers. Tables:

- ``logs(origin, vkey)``: the log keys pinned per origin (added by the operator).
- ``heads(origin, size, root_hash, note, updated_at)``: the latest checkpoint it
  cosigned per origin, with the note as returned (log signature + cosignature).
- ``evidence(origin, received_at, reason, body)``: validly signed checkpoints it
  refused as inconsistent: proof that a log showed two histories.

`advance` checks the old size against the stored head and writes the new head
in one ``BEGIN IMMEDIATE`` transaction, so two concurrent requests can never
roll the head back (the race tlog-witness describes).

Example:

    >>> state = WitnessState.open(Path("w1"))
    >>> state.add_log("ops.example.com/ledger", ["ops.example.com/ledger+5a3c81f2+AV2m..."])
    >>> state.head("ops.example.com/ledger")
    Head(size=0, root_hash=b'\\xe3\\xb0...', note='')
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import OpskitError
from opskit.tlog.checkpoint import EMPTY_ROOT
from opskit.tlog.note import NoteError, Verifier

DB_NAME = "witness.db"
SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT NOT NULL, vkey TEXT NOT NULL, PRIMARY KEY (origin, vkey));
CREATE TABLE IF NOT EXISTS heads (
    origin TEXT PRIMARY KEY, size INTEGER NOT NULL, root_hash BLOB NOT NULL,
    note TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY, origin TEXT NOT NULL, received_at REAL NOT NULL,
    reason TEXT NOT NULL, body BLOB NOT NULL);
"""


class WitnessStateError(OpskitError):
    """The witness folder or its database is missing or unusable."""


@dataclass(frozen=True)
class Head:
    """The latest cosigned tree head of one log (size 0: never cosigned)."""

    size: int
    root_hash: bytes
    note: str


EMPTY_HEAD = Head(0, EMPTY_ROOT, "")


class WitnessState:
    """The witness database; safe to share between the server's threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()  # one connection, used by every server thread
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise WitnessStateError(f"{path}: {exc}") from None

    @classmethod
    def open(cls, folder: Path) -> WitnessState:
        """The state in `folder` (created if missing)."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(folder / DB_NAME)

    def close(self) -> None:
        self._db.close()

    def add_log(self, origin: str, vkeys: Iterable[str]) -> list[Verifier]:
        """Pin the log keys for `origin` (vkeys of type 0x01); returns them parsed."""
        if not origin or any(ord(ch) < 0x20 for ch in origin):
            raise WitnessStateError(f"invalid origin {origin!r}")
        verifiers = [Verifier.from_vkey(vkey, source="--vkey") for vkey in vkeys]
        if not verifiers or any(v.sig_type != 0x01 for v in verifiers):
            raise NoteError("a log needs at least one Ed25519 (type 0x01) vkey", field="vkey")
        with self._lock:
            self._db.executemany(
                "INSERT OR IGNORE INTO logs (origin, vkey) VALUES (?, ?)",
                [(origin, v.vkey) for v in verifiers],
            )
        return verifiers

    def log_keys(self, origin: str) -> list[Verifier]:
        """The pinned keys of `origin` (empty: the witness does not know that log)."""
        with self._lock:
            rows = self._db.execute("SELECT vkey FROM logs WHERE origin = ?", (origin,)).fetchall()
        return [Verifier.from_vkey(row[0]) for row in rows]

    def origins(self) -> list[str]:
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT origin FROM logs ORDER BY origin").fetchall()
        return [row[0] for row in rows]

    def head(self, origin: str) -> Head:
        """The latest cosigned head of `origin`, or `EMPTY_HEAD`."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root_hash, note FROM heads WHERE origin = ?", (origin,)
            ).fetchone()
        return Head(row[0], bytes(row[1]), row[2]) if row else EMPTY_HEAD

    def advance(self, origin: str, check: Callable[[Head], Head]) -> Head:
        """Atomically replace the head of `origin` with ``check(current)``.

        `check` raises to refuse (nothing is written); the new head is on
        disk (synchronous=FULL) when this returns.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                new = check(self.head(origin))
                self._db.execute(
                    "INSERT INTO heads (origin, size, root_hash, note, updated_at) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (origin) DO UPDATE SET "
                    "size = excluded.size, root_hash = excluded.root_hash, "
                    "note = excluded.note, updated_at = excluded.updated_at",
                    (origin, new.size, new.root_hash, new.note, time.time()),
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return new

    def record_evidence(self, origin: str, reason: str, body: bytes) -> None:
        """Keep a validly signed but refused checkpoint (a sign of a split view)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO evidence (origin, received_at, reason, body) VALUES (?, ?, ?, ?)",
                (origin, time.time(), reason, body),
            )

    def evidence(self) -> list[tuple[str, str, bytes]]:
        """(origin, reason, request body) of every refused, validly signed checkpoint."""
        with self._lock:
            rows = self._db.execute("SELECT origin, reason, body FROM evidence ORDER BY id")
            return [(r[0], r[1], bytes(r[2])) for r in rows.fetchall()]
