"""Where a write batch's event rows go (`opskit.ledger.core.Batch`).

Rows wait in `pending` until the batch writes them (`end`: one
`executemany`, or on PostgreSQL one COPY). On PostgreSQL a batch that
reaches STREAM_FROM rows opens its COPY and streams every further row into
it as it is appended: the server stores rows while the client builds and
hashes the next ones, where it used to wait for the whole batch and then
the client for the server. The rows are the same, in the same order, in
the same transaction; a streamed row becomes visible only when the COPY
ends, so the batch ends it before any other statement (`Batch.cursor`).

Example:

    >>> sink = RowSink(cursor, "INSERT ...", "COPY ledger_events (...) FROM STDIN")
    >>> sink.add((1, "2026-...", "ci", "host.applied", None, None, "00..", "ab..", "{...}"))
    >>> sink.end()  # the rows written, returned for the Merkle tree
    [(1, ...)]
"""

from __future__ import annotations

import contextlib
from typing import Any

Row = tuple[Any, ...]

# Pending rows from which a PostgreSQL batch streams them (a COPY costs two
# round trips more than an INSERT of a few rows).
STREAM_FROM = 64


class RowSink:
    """The unwritten rows of one batch, on one DB-API cursor. `copy_sql`:
    PostgreSQL's COPY statement (None: SQLite, `insert_sql` only)."""

    def __init__(self, cursor: Any, insert_sql: str, copy_sql: str | None) -> None:
        self.cursor = cursor
        self.insert_sql = insert_sql
        self.copy_sql = copy_sql
        self.pending: list[Row] = []  # not yet visible to other statements
        self._block: Any = None  # the open COPY's context manager
        self._copy: Any = None  # ... and its writer

    @property
    def streaming(self) -> bool:
        """A COPY is open: no other statement can run until `end`."""
        return self._copy is not None

    def add(self, row: Row) -> None:
        self.pending.append(row)
        if self._copy is not None:
            self._copy.write_row(row)
        elif self.copy_sql is not None and len(self.pending) >= STREAM_FROM:
            self._block = self.cursor.copy(self.copy_sql)
            self._copy = self._block.__enter__()
            for pending in self.pending:
                self._copy.write_row(pending)

    def end(self) -> list[Row]:
        """Writes the pending rows (ends the COPY); returns them."""
        rows = self.pending[:]
        self.pending.clear()  # the same list: the batch reads it (`Batch.unwritten`)
        if self._copy is not None:
            block, self._block, self._copy = self._block, None, None
            block.__exit__(None, None, None)
        elif self.copy_sql is not None and len(rows) > 1:
            with self.cursor.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        elif rows:
            self.cursor.executemany(self.insert_sql, rows)
        return rows

    def abandon(self, error: BaseException) -> None:
        """Ends an open COPY with `error` (the server discards it), so that
        the transaction can be rolled back."""
        if self._copy is not None:
            block, self._block, self._copy = self._block, None, None
            with contextlib.suppress(Exception):  # the error that got here is the one to raise
                block.__exit__(type(error), error, error.__traceback__)
