"""The ledger's public read seam: everything that reads the ledger tables.

`Ledger.reader()` hands out a `LedgerReader`; the verifier, the bundle
exporter and the change-table check read through it and never through the
writer's connection. It reads, never writes: a read transaction is rolled
back when it ends.

Two levels:

- typed reads: `head`, `events` (by change, CI, kind, time, seq),
  `change_span` and `records` (a run of stored records, for bundles),
  `get_blob`, `checkpoints`, `trusted_keys`;
- raw rows, for checks that must see what is stored rather than what a
  sound record would say: `query` (one statement) and `session` (several
  statements on one connection, with streaming cursors).

Example:
    >>> reader = ledger.reader()
    >>> [event.kind for event in reader.events(change_id="CHG-0042")]
    ['change.created', 'change.assessed', ...]
    >>> reader.head()
    (42, '9f2c...')
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine

from opskit.digests import sha256_bytes
from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.canonical import GENESIS_HASH
from opskit.ledger.model import Checkpoint, Event, format_at
from opskit.ledger.store import BLOBS, CHECKPOINTS, EVENTS, TREE_HEADS

_cursor_names = itertools.count()
CHUNK = 5_000  # rows a streaming read fetches at a time


def blob_hash(data: bytes) -> str:
    """A blob's address in the ledger: 'sha256:' and the hex SHA-256 of its bytes."""
    return sha256_bytes(data)


class StoredRecord(NamedTuple):
    """One row of the events table as stored (`records`): the canonical
    record text and its chain hashes, with the indexed kind and change id."""

    seq: int
    prev_hash: str
    hash: str
    record: str
    change_id: str | None
    kind: str


class ReadSession:
    """Several reads on one database connection (one snapshot on
    PostgreSQL's default isolation per statement; SQLite reads what is
    committed). Made by `LedgerReader.session`."""

    def __init__(self, reader: LedgerReader, connection: Any) -> None:
        self.reader = reader
        self.connection = connection

    def cursor(self, *, stream: bool = False) -> Any:
        """A DB-API cursor; `stream` fetches rows in chunks (PostgreSQL:
        a server-side cursor). Statements take `?` placeholders through
        `LedgerReader.sql`."""
        if stream and self.reader.dialect == "postgresql":
            cursor = self.connection.driver_connection.cursor(name=f"ledger_{next(_cursor_names)}")
            cursor.itersize = CHUNK
            return cursor
        return self.connection.cursor()


