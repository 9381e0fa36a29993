"""Proofs from the ledger's Merkle tree, in the standard C2SP formats.

- `latest_note`: the checkpoint note of the ledger's latest checkpoint.
- `log_vkey`: the log key as a note verifier key, ``<origin>+<hex key
  id>+<base64(0x01 || public key)>``: what an auditor pins.
- `prove_record`: a ``c2sp.org/tlog-proof@v1`` for the record with sequence
  number `seq` (leaf `seq - 1`), its ``extra`` line the record's canonical
  bytes, against the latest checkpoint (a checkpoint is signed first when
  none covers the record).
- `prove_consistency`: the tlog-witness add-checkpoint body (``old N``, the
  consistency proof, the latest checkpoint note).

Each proof is read from the stored tree in O(log n) indexed reads. Example:

    >>> print(prove_record(ledger, 42).text())
    c2sp.org/tlog-proof@v1
    extra eyJhY3RvciI6ImFsaWNlIiwiYXQiOi...
    index 41
    3q2+7w...=
    ...

    opskit/ops-team/3f2a9c1d
    57
    ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.errors import LedgerError, UsageError
from opskit.ledger import keys as keymod
from opskit.ledger.cosignatures import note_with_cosignatures
from opskit.ledger.store import EVENTS, TREE_HEADS
from opskit.ledger.tree import TreeReader, leaf_index
from opskit.ledger.treehead import verifier_for
from opskit.tlog import merkle
from opskit.tlog.checkpoint import SignedCheckpoint, parse_signed_checkpoint
from opskit.tlog.proof import ConsistencyProof, InclusionProof

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger


def latest_note(ledger: Ledger) -> str | None:
    """The note of the latest checkpoint, exactly as signed, with its witnesses'
    cosignatures; None before the first."""
    reader = ledger.reader()
    rows = list(
        reader.query(
            f"SELECT checkpoint_id, note FROM {TREE_HEADS} ORDER BY checkpoint_id DESC LIMIT 1"
        )
    )
    return note_with_cosignatures(reader, rows[0][0], rows[0][1]) if rows else None


def log_vkey(ledger: Ledger) -> str:
    """The log's verifier key (vkey) under its origin."""
    if ledger.keys_dir is None:
        raise LedgerError("vkey: this ledger has no signing key (no keys folder)")
    public = keymod.load_private_key(ledger.keys_dir).public_key()
    return verifier_for(ledger.origin, public).vkey


def _covering(ledger: Ledger, size: int, actor: str | None) -> SignedCheckpoint:
    """The latest checkpoint, or a new one when it does not cover `size` records."""
    note = latest_note(ledger)
    signed = parse_signed_checkpoint(note) if note is not None else None
    if signed is None or signed.checkpoint.size < size:
        note = ledger.checkpoint(actor).note
        assert note is not None  # every new checkpoint carries its note
        signed = parse_signed_checkpoint(note)
    return signed


def prove_record(ledger: Ledger, seq: int, *, actor: str | None = None) -> InclusionProof:
    """The inclusion proof of record `seq` against the latest checkpoint."""
    if type(seq) is not int or seq < 1:
        raise UsageError(f"prove: seq {seq} is not in the ledger (seqs start at 1)")
    found = _read_inclusion(ledger, seq)
    if found is None:  # no checkpoint covers the record yet: sign one
        ledger.checkpoint(actor)
        found = _read_inclusion(ledger, seq)
        assert found is not None  # the new checkpoint covers every record
    signed, record, hashes = found
    size = signed.checkpoint.size
    leaf = merkle.record_hash(record.encode())
    try:  # never hand out a proof that does not hold
        merkle.check_record(hashes, size, signed.checkpoint.root_hash, leaf_index(seq), leaf)
    except merkle.MerkleError:
        raise LedgerError(
            f"prove: the stored tree does not prove seq {seq} (run `opskit audit verify`)"
        ) from None
    return InclusionProof(
        leaf_index(seq), tuple(hashes), signed.note, signed.checkpoint, record.encode()
    )


def _read_inclusion(ledger: Ledger, seq: int) -> tuple[SignedCheckpoint, str, list[bytes]] | None:
    """The latest checkpoint, the record and its proof, read on one
    connection; None when no checkpoint covers the record."""
    sql = ledger.sql
    with ledger.reader().session() as session:
        cursor = session.cursor()
        try:
            # One round trip for the record and the latest note, one for the hashes.
            cursor.execute(
                sql(
                    f"SELECT (SELECT record FROM {EVENTS} WHERE seq = ?), "
                    f"(SELECT note FROM {TREE_HEADS} ORDER BY checkpoint_id DESC LIMIT 1), "
                    f"(SELECT MAX(checkpoint_id) FROM {TREE_HEADS})"
                ),
                (seq,),
            )
            record, note, checkpoint_id = cursor.fetchone()
            if record is None:
                cursor.execute(f"SELECT MAX(seq) FROM {EVENTS}")
                head = cursor.fetchone()[0] or 0
                raise UsageError(f"prove: seq {seq} is not in the ledger (seqs 1..{head})")
            if note is None:
                return None
            signed = parse_signed_checkpoint(note, source=TREE_HEADS)
            if signed.checkpoint.size < seq:
                return None
            size = signed.checkpoint.size
            hashes = merkle.prove_record(size, leaf_index(seq), TreeReader(cursor, sql))
        finally:
            cursor.close()
    cosigned = note_with_cosignatures(ledger.reader(), checkpoint_id, note)  # the witnesses'
    if cosigned != note:
        signed = parse_signed_checkpoint(cosigned, source=TREE_HEADS)
    return signed, record, hashes


def prove_consistency(
    ledger: Ledger, from_size: int, *, actor: str | None = None
) -> ConsistencyProof:
    """The consistency proof from tree size `from_size` to the latest checkpoint."""
    signed = _covering(ledger, 0, actor)
    size = signed.checkpoint.size
    if type(from_size) is not int or not 0 <= from_size <= size:
        raise UsageError(
            f"prove --from-size {from_size}: the latest checkpoint has tree size {size}"
        )
    hashes: list[bytes] = []
    if 0 < from_size < size:
        with ledger.reader().session() as session:
            cursor = session.cursor()
            try:
                hashes = merkle.prove_tree(size, from_size, TreeReader(cursor, ledger.sql))
            finally:
                cursor.close()
    return ConsistencyProof(from_size, tuple(hashes), signed.note, signed.checkpoint)
