"""Tampering with the stored ledger, the way someone with access to the
database would (triggers dropped or switched off, or the SQLite file edited
byte by byte), is found by `verify`, which names the first bad sequence and
what is wrong."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from opskit.ledger import verify as verify_module
from opskit.ledger.canonical import chain_hash, record_digest
from tests.fixtures.postgres import attacker_sql, open_ledger, sqlite_path

EVENTS = 12


@pytest.fixture(params=[None, 5, "halves"], ids=["one-chunk", "chunks-of-5", "two-halves"])
def filled(
    ledger_backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Ledger, str]]:
    """A ledger of 12 events over two interleaved changes, one blob per change.

    Verified in one chunk, in chunks of 5 so that intact chunks before the
    tampered one take the fast path and the break is found across chunks, or
    in two halves (the second in its own process) as a long chain is."""
    if request.param == "halves":
        monkeypatch.setattr(verify_module, "TWO_HALVES_FROM", 2)
        monkeypatch.setattr(verify_module, "CHUNK", 3)
    elif request.param is not None:
        monkeypatch.setattr(verify_module, "CHUNK", request.param)
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    for n in range(1, EVENTS + 1):
        change = "C1" if n % 2 else "C2"
        blobs = {"config": f"hostname sw{n}\n"} if n in (4, 5) else None
        ledger.append(
            "host.applied",
            actor="ci",
            payload={"n": n, "lines": ["vlan 120", "name users"]},
            change_id=change,
            ci=f"sw{n}",
            blobs=blobs,
        )
    assert ledger.verify().ok
    yield ledger, ledger_backend
    ledger.engine.dispose()


def record_of(url: str, seq: int) -> str:
    ((record,),) = attacker_sql(url, "SELECT record FROM ledger_events WHERE seq = ?", (seq,))
    return record


def flip(text: str, index: int) -> str:
    """`text` with one character changed to another printable one."""
    replacement = "x" if text[index] != "x" else "y"
    return text[:index] + replacement + text[index + 1 :]


def test_any_changed_byte_of_a_record_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    rng = random.Random(4)
    for _trial in range(12):
        seq = rng.randint(1, EVENTS)
        column = rng.choice(["record", "record", "record", "hash", "prev_hash"])
        ((original,),) = attacker_sql(
            url, f"SELECT {column} FROM ledger_events WHERE seq = ?", (seq,)
        )
        index = rng.randrange(len(original))
        attacker_sql(
            url,
            f"UPDATE ledger_events SET {column} = ? WHERE seq = ?",
            (flip(original, index), seq),
        )
        report = ledger.verify()
        assert not report.ok, (seq, column, index)
        assert report.first_bad_seq == seq, (report.problem, column, index)
        assert report.problem.startswith("changed content")  # type: ignore[union-attr]
        attacker_sql(url, f"UPDATE ledger_events SET {column} = ? WHERE seq = ?", (original, seq))
        assert ledger.verify().ok


def test_changed_indexed_column_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    attacker_sql(url, "UPDATE ledger_events SET change_id = 'C9' WHERE seq = 7")
    report = ledger.verify()
    assert report.first_bad_seq == 7
    assert "indexed columns" in report.problem  # type: ignore[operator]


def test_record_rewritten_with_recomputed_hash_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    record = record_of(url, 5).replace('"n":5', '"n":50')
    ((prev,),) = attacker_sql(url, "SELECT prev_hash FROM ledger_events WHERE seq = 5")
    attacker_sql(
        url,
        "UPDATE ledger_events SET record = ?, hash = ? WHERE seq = 5",
        (record, chain_hash(prev, record_digest(record))),
    )
    report = ledger.verify()
    assert report.first_bad_seq == 5
    assert report.problem.startswith("changed content: record 5 was rewritten")  # type: ignore[union-attr]


def test_deleted_record_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    attacker_sql(url, "DELETE FROM ledger_events WHERE seq = 6")
    report = ledger.verify()
    assert report.first_bad_seq == 6
    assert report.problem.startswith("missing record: seq 6 absent")  # type: ignore[union-attr]


def test_deleted_record_with_renumbering_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    attacker_sql(url, "DELETE FROM ledger_events WHERE seq = 6")
    for seq in range(7, EVENTS + 1):
        attacker_sql(url, "UPDATE ledger_events SET seq = ? WHERE seq = ?", (seq - 1, seq))
    report = ledger.verify()
    assert report.first_bad_seq == 6
    assert "the record of seq 6 was deleted" in report.problem  # type: ignore[operator]


def test_inserted_record_is_found(filled: tuple[Ledger, str]) -> None:
    """A forged record slipped in at seq 4, later records shifted up by one."""
    ledger, url = filled
    for seq in range(EVENTS, 3, -1):
        attacker_sql(url, "UPDATE ledger_events SET seq = ? WHERE seq = ?", (seq + 1, seq))
    ((prev,),) = attacker_sql(url, "SELECT hash FROM ledger_events WHERE seq = 3")
    forged = record_of(url, 3).replace('"seq":3}', '"seq":4}').replace('"n":3', '"n":333')
    attacker_sql(
        url,
        "INSERT INTO ledger_events (seq, at, actor, kind, change_id, ci, prev_hash, hash, record) "
        "SELECT 4, at, actor, kind, change_id, ci, ?, ?, ? FROM ledger_events WHERE seq = 3",
        (prev, chain_hash(prev, record_digest(forged)), forged),
    )
    report = ledger.verify()
    assert report.first_bad_seq == 4
    assert report.problem.startswith("inserted record")  # type: ignore[union-attr]


def test_swapped_records_are_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    attacker_sql(url, "UPDATE ledger_events SET seq = -1 WHERE seq = 3")
    attacker_sql(url, "UPDATE ledger_events SET seq = 3 WHERE seq = 8")
    attacker_sql(url, "UPDATE ledger_events SET seq = 8 WHERE seq = -1")
    report = ledger.verify()
    assert report.first_bad_seq == 3
    assert report.problem == (  # type: ignore[comparison-overlap]
        "reordered record: seq 3 holds the record of seq 8; the record of seq 3 sits at seq 8"
    )


def test_changed_blob_content_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    (event,) = [e for e in ledger.events() if e.seq == 4]
    ref = event.payload["blobs"]["config"]
    attacker_sql(
        url, "UPDATE ledger_blobs SET content = ? WHERE hash = ?", (b"hostname evil\n", ref)
    )
    report = ledger.verify()
    assert (report.first_bad_seq, report.problem) == (4, f"blob content changed: {ref}")


def test_removed_blob_is_found(filled: tuple[Ledger, str]) -> None:
    ledger, url = filled
    (event,) = [e for e in ledger.events() if e.seq == 5]
    ref = event.payload["blobs"]["config"]
    attacker_sql(url, "UPDATE ledger_blobs SET content = NULL WHERE hash = ?", (ref,))
    report = ledger.verify()
    assert report.first_bad_seq == 5
    assert report.problem.startswith("missing blob")  # type: ignore[union-attr]
    attacker_sql(url, "DELETE FROM ledger_blobs WHERE hash = ?", (ref,))
    report = ledger.verify()
    assert (report.first_bad_seq, report.problem) == (5, f"missing blob: {ref} referenced by seq 5")


def test_sqlite_file_edited_byte_by_byte(tmp_path: Path) -> None:
    """The attacker edits the database file itself, not through SQL."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url, None)
    marker = "unique-marker-in-record-7"
    for n in range(1, 10):
        ledger.append(
            "x", actor="ci", payload={"note": marker if n == 7 else f"n{n}"},
            blobs={"out": f"blob-marker-{n}-" * 4} if n == 2 else None,
        )  # fmt: skip
    ledger.engine.dispose()
    connection = sqlite3.connect(sqlite_path(url))
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()

    path = sqlite_path(url)
    data = bytearray(path.read_bytes())
    position = data.index(marker.encode())
    data[position + 3] ^= 0x20  # flip the case of one letter inside record 7
    blob_position = data.index(b"blob-marker-2-")
    data[blob_position] ^= 0x20
    path.write_bytes(bytes(data))

    ledger = open_ledger(url, None)
    report = ledger.verify()
    assert report.first_bad_seq == 2  # the blob referenced by seq 2
    assert [p[0] for p in report.problems] == [2, 7]
    assert report.problems[0][1].startswith("blob content changed")
    assert report.problems[1][1] == "changed content: record 7 does not match its stored hash"
    ledger.engine.dispose()


