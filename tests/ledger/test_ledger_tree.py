"""The ledger's Merkle tree on a real SQLite file and a real PostgreSQL server:
the stored hashes are Go tlog's layout over the records' canonical bytes,
proofs verify with opskit.tlog.merkle, checkpoints are C2SP notes that are
never signed for an inconsistent tree, verify names a tampered node, a purge
keeps the tree valid and an older ledger gets its tree."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.errors import LedgerError, OpskitError
from opskit.ledger import Ledger
from opskit.ledger.keys import key_id, load_private_key
from opskit.ledger.proofs import log_vkey, prove_consistency, prove_record
from opskit.tlog import merkle
from opskit.tlog.checkpoint import open_checkpoint
from opskit.tlog.note import Verifier
from opskit.workspace import Workspace
from tests.fixtures.postgres import attacker_sql, open_ledger
from tests.fixtures.processes import crash_context


@pytest.fixture
def ledger(ledger_backend: str, tmp_path: Path) -> Iterator[Ledger]:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    yield ledger
    ledger.engine.dispose()


def fill(ledger: Ledger, singles: int, batches: list[int]) -> None:
    for n in range(singles):
        ledger.append("test.single", actor="ci", payload={"n": n, "text": "é ☃ 𝄞"})
    for size in batches:
        with ledger.batch() as batch:
            for n in range(size):
                batch.append("test.batch", actor="ci", payload={"n": n}, change_id="C1")


def records(ledger: Ledger) -> list[bytes]:
    """The canonical bytes of every record, as the chain hashes them."""
    rows = ledger.reader().query("SELECT record FROM ledger_events ORDER BY seq")
    return [record.encode() for (record,) in rows]


def reference_tree(leaves: list[bytes]) -> merkle.MemoryHashes:
    """Go tlog's stored-hash sequence built from scratch by opskit.tlog.merkle."""
    hashes = merkle.MemoryHashes()
    for n, data in enumerate(leaves):
        hashes.extend(merkle.stored_hashes(n, data, hashes))
    return hashes


def stored_sequence(ledger: Ledger) -> bytes:
    rows = ledger.reader().query("SELECT hashes FROM ledger_tree ORDER BY first_seq")
    return b"".join(bytes(hashes) for (hashes,) in rows)


def test_tree_is_go_layout_over_the_records_and_proves_every_record(ledger: Ledger) -> None:
    fill(ledger, 5, [1, 7, 16, 3])
    blob_event = ledger.append("test.blob", actor="ci", blobs={"config": "hostname sw1\n"})
    leaves = records(ledger)
    reference = reference_tree(leaves)
    assert stored_sequence(ledger) == b"".join(reference)  # exactly Go's stored hashes

    checkpoint = ledger.checkpoint("auditor")
    verifier = Verifier.from_vkey(log_vkey(ledger))
    assert checkpoint.note is not None
    tree_head, _ = open_checkpoint(checkpoint.note, [verifier])
    assert tree_head.origin == ledger.origin
    assert tree_head.size == len(leaves) == blob_event.seq
    assert tree_head.root_hash == merkle.tree_hash(len(leaves), reference)
    for seq in range(1, len(leaves) + 1):
        proof = prove_record(ledger, seq)
        assert proof.extra == leaves[seq - 1] and proof.index == seq - 1
        merkle.check_record(
            proof.hashes,
            tree_head.size,
            tree_head.root_hash,
            seq - 1,
            merkle.record_hash(proof.extra),
        )
    assert ledger.verify().ok


