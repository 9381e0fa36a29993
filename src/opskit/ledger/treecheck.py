"""What `verify` says about the Merkle tree and the checkpoint notes.

`note_problems` checks each checkpoint note's signature against the
workspace's trusted keys (never a key the note names itself) and collects
the root each note states; `tree_problem` turns what `chain.TreeCheck`
found (the first stored hash that differs, the roots it recomputed) into
report lines. Example line:
``(57, "changed content: the Merkle tree node (level 1, index 28) stored with
seq 58 differs from the records")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from opskit.ledger import keys as keymod
from opskit.ledger.model import Checkpoint
from opskit.tlog import merkle
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import ED25519, Note, NoteError, Verifier

Problem = tuple[int | None, str]
TreeAnchors = dict[int, list[tuple[bytes, str]]]


def note_signed_by(note: Note, keys: Iterable[Ed25519PublicKey]) -> bool:
    """Whether a signature line of `note` verifies with one of `keys` (under
    the name the line states: the key, not the name, is what is trusted)."""
    for signature in note.signatures:
        for key in keys:
            try:
                verifier = Verifier(signature.name, ED25519, keymod.raw_public_bytes(key))
            except NoteError:
                continue
            if verifier.matches(signature) and verifier.verify(note.text, signature.signature):
                return True
    return False


def note_problems(
    stored: list[Checkpoint],
    since: Checkpoint | None,
    trusted: dict[str, Any] | None,
    signed_badly: set[int] | frozenset[int] = frozenset(),
) -> tuple[TreeAnchors, list[Problem]]:
    """The roots the checkpoint notes state, by tree size, and what is wrong
    with the notes themselves. The note signatures of the checkpoints in
    `signed_badly` (by id) are not checked: their checkpoint's signature
    failed already, and one fact is reported once."""
    anchors: TreeAnchors = {}
    problems: list[Problem] = []
    given = [(cp, "a stored checkpoint note") for cp in stored]
    if since is not None:
        given.append((since, "the given checkpoint's note"))
    for checkpoint, source in given:
        if checkpoint.note is None:
            continue
        seq = checkpoint.seq
        try:
            signed = parse_signed_checkpoint(checkpoint.note, source=f"{source} at seq {seq}")
        except NoteError as exc:
            problems.append((seq, f"bad checkpoint note at seq {seq}: {exc}"))
            continue
        if signed.checkpoint.size != seq:
            problems.append(
                (
                    seq,
                    f"bad checkpoint note at seq {seq}: it states tree size "
                    f"{signed.checkpoint.size}",
                )
            )
            continue
        if trusted is None or id(checkpoint) in signed_badly:
            pass  # said already of the checkpoint itself
        elif not note_signed_by(signed.note, trusted.values()):
            problems.append((seq, f"bad checkpoint note signature at seq {seq}"))
        anchors.setdefault(seq, []).append((signed.checkpoint.root_hash, source))
    return anchors, problems


def tree_problem(
    bad: int | str | None, anchors: TreeAnchors, roots: dict[int, bytes], count: int
) -> list[Problem]:
    """Report lines for the first bad stored tree hash and for every note
    whose root differs from the tree recomputed from the records."""
    problems: list[Problem] = []
    if isinstance(bad, str):
        problems.append((None, f"changed content: Merkle tree: {bad}"))
    elif bad is not None:
        level, n = merkle.split_stored_hash_index(bad)
        seq = ((n + 1) << level) - 1 + 1
        what = f"leaf of seq {n + 1}" if level == 0 else f"node (level {level}, index {n})"
        problems.append(
            (
                min(seq, count + 1),
                f"changed content: the Merkle tree {what} stored with seq {seq} "
                "is missing or differs from the records",
            )
        )
    for size, entries in sorted(anchors.items()):
        root = roots.get(size)
        for stated, source in entries:
            if root is not None and root != stated:
                problems.append(
                    (
                        size,
                        f"changed content: the tree of the first {size} records differs "
                        f"from {source} (history rewritten)",
                    )
                )
    return problems
