"""Verification: re-hash the chain, every blob and every checkpoint.

The hot path checks, per record, only what can be checked without parsing
JSON: the sequence, the link to the previous hash, the recomputed hash and
the sequence number inside the hashed record (its last key), a chunk of
records at a time as whole-list comparisons. Only records
that reference blobs or purge one are parsed. The indexed columns (actor,
at, kind, change_id, ci) are compared with the fields of the verified
records by one query, in the database. At the first
break, `diagnose` looks closer to name what happened.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, NamedTuple

from opskit.errors import LedgerError
from opskit.ledger import chain as chain_module
from opskit.ledger.canonical import GENESIS_HASH, chain_hash, record_digest
from opskit.ledger.chain import (
    BLOBS_MARK,
    PURGE_MARK,
    SELECT_ROWS,
    SELECT_TREE,
    TreeCheck,
    blob_facts,
    check_segment,
    chunk_is_intact,
    fetch_chunks,
    row_is_intact,
)
from opskit.ledger.chain import marked as marked_rows
from opskit.ledger.model import Checkpoint, VerifyReport
from opskit.ledger.prefetch import Prefetcher
from opskit.ledger.reader import blob_hash
from opskit.ledger.store import BLOBS, EVENTS, PURGES
from opskit.ledger.tree import TreeReader
from opskit.ledger.treecheck import note_problems, tree_problem
from opskit.tlog import merkle

if TYPE_CHECKING:
    from opskit.ledger.reader import LedgerReader, ReadSession

LOOKAHEAD = 10_000
CHUNK = 5_000  # rows fetched and checked at a time
# From this many records on, the chain is checked in two halves at once, the
# second in a process of its own (`opskit.ledger.chain`); below it, starting
# that process costs more than it saves.
TWO_HALVES_FROM = 50_000
__all__ = ["BLOBS_MARK", "PURGE_MARK", "chunk_is_intact", "row_is_intact", "verify_ledger"]

# The first record whose indexed columns differ from the fields inside it:
# a canonical record begins with its indexed fields, so each record must start
# with the JSON text the database itself makes of its columns (SQLite's
# json_quote and PostgreSQL's to_json escape strings exactly as the canonical
# form does). Plain string work: no JSON parsing.
_PREFIX = """'{{"actor":' || {q}(actor) || ',"at":' || {q}(at)
    || ',"change_id":' || {n}({q}(change_id), 'null')
    || ',"ci":' || {n}({q}(ci), 'null')
    || ',"kind":' || {q}(kind) || ',"payload":'"""
_PLAIN_PREFIX = """'{"actor":"' || actor || '","at":"' || at
    || '","change_id":' || coalesce('"' || change_id || '"', 'null')
    || ',"ci":' || coalesce('"' || ci || '"', 'null')
    || ',"kind":"' || kind || '","payload":'"""
COLUMNS_CHECK = {
    # instr() stops at the first match, which is position 1 for a sound
    # record: half the cost of cutting a substring of the prefix's length.
    # SQLite's json_object writes the same prefix as the json_quote()s
    # joined by || (the same string escaping, null for NULL, no spaces) in
    # one string instead of fifteen: rtrim takes the placeholder 0 and the
    # closing brace off `..."payload":0}`.
    "sqlite": f"""
        SELECT MIN(seq) FROM {EVENTS}
        WHERE instr(record, rtrim(json_object('actor', actor, 'at', at,
            'change_id', change_id, 'ci', ci, 'kind', kind, 'payload', 0), '0}}')) IS NOT 1""",
    # PostgreSQL's to_json costs more than the rest of the query: columns
    # without a '"', a backslash or a control character are their own JSON
    # string content (to_json would only add the quotes), so their prefix
    # is plain concatenation; any other row takes to_json's.
    "postgresql": f"""
        SELECT MIN(seq) FROM {EVENTS} WHERE (CASE
            WHEN actor || at || kind || coalesce(change_id, '') || coalesce(ci, '')
                !~ '[\\x01-\\x1f"\\\\]'
            THEN starts_with(record, {_PLAIN_PREFIX})
            ELSE starts_with(record, {_PREFIX.format(q="to_json", n="coalesce")})
        END) IS NOT TRUE""",
}


# A TEXT column of SQLite can hold a BLOB, which json_quote refuses: when the
# check above fails, this slower one names the first such row as well.
_TEXT_PREFIX = re.sub(
    r"\((actor|at|change_id|ci|kind)\)",
    r"(CAST(\1 AS TEXT))",
    _PREFIX.format(q="json_quote", n="coalesce"),
)
SQLITE_BLOB_COLUMNS_CHECK = f"""
    SELECT MIN(seq) FROM {EVENTS}
    WHERE 'blob' IN (typeof(actor), typeof(at), typeof(kind), typeof(change_id), typeof(ci))
    OR instr(record, {_TEXT_PREFIX}) IS NOT 1"""


def first_bad_columns(reader: LedgerReader) -> int | None:
    """The first seq whose indexed columns disagree with its record, if any."""
    try:
        ((seq,),) = list(reader.query(COLUMNS_CHECK[reader.dialect]))
    except LedgerError:
        if reader.dialect != "sqlite":
            raise
        ((seq,),) = list(reader.query(SQLITE_BLOB_COLUMNS_CHECK))
    return None if seq is None else int(seq)


def claimed_seq(record: str) -> int | None:
    """The sequence number written inside a record, or None if unreadable."""
    try:
        seq = json.loads(record).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if type(seq) is int else None


def diagnose(
    row: tuple[Any, ...], prev: str, expected: int, rest: Iterator[tuple[Any, ...]]
) -> tuple[int, str]:
    """Names the first bad sequence and what is wrong at a chain break."""
    seq, prev_hash, stored_hash, record = int(row[0]), row[1], row[2], row[3]
    if seq < expected:
        return seq, f"inserted record: seq {seq} appears twice"
    if seq > expected:
        missing = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
        return expected, f"missing record: {missing} absent (gap before seq {seq})"
    if not all(type(value) is str for value in (prev_hash, stored_hash, record)):
        return seq, f"changed content: record {seq} is not stored as text"
    self_consistent = chain_hash(prev_hash, record_digest(record)) == stored_hash
    if not self_consistent:
        return seq, f"changed content: record {seq} does not match its stored hash"
    claimed = claimed_seq(record)
    if claimed is None:
        return seq, f"changed content: record {seq} is not a ledger record"
    if claimed > seq:
        for later in islice(rest, LOOKAHEAD):
            if claimed_seq(later[3]) == seq:
                return seq, (
                    f"reordered record: seq {seq} holds the record of seq {claimed}; "
                    f"the record of seq {seq} sits at seq {int(later[0])}"
                )
        return seq, (
            f"missing record: the record of seq {seq} was deleted and later records "
            f"renumbered (seq {seq} holds the record of seq {claimed})"
        )
    if claimed < seq:
        return claimed, (
            f"inserted record: {seq - claimed} record(s) inserted at seq {claimed}; "
            f"the record of seq {claimed} now sits at seq {seq}"
        )
    return seq - 1, (
        f"changed content: record {seq - 1} was rewritten with a recomputed hash; "
        f"seq {seq} no longer links to it"
    )


def _chunks(reader: LedgerReader, cursor: Any, stack: ExitStack) -> Iterator[list[tuple[Any, ...]]]:
    """The rows of `cursor` a chunk at a time. PostgreSQL's are fetched by a
    thread (stopped when `stack` closes) while the chunk before is checked
    (`opskit.ledger.prefetch`): one round trip per chunk, which the server
    and the hashing loop otherwise wait for in turn."""
    if reader.dialect == "postgresql":
        return stack.enter_context(Prefetcher(fetch_chunks(cursor, CHUNK)))
    return fetch_chunks(cursor, CHUNK)


class _SecondHalf(NamedTuple):
    process: subprocess.Popen[str]  # checking seqs mid + 1 .. last
    mid: int  # the first half's last seq
    last: int
    joint: str  # the stored hash of `mid`, which the second half starts from
    edge: list[bytes]  # the stored tree edge at `mid`, which it starts from too


def _start_second_half(
    reader: LedgerReader, session: ReadSession, anchors: dict[int, Any], tree_sizes: set[int]
) -> _SecondHalf | None:
    """For a chain of TWO_HALVES_FROM records or more, with no gap in its
    numbers, starts the check of its second half in a process of its own.
    None when one pass is the way. PostgreSQL verifies in one pass: its
    server streams the rows, and two halves on two cores were slower (1.6 s
    against 1.4 s for 200,000 records)."""
    target = reader.database_file
    if target is None:
        return None
    cursor = session.cursor()
    try:
        cursor.execute(f"SELECT COUNT(*), MAX(seq) FROM {EVENTS}")
        count, last = cursor.fetchone()
        if not last or int(count) != int(last) or int(last) < TWO_HALVES_FROM:
            return None
        last = int(last)
        mid = last // 2
        cursor.execute(reader.sql(f"SELECT hash FROM {EVENTS} WHERE seq = ?"), (mid,))
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is None or type(row[0]) is not str:
        return None
    edge_cursor = session.cursor()
    try:  # the second half checks the tree too, from its stored edge at `mid`
        edge = merkle.TreeBuilder.from_reader(mid, TreeReader(edge_cursor, reader.sql)).edge
    except (LedgerError, merkle.MerkleError):
        return None  # no tree there: one pass names what is missing
    finally:
        edge_cursor.close()
    params = {
        "target": target,
        "first": mid + 1,
        "last": last,
        "prev": row[0],
        "anchors": [s for s in anchors if mid < s <= last],
        "chunk": CHUNK,
        "tree_edge": [h.hex() for h in edge],
        "tree_sizes": [s for s in tree_sizes if mid < s],
    }
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", chain_module.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # a failure only means: one pass instead
            text=True,
        )
        assert process.stdin is not None
        process.stdin.write(json.dumps(params))
        process.stdin.close()
    except OSError:
        return None
    return _SecondHalf(process, mid, last, row[0], edge)


def _check_in_halves(
    reader: LedgerReader,
    session: ReadSession,
    second_half: _SecondHalf,
    anchors: dict[int, Any],
    tree_sizes: set[int],
) -> list[dict[str, Any]] | None:
    """Checks the first half here while the process checks the second; both
    halves intact and joined (the first ends on the hash the second starts
    from), or None: then one pass runs, and names what is wrong. Each half:
    its last hash, referenced blobs, purges and the anchors it passed, with
    integer seqs (the second's come back through JSON)."""
    process, mid, joint = second_half.process, second_half.mid, second_half.joint
    try:
        tree_cursor = session.cursor(stream=True)
        tree_cursor.execute(f"{SELECT_TREE} ORDER BY first_seq")
        tree = TreeCheck(tree_cursor, 0, [], [s for s in tree_sizes if s <= mid])
        cursor = session.cursor(stream=True)
        cursor.execute(reader.sql(f"{SELECT_ROWS} WHERE seq <= ? ORDER BY seq"), (mid,))
        first = check_segment(
            fetch_chunks(cursor, CHUNK), 1, mid, GENESIS_HASH, anchors, tree, tree_ends=False
        )
        cursor.close()
        tree_cursor.close()
        if not first["ok"] or first["last_hash"] != joint or tree.edge != second_half.edge:
            return None
        first["tree_roots"] = tree.roots
        assert process.stdout is not None
        out = process.stdout.read()
        if process.wait(timeout=60) != 0:
            return None
        second = json.loads(out)
        if not second.get("ok"):
            return None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    second["reached"] = [(int(s), h) for s, h in second["reached"]]
    second["referenced"] = {ref: int(s) for ref, s in second["referenced"].items()}
    second["purges"] = {int(s): blob for s, blob in second["purges"].items()}
    second["tree_roots"] = {int(s): bytes.fromhex(h) for s, h in second["tree_roots"].items()}
    return [first, second]


def verify_ledger(reader: LedgerReader, since: Checkpoint | None = None) -> VerifyReport:
    """Re-hashes the whole chain, every blob and every checkpoint (`Ledger.verify`)."""
    problems: list[tuple[int | None, str]] = []
    trusted = reader.trusted_keys()

    # Checkpoints first: the chain loop compares their heads as it passes them.
    anchors: dict[int, list[tuple[str, str]]] = {}
    stored = reader.checkpoints()
    signed_badly: set[int] = set()  # ids of checkpoints whose signature failed
    for checkpoint in stored:
        if trusted is None:
            problems.append(
                (checkpoint.seq, "checkpoint cannot be checked: no public key (keys folder)")
            )
        elif (bad := checkpoint.signature_problem(trusted)) is not None:
            problems.append((checkpoint.seq, bad))
            signed_badly.add(id(checkpoint))
        anchors.setdefault(checkpoint.seq, []).append((checkpoint.head, "a stored checkpoint"))
    if since is not None:
        if (bad := since.signature_problem(trusted)) is not None:
            problems.append((since.seq, f"{bad} (the given checkpoint)"))
            signed_badly.add(id(since))
        anchors.setdefault(since.seq, []).append((since.head, "the given checkpoint"))
    # The checkpoint notes: signatures now (those of a checkpoint whose
    # signature already failed are not named twice), roots against the tree.
    tree_anchors, note_issues = note_problems(stored, since, trusted, signed_badly)
    problems += note_issues
    tree_sizes = set(tree_anchors)
    tree_roots: dict[int, bytes] = {}
    tree_bad: int | str | None = None

    referenced: dict[str, int] = {}
    purge_events: dict[int, str] = {}
    purged: set[str] = set()
    prev, expected = GENESIS_HASH, 1
    broken = False
    for head, source in anchors.get(0, []):
        if head != GENESIS_HASH:
            problems.append((0, f"changed content: {source} at seq 0 names a different start"))

    def passed(reached: list[tuple[int, str]]) -> None:
        for seq, stored_hash in reached:
            for head, source in anchors[seq]:
                if head != stored_hash:
                    problems.append(
                        (
                            seq,
                            f"changed content: the ledger up to seq {seq} differs from "
                            f"{source} (history rewritten)",
                        )
                    )

    def note_blobs(refs: dict[str, int], purges: dict[int, str]) -> None:
        for ref, seq in refs.items():
            referenced.setdefault(ref, seq)
        purge_events.update(purges)
        purged.update(purges.values())

    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        reader.session() as session,
        ExitStack() as fetching,  # stops the prefetch thread first, on any exit
    ):
        # Started first: a long chain's second half is checked in a process
        # of its own while this one checks the first half.
        second_half = _start_second_half(reader, session, anchors, tree_sizes)
        # The indexed-columns query runs in the database (SQLite releases the
        # GIL while it steps) at the same time as the hashing loop below.
        columns_check = pool.submit(first_bad_columns, reader)
        halves = (
            _check_in_halves(reader, session, second_half, anchors, tree_sizes)
            if second_half
            else None
        )
        if halves is not None:
            for segment in halves:
                note_blobs(segment["referenced"], segment["purges"])
                passed(segment["reached"])
                tree_roots.update(segment["tree_roots"])
            prev, expected = halves[-1]["last_hash"], second_half.last + 1  # type: ignore[union-attr]
        tree_cursor = session.cursor(stream=True)
        tree = None
        if halves is None:  # one pass, which also names the first break
            tree_cursor.execute(f"{SELECT_TREE} ORDER BY first_seq")
            tree = TreeCheck(tree_cursor, 0, [], tree_sizes)
        cursor = session.cursor(stream=True)
        chunks: Iterator[list[tuple[Any, ...]]] = iter(())
        if halves is None:
            cursor.execute(f"{SELECT_ROWS} ORDER BY seq")
            chunks = _chunks(reader, cursor, fetching)
        while not broken and (chunk := next(chunks, None)):
            breakage: tuple[int, str] | None = None
            if chunk_is_intact(chunk, prev, expected):
                first, last = expected, expected + len(chunk) - 1
                marked = marked_rows(chunk)
                reached = [(s, chunk[s - first][2]) for s in anchors if first <= s <= last]
                prev, expected = chunk[-1][2], last + 1
                if tree is not None and tree.bad is None:
                    tree.feed([row[3] for row in chunk])
            else:  # the chain breaks in this chunk: find where, row by row
                marked, reached = [], []
                rows = chain(chunk, chain.from_iterable(chunks))
                for row in rows:
                    seq, _prev_hash, stored_hash, record = row
                    if not row_is_intact(row, prev, expected):
                        # Reported after the checkpoints of the rows before
                        # it, as the row loop always did.
                        breakage = diagnose(row, prev, expected, rows)
                        broken = True
                        break
                    if BLOBS_MARK in record or PURGE_MARK in record:
                        marked.append(row)
                    if seq in anchors:
                        reached.append((seq, stored_hash))
                    prev, expected = stored_hash, expected + 1
                    if tree is not None and tree.bad is None:
                        tree.feed([record])
            note_blobs(*blob_facts(marked))
            passed(reached)
            if breakage is not None:
                problems.append(breakage)
        count = expected - 1
        fetching.close()  # the cursor is this thread's again
        cursor.close()
        if tree is not None:
            if not broken:
                tree.finish()
            tree_roots.update(tree.roots)
            tree_bad = tree.bad
        tree_cursor.close()
        problems += tree_problem(tree_bad, tree_anchors, tree_roots, count)
        bad_columns = columns_check.result()
        # Only records before a chain break are known to be authentic.
        if bad_columns is not None and bad_columns < expected:
            problems.append(
                (
                    bad_columns,
                    f"changed content: the indexed columns of seq {bad_columns} "
                    "differ from its record",
                )
            )
        last_seq = expected - 1
        for anchor_seq, entries in anchors.items():
            if anchor_seq > last_seq and not broken:
                for _head, source in entries:
                    problems.append(
                        (
                            last_seq + 1,
                            f"missing record: the ledger ends at seq {last_seq} but {source} "
                            f"covers seq {anchor_seq} (records deleted from the end)",
                        )
                    )

        blob_count = purged_count = 0
        cursor = session.cursor(stream=True)
        cursor.execute(f"SELECT hash, content FROM {BLOBS}")
        present: set[str] = set()
        for hash_, content in cursor:
            blob_count += 1
            present.add(hash_)
            if content is None:
                purged_count += 1
                if hash_ not in purged:
                    problems.append(
                        (
                            referenced.get(hash_),
                            f"missing blob: content of {hash_} removed without a purge event",
                        )
                    )
            elif blob_hash(bytes(content)) != hash_:
                problems.append((referenced.get(hash_), f"blob content changed: {hash_}"))
        cursor.close()
        for ref, seq in referenced.items():
            if ref not in present:
                problems.append((seq, f"missing blob: {ref} referenced by seq {seq}"))

        cursor = session.cursor()
        cursor.execute(f"SELECT seq, blob_hash FROM {PURGES}")
        for seq, hash_ in cursor:
            if not broken and purge_events.get(int(seq)) != hash_:
                problems.append(
                    (int(seq), f"inserted record: purge of {hash_} has no purge event at seq {seq}")
                )
        cursor.close()

    counts = {
        "events": count,
        "blobs": blob_count,
        "purged_blobs": purged_count,
        "checkpoints": len(stored),
    }
    return VerifyReport.from_problems(problems, counts=counts, head_seq=last_seq, head_hash=prev)