@settings(max_examples=15, deadline=None)
@given(batches=st.lists(st.integers(1, 40), min_size=1, max_size=8))
def test_any_sequence_of_writes_stores_the_reference_tree(batches: list[int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(f"sqlite:///{folder}/ledger.db", None)
        for size in batches:
            fill(ledger, 0, [size])
            # A new Ledger object: the tree edge comes from the database, not the cache.
            ledger.engine.dispose()
            ledger = Ledger(ledger.engine)
        assert stored_sequence(ledger) == b"".join(reference_tree(records(ledger)))
        ledger.engine.dispose()


def test_consistency_proofs_between_checkpoints(ledger: Ledger) -> None:
    fill(ledger, 3, [10])
    first = ledger.checkpoint("ci")
    fill(ledger, 2, [21])
    ledger.checkpoint("ci")
    body = prove_consistency(ledger, first.seq)
    old, _ = open_checkpoint(first.note or "", [Verifier.from_vkey(log_vkey(ledger))])
    assert body.old_size == old.size == 13 and body.checkpoint.size == 36
    merkle.check_tree(body.hashes, 36, body.checkpoint.root_hash, 13, old.root_hash)
    assert body.text().startswith("old 13\n")
    with pytest.raises(OpskitError, match="tree size 36"):
        prove_consistency(ledger, 37)


def _checkpoint_count(ledger: Ledger) -> int:
    return len(ledger.checkpoints())


def test_refuses_to_sign_a_rewritten_history(ledger_backend: str, tmp_path: Path) -> None:
    """A database whose records (and chain and tree, rebuilt) were rewritten
    after a checkpoint: the ledger refuses to sign its new tree."""
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    fill(ledger, 10, [])
    ledger.checkpoint("ci")
    attacker_sql(ledger_backend, "DELETE FROM ledger_events WHERE seq >= 5")
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree WHERE first_seq >= 5")
    forger = Ledger(ledger.engine, keys_dir=tmp_path / "keys")
    for n in range(8):  # a new history, chained and treed by the ledger itself
        forger.append("test.forged", actor="mallory", payload={"n": n})
    with pytest.raises(LedgerError, match="not consistent with its checkpoint at size 10"):
        forger.checkpoint("mallory")
    assert _checkpoint_count(forger) == 1
    ledger.engine.dispose()


def test_refuses_to_sign_after_truncation_or_a_forged_tree(
    ledger_backend: str, tmp_path: Path
) -> None:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    fill(ledger, 6, [4])
    ledger.checkpoint("ci")
    # The tree rewritten, the records left alone: the stored edge no longer
    # folds to the signed root.
    attacker_sql(
        ledger_backend,
        "UPDATE ledger_tree SET hashes = ? WHERE first_seq = 7",
        (merkle.record_hash(b"forged") * 8,),
    )
    fresh = Ledger(ledger.engine, keys_dir=tmp_path / "keys")
    with pytest.raises(LedgerError, match="differs from the one signed"):
        fresh.checkpoint("mallory")
    # The tail deleted after the checkpoint.
    attacker_sql(ledger_backend, "DELETE FROM ledger_events WHERE seq > 7")
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree WHERE first_seq > 6")
    fresh = Ledger(ledger.engine, keys_dir=tmp_path / "keys")
    with pytest.raises(LedgerError, match="only 7 records"):
        fresh.checkpoint("mallory")
    assert _checkpoint_count(fresh) == 1
    ledger.engine.dispose()


def test_verify_names_a_tampered_node_and_a_missing_run(
    ledger_backend: str, tmp_path: Path
) -> None:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    fill(ledger, 4, [8])
    assert ledger.verify().ok
    # The batch's run (seqs 5..12) stores 15 hashes; the 6th is node (1, 3)
    # over seqs 7 and 8, stored with seq 8.
    (row,) = ledger.reader().query("SELECT hashes FROM ledger_tree WHERE first_seq = 5")
    hashes = bytearray(row[0])
    assert len(hashes) == 15 * 32
    hashes[5 * 32] ^= 0x01
    attacker_sql(
        ledger_backend, "UPDATE ledger_tree SET hashes = ? WHERE first_seq = 5", (bytes(hashes),)
    )
    report = ledger.verify()
    assert not report.ok
    assert report.problem == (
        "changed content: the Merkle tree node (level 1, index 3) stored with seq 8 "
        "is missing or differs from the records"
    )
    assert report.first_bad_seq == 8
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree WHERE first_seq = 5")
    report = ledger.verify()
    assert not report.ok and "leaf of seq 5" in (report.problem or "")
    ledger.engine.dispose()


def test_verify_checks_the_tree_of_a_long_ledger_in_two_halves(tmp_path: Path) -> None:
    """50,000 records or more: each half checks its part of the tree."""
    url = f"sqlite:///{tmp_path / 'long.db'}"
    ledger = open_ledger(url, tmp_path / "keys")
    fill(ledger, 0, [5_000] * 11)
    ledger.checkpoint("ci")
    assert ledger.verify().ok
    # A leaf in the second half: seq 40,001's leaf hash is the first of its run.
    (row,) = ledger.reader().query("SELECT hashes FROM ledger_tree WHERE first_seq = 40001")
    attacker_sql(
        url,
        "UPDATE ledger_tree SET hashes = ? WHERE first_seq = 40001",
        (merkle.record_hash(b"x") + bytes(row[0])[32:],),
    )
    report = ledger.verify()
    assert not report.ok and report.first_bad_seq == 40001
    assert "leaf of seq 40001" in (report.problem or "")
    ledger.engine.dispose()


def test_a_purge_keeps_the_tree_and_its_proofs(ledger: Ledger) -> None:
    event = ledger.append("host.backup", actor="ci", blobs={"config": "hostname sw1\n"})
    fill(ledger, 3, [])
    before = ledger.checkpoint("ci")
    ledger.purge_blob(event.payload["blobs"]["config"], "ci", "retention")
    ledger.checkpoint("ci")
    assert ledger.verify().ok
    proof = prove_record(ledger, event.seq)  # the leaf is the record, which names the blob's hash
    merkle.check_record(
        proof.hashes,
        proof.checkpoint.size,
        proof.checkpoint.root_hash,
        0,
        merkle.record_hash(proof.extra or b""),
    )
    old, _ = open_checkpoint(before.note or "", [Verifier.from_vkey(log_vkey(ledger))])
    body = prove_consistency(ledger, old.size)
    merkle.check_tree(
        body.hashes, body.checkpoint.size, body.checkpoint.root_hash, old.size, old.root_hash
    )


def test_a_ledger_from_before_the_tree_gets_it(ledger_backend: str, tmp_path: Path) -> None:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    fill(ledger, 5, [30])
    ledger.checkpoint("ci")  # a checkpoint from before the tree: the old format only
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree")
    attacker_sql(ledger_backend, "DELETE FROM ledger_tree_heads")
    older = Ledger(ledger.engine, keys_dir=tmp_path / "keys")
    report = older.verify()
    assert not report.ok and "leaf of seq 1" in (report.problem or "")
    assert older.build_tree() == 35
    assert older.verify().ok  # the old-format checkpoint still verifies
    assert stored_sequence(older) == b"".join(reference_tree(records(older)))
    older.append("after", actor="ci")
    assert older.checkpoint("ci").note is not None and older.verify().ok
    ledger.engine.dispose()


def _append_and_hang(url: str, marker: str, after_tree: bool) -> None:
    """In a forked child: a batch whose transaction hangs, its records
    inserted, before (or after) its tree row, until the parent kills it.
    The hang is the only injected part: a real SIGKILL does the rest."""
    import time

    from opskit.ledger import tree

    original = tree.TreeWriter.add

    def add_then_hang(self: tree.TreeWriter, rows: list) -> None:
        if after_tree:
            original(self, rows)
        Path(marker).write_text("in transaction")
        time.sleep(60)

    tree.TreeWriter.add = add_then_hang  # type: ignore[method-assign]
    ledger = Ledger(open_ledger(url, None).engine)
    with ledger.batch() as batch:
        for n in range(50):
            batch.append("test.lost", actor="ci", payload={"n": n})


@pytest.mark.parametrize("after_tree", [False, True], ids=["before-tree", "after-tree"])
def test_sigkill_mid_transaction_leaves_records_and_tree_matching(
    ledger_backend: str, tmp_path: Path, after_tree: bool
) -> None:
    import os
    import signal
    import time

    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    fill(ledger, 3, [7])
    ledger.checkpoint("ci")
    ledger.engine.dispose()  # no pooled connection is inherited by the child
    marker = tmp_path / "marker"
    child = crash_context().Process(
        target=_append_and_hang, args=(ledger_backend, str(marker), after_tree)
    )
    child.start()
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert child.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    after = Ledger(ledger.engine, keys_dir=tmp_path / "keys")
    assert after.head()[0] == 10  # the killed batch left nothing
    assert stored_sequence(after) == b"".join(reference_tree(records(after)))
    assert after.verify().ok
    after.append("test.after", actor="ci")
    assert after.checkpoint("ci").seq == 11 and after.verify().ok
    after.engine.dispose()


def test_the_origin_comes_from_the_policy_or_the_workspace(workspace: Workspace) -> None:
    from opskit.errors import PolicyError
    from opskit.ledger.treehead import default_origin
    from opskit.workspace import Workspace as Reopened

    ledger = Ledger.open(workspace)
    key = load_private_key(workspace.keys_dir).public_key()
    assert ledger.origin == default_origin(key, "ws") == f"opskit/ws/{key_id(key)[:8]}"

    policy = workspace.policy_path.read_text()
    workspace.policy_path.write_text(policy + "log_origin: ops.example.com/network-ledger\n")
    ledger = Ledger.open(Reopened(workspace.root))
    ledger.append("x", actor="ci")
    note = ledger.checkpoint("ci").note or ""
    assert note.startswith("ops.example.com/network-ledger\n1\n")
    assert "\n— ops.example.com/network-ledger " in note
    assert log_vkey(ledger).startswith("ops.example.com/network-ledger+")

    # An origin that cannot name a note key is refused by the policy, in one line.
    workspace.policy_path.write_text(policy + "log_origin: ops example+ledger\n")
    with pytest.raises(PolicyError, match="log_origin"):
        Ledger.open(Reopened(workspace.root)).checkpoint("ci")
