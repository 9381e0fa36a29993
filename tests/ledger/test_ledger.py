"""The ledger's API on a real SQLite file and a real PostgreSQL server:
append, read, blobs, batches, secrets, purge, checkpoints, append-only."""

from __future__ import annotations

import base64
import json
import os
import random
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import IntFlag
from pathlib import Path
from typing import Any

import pytest

from opskit import digests
from opskit.db import open_engine
from opskit.errors import LedgerError, SecretError
from opskit.ledger import Checkpoint, Ledger, blob_hash
from opskit.ledger.canonical import (
    GENESIS_HASH,
    acceptable,
    chain_hash,
    encode_canonical,
    encode_canonical_bytes,
    record_digest,
)
from opskit.ledger.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, ensure_key
from opskit.secrets import REDACTOR
from tests.fixtures.postgres import attacker_sql, open_ledger, plain_sql


@pytest.fixture
def ledger(ledger_backend: str, tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    yield ledger
    ledger.engine.dispose()


def test_append_chains_records_and_reads_them_back(ledger: Ledger) -> None:
    first = ledger.append(
        "change.created", actor="alice", payload={"title": "vlan 120"}, change_id="C1"
    )
    second = ledger.append(
        "host.applied", actor="alice", payload={"lines": 4}, change_id="C1", ci="sw1"
    )
    ledger.append("change.created", actor="bob", payload={}, change_id="C2")
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH and second.prev_hash == first.hash
    assert ledger.head() == (3, ledger.events(change_id="C2").__next__().hash)

    # The hash is recomputable from the stored canonical text, as docs/ledger-format.md says.
    (record,) = ledger.reader().query("SELECT record FROM ledger_events WHERE seq = 2")
    assert chain_hash(first.hash, record_digest(record[0])) == second.hash
    assert json.loads(record[0])["payload"] == {"lines": 4}

    assert [e.seq for e in ledger.events(change_id="C1")] == [1, 2]
    assert [e.seq for e in ledger.events(ci="sw1")] == [2]
    assert [e.seq for e in ledger.events(kind="change.created")] == [1, 3]
    assert [e.seq for e in ledger.events(since=second.at)] == [2, 3]
    assert list(ledger.events(since="2999-01-01T00:00:00+00:00")) == []
    read = next(ledger.events(ci="sw1"))
    assert read == second
    assert ledger.verify().ok


def test_batch_commits_all_or_nothing(ledger: Ledger) -> None:
    with ledger.batch() as batch:
        events = [batch.append("host.verified", actor="ci", payload={"n": n}) for n in range(5)]
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    with pytest.raises(RuntimeError), ledger.batch() as batch:
        batch.append("host.verified", actor="ci", payload={"n": 99})
        raise RuntimeError("the change engine failed half-way")
    assert ledger.head()[0] == 5
    assert ledger.append("after", actor="ci", payload={}).seq == 6
    # Code deep inside a batch may call ledger.append: it joins the batch.
    with ledger.batch() as batch:
        batch.append("outer", actor="ci", payload={})
        assert ledger.append("inner", actor="ci", payload={}).seq == 8
        assert ledger.head()[0] == 6  # not committed yet
    assert [e.kind for e in ledger.events(after_seq=6)] == ["outer", "inner"]
    assert ledger.verify().ok


def test_blobs_are_content_addressed_and_deduplicated(ledger: Ledger) -> None:
    config = "hostname sw1\ninterface Gi0/1\n description uplink\n"
    a = ledger.append("host.backup", actor="ci", payload={}, ci="sw1", blobs={"config": config})
    b = ledger.append("host.backup", actor="ci", payload={}, ci="sw2", blobs={"config": config})
    ref = a.payload["blobs"]["config"]
    assert ref == b.payload["blobs"]["config"] == blob_hash(config.encode())
    assert ledger.get_blob(ref) == config.encode()
    ((count,),) = ledger.reader().query("SELECT COUNT(*) FROM ledger_blobs")
    assert count == 1
    # A blob stored first can be referenced by hash.
    diff_ref = ledger.put_blob(b"+ vlan 120\n")
    c = ledger.append("host.applied", actor="ci", payload={"blobs": {"diff": diff_ref}})
    assert c.blobs == {"diff": diff_ref}
    with pytest.raises(LedgerError, match="no blob sha256:"):
        ledger.append("x", actor="ci", payload={"blobs": {"diff": "sha256:" + "0" * 64}})
    with pytest.raises(LedgerError, match="not in the ledger"):
        ledger.get_blob("sha256:" + "1" * 64)
    assert ledger.verify().counts["blobs"] == 2


def test_many_blobs_at_once_are_checked_like_one(
    ledger: Ledger, ledger_backend: str, monkeypatch: Any
) -> None:
    """`get_blobs` (the after-change compliance of remote hosts reads their
    configurations back): the same contents as `get_blob`, in chunks, and the
    same refusal for a missing, purged or altered blob."""
    from opskit.ledger import reader
    from tests.fixtures.postgres import attacker_sql

    monkeypatch.setattr(reader, "_BLOBS_PER_QUERY", 2)  # more than one chunk
    refs = [ledger.put_blob(f"hostname sw{n}\n") for n in range(5)]
    blobs = ledger.reader()
    assert blobs.get_blobs(refs + refs[:1]) == {ref: ledger.get_blob(ref) for ref in refs}
    assert blobs.get_blobs([]) == {}
    missing = "sha256:" + "1" * 64
    with pytest.raises(LedgerError, match=f"blob {missing}: not in the ledger"):
        blobs.get_blobs([refs[0], missing])
    attacker_sql(
        ledger_backend, "UPDATE ledger_blobs SET content = NULL WHERE hash = ?", (refs[1],)
    )
    with pytest.raises(LedgerError, match="content was purged"):
        blobs.get_blobs(refs)
    attacker_sql(
        ledger_backend, "UPDATE ledger_blobs SET content = ? WHERE hash = ?", (b"evil\n", refs[2])
    )
    with pytest.raises(LedgerError, match="does not match its hash"):
        blobs.get_blobs(refs[2:])


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"ratio": 0.5}, "floats are not allowed"),
        ({"n": 2**60}, "outside"),
        ({"items": (1, 2)}, "tuple is not a JSON value"),
        ({1: "x"}, "is not a string"),
        ({"nested": {"set": {1}}}, r"payload\.nested\.set: set"),
        ({"out": ["ok", "nul\x00byte"]}, r"payload\.out\[1\]: text contains U\+0000"),
        ({"text": "half \ud83d pair"}, "lone surrogate"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "datetime is not a JSON value"),
        ({"flag": IntFlag("Flag", "A").A}, "Flag is not a JSON value"),
    ],
)
def test_payloads_outside_the_canonical_types_are_refused(
    ledger: Ledger, payload: dict, message: str
) -> None:
    with pytest.raises(LedgerError, match=message):
        ledger.append("x", actor="ci", payload=payload)
    assert ledger.head()[0] == 0


