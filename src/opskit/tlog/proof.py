"""Proof files: C2SP tlog-proof (inclusion) and the tlog-witness consistency body.

An inclusion proof file (https://c2sp.org/tlog-proof, extension ``.tlog-proof``)::

    c2sp.org/tlog-proof@v1
    extra <base64 of the record's bytes>      (optional)
    index <zero-based leaf index>
    <base64 hash>                              (zero or more, leaf's sibling first)

    <checkpoint note, with any cosignatures>

A consistency body (the request body of tlog-witness ``add-checkpoint``)::

    old <previous tree size>
    <base64 hash>                              (zero to 63 lines)

    <checkpoint note>

Both parsers are strict: a deviation raises `NoteError` naming the source and
the line. Nothing here verifies a signature or a proof; `opskit.tlog.trust`
and `opskit.tlog.merkle` do.

Example:

    >>> proof = parse_inclusion_proof(text, source="change.tlog-proof")
    >>> proof.index, len(proof.hashes), proof.checkpoint.size
    (41, 6, 57)
"""

from __future__ import annotations

from dataclasses import dataclass

from opskit.tlog.checkpoint import (
    Checkpoint,
    SignedCheckpoint,
    parse_decimal,
    parse_hash,
    parse_signed_checkpoint,
)
from opskit.tlog.note import Note, NoteError, b64decode_strict, b64encode, format_note

PROOF_HEADER = "c2sp.org/tlog-proof@v1"
# tlog-witness: a client MUST NOT send more than 63 consistency proof lines.
MAX_CONSISTENCY_HASHES = 63
# An inclusion proof in a tree of at most 2^63 leaves has at most 63 hashes.
MAX_INCLUSION_HASHES = 63


@dataclass(frozen=True)
class InclusionProof:
    """A tlog-proof: optional extra data, the leaf index, the path and the checkpoint."""

    index: int
    hashes: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint
    extra: bytes | None = None

    def text(self) -> str:
        """The ``.tlog-proof`` file content."""
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {b64encode(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(b64encode(h) for h in self.hashes)
        return "\n".join(lines) + "\n\n" + format_note(self.note)


@dataclass(frozen=True)
class ConsistencyProof:
    """A tlog-witness add-checkpoint body: old size, proof hashes, checkpoint note."""

    old_size: int
    hashes: tuple[bytes, ...]
    note: Note
    checkpoint: Checkpoint

    def text(self) -> str:
        """The request body."""
        lines = [f"old {self.old_size}", *(b64encode(h) for h in self.hashes)]
        return "\n".join(lines) + "\n\n" + format_note(self.note)


def _decode(data: str | bytes, source: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(
            "not valid UTF-8", file=source, line=data[: exc.start].count(b"\n") + 1
        ) from None


def _keyword(line: str, keyword: str, source: str, number: int) -> str:
    prefix = keyword + " "
    if not line.startswith(prefix):
        raise NoteError(f"expected '{prefix}...'", file=source, line=number)
    return line[len(prefix) :]


def _split_head(text: str, source: str) -> tuple[list[str], str, int]:
    """The lines before the first blank line, the rest, and the rest's first line number."""
    head, sep, rest = text.partition("\n\n")
    if not sep:
        raise NoteError("no blank line before the checkpoint", file=source, line=1)
    lines = head.split("\n")
    return lines, rest, len(lines) + 2


def _hashes(lines: list[str], first: int, limit: int, source: str) -> tuple[bytes, ...]:
    if len(lines) > limit:
        raise NoteError(f"more than {limit} proof hashes", file=source, line=first + limit)
    return tuple(parse_hash(line, "proof hash", source, first + i) for i, line in enumerate(lines))


def _checkpoint(rest: str, source: str, first_line: int) -> SignedCheckpoint:
    if not rest:
        raise NoteError("the checkpoint is missing", file=source, line=first_line)
    return parse_signed_checkpoint(rest, source=source, first_line=first_line)


def parse_inclusion_proof(data: str | bytes, *, source: str = "proof") -> InclusionProof:
    """Parse a ``c2sp.org/tlog-proof@v1`` file strictly (signatures unverified)."""
    text = _decode(data, source)
    lines, rest, checkpoint_line = _split_head(text, source)
    if lines[0] != PROOF_HEADER:
        raise NoteError(f"the first line must be {PROOF_HEADER}", file=source, line=1)
    number, extra = 2, None
    if len(lines) > 1 and lines[1].startswith("extra "):
        try:
            extra = b64decode_strict(lines[1][len("extra ") :])
        except ValueError as exc:
            raise NoteError(f"extra: {exc}", file=source, line=2) from None
        number = 3
    if len(lines) < number:
        raise NoteError("the 'index N' line is missing", file=source, line=number)
    index_text = _keyword(lines[number - 1], "index", source, number)
    index = parse_decimal(index_text, "index", source, number)
    hashes = _hashes(lines[number:], number + 1, MAX_INCLUSION_HASHES, source)
    signed = _checkpoint(rest, source, checkpoint_line)
    if index >= signed.checkpoint.size:
        raise NoteError(
            f"index {index} is outside the tree of size {signed.checkpoint.size}",
            file=source,
            line=number,
        )
    return InclusionProof(index, hashes, signed.note, signed.checkpoint, extra)


def parse_consistency_proof(data: str | bytes, *, source: str = "request") -> ConsistencyProof:
    """Parse a tlog-witness add-checkpoint body strictly (signatures unverified)."""
    text = _decode(data, source)
    lines, rest, checkpoint_line = _split_head(text, source)
    old_size = parse_decimal(_keyword(lines[0], "old", source, 1), "old size", source, 1)
    hashes = _hashes(lines[1:], 2, MAX_CONSISTENCY_HASHES, source)
    signed = _checkpoint(rest, source, checkpoint_line)
    if old_size > signed.checkpoint.size:
        raise NoteError(
            f"old size {old_size} is larger than the checkpoint's {signed.checkpoint.size}",
            file=source,
            line=1,
        )
    return ConsistencyProof(old_size, hashes, signed.note, signed.checkpoint)
