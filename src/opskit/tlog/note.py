"""C2SP signed notes: format, parse, sign and verify (https://c2sp.org/signed-note).

A note is a text ending in a newline, a blank line, and one or more signature
lines ``— <key name> base64(key id || signature)``. This module follows Go's
``golang.org/x/mod/sumdb/note`` byte for byte:

- Ed25519 note signatures (type ``0x01``): the signature is over the note text;
  key id = first 4 bytes (big endian) of SHA-256(name || 0x0A || 0x01 || public key).
- Timestamped Ed25519 cosignatures (type ``0x04``, https://c2sp.org/tlog-cosignature):
  the signature is ``u64 timestamp || Ed25519 signature`` over
  ``cosignature/v1\\ntime <T>\\n`` followed by the note text; the key id uses 0x04.
- Verifier keys (*vkeys*) ``<name>+<hex key id>+<base64(type || public key)>``,
  signer keys in Go's format ``PRIVATE+KEY+<name>+<hex key id>+<base64(type || seed)>``.

Parsing is strict (valid UTF-8, no control character but newline, valid key
names, canonical base64); a malformed note raises `NoteError`, one line naming
the source and the line. Verification never trusts a key carried by the note:
the caller passes the verifiers it trusts, and signatures by other keys are
reported as unknown, never as verified.

Example:

    >>> signer = Signer.generate("example.com/log")
    >>> note = sign_note("hello\\n", signer)
    >>> text = format_note(note)            # 'hello\\n\\n— example.com/log AbCd...\\n'
    >>> verify_note(parse_note(text), [signer.verifier]).verified[0].name
    'example.com/log'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opskit.errors import ValidationError

ED25519 = 0x01
COSIGNATURE_V1 = 0x04
SIGNATURE_TYPES = {ED25519: "Ed25519", COSIGNATURE_V1: "cosignature/v1"}
SIGNATURE_PREFIX = "— "
# Go's note.Open refuses notes with more signatures than this.
MAX_SIGNATURES = 100
MAX_TIMESTAMP = 2**63 - 1
# Standard padded base64 as Go's base64.StdEncoding reads it.
_BASE64_SYNTAX = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


class NoteError(ValidationError):
    """A malformed signed note, key or signature line (names the source and line)."""

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = message  # without the location, for callers that add their own
        super().__init__(message, file=file, line=line, field=field)


class VerificationError(ValidationError):
    """A note that does not verify: a bad signature by a trusted key, or none trusted."""


def b64decode_strict(text: str) -> bytes:
    """Decode standard, padded, canonical base64 (what the C2SP formats write).

    Raises `ValueError` on anything else (missing padding, other alphabets,
    non-zero trailing bits), so a value has exactly one spelling.
    """
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not standard base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise ValueError("not canonical base64")
    return raw


def b64encode(raw: bytes) -> str:
    """Standard padded base64 as text."""
    return base64.b64encode(raw).decode("ascii")


def is_valid_name(name: str) -> bool:
    """A key name: non-empty, no Unicode space, no ``+`` (signed-note §Format)."""
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def key_id(name: str, sig_type: int, public_key: bytes) -> int:
    """SHA-256(name || 0x0A || type || public key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def cosignature_message(text: str, timestamp: int) -> bytes:
    """The bytes a ``cosignature/v1`` signature covers for a note text."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key id and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line without its newline: ``— name base64(id || sig)``."""
        blob = struct.pack(">I", self.key_id) + self.signature
        return f"{SIGNATURE_PREFIX}{self.name} {b64encode(blob)}"

    @property
    def fingerprint(self) -> str:
        """``name+hexid``: how a key is named to a person (what a vkey starts with)."""
        return f"{self.name}+{self.key_id:08x}"


@dataclass(frozen=True)
class Note:
    """A note text (ending in a newline) and its signatures in file order."""

    text: str
    signatures: tuple[Signature, ...] = ()


@dataclass(frozen=True)
class Verifier:
    """A public key that verifies note signatures of one type under one name."""

    name: str
    sig_type: int
    public_key: bytes
    key_id: int = field(default=0)

    def __post_init__(self) -> None:
        if not is_valid_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}", field="key name")
        if self.sig_type not in SIGNATURE_TYPES:
            raise NoteError(f"unsupported signature type 0x{self.sig_type:02x}", field="key")
        if len(self.public_key) != 32:
            raise NoteError(f"an Ed25519 public key has 32 bytes, not {len(self.public_key)}")
        object.__setattr__(self, "key_id", key_id(self.name, self.sig_type, self.public_key))

    @classmethod
    def from_vkey(cls, vkey: str, *, source: str = "vkey", line: int | None = None) -> Verifier:
        """Parse ``<name>+<hex key id>+<base64(type || key)>``; the id must match."""
        parts = vkey.split("+", 2)  # base64 may contain "+"
        if len(parts) != 3:
            raise NoteError("a vkey is name+keyid+key", file=source, line=line, field="vkey")
        name, hex_id, key64 = parts
        try:
            blob = b64decode_strict(key64)
        except ValueError as exc:
            raise NoteError(f"vkey key: {exc}", file=source, line=line, field="vkey") from None
        if len(hex_id) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hex_id):
            raise NoteError("vkey key id is not 8 hex digits", file=source, line=line, field="vkey")
        if not blob or not is_valid_name(name):
            raise NoteError("malformed vkey", file=source, line=line, field="vkey")
        try:
            verifier = cls(name, blob[0], blob[1:])
        except NoteError as exc:
            raise NoteError(f"vkey: {exc.reason}", file=source, line=line, field="vkey") from None
        if verifier.key_id != int(hex_id, 16):
            raise NoteError(
                "vkey key id does not match its key", file=source, line=line, field="vkey"
            )
        return verifier

    @property
    def vkey(self) -> str:
        """This key as a vkey line."""
        blob = bytes([self.sig_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{b64encode(blob)}"

    @property
    def fingerprint(self) -> str:
        """``name+hexid``, as on a signature line."""
        return f"{self.name}+{self.key_id:08x}"

    def matches(self, signature: Signature) -> bool:
        """Whether a signature line claims to be by this key (name and id both)."""
        return signature.name == self.name and signature.key_id == self.key_id

    def verify(self, text: str, signature: bytes) -> bool:
        """Whether `signature` (the bytes after the key id) signs `text` with this key."""
        message = text.encode()
        if self.sig_type == COSIGNATURE_V1:
            if len(signature) != 8 + 64:
                return False
            timestamp = struct.unpack(">Q", signature[:8])[0]
            if timestamp > MAX_TIMESTAMP:
                return False
            message, signature = cosignature_message(text, timestamp), signature[8:]
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def cosignature_timestamp(signature: Signature) -> int:
    """The POSIX time a ``cosignature/v1`` signature states (its first 8 bytes)."""
    if len(signature.signature) != 72:
        raise NoteError(f"{signature.fingerprint}: a cosignature has 72 bytes")
    return int(struct.unpack(">Q", signature.signature[:8])[0])


class Signer:
    """An Ed25519 private key that signs notes under a name (type 0x01 or 0x04)."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey, sig_type: int = ED25519) -> None:
        public = private_key.public_key().public_bytes_raw()
        self.verifier = Verifier(name, sig_type, public)
        self._key = private_key

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> Signer:
        """A new random key."""
        return cls(name, Ed25519PrivateKey.generate(), sig_type)

    @classmethod
    def from_skey(cls, skey: str, *, source: str = "skey") -> Signer:
        """Parse Go's ``PRIVATE+KEY+<name>+<hex id>+<base64(type || seed)>``."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key is PRIVATE+KEY+name+keyid+key", file=source)
        name, hex_id, key64 = parts[2:]
        try:
            blob = b64decode_strict(key64)
        except ValueError:
            raise NoteError("signer key is not base64", file=source) from None
        if len(blob) != 33 or blob[0] not in SIGNATURE_TYPES or not is_valid_name(name):
            raise NoteError("malformed signer key", file=source)
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(blob[1:]), blob[0])
        if len(hex_id) != 8 or f"{signer.key_id:08x}" != hex_id.lower():
            raise NoteError("signer key id does not match its key", file=source)
        return signer

    @property
    def skey(self) -> str:
        """The private key in Go's signer-key format (a secret: never log it)."""
        blob = bytes([self.verifier.sig_type]) + self._key.private_bytes_raw()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{b64encode(blob)}"

    @property
    def name(self) -> str:
        return self.verifier.name

    @property
    def key_id(self) -> int:
        return self.verifier.key_id

    def __repr__(self) -> str:  # never the key itself
        return f"Signer({self.verifier.fingerprint})"

    def sign(self, text: str, *, timestamp: int | None = None) -> Signature:
        """Sign a note text; a cosigner needs the POSIX `timestamp` it states."""
        if self.verifier.sig_type == COSIGNATURE_V1:
            if timestamp is None or not 0 < timestamp <= MAX_TIMESTAMP:
                raise ValueError("a cosignature needs a timestamp in 1..2^63-1")
            raw = self._key.sign(cosignature_message(text, timestamp))
            return Signature(self.name, self.key_id, struct.pack(">Q", timestamp) + raw)
        return Signature(self.name, self.key_id, self._key.sign(text.encode()))


def sign_note(text: str, *signers: Signer, timestamp: int | None = None) -> Note:
    """A note of `text` signed by each signer (cosigners state `timestamp`)."""
    if not text.endswith("\n"):
        raise NoteError("a note text ends with a newline")
    check_text(text, "note", 1)
    return Note(text, tuple(s.sign(text, timestamp=timestamp) for s in signers))


def add_signatures(note: Note, signatures: Iterable[Signature]) -> Note:
    """The note with `signatures` appended, skipping exact duplicates."""
    merged = list(note.signatures)
    merged.extend(s for s in signatures if s not in merged)
    return Note(note.text, tuple(merged))


def format_note(note: Note) -> str:
    """The note as text: the text, a blank line, one line per signature."""
    if not note.signatures:
        raise NoteError("a note needs at least one signature")
    return note.text + "\n" + "".join(s.line() + "\n" for s in note.signatures)


def check_text(text: str, source: str, first_line: int) -> None:
    """Refuse control characters (other than newline) with the line they are on."""
    for number, line in enumerate(text.split("\n"), start=first_line):
        bad = next((ch for ch in line if ord(ch) < 0x20), None)
        if bad is not None:
            raise NoteError(f"control character U+{ord(bad):04X}", file=source, line=number)


def parse_note(data: str | bytes, *, source: str = "note", first_line: int = 1) -> Note:
    """Parse a signed note strictly; `first_line` numbers lines inside a larger file.

    Raises `NoteError` naming `source` and the line on any deviation from the
    signed-note format (and Go's note.Open limits).
    """
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = first_line + data[: exc.start].count(b"\n")
            raise NoteError("not valid UTF-8", file=source, line=line) from None
    check_text(data, source, first_line)
    split = data.rfind("\n\n")
    if split < 0:
        raise NoteError("no blank line before the signatures", file=source, line=first_line)
    text, sig_block = data[: split + 1], data[split + 2 :]
    sig_line = first_line + text.count("\n") + 1
    if not sig_block or not sig_block.endswith("\n"):
        raise NoteError("signatures must follow and end with a newline", file=source, line=sig_line)
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures", file=source, line=sig_line)
    signatures = tuple(parse_signature_line(ln, source, sig_line + i) for i, ln in enumerate(lines))
    return Note(text, signatures)


def parse_signature_line(line: str, source: str, number: int) -> Signature:
    """Parse ``— <name> <base64(id || sig)>``."""
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("a signature line starts with '— '", file=source, line=number)
    name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not is_valid_name(name):
        raise NoteError(f"invalid key name {name!r}", file=source, line=number)
    try:
        # Like Go's note.Open: standard padded base64; non-zero trailing bits
        # are accepted here (the signature then fails to verify, a 403 and
        # not a 400 at a witness, as tlog-witness asks).
        if not _BASE64_SYNTAX.fullmatch(b64):
            raise ValueError(b64)
        blob = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise NoteError("signature: not standard base64", file=source, line=number) from None
    if len(blob) < 5:
        raise NoteError("signature shorter than a key id and one byte", file=source, line=number)
    return Signature(name, struct.unpack(">I", blob[:4])[0], blob[4:])


@dataclass(frozen=True)
class VerifiedNote:
    """What `verify_note` found: signatures that verified and the unknown ones."""

    note: Note
    verified: tuple[Signature, ...]
    unknown: tuple[Signature, ...]


def verify_note(
    note: Note, verifiers: Iterable[Verifier], *, source: str = "note", require: bool = True
) -> VerifiedNote:
    """Verify a note's signatures with the keys the caller trusts (note.Open semantics).

    A signature whose name and key id match a trusted key must verify, or the
    whole note is refused (`VerificationError`). Signatures by other keys are
    returned as unknown. With `require`, at least one signature must verify.
    """
    known = {(v.name, v.key_id): v for v in verifiers}
    verified: list[Signature] = []
    unknown: list[Signature] = []
    for signature in note.signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            if signature not in unknown:
                unknown.append(signature)
            continue
        if any(s.name == signature.name and s.key_id == signature.key_id for s in verified):
            continue  # Go's Open: the first signature by a key counts
        if not verifier.verify(note.text, signature.signature):
            raise VerificationError(f"invalid signature by {signature.fingerprint}", file=source)
        verified.append(signature)
    if require and not verified:
        found = ", ".join(s.fingerprint for s in unknown) or "none"
        raise VerificationError(f"no signature by a trusted key (found: {found})", file=source)
    return VerifiedNote(note, tuple(verified), tuple(unknown))