def test_secret_in_payload_or_blob_is_refused_and_nothing_written(ledger: Ledger) -> None:
    secret = "s3cr3t-enable-pass"
    REDACTOR.register(secret)
    with pytest.raises(SecretError) as info:
        ledger.append("host.applied", actor="ci", payload={"cmd": f"enable secret {secret}"})
    assert secret not in str(info.value)
    with pytest.raises(SecretError):
        ledger.append("host.backup", actor="ci", payload={}, blobs={"config": f"x {secret} y"})
    with pytest.raises(SecretError):
        ledger.append("host.backup", actor=secret, payload={})
    with pytest.raises(SecretError), ledger.batch() as batch:
        batch.append("ok", actor="ci", payload={})
        batch.put_blob(secret.encode())
    assert ledger.head()[0] == 0
    ((blobs,),) = ledger.reader().query("SELECT COUNT(*) FROM ledger_blobs")
    assert blobs == 0
    dump = "".join(str(row) for row in ledger.reader().query("SELECT record FROM ledger_events"))
    assert secret not in dump


def test_purge_removes_content_keeps_hash_and_is_an_event(ledger: Ledger) -> None:
    event = ledger.append("host.backup", actor="ci", payload={}, ci="sw1", blobs={"config": "old"})
    ref = event.payload["blobs"]["config"]
    ledger.checkpoint("auditor")
    purge = ledger.purge_blob(ref, "alice", "retention: 90 days")
    assert (purge.seq, purge.kind, purge.payload) == (
        2,
        "ledger.blob_purged",
        {"blob": ref, "reason": "retention: 90 days"},
    )
    with pytest.raises(LedgerError, match="purged"):
        ledger.get_blob(ref)
    with pytest.raises(LedgerError, match="already purged"):
        ledger.purge_blob(ref, "alice", "again")
    report = ledger.verify()
    assert report.ok, report.problem
    assert report.counts["purged_blobs"] == 1
    # Storing the same content again restores it.
    ledger.append("host.backup", actor="ci", payload={}, ci="sw1", blobs={"config": "old"})
    assert ledger.get_blob(ref) == b"old"
    assert ledger.verify().ok


