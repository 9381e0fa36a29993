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
    tree: TreeCheck | None = None,
    tree_ends: bool = True,
) -> dict[str, Any]:
    """Checks records `first`..`last` (all of them, in order) starting from
    the hash `prev`, and with `tree` their stored tree hashes. `ok` is False
    at the first doubt; otherwise the segment's last hash, the blobs it
    references, its purges, and the hashes at the `anchors` (checkpoint
    seqs) it passes. `tree_ends`: the tree must end with this segment."""
    wanted = sorted(set(anchors))
    expected = first
    referenced: dict[str, int] = {}
    purges: dict[int, str] = {}
    reached: list[tuple[int, str]] = []
    for chunk in chunks:
        if expected + len(chunk) - 1 > last or not chunk_is_intact(chunk, prev, expected):
            return {"ok": False}
        if tree is not None and not tree.feed([row[3] for row in chunk]):
            return {"ok": False}
        refs, purged = blob_facts(marked(chunk))
        for ref, seq in refs.items():
            referenced.setdefault(ref, seq)
        purges.update(purged)
        end = expected + len(chunk) - 1
        reached += [(s, chunk[s - expected][2]) for s in wanted if expected <= s <= end]
        prev, expected = chunk[-1][2], end + 1
    if expected != last + 1 or (tree is not None and tree_ends and not tree.finish()):
        return {"ok": False}
    return {
        "ok": True,
        "last_hash": prev,
        "referenced": referenced,
        "purges": purges,
        "reached": reached,
    }


SELECT_TREE = "SELECT first_seq, last_seq, first_index, hashes FROM ledger_tree"
HASH = 32


def stored_hash_count(size: int) -> int:
    """Stored hashes of a tree of `size` leaves (Go tlog: 2n - popcount(n))."""
    return 2 * size - bin(size).count("1")


def tree_hashes(records: list[str], size: int, edge: list[bytes]) -> bytes:
    """The stored hashes (Go tlog layout, concatenated) of appending these
    records to a tree of `size` leaves whose right edge is `edge` (the roots
    of its complete subtrees, largest first; updated in place). Leaf data is
    the record's UTF-8: leaf SHA-256(0x00 || record), node SHA-256(0x01 || l
    || r), RFC 6962. The writer and the verifier both use this loop."""
    sha = _sha256
    parts: list[bytes] = []
    add = parts.append
    push, pop = edge.append, edge.pop
    for record in records:
        digest = sha(b"\x00" + record.encode()).digest()
        add(digest)
        n = size
        while n & 1:
            digest = sha(b"\x01" + pop() + digest).digest()
            add(digest)
            n >>= 1
        push(digest)
        size += 1
    return b"".join(parts)


class TreeCheck:
    """Recomputes the Merkle tree's stored hashes of consecutive records and
    compares them with the stored runs (`opskit.ledger.tree`), a chunk at a
    time. Starts after leaf `size - 1` from the tree's right `edge` (the
    roots of its complete subtrees, largest first). `roots` gets the root
    hash at each size in `sizes`. `bad` is the first stored-hash index that
    differs or is missing, or a text saying what is wrong with the runs."""

    def __init__(
        self, runs: Iterable[tuple[Any, ...]], size: int, edge: list[bytes], sizes: Iterable[int]
    ) -> None:
        self.runs = iter(runs)
        self.size = size
        self.edge = list(edge)
        self.wanted = sorted(set(sizes))
        self.roots: dict[int, bytes] = {}
        self.bad: int | str | None = None
        self._stored = b""
        self._index = stored_hash_count(size)  # of _stored[0]
        self._next_seq: int | None = None
        while self.wanted and self.wanted[0] <= size:
            self.roots[self.wanted.pop(0)] = self.root()

    def _pull(self, count: int) -> bytes:
        """The next `count` stored hashes (fewer when the runs end)."""
        need = count * HASH
        pieces, have = [self._stored], len(self._stored)
        while have < need:
            run = next(self.runs, None)
            if run is None:
                break
            first_seq, last_seq, first_index, hashes = run
            hashes = bytes(hashes)
            expected = stored_hash_count(int(last_seq)) - stored_hash_count(int(first_seq) - 1)
            if len(hashes) != expected * HASH:
                self.bad = f"tree row of seqs {first_seq}..{last_seq} has a wrong length"
                return b""
            if self._next_seq is None:  # the run holding our first hash
                skip = (self._index - int(first_index)) * HASH
                if skip < 0 or skip > len(hashes):
                    self.bad = self._index
                    return b""
                hashes = hashes[skip:]
            elif int(first_seq) != self._next_seq or int(first_index) != self._index + have // HASH:
                self.bad = f"tree rows out of sequence at seq {first_seq}"
                return b""
            self._next_seq = int(last_seq) + 1
            pieces.append(hashes)
            have += len(hashes)
        stored = b"".join(pieces)  # one copy a chunk, not one a run
        taken, self._stored = stored[:need], stored[need:]
        return taken

    def feed(self, records: list[str]) -> bool:
        """Checks the next records' stored hashes; False at the first difference."""
        first = 0
        while first < len(records) and self.bad is None:
            # Stop at the next size whose root is wanted.
            cut = next((w - self.size for w in self.wanted if w > self.size), len(records))
            last = min(len(records), first + cut)
            self._feed(records[first:last])
            while self.wanted and self.wanted[0] <= self.size:
                self.roots[self.wanted.pop(0)] = self.root()
            first = last
        return self.bad is None

    def _feed(self, records: list[str]) -> None:
        expected = tree_hashes(records, self.size, self.edge)
        count = len(expected) // HASH
        stored = self._pull(count)
        if self.bad is not None:
            return
        if stored != expected:
            at = next(
                (
                    i
                    for i in range(0, len(expected), HASH)
                    if stored[i : i + HASH] != expected[i : i + HASH]
                ),
                0,
            )
            self.bad = self._index + at // HASH
            return
        self._index += count
        self.size += len(records)

    def finish(self) -> bool:
        """After the last record: False if the tree holds more leaves."""
        if self.bad is None and (self._stored or next(self.runs, None) is not None):
            self.bad = f"the tree has leaves beyond the last record (seq {self.size})"
        return self.bad is None

    def root(self) -> bytes:
        """The root hash of the leaves checked so far."""
        if not self.edge:
            return _sha256(b"").digest()
        digest = self.edge[-1]
        for left in reversed(self.edge[:-1]):
            digest = _sha256(b"\x01" + left + digest).digest()
        return digest


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
        tree = None
        if "tree_edge" in params:  # the tree from leaf first - 1 on
            runs = connection.execute(
                f"{SELECT_TREE} WHERE last_seq >= ? ORDER BY first_seq", (params["first"],)
            )
            edge = [bytes.fromhex(h) for h in params["tree_edge"]]
            tree = TreeCheck(runs, params["first"] - 1, edge, params["tree_sizes"])
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
            tree,
        )
        if tree is not None and result["ok"]:
            result["tree_roots"] = {size: root.hex() for size, root in tree.roots.items()}
    finally:
        connection.close()
    sys.stdout.write(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