@pytest.mark.parametrize("chunk", [1, 2, 5, 10_000])
def test_a_forged_record_under_a_checkpoint_reads_the_same_in_any_chunking(
    ledger_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """A record forged at a checkpointed seq (the rest shifted up) is reported
    with the same problems in the same order wherever the chunk edges fall:
    the checkpoint mismatch at seq 6 first, as the row-by-row loop found it."""
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    for n in range(1, 7):
        ledger.append("x", actor="ci", payload={"n": n})
    ledger.checkpoint("ci")
    for n in range(7, 10):
        ledger.append("x", actor="ci", payload={"n": n})
    for seq in range(9, 5, -1):
        attacker_sql(
            ledger_backend, "UPDATE ledger_events SET seq = ? WHERE seq = ?", (seq + 1, seq)
        )
    ((prev,),) = attacker_sql(ledger_backend, "SELECT hash FROM ledger_events WHERE seq = 5")
    ((record,),) = attacker_sql(ledger_backend, "SELECT record FROM ledger_events WHERE seq = 7")
    forged = record.replace('"seq":7}', '"seq":6}').replace('"n":6', '"n":66')
    attacker_sql(
        ledger_backend,
        "INSERT INTO ledger_events (seq, at, actor, kind, change_id, ci, prev_hash, hash, record) "
        "SELECT 6, at, actor, kind, change_id, ci, ?, ?, ? FROM ledger_events WHERE seq = 7",
        (prev, chain_hash(prev, record_digest(forged)), forged),
    )
    monkeypatch.setattr(verify_module, "CHUNK", chunk)
    report = ledger.verify()
    assert report.first_bad_seq == 6
    assert report.problems == [
        (6, "changed content: the ledger up to seq 6 differs from a stored checkpoint "
            "(history rewritten)"),
        (6, "inserted record: 1 record(s) inserted at seq 6; "
            "the record of seq 6 now sits at seq 7"),
        # The forged record is not the leaf the tree holds for seq 6.
        (6, "changed content: the Merkle tree leaf of seq 6 stored with seq 6 "
            "is missing or differs from the records"),
    ]  # fmt: skip
    ledger.engine.dispose()


@pytest.mark.parametrize(
    ("column", "seq"),
    [("record", 7), ("record", 1), ("prev_hash", 7), ("hash", 12), ("ci", 7), ("actor", 3)],
)
def test_sqlite_value_stored_as_a_blob_is_named(tmp_path: Path, column: str, seq: int) -> None:
    """SQLite lets a TEXT column hold a BLOB of the same bytes: verify names
    the record as changed content instead of failing with a Python error."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = open_ledger(url, None)
    with ledger.batch() as batch:
        for n in range(1, EVENTS + 1):
            batch.append("x", actor="ci", payload={"n": n}, ci=f"sw{n}")
    attacker_sql(
        url, f"UPDATE ledger_events SET {column} = CAST({column} AS BLOB) WHERE seq = ?", (seq,)
    )
    report = ledger.verify()
    assert (report.ok, report.first_bad_seq) == (False, seq), report.problem
    assert report.problem.startswith("changed content")  # type: ignore[union-attr]
    ledger.engine.dispose()


def test_two_halves_report_what_one_pass_reports(
    ledger_backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long SQLite chain is checked in two halves, the second in its own process:
    on a sound ledger (blobs, a purge, checkpoints on both sides of the
    middle) the report equals one pass's, and the halves were really used.
    A history rewritten in the second half, consistently, is still caught by
    the checkpoint there (the second process reports the hash it passed)."""
    from opskit.ledger.chain import PURGE_KIND as CHAIN_PURGE_KIND
    from opskit.ledger.model import PURGE_KIND

    assert CHAIN_PURGE_KIND == PURGE_KIND  # chain.py imports nothing of opskit
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    refs = []
    for n in range(1, 41):
        event = ledger.append(
            "host.backup", actor="ci", payload={"n": n}, ci=f"sw{n}",
            blobs={"config": f"hostname sw{n}\n"} if n % 7 == 0 else None,
        )  # fmt: skip
        refs += list(event.blobs.values())
        if n in (10, 30):
            ledger.checkpoint("ci")
    ledger.purge_blob(refs[-1], "alice", "retention")
    used: list[bool] = []
    real = verify_module._check_in_halves

    def spy(*args):  # type: ignore[no-untyped-def]
        result = real(*args)
        used.append(result is not None)
        return result

    monkeypatch.setattr(verify_module, "_check_in_halves", spy)
    one_pass = ledger.verify()
    assert used == []  # 41 records: below the threshold
    monkeypatch.setattr(verify_module, "TWO_HALVES_FROM", 2)
    monkeypatch.setattr(verify_module, "CHUNK", 4)
    halves = ledger.verify()
    # PostgreSQL verifies in one pass (measured slower in two halves).
    in_halves = ledger_backend.startswith("sqlite")
    assert used == ([True] if in_halves else [])
    assert one_pass.ok and halves.ok
    assert (halves.counts, halves.head_seq, halves.head_hash) == (
        one_pass.counts,
        one_pass.head_seq,
        one_pass.head_hash,
    )
    assert halves.counts["purged_blobs"] == 1 and halves.counts["checkpoints"] == 2
    # Rewrite every record from seq 25 on, each hash recomputed: a consistent
    # forgery that only the checkpoint at seq 30 (second half) can reveal.
    rows = attacker_sql(
        ledger_backend, "SELECT seq, record FROM ledger_events WHERE seq >= 25 ORDER BY seq"
    )
    ((prev,),) = attacker_sql(ledger_backend, "SELECT hash FROM ledger_events WHERE seq = 24")
    for seq, record in rows:
        forged = record.replace('"actor":"ci"', '"actor":"cj"')
        digest = chain_hash(prev, record_digest(forged))
        attacker_sql(
            ledger_backend,
            "UPDATE ledger_events SET record = ?, actor = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (forged, "cj" if "cj" in forged else "alice", prev, digest, seq),
        )
        prev = digest
    # ... and the Merkle tree rebuilt from the forged records.
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree WHERE first_seq >= 25")
    Ledger(ledger.engine, keys_dir=tmp_path / "keys").build_tree()
    report = ledger.verify()
    assert used == ([True, True] if in_halves else [])  # halves intact and joined...
    assert (30, "changed content: the ledger up to seq 30 differs from a stored checkpoint "
                "(history rewritten)") in report.problems  # fmt: skip
    assert not report.ok
    ledger.engine.dispose()


def test_a_column_holding_the_escaped_json_text_of_its_field_is_found(
    ledger_backend: str, tmp_path: Path
) -> None:
    """Columns with a quote, a backslash or a control character verify; a
    column set to the JSON-escaped text of its field (which a comparison by
    plain concatenation would take for the field) is found."""
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    ledger.append("k", actor='ops "lead"\\', payload={}, change_id="C1", ci="sw1")
    ledger.append("k", actor="ci", payload={}, change_id="C\n1", ci="sw\t1")
    assert ledger.verify().ok
    for seq, column, escaped in (
        (1, "actor", 'ops \\"lead\\"\\\\'),
        (2, "change_id", "C\\n1"),
        (2, "ci", "sw\\t1"),
    ):
        ((original,),) = attacker_sql(
            ledger_backend, f"SELECT {column} FROM ledger_events WHERE seq = ?", (seq,)
        )
        attacker_sql(
            ledger_backend, f"UPDATE ledger_events SET {column} = ? WHERE seq = ?", (escaped, seq)
        )
        report = ledger.verify()
        assert report.first_bad_seq == seq, (column, report.problem)
        assert "indexed columns" in report.problem  # type: ignore[operator]
        attacker_sql(
            ledger_backend, f"UPDATE ledger_events SET {column} = ? WHERE seq = ?", (original, seq)
        )
    assert ledger.verify().ok
    ledger.engine.dispose()