def test_tables_refuse_update_and_delete(ledger: Ledger, ledger_backend: str) -> None:
    event = ledger.append("x", actor="ci", payload={}, blobs={"b": "content"})
    ledger.checkpoint("ci")
    ref = event.payload["blobs"]["b"]
    statements = [
        "UPDATE ledger_events SET actor = 'mallory'",
        "DELETE FROM ledger_events",
        "DELETE FROM ledger_blobs",
        f"UPDATE ledger_blobs SET content = NULL WHERE hash = '{ref}'",  # no purge record
        "UPDATE ledger_blobs SET size = 1",
        "UPDATE ledger_checkpoints SET seq = 0",
        "DELETE FROM ledger_checkpoints",
        "UPDATE ledger_tree SET last_seq = 0",
        "DELETE FROM ledger_tree_heads",
        "UPDATE ledger_cosignatures SET size = 0",
        "DELETE FROM ledger_cosignatures",
    ]
    # A witness's cosignature beside the checkpoint: inserted, never changed.
    plain_sql(
        ledger_backend,
        "INSERT INTO ledger_cosignatures (checkpoint_id, line, witness, size) VALUES (?, ?, ?, ?)",
        (1, "— w.example/w AAAA", "w.example/w+00000000", 1),
    )
    if ledger_backend.startswith("postgres"):
        statements += ["TRUNCATE ledger_events", "TRUNCATE ledger_cosignatures"]
    for statement in statements:
        with pytest.raises(Exception, match="append-only"):
            plain_sql(ledger_backend, statement)
    assert ledger.verify().ok
    assert ledger.get_blob(ref) == b"content"


def test_checkpoint_is_signed_and_a_forged_signature_is_found(
    ledger: Ledger, ledger_backend: str, tmp_path: Path
) -> None:
    ledger.append("x", actor="ci", payload={"n": 1})
    checkpoint = ledger.checkpoint("auditor")
    assert (checkpoint.seq, checkpoint.head) == ledger.head()
    assert checkpoint.signature_problem(ledger.trusted_keys()) is None
    path = tmp_path / "cp.json"
    checkpoint.save(path)
    assert Checkpoint.load(path) == checkpoint

    signature = bytearray(base64.b64decode(checkpoint.signature))
    signature[5] ^= 0x01
    attacker_sql(
        ledger_backend,
        "UPDATE ledger_checkpoints SET signature = ?",
        (base64.b64encode(bytes(signature)).decode(),),
    )
    report = ledger.verify()
    assert not report.ok
    assert (report.first_bad_seq, report.problem) == (1, "bad checkpoint signature at seq 1")


def test_checkpoint_by_an_unknown_key_is_refused(ledger: Ledger, tmp_path: Path) -> None:
    ledger.append("x", actor="ci", payload={})
    other = Ledger(ledger.engine, keys_dir=tmp_path / "other-keys")
    ensure_key(other.keys_dir)  # type: ignore[arg-type]
    other.checkpoint("mallory")
    report = ledger.verify()
    assert not report.ok and "unknown key" in (report.problem or "")
    # Trusting the other workspace's public key (a team on one database) accepts it.
    trusted = ledger.keys_dir / "trusted"  # type: ignore[operator]
    trusted.mkdir()
    (trusted / "other.pub").write_bytes((other.keys_dir / PUBLIC_KEY_FILE).read_bytes())  # type: ignore[operator]
    assert ledger.verify().ok


def test_consistency_since_an_older_checkpoint(ledger: Ledger, ledger_backend: str) -> None:
    for n in range(5):
        ledger.append("x", actor="ci", payload={"n": n})
    old = ledger.checkpoint("auditor")
    for n in range(5, 8):
        ledger.append("x", actor="ci", payload={"n": n})
    assert ledger.verify(since_checkpoint=old).ok

    # Rewrite history consistently (every hash recomputed, stored checkpoints
    # removed): only the checkpoint the auditor kept can tell.
    rows = attacker_sql(ledger_backend, "SELECT seq, record FROM ledger_events ORDER BY seq")
    attacker_sql(ledger_backend, "DELETE FROM ledger_checkpoints")
    prev = GENESIS_HASH
    for seq, record in rows:
        if seq == 3:
            record = record.replace('"n":2', '"n":200')
        hash_ = chain_hash(prev, record_digest(record))
        attacker_sql(
            ledger_backend,
            "UPDATE ledger_events SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
            (record, prev, hash_, seq),
        )
        prev = hash_
    # The Merkle tree still has the old leaves: verify names the rewritten one.
    assert "the Merkle tree leaf of seq 3" in (ledger.verify().problem or "")
    # The attacker rebuilds the tree from the rewritten records too.
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree")
    Ledger(ledger.engine, keys_dir=ledger.keys_dir).build_tree()
    assert ledger.verify().ok  # self-consistent: nothing else could notice
    report = ledger.verify(since_checkpoint=old)
    assert not report.ok
    assert report.first_bad_seq == old.seq
    assert "the given checkpoint" in (report.problem or "")


