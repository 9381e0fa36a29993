"""The ledger's value types: events, checkpoints and verification reports."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.canonical import canonical_json

AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
CHECKPOINT_TYPE = "opskit.ledger.checkpoint/1"
PURGE_KIND = "ledger.blob_purged"


def format_at(moment: datetime) -> str:
    """UTC, microseconds, 'Z': the one timestamp form the ledger stores (sorts as text)."""
    if moment.tzinfo is None:
        raise LedgerError(f"time {moment.isoformat()} has no timezone")
    return moment.astimezone(UTC).strftime(AT_FORMAT)


def parse_at(text: str) -> datetime:
    return datetime.fromisoformat(text)


_NS = 1_000_000_000
_time_ns = time.time_ns


class Clock:
    """UTC now as the stored text, formatting each second only once:
    `strftime` per event would cost more than hashing it."""

    def __init__(self) -> None:
        self._start = self._end = self._offset = 0  # the current second, in ns
        self._prefix = ""

    def now(self) -> str:
        ns = _time_ns()
        if not self._start <= ns < self._end:  # another second (or the clock went back)
            second = ns // _NS
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S.")
            self._start, self._end = second * _NS, (second + 1) * _NS
            self._offset = self._start - _NS
        # ns - offset is 1 and then the 9 digits of the nanoseconds into the
        # second: the microseconds are 6 of them, zero-padded (no format spec).
        return f"{self._prefix}{str(ns - self._offset)[1:7]}Z"


class Event(NamedTuple):
    """One ledger record, as appended or read back (immutable)."""

    seq: int
    at_text: str  # as stored: UTC, "YYYY-MM-DDTHH:MM:SS.ffffffZ"
    actor: str
    kind: str
    change_id: str | None
    ci: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    @property
    def at(self) -> datetime:
        """The event's time (UTC), made from `at_text` when asked for: most
        appended events are never asked, and building it costs more than
        hashing the event."""
        return parse_at(self.at_text)

    @property
    def blobs(self) -> dict[str, str]:
        """The blobs this event references, by name."""
        refs = self.payload.get("blobs")
        return dict(refs) if isinstance(refs, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at_text,
            "actor": self.actor,
            "kind": self.kind,
            "change_id": self.change_id,
            "ci": self.ci,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_record(cls, record: str, prev_hash: str, hash_: str) -> Event:
        data = json.loads(record)
        return cls(
            seq=data["seq"],
            at_text=data["at"],
            actor=data["actor"],
            kind=data["kind"],
            change_id=data["change_id"],
            ci=data["ci"],
            payload=data["payload"],
            prev_hash=prev_hash,
            hash=hash_,
        )


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: 'the ledger's record `seq` has hash `head`'."""

    seq: int
    head: str
    at: str
    actor: str
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 public key
    signature: str  # base64 of the Ed25519 signature over `message()`
    # The C2SP checkpoint note of the tree of the first `seq` records, signed
    # by the same key (`opskit.ledger.treehead`); None on older checkpoints.
    note: str | None = None

    @staticmethod
    def signed_message(seq: int, head: str, at: str, actor: str, key_id: str) -> bytes:
        body = {
            "actor": actor,
            "at": at,
            "head": head,
            "key_id": key_id,
            "seq": seq,
            "type": CHECKPOINT_TYPE,
        }
        return canonical_json(body).encode()

    def message(self) -> bytes:
        return self.signed_message(self.seq, self.head, self.at, self.actor, self.key_id)

    @classmethod
    def sign(
        cls, key: Ed25519PrivateKey, *, seq: int, head: str, actor: str, note: str | None = None
    ) -> Checkpoint:
        import base64

        public = key.public_key()
        key_id = keymod.key_id(public)
        at = format_at(datetime.now(UTC))
        signature = key.sign(cls.signed_message(seq, head, at, actor, key_id))
        return cls(
            seq=seq,
            head=head,
            at=at,
            actor=actor,
            key_id=key_id,
            public_key=keymod.public_key_b64(public),
            signature=base64.b64encode(signature).decode(),
            note=note,
        )

    def signature_problem(self, trusted: dict[str, Any] | None) -> str | None:
        """None when the signature is good; otherwise what is wrong.

        With `trusted` keys (by key id) the checkpoint must be signed by one of
        them; without, only its own embedded key is checked (self-consistency).
        """
        try:
            embedded = keymod.public_key_from_b64(self.public_key)
        except LedgerError:
            return f"bad checkpoint signature at seq {self.seq}: unreadable public key"
        if keymod.key_id(embedded) != self.key_id:
            return f"bad checkpoint signature at seq {self.seq}: key id does not match its key"
        key = embedded
        if trusted is not None:
            if self.key_id not in trusted:
                return f"bad checkpoint signature at seq {self.seq}: unknown key {self.key_id}"
            key = trusted[self.key_id]
        if not keymod.verify_signature(key, self.signature, self.message()):
            return f"bad checkpoint signature at seq {self.seq}"
        return None

    def to_dict(self) -> dict[str, Any]:
        data = {"type": CHECKPOINT_TYPE, **asdict(self)}
        if self.note is None:
            del data["note"]
        return data

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "checkpoint") -> Checkpoint:
        if not isinstance(data, dict) or data.get("type") != CHECKPOINT_TYPE:
            raise LedgerError(f"{where}: not an opskit ledger checkpoint")
        try:
            checkpoint = cls(
                seq=data["seq"],
                head=data["head"],
                at=data["at"],
                actor=data["actor"],
                key_id=data["key_id"],
                public_key=data["public_key"],
                signature=data["signature"],
                note=data.get("note"),
            )
        except KeyError as exc:
            raise LedgerError(f"{where}: missing field {exc.args[0]!r}") from None
        if (
            type(checkpoint.seq) is not int
            or not all(
                isinstance(v, str)
                for v in (
                    checkpoint.head,
                    checkpoint.at,
                    checkpoint.actor,
                    checkpoint.key_id,
                    checkpoint.public_key,
                    checkpoint.signature,
                )
            )
            or not isinstance(checkpoint.note, str | None)
        ):
            raise LedgerError(f"{where}: malformed field types")
        return checkpoint

    def to_json(self) -> str:
        """The checkpoint as its file holds it."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def save(self, path: Path) -> None:
        write_file(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        return cls.from_dict(read_json(path, "JSON"), where=str(path))


@dataclass
class VerifyReport:
    """The result of `Ledger.verify()`: `ok` only when every link, hash, blob,
    signature and checkpoint checks. `first_bad_seq` and `problem` name the
    first fault, `problems` all of them (`(seq or None, text)`), `counts` what
    was checked and `head_seq`/`head_hash` the head verified, e.g.
    `VerifyReport(ok=True, counts={"events": 42, ...}, head_seq=42,
    head_hash="sha256:...")`.
    """

    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    head_seq: int = 0
    head_hash: str = ""
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
            "counts": self.counts,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "problems": [{"seq": seq, "problem": text} for seq, text in self.problems],
        }

    @classmethod
    def from_problems(
        cls,
        problems: list[tuple[int | None, str]],
        *,
        counts: dict[str, int],
        head_seq: int,
        head_hash: str,
    ) -> VerifyReport:
        # The first bad sequence is the lowest one named; a problem without a
        # sequence (an orphan blob) ranks after every numbered one.
        ordered = sorted(problems, key=lambda p: (p[0] is None, p[0] or 0))
        first = ordered[0] if ordered else (None, None)
        return cls(
            ok=not ordered,
            first_bad_seq=first[0],
            problem=first[1],
            counts=counts,
            head_seq=head_seq,
            head_hash=head_hash,
            problems=ordered,
        )


def write_file(path: Path, text: str) -> None:
    """Writes an export (checkpoint, bundle), creating its folder; an
    unwritable place is a one-line LedgerError."""
    from opskit.ledger.output import OutputFile

    with OutputFile(path) as out:
        out.write(text)


def read_json(path: Path, what: str) -> Any:
    """Reads an export (checkpoint, bundle); unreadable or not JSON is one line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise LedgerError(f"{path}: {exc.strerror}") from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise LedgerError(f"{path}: not {what} ({exc})") from None
