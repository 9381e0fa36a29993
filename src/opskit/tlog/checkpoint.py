"""C2SP tlog checkpoints: the note body of a signed tree head (https://c2sp.org/tlog-checkpoint).

The body is at least three non-empty lines, each ending in a newline: the
origin (the log's identity), the tree size in decimal without leading zeroes,
the base64 RFC 6962 root hash (32 bytes); then optional non-empty extension
lines. Parsing is strict and a malformed body raises `NoteError` naming the
source and the line.

Example:

    >>> cp = Checkpoint("example.com/log", 3, bytes(32))
    >>> cp.text()
    'example.com/log\\n3\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n'
    >>> parse_checkpoint(cp.text()) == cp
    True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from opskit.tlog.note import (
    Note,
    NoteError,
    VerifiedNote,
    Verifier,
    b64decode_strict,
    b64encode,
    check_text,
    parse_note,
    verify_note,
)

HASH_SIZE = 32
# Go's tlog uses int64 sizes; a larger size is no tree anybody can build.
MAX_TREE_SIZE = 2**63 - 1
EMPTY_ROOT = hashlib.sha256(b"").digest()


class EmptyTreeError(NoteError):
    """A checkpoint of size 0 whose root is not SHA-256 of the empty string."""


def parse_decimal(text: str, what: str, source: str, line: int) -> int:
    """A decimal 0..2^63-1 with no sign, no leading zeroes, ASCII digits only."""
    if not text or not text.isascii() or not text.isdigit() or (text[0] == "0" and text != "0"):
        raise NoteError(f"{what} is not a decimal without leading zeroes", file=source, line=line)
    if len(text) > 19 or int(text) > MAX_TREE_SIZE:
        raise NoteError(f"{what} exceeds 2^63-1", file=source, line=line)
    return int(text)


def parse_hash(text: str, what: str, source: str, line: int) -> bytes:
    """A base64 SHA-256 hash (canonical, 32 bytes)."""
    try:
        raw = b64decode_strict(text)
    except ValueError as exc:
        raise NoteError(f"{what}: {exc}", file=source, line=line) from None
    if len(raw) != HASH_SIZE:
        raise NoteError(f"{what} has {len(raw)} bytes, not 32", file=source, line=line)
    return raw


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin, size, root hash, extension lines (no newlines)."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A newline in the origin would frame another checkpoint ("log\n999\n...").
        for what, line in (("origin", self.origin), *(("extension", e) for e in self.extensions)):
            if not line or any(ord(ch) < 0x20 for ch in line):
                raise NoteError(f"{what} {line!r} is empty or has a control character")
        if not 0 <= self.size <= MAX_TREE_SIZE or len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"no tree of size {self.size} with a {len(self.root_hash)}-byte root")

    def text(self) -> str:
        """The note body, every line ending in a newline."""
        lines = [self.origin, str(self.size), b64encode(self.root_hash), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str, *, source: str = "checkpoint", first_line: int = 1) -> Checkpoint:
    """Parse a checkpoint body strictly (`first_line` numbers lines in a larger file)."""
    if not text.endswith("\n"):
        raise NoteError("a checkpoint ends with a newline", file=source, line=first_line)
    check_text(text, source, first_line)
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(
            "a checkpoint has origin, size and root hash lines", file=source, line=first_line
        )
    for offset, line in enumerate(lines):
        if not line:
            raise NoteError("empty line in a checkpoint", file=source, line=first_line + offset)
    size = parse_decimal(lines[1], "tree size", source, first_line + 1)
    root = parse_hash(lines[2], "root hash", source, first_line + 2)
    if size == 0 and root != EMPTY_ROOT:
        raise EmptyTreeError("an empty tree has root SHA-256('')", file=source, line=first_line + 2)
    return Checkpoint(lines[0], size, root, tuple(lines[3:]))


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint and the note that carries it (with every signature line)."""

    checkpoint: Checkpoint
    note: Note


def parse_signed_checkpoint(
    data: str | bytes, *, source: str = "checkpoint", first_line: int = 1
) -> SignedCheckpoint:
    """Parse a checkpoint note (body + signatures) strictly; signatures unverified."""
    note = parse_note(data, source=source, first_line=first_line)
    return SignedCheckpoint(parse_checkpoint(note.text, source=source, first_line=first_line), note)


def open_checkpoint(
    data: str | bytes, verifiers: Iterable[Verifier], *, source: str = "checkpoint"
) -> tuple[Checkpoint, VerifiedNote]:
    """Parse and verify a checkpoint note with trusted keys (at least one must sign)."""
    signed = parse_signed_checkpoint(data, source=source)
    return signed.checkpoint, verify_note(signed.note, verifiers, source=source)