def test_truncation_after_a_checkpoint_is_found(ledger: Ledger, ledger_backend: str) -> None:
    for n in range(4):
        ledger.append("x", actor="ci", payload={"n": n})
    old = ledger.checkpoint("auditor")
    attacker_sql(ledger_backend, "DELETE FROM ledger_checkpoints")
    attacker_sql(ledger_backend, "DELETE FROM ledger_events WHERE seq >= 3")
    report = ledger.verify(since_checkpoint=old)
    assert (report.first_bad_seq, report.problem is not None) == (3, True)
    assert "missing record" in report.problem  # type: ignore[operator]


def test_workspace_key_files(workspace) -> None:  # type: ignore[no-untyped-def]
    private = workspace.keys_dir / PRIVATE_KEY_FILE
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert (workspace.keys_dir / PUBLIC_KEY_FILE).read_text().startswith("-----BEGIN PUBLIC KEY")
    ledger = Ledger.open(workspace)
    ledger.append("change.created", actor="alice", payload={}, change_id="C1")
    assert ledger.checkpoint("alice").key_id in ledger.trusted_keys()  # type: ignore[operator]
    assert ledger.verify().ok
    # A lost key is replaced on next use; the old key's checkpoints then stand out.
    shutil.rmtree(workspace.keys_dir)
    ledger = Ledger.open(workspace)
    assert private.exists()
    report = ledger.verify()
    assert not report.ok and "unknown key" in (report.problem or "")


@pytest.mark.postgres
def test_postgres_role_with_insert_and_select_only(postgres_db: str, tmp_path: Path) -> None:
    """The role docs/operations.md documents can append and read, never rewrite."""
    import psycopg

    ledger = open_ledger(postgres_db, tmp_path / "keys")
    ledger.append("x", actor="ci", payload={"n": 1})
    owner = postgres_db.replace("postgresql+psycopg://", "postgresql://")
    docs = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    role_sql = docs.split("<!-- role-sql -->\n```sql\n", 1)[1].split("```", 1)[0]
    with psycopg.connect(owner, autocommit=True) as connection:
        connection.execute(role_sql)  # type: ignore[arg-type]
        connection.execute("ALTER ROLE opskit_writer LOGIN")
        connection.execute("ALTER ROLE opskit_retention LOGIN")
    writer_url = postgres_db.replace("//opskit@", "//opskit_writer@")
    writer = Ledger(open_engine(writer_url), keys_dir=tmp_path / "keys")
    event = writer.append("y", actor="ci", payload={"n": 2}, blobs={"b": "x"})
    with writer.batch() as batch:  # many rows: written with COPY, which needs only INSERT
        for n in range(3, 8):
            batch.append("z", actor="ci", payload={"n": n})
    writer.checkpoint("ci")
    assert writer.verify().ok
    with pytest.raises(LedgerError, match="permission denied"):
        writer.purge_blob(event.payload["blobs"]["b"], "ci", "retention")
    retention_url = postgres_db.replace("//opskit@", "//opskit_retention@")
    retention = Ledger(open_engine(retention_url), keys_dir=tmp_path / "keys")
    retention.purge_blob(event.payload["blobs"]["b"], "ci", "retention")
    assert retention.verify().ok
    retention.engine.dispose()
    with psycopg.connect(writer_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        for statement in (
            "ALTER TABLE ledger_events DISABLE TRIGGER ALL",
            "SET session_replication_role = replica",
            "DROP TRIGGER ledger_events_update_or_delete ON ledger_events",
        ):
            with pytest.raises(psycopg.errors.Error):
                conn.execute(statement)
            conn.rollback()
    writer.engine.dispose()
    ledger.engine.dispose()


def test_threads_share_one_ledger(ledger: Ledger) -> None:
    """Fan-out workers append from threads through one Ledger object."""
    from concurrent.futures import ThreadPoolExecutor

    def work(worker: int) -> list[int]:
        return [
            ledger.append("host.verified", actor=f"t{worker}", payload={"n": n}).seq
            for n in range(15)
        ]

    with ThreadPoolExecutor(max_workers=4) as pool:
        seqs = [seq for result in pool.map(work, range(4)) for seq in result]
    assert sorted(seqs) == list(range(1, 61))
    report = ledger.verify()
    assert report.ok and report.head_seq == 60


def test_unicode_and_escapes_round_trip(ledger: Ledger) -> None:
    tricky = 'zoë 日本 "q" back\\slash\nline \t\b\f\r \x01\x1f\x7f \u2028 \U0001f600 </'
    payload = {"text": tricky, "ключ": [tricky, None, True, -(2**53 - 1)], "": {}}
    event = ledger.append("x", actor="zoë", payload=payload, ci=tricky, change_id="Ç-1")
    (read,) = list(ledger.events(ci=tricky))
    assert read == event and read.payload == payload
    # The stored text is the JCS form: raw UTF-8, sorted keys, only required escapes.
    ((record,),) = ledger.reader().query("SELECT record FROM ledger_events")
    assert '"":{}' in record and "日本" in record and "\\n" in record and "\\u0001" in record
    assert ledger.verify().ok


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    """A random value of the canonical types: the strings mix ASCII, escapes,
    control characters, the rest of the BMP and astral characters."""

    def text() -> str:
        ranges = [(0x01, 0x7F), (0x01, 0x20), (0x80, 0xD7FF), (0xE000, 0xFFFF), (0x10000, 0x10FFFF)]
        return "".join(
            chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 8))
        ).replace("\x00", "")

    roll = rng.random() if depth < 3 else rng.random() * 0.6
    if roll < 0.15:
        return rng.randint(-(2**53 - 1), 2**53 - 1)
    if roll < 0.3:
        return rng.choice([True, False, None, 0, -1])
    if roll < 0.6:
        return text()
    if roll < 0.8:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [text().encode("utf-16", "surrogatepass").decode("utf-16")[:6] for _ in range(4)]
    return {key: _random_value(rng, depth + 1) for key in keys if max(key, default="a") <= "\uffff"}