class LedgerReader:
    """Reads of one ledger database; see the module docstring."""

    def __init__(self, engine: Engine, *, keys_dir: Path | None = None) -> None:
        self.engine = engine
        self.keys_dir = keys_dir
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise LedgerError(f"ledger: unsupported database {self.dialect!r}")
        self._p = "?" if self.dialect == "sqlite" else "%s"
        self.dbapi_error: type[Exception] = engine.dialect.dbapi.Error  # type: ignore[union-attr]

    def sql(self, text: str) -> str:
        """`text` with `?` placeholders turned into the driver's paramstyle."""
        return text if self._p == "?" else text.replace("?", "%s")

    @property
    def database_file(self) -> str | None:
        """The SQLite file of this ledger; None for PostgreSQL or in memory."""
        if self.dialect != "sqlite":
            return None
        database = self.engine.url.database
        return None if not database or database == ":memory:" else str(database)

    # -- raw rows ---------------------------------------------------------
    @contextmanager
    def session(self) -> Iterator[ReadSession]:
        """A read connection for several statements; rolled back at the end."""
        connection = self.engine.raw_connection()
        try:
            yield ReadSession(self, connection)
        finally:
            try:
                connection.rollback()
            finally:
                connection.close()

    def query(
        self, sql: str, params: tuple[Any, ...] = (), *, stream: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of one statement (`?` placeholders), as stored. `stream`
        fetches them in chunks (PostgreSQL: server-side). A database error
        becomes a LedgerError."""
        with self.session() as session:
            cursor = session.cursor(stream=stream)
            try:
                cursor.execute(self.sql(sql), params)
                yield from cursor
            except self.dbapi_error as exc:
                raise LedgerError(f"ledger: read failed: {exc}") from None
            finally:
                cursor.close()

    def chunks(self, sql: str, params: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
        """`query(..., stream=True)` without a generator step per row: rows
        a chunk at a time (for scans of the whole ledger). Database errors
        are not translated."""
        with self.session() as session:
            cursor = session.cursor(stream=True)
            try:
                cursor.execute(self.sql(sql), params)
                while chunk := cursor.fetchmany(CHUNK):
                    yield from chunk
            finally:
                cursor.close()

    # -- typed reads ------------------------------------------------------
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, '0'*64) when empty."""
        for seq, hash_ in self.query(f"SELECT seq, hash FROM {EVENTS} ORDER BY seq DESC LIMIT 1"):
            return int(seq), hash_
        return 0, GENESIS_HASH

    def events(
        self,
        change_id: str | None = None,
        ci: str | None = None,
        kind: str | None = None,
        since: datetime | str | None = None,
        *,
        after_seq: int | None = None,
    ) -> Iterator[Event]:
        """Events in sequence order, filtered by any of the arguments."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("change_id", change_id), ("ci", ci), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if ci is not None and change_id is None:
            # A CI's history: the seqs come from a scan of the (change_id, ci)
            # index alone, the records by key (SQLite would otherwise read
            # every record in the table).
            where[where.index("ci = ?")] = f"seq IN (SELECT seq FROM {EVENTS} WHERE ci = ?)"
        if since is not None:
            where.append("at >= ?")
            params.append(_since_text(since))
        if after_seq is not None:
            where.append("seq > ?")
            params.append(after_seq)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT record, prev_hash, hash FROM {EVENTS}{clause} ORDER BY seq"
        for record, prev_hash, hash_ in self.query(sql, tuple(params), stream=True):
            yield Event.from_record(record, prev_hash, hash_)

    def change_span(self, change_id: str) -> tuple[int, int] | None:
        """(first seq, last seq) of a change's events; None when it has none."""
        own = list(
            self.query(
                f"SELECT seq FROM {EVENTS} WHERE change_id = ? ORDER BY seq LIMIT 1", (change_id,)
            )
        )
        if not own:
            return None
        ((last,),) = self.query(f"SELECT MAX(seq) FROM {EVENTS} WHERE change_id = ?", (change_id,))
        return int(own[0][0]), int(last)

    def records(self, first: int, last: int) -> list[StoredRecord]:
        """The stored records from seq `first` to `last` (both included), in order."""
        rows = self.query(
            f"SELECT seq, prev_hash, hash, record, change_id, kind FROM {EVENTS} "
            "WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, last),
        )
        return [StoredRecord(int(row[0]), *row[1:]) for row in rows]

    def get_blob(self, hash_: str) -> bytes:
        """The content of a blob; LedgerError when purged, missing or altered."""
        rows = list(self.query(f"SELECT content FROM {BLOBS} WHERE hash = ?", (hash_,)))
        return _checked_blob(hash_, rows[0][0] if rows else _MISSING)

    def get_blobs(self, hashes: Iterable[str]) -> dict[str, bytes]:
        """Many blobs by hash, a few queries for all; LedgerError as `get_blob`
        for the first one purged, missing or altered."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, Any] = {}
        for start in range(0, len(wanted), _BLOBS_PER_QUERY):
            chunk = wanted[start : start + _BLOBS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            sql = f"SELECT hash, content FROM {BLOBS} WHERE hash IN ({marks})"
            found.update((row[0], row[1]) for row in self.query(sql, tuple(chunk)))
        return {h: _checked_blob(h, found.get(h, _MISSING)) for h in wanted}

    def checkpoints(self) -> list[Checkpoint]:
        """The stored signed checkpoints, oldest first."""
        rows = self.query(
            f"SELECT c.seq, c.head, c.at, c.actor, c.key_id, c.public_key, c.signature, h.note "
            f"FROM {CHECKPOINTS} c LEFT JOIN {TREE_HEADS} h ON h.checkpoint_id = c.id ORDER BY c.id"
        )
        return [Checkpoint(int(row[0]), *row[1:]) for row in rows]

    def trusted_keys(self) -> dict[str, Any] | None:
        """The public keys of the workspace's keys folder by key id; None
        without a keys folder or key."""
        if self.keys_dir is None:
            return None
        return keymod.trusted_public_keys(self.keys_dir) or None


def _since_text(since: datetime | str) -> str:
    if isinstance(since, datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        return format_at(moment)
    try:
        moment = datetime.fromisoformat(since)
    except ValueError:
        raise LedgerError(f"since: {since!r} is not an ISO 8601 time") from None
    return _since_text(moment)


_MISSING = object()
_BLOBS_PER_QUERY = 500


def _checked_blob(hash_: str, content: Any) -> bytes:
    if content is _MISSING:
        raise LedgerError(f"blob {hash_}: not in the ledger")
    if content is None:
        raise LedgerError(f"blob {hash_}: content was purged")
    content = bytes(content)
    if blob_hash(content) != hash_:
        raise LedgerError(f"blob {hash_}: stored content does not match its hash")
    return content
