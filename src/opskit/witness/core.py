"""The witness's decision on one add-checkpoint request (C2SP tlog-witness).

`Witness.add_checkpoint` takes the request body and returns the HTTP answer:

======  ===============================================================
status  when
======  ===============================================================
200     cosigned: the body is the ``cosignature/v1`` signature line(s)
400     malformed body (one line naming the line at fault), old > size
403     no valid signature by a pinned key of that origin, or a pinned
        key's signature that does not verify
404     the origin is not one the witness knows
409     the old size is not the size it last cosigned: body ``<size>\\n``,
        content type ``text/x.tlog.size``
422     the consistency proof does not verify, same size but another
        root, a proof for old size 0, an empty tree with a wrong root
======  ===============================================================

The check of the old size and the write of the new head happen in one
transaction, and the new head is on disk before the answer is returned.

Example:

    >>> witness = Witness(WitnessState.open(Path("w1")), Signer.from_skey(skey))
    >>> witness.add_checkpoint(body)
    Answer(status=200, body=b'\\xe2\\x80\\x94 witness.example/w1 ...\\n', content_type='text/plain')
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from opskit.tlog.checkpoint import Checkpoint, EmptyTreeError
from opskit.tlog.merkle import MerkleError, check_tree
from opskit.tlog.note import (
    COSIGNATURE_V1,
    Note,
    NoteError,
    Signer,
    VerificationError,
    add_signatures,
    format_note,
    verify_note,
)
from opskit.tlog.proof import ConsistencyProof, parse_consistency_proof
from opskit.witness.state import Head, WitnessState

SIZE_CONTENT_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body, content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


def _text(status: int, message: str) -> Answer:
    return Answer(status, (" ".join(message.split()) + "\n").encode())


class Refusal(Exception):
    """Raised inside the state transaction to refuse without writing."""

    def __init__(self, answer: Answer, evidence: str | None = None) -> None:
        super().__init__(answer.body.decode(errors="replace").strip())
        self.answer = answer
        self.evidence = evidence


class Witness:
    """A witness: its state and its cosigner key (type 0x04)."""

    def __init__(self, state: WitnessState, signer: Signer) -> None:
        if signer.verifier.sig_type != COSIGNATURE_V1:
            raise ValueError("a witness key signs cosignature/v1 (type 0x04)")
        self.state = state
        self.signer = signer

    def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one ``POST /add-checkpoint`` request body."""
        try:
            request = parse_consistency_proof(body, source="request")
        except EmptyTreeError as exc:
            return _text(422, str(exc))
        except NoteError as exc:
            return _text(400, str(exc))
        origin = request.checkpoint.origin
        keys = self.state.log_keys(origin)
        if not keys:
            return _text(404, f"unknown log {origin!r}")
        try:
            verify_note(request.note, keys, source="checkpoint")
        except VerificationError as exc:
            return _text(403, str(exc))
        lines: list[str] = []

        def step(current: Head) -> Head:
            head, line = self._next_head(current, request)
            lines.append(line)
            return head

        try:
            self.state.advance(origin, step)
        except Refusal as refusal:
            if refusal.evidence:
                self.state.record_evidence(origin, refusal.evidence, body)
            return refusal.answer
        return Answer(200, (lines[-1] + "\n").encode())

    def _next_head(self, current: Head, request: ConsistencyProof) -> tuple[Head, str]:
        """The head after `request`, or `Refusal` (called inside the transaction)."""
        checkpoint = request.checkpoint
        if request.old_size != current.size:
            answer = Answer(409, f"{current.size}\n".encode(), SIZE_CONTENT_TYPE)
            raise Refusal(answer)
        reason = _inconsistency(current, request)
        if reason:
            raise Refusal(_text(422, reason), evidence=reason)
        cosignature = self.signer.sign(request.note.text, timestamp=_now())
        # Another line claiming to be ours (a replayed or forged one) is not kept.
        others = [s for s in request.note.signatures if not self.signer.verifier.matches(s)]
        note = add_signatures(Note(request.note.text, tuple(others)), [cosignature])
        head = Head(checkpoint.size, checkpoint.root_hash, format_note(note))
        return head, cosignature.line()


def _inconsistency(current: Head, request: ConsistencyProof) -> str | None:
    """Why `request` is not consistent with `current`, or None."""
    checkpoint: Checkpoint = request.checkpoint
    if request.old_size == 0:
        return "a consistency proof from size 0 must be empty" if request.hashes else None
    if checkpoint.size == current.size:
        if checkpoint.root_hash != current.root_hash:
            return f"same size {current.size} as the cosigned head but another root hash"
        return "a proof between equal sizes must be empty" if request.hashes else None
    try:
        check_tree(
            request.hashes, checkpoint.size, checkpoint.root_hash, current.size, current.root_hash
        )
    except MerkleError as exc:
        return f"consistency proof does not verify: {exc}"
    return None


def _now() -> int:
    return max(1, int(time.time()))
