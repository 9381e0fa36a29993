"""The chain check of a run of records, importable without the rest of opskit.

`verify` checks a long ledger in two halves at once: this module checks
the second half in a separate process (`python chain.py`, parameters as JSON
on stdin, the result as JSON on stdout), since the check is CPU-bound
Python that a thread would run under the same GIL (SQLite ledgers only). It
imports only the standard library, so that the process starts in a few tens
of milliseconds. A half is anchored on the stored hash of the
record before it; `verify` then requires the first half to end on that very
hash, so the two halves check the same chain as one pass would. On any
doubt the caller falls back to the one pass, which names what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from typing import Any

_sha256 = hashlib.sha256
PURGE_KIND = "ledger.blob_purged"
BLOBS_MARK = '"blobs":{'
PURGE_MARK = f'"kind":"{PURGE_KIND}"'
SELECT_ROWS = "SELECT seq, prev_hash, hash, record FROM ledger_events"


def row_is_intact(row: tuple[Any, ...], prev: str, expected: int) -> bool:
    """The record is the next in sequence, links to `prev`, hashes to its
    stored hash and names its own sequence number."""
    seq, prev_hash, stored_hash, record = row
    return (
        seq == expected
        and prev_hash == prev
        and type(record) is str
        and _sha256((prev + _sha256(record.encode()).hexdigest()).encode()).hexdigest()
        == stored_hash
        and record.endswith(f',"seq":{seq}}}')
    )


def chunk_is_intact(chunk: list[tuple[Any, ...]], prev: str, expected: int) -> bool:
    """`row_is_intact` for every row of a chunk, as whole-list comparisons
    (built by comprehensions, compared in C): several times faster than the
    row loop. False says only that some row breaks; the row loop finds it."""
    seqs = [row[0] for row in chunk]
    if seqs != list(range(expected, expected + len(chunk))):
        return False
    hashes = [row[2] for row in chunk]
    if [row[1] for row in chunk] != [prev, *hashes[:-1]]:
        return False
    sha = _sha256
    try:
        if [
            sha((p + sha(r.encode()).hexdigest()).encode()).hexdigest() for _, p, _, r in chunk
        ] != (hashes):
            return False
    except AttributeError:  # a record not stored as text
        return False
    return all(map(str.endswith, [row[3] for row in chunk], [f',"seq":{s}}}' for s in seqs]))


def marked(chunk: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows whose record references blobs or purges one (parsed later)."""
    return [row for row in chunk if BLOBS_MARK in row[3] or PURGE_MARK in row[3]]


def blob_facts(rows: Iterable[tuple[Any, ...]]) -> tuple[dict[str, int], dict[int, str]]:
    """From marked rows: each referenced blob's first seq, and each purge event's blob."""
    referenced: dict[str, int] = {}
    purges: dict[int, str] = {}
    for seq, _prev_hash, _hash, record in rows:
        data = json.loads(record)
        payload = data["payload"]
        refs = payload.get("blobs")
        if isinstance(refs, dict):
            for ref in refs.values():
                referenced.setdefault(ref, seq)
        if data["kind"] == PURGE_KIND and isinstance(payload.get("blob"), str):
            purges[seq] = payload["blob"]
    return referenced, purges


def check_segment(
    chunks: Iterator[list[tuple[Any, ...]]],
    first: int,
    last: int,
    prev: str,
    anchors: Iterable[int],
) -> dict[str, Any]:
    """Checks records `first`..`last` (all of them, in order) starting from
    the hash `prev`. `ok` is False at the first doubt; otherwise the segment's
    last hash, the blobs it references, its purges, and the hashes at the
    `anchors` (checkpoint seqs) it passes."""
    wanted = sorted(set(anchors))
    expected = first
    referenced: dict[str, int] = {}
    purges: dict[int, str] = {}
    reached: list[tuple[int, str]] = []
    for chunk in chunks:
        if expected + len(chunk) - 1 > last or not chunk_is_intact(chunk, prev, expected):
            return {"ok": False}
        refs, purged = blob_facts(marked(chunk))
        for ref, seq in refs.items():
            referenced.setdefault(ref, seq)
        purges.update(purged)
        end = expected + len(chunk) - 1
        reached += [(s, chunk[s - expected][2]) for s in wanted if expected <= s <= end]
        prev, expected = chunk[-1][2], end + 1
    if expected != last + 1:
        return {"ok": False}
    return {
        "ok": True,
        "last_hash": prev,
        "referenced": referenced,
        "purges": purges,
        "reached": reached,
    }


def fetch_chunks(cursor: Any, size: int) -> Iterator[list[tuple[Any, ...]]]:
    while chunk := cursor.fetchmany(size):
        yield chunk


def main() -> int:
    import sqlite3

    params = json.loads(sys.stdin.read())
    # Read-only: this process never writes the ledger.
    connection = sqlite3.connect(f"file:{params['target']}?mode=ro", uri=True, timeout=30)
    try:
        cursor = connection.cursor()
        cursor.execute(
            f"{SELECT_ROWS} WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (params["first"], params["last"]),
        )
        result = check_segment(
            fetch_chunks(cursor, params["chunk"]),
            params["first"],
            params["last"],
            params["prev"],
            params["anchors"],
        )
    finally:
        connection.close()
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
