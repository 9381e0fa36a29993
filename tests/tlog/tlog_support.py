"""A log held in memory for the tlog and witness tests: records, tree, signed checkpoints.

Built only from the public pieces (`opskit.tlog.merkle` for the tree,
`opskit.tlog.note` for signatures), the way a real log uses them; a fork is
a copy of the log that diverges after some size and signs with the same key.
"""

from __future__ import annotations

import copy

from opskit.tlog.checkpoint import Checkpoint
from opskit.tlog.merkle import (
    MemoryHashes,
    prove_record,
    prove_tree,
    record_hash,
    stored_hash_count,
    stored_hashes,
    tree_hash,
)
from opskit.tlog.note import Note, Signer, format_note, sign_note
from opskit.tlog.proof import ConsistencyProof, InclusionProof


class MemoryLog:
    """An append-only log of byte records with an RFC 6962 tree and a signing key."""

    def __init__(self, origin: str, signer: Signer | None = None) -> None:
        self.origin = origin
        self.signer = signer or Signer.generate(origin)
        self.records: list[bytes] = []
        self.hashes = MemoryHashes()

    def append(self, *records: bytes) -> None:
        for data in records:
            self.hashes.extend(stored_hashes(len(self.records), data, self.hashes))
            self.records.append(data)

    def extend(self, count: int, prefix: str = "record") -> None:
        start = len(self.records)
        self.append(*(f"{prefix} {start + i}".encode() for i in range(count)))

    @property
    def size(self) -> int:
        return len(self.records)

    def checkpoint(self, size: int | None = None) -> Checkpoint:
        size = self.size if size is None else size
        return Checkpoint(self.origin, size, tree_hash(size, self.hashes))

    def note(self, size: int | None = None) -> Note:
        return sign_note(self.checkpoint(size).text(), self.signer)

    def note_text(self, size: int | None = None) -> str:
        return format_note(self.note(size))

    def consistency(self, old: int, note: Note | None = None) -> ConsistencyProof:
        """The add-checkpoint request from size `old` to the current checkpoint."""
        note = note or self.note()
        hashes = tuple(prove_tree(self.size, old, self.hashes)) if 0 < old < self.size else ()
        return ConsistencyProof(old, hashes, note, self.checkpoint())

    def prove(self, old: int) -> list[bytes]:
        return prove_tree(self.size, old, self.hashes) if 0 < old < self.size else []

    def inclusion(self, index: int, note: Note | None = None) -> InclusionProof:
        note = note or self.note()
        path = tuple(prove_record(self.size, index, self.hashes))
        return InclusionProof(index, path, note, self.checkpoint(), extra=self.records[index])

    def leaf(self, index: int) -> bytes:
        return record_hash(self.records[index])

    def fork(self, keep: int) -> MemoryLog:
        """A copy holding the first `keep` records, same origin and key (a rewrite)."""
        other = MemoryLog(self.origin, self.signer)
        other.records = copy.copy(self.records[:keep])
        other.hashes = MemoryHashes(self.hashes[: stored_hash_count(keep)])
        return other
