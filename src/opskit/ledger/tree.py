"""The ledger's RFC 6962 Merkle tree, stored beside the hash chain.

Leaf *i* of the tree is the record with sequence number *i* + 1, and its leaf
data is the record's canonical bytes: the UTF-8 of the stored `record`
text, exactly the bytes the hash chain hashes. So the leaf hash of seq *s* is
``SHA-256(0x00 || record(s))``; blobs are never in a leaf (a record holds
only their ``sha256:`` references), which is why a purge, which empties a
blob and appends a purge event, leaves every earlier leaf and node as it was.

The stored hashes are Go `sumdb/tlog`'s sequence (`opskit.tlog.merkle`):
appending leaf *i* stores its leaf hash and the roots of the subtrees it
completes. Each write stores its run as rows of `ledger_tree` of at most
64 records each (first_seq, last_seq, first_index, the hashes
concatenated), in the same
transaction as the records, so the tree always has exactly the records'
leaves. `TreeReader` reads any stored hash in one indexed query, which gives
an inclusion proof in O(log n) reads.

A ledger from before the tree gets it on its first write, on `Ledger.open`
(every `opskit` command in the workspace) or `Ledger.build_tree()`: the
missing leaves are added from the stored records in one write transaction.

Example:
    >>> reader = TreeReader(cursor, sql)
    >>> tree_size(cursor)
    42
    >>> merkle.prove_record(42, 7, reader)      # the proof for seq 8
    [b'...', ...]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opskit.errors import LedgerError
from opskit.ledger.chain import tree_hashes
from opskit.ledger.store import EVENTS, TREE
from opskit.tlog import merkle

HASH = merkle.HASH_SIZE
# Leaves read per query when an old ledger's tree is built.
BUILD_ROWS = 10_000
# Leaves per row at most: 64 leaves store at most 128 hashes (4 KiB), which
# SQLite keeps in the row's own page; a longer row spills into a chain of
# overflow pages that every read of one hash would walk.
RUN = 64
_SELECT_RECORDS = f"SELECT seq, record FROM {EVENTS} WHERE seq > ? AND seq <= ? ORDER BY seq"


def leaf_index(seq: int) -> int:
    """The tree leaf of a record: seq 1 is leaf 0."""
    return seq - 1


def _storing_seq(index: int) -> int:
    """The seq of the record whose write stored hash `index`."""
    level, n = merkle.split_stored_hash_index(index)
    return ((n + 1) << level) - 1 + 1


class TreeReader:
    """A `merkle.HashReader` over `ledger_tree`, on one DB-API cursor (`sql`
    turns `?` placeholders into the driver's). One query for all the hashes
    asked: for each, a primary-key lookup of its row that returns only its
    32 bytes (a proof is one round trip to PostgreSQL, not one a hash)."""

    def __init__(self, cursor: Any, sql: Callable[[str], str]) -> None:
        self.cursor = cursor
        self.sql = sql

    def read_hashes(self, indexes: Sequence[int]) -> list[bytes]:
        if not indexes:
            return []
        values = ", ".join(
            ["(CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS BIGINT))"] * len(indexes)
        )
        query = self.sql(
            f"WITH wanted(k, i, s) AS (VALUES {values}) "
            f"SELECT (SELECT substr(hashes, CAST((wanted.i - first_index) * {HASH} + 1 "
            f"AS INTEGER), {HASH}) FROM {TREE} WHERE first_seq <= wanted.s "
            "ORDER BY first_seq DESC LIMIT 1) "
            "FROM wanted ORDER BY k"
        )
        params: list[int] = []
        for k, index in enumerate(indexes):
            params += (k, index, _storing_seq(index))
        self.cursor.execute(query, params)
        hashes = []
        for index, (digest,) in zip(indexes, self.cursor.fetchall(), strict=True):
            if digest is None or len(digest) != HASH:
                raise LedgerError(f"ledger tree: stored hash {index} is missing")
            hashes.append(bytes(digest))
        return hashes


def tree_size(cursor: Any) -> int:
    """How many leaves the stored tree has (the last row's last seq)."""
    cursor.execute(f"SELECT last_seq FROM {TREE} ORDER BY first_seq DESC LIMIT 1")
    row = cursor.fetchone()
    return int(row[0]) if row else 0


class TreeWriter:
    """Adds the records a batch writes to the tree, in the batch's transaction.

    `add(rows)` takes the event rows just inserted (seq first, record text
    last) and inserts their stored hashes as one row. The tree's right edge
    is read once per transaction, or taken from `cache` (the edge after the
    ledger's last commit, with the head hash it belongs to).
    """

    def __init__(self, cursor: Any, sql: Callable[[str], str], dialect: str) -> None:
        self.cursor = cursor
        self.sql = sql
        self.dialect = dialect
        self.builder: merkle.TreeBuilder | None = None
        self._insert = sql(
            f"INSERT INTO {TREE} (first_seq, last_seq, first_index, hashes) VALUES (?, ?, ?, ?)"
        )

    def start(self, size: int, cached: merkle.TreeBuilder | None) -> None:
        """Begin at tree size `size` (the records before this batch)."""
        if cached is not None and cached.size == size:
            self.builder = merkle.TreeBuilder(size, cached.edge)
            return
        stored = tree_size(self.cursor)
        if stored > size:
            raise LedgerError(
                f"ledger tree: the tree has {stored} leaves but the ledger {size} records "
                "(run `opskit audit verify`)"
            )
        builder = merkle.TreeBuilder.from_reader(stored, TreeReader(self.cursor, self.sql))
        if stored < size:
            self._build(builder, size)
        self.builder = builder

    def _build(self, builder: merkle.TreeBuilder, size: int) -> None:
        """Adds the leaves of records builder.size+1..size (an older ledger)."""
        while builder.size < size:
            last = min(size, builder.size + BUILD_ROWS)
            self.cursor.execute(
                self.sql(_SELECT_RECORDS),
                (builder.size, last),
            )
            rows = self.cursor.fetchall()
            if [int(row[0]) for row in rows] != list(range(builder.size + 1, last + 1)):
                raise LedgerError(
                    f"ledger tree: records {builder.size + 1}..{last} are not all there "
                    "(run `opskit audit verify`)"
                )
            self._write(builder, [row[1] for row in rows])

    def add(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The stored hashes of the event rows just written (one row)."""
        builder = self.builder
        if builder is None or not rows:
            return
        if int(rows[0][0]) != builder.size + 1:
            raise LedgerError(f"ledger tree: seq {rows[0][0]} does not follow {builder.size}")
        self._write(builder, [row[-1] for row in rows])

    def _write(self, builder: merkle.TreeBuilder, records: list[str]) -> None:
        rows = []
        for start in range(0, len(records), RUN):
            run = records[start : start + RUN]
            first_seq = builder.size + 1
            first_index = merkle.stored_hash_count(builder.size)
            hashes = tree_hashes(run, builder.size, builder.edge)
            builder.size += len(run)
            rows.append((first_seq, builder.size, first_index, hashes))
        if len(rows) == 1:
            self.cursor.execute(self._insert, rows[0])
        else:
            self.cursor.executemany(self._insert, rows)


def stored_runs(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[int, int, int, bytes]]:
    """`ledger_tree` rows as (first_seq, last_seq, first_index, hashes)."""
    for first_seq, last_seq, first_index, hashes in rows:
        yield int(first_seq), int(last_seq), int(first_index), bytes(hashes)