def test_fast_encoder_writes_the_documented_canonical_bytes() -> None:
    """The append path encodes with orjson; docs/ledger-format.md documents json.dumps.
    Both must give the same bytes for every value the ledger accepts, and so
    must `opskit.digests.canonical_json`, the one encoder of the other digests."""
    rng = random.Random(20261123)
    for _ in range(20_000):
        value = {"payload": _random_value(rng), "seq": rng.randint(1, 2**53 - 1)}
        assert acceptable(value)
        documented = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert (
            encode_canonical_bytes(value) == documented.encode() == encode_canonical(value).encode()
        )
        # The digests outside the chain (inventory, runbook, binding) use the same form.
        assert digests.canonical_json(value) == documented


def test_missing_postgres_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.servers import missing

    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL is required in CI"):
        missing("PostgreSQL", "binaries not found")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        missing("PostgreSQL", "binaries not found")


def test_every_query_of_audit_log_uses_an_index_in_sqlite(tmp_path: Path) -> None:
    """A change's events, a CI's, a kind's: none reads the whole table (a CI's
    history scans the (change_id, ci) index only, then reads its records by key)."""
    ledger = open_ledger(f"sqlite:///{tmp_path / 'l.db'}", None)
    ledger.append("host.applied", actor="ci", payload={}, change_id="C1", ci="sw1")
    statements: list[str] = []
    fairy = ledger.engine.raw_connection()  # the pool hands this connection out again
    fairy.driver_connection.set_trace_callback(statements.append)
    fairy.close()
    filters: list[dict[str, str]] = [
        {"change_id": "C1"},
        {"ci": "sw1"},
        {"kind": "host.applied"},
        {"change_id": "C1", "ci": "sw1"},
    ]
    for chosen in filters:
        assert [e.seq for e in ledger.events(**chosen)] == [1], chosen
    queries = [s for s in statements if s.startswith("SELECT record")]
    assert len(queries) == len(filters), statements
    for query in queries:
        plan = [str(row[-1]) for row in ledger.reader().query(f"EXPLAIN QUERY PLAN {query}")]
        table_reads = [step for step in plan if step.startswith(("SCAN", "SEARCH"))]
        assert table_reads, plan
        for step in table_reads:  # a search by key, or a scan of an index alone
            assert step.startswith("SEARCH") or "COVERING INDEX" in step, plan
    ledger.engine.dispose()
