"""The trust policy: which logs and witnesses an auditor trusts, and the quorum.

The trust file is a C2SP transparency log policy (https://c2sp.org/tlog-policy),
a line-based text file that other transparency tools read too::

    # opskit workspace ledger of the Lyon network team
    log      ops.example.com/ledger+5a3c81f2+AV2m...              (vkey, type 0x01)
    witness  w1  witness1.example/w+0e4a1b22+BNq1...  [url]       (vkey, type 0x04)
    witness  w2  witness2.example/w+91fc2d03+BJx0...
    group    two-of-two  all  w1 w2                    (or: any, or a number k)
    quorum   two-of-two                                (or: a witness, or none)

Blank lines and ``#`` comments are ignored; items are separated by spaces or
tabs. A log's key name is the origin it may sign (tlog-policy: the name MUST
correspond to the origin line). A group or the quorum names only witnesses or
groups defined on earlier lines; a name is a member of a group at most once;
duplicate keys are refused. Exactly one ``quorum`` line. A malformed file
raises `TrustFileError` naming the file, the line and the field.

`verify_checkpoint` applies a policy to a checkpoint note: a signature by a
trusted log key for the checkpoint's origin, and cosignatures by trusted
witnesses satisfying the quorum. Keys come only from the policy, never from
the note or the file under check; when nothing trusted signed, the error lists
the fingerprints that were found.

Example:

    >>> policy = load_policy(Path("auditor.policy"))
    >>> verify_checkpoint(note_text, policy, source="latest.checkpoint")
    TrustedCheckpoint(checkpoint=Checkpoint(origin='ops.example.com/ledger', size=57, ...),
                      log_key='ops.example.com/ledger+5a3c81f2', witnesses=('w1', 'w2'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from opskit.errors import ValidationError
from opskit.tlog.checkpoint import Checkpoint, parse_signed_checkpoint
from opskit.tlog.merkle import MerkleError, check_record, check_tree, record_hash
from opskit.tlog.note import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteError,
    VerificationError,
    Verifier,
    format_note,
    verify_note,
)
from opskit.tlog.proof import ConsistencyProof, InclusionProof

NONE = "none"
# tlog-policy recommends supporting at least 32 of each; refuse absurd files.
MAX_ENTRIES = 1024
_SEPARATORS = re.compile(r"[ \t]+")


class TrustFileError(ValidationError):
    """A malformed trust file (names the file, the line and the field)."""


class UntrustedError(VerificationError):
    """A checkpoint that the trust policy does not accept (one line saying why).

    `found` lists the fingerprints (``name+keyid``) of every signature line
    the note carried, for the person who must decide whether to trust one.
    """

    found: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    """k of the members (witness or group names) must have witnessed."""

    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class TrustPolicy:
    """Trusted log keys (by origin), witness keys (by policy name), groups, quorum."""

    logs: tuple[Verifier, ...]
    witnesses: dict[str, Verifier] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    quorum: str = NONE
    source: str = "trust policy"

    @property
    def origins(self) -> tuple[str, ...]:
        """The origins this policy accepts (the log keys' names)."""
        return tuple(dict.fromkeys(v.name for v in self.logs))

    def witnessed(self, name: str, cosigned: set[str]) -> bool:
        """Whether witness or group `name` is satisfied by the witnesses in `cosigned`."""
        if name == NONE:
            return True
        if name in self.witnesses:
            return name in cosigned
        group = self.groups[name]
        return sum(self.witnessed(m, cosigned) for m in group.members) >= group.threshold


class _Parser:
    """Reads a tlog-policy file line by line into a `TrustPolicy`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.logs: list[Verifier] = []
        self.witnesses: dict[str, Verifier] = {}
        self.groups: dict[str, Group] = {}
        self.quorum: str | None = None
        self.line = 0

    def fail(self, message: str, item: str) -> TrustFileError:
        return TrustFileError(message, file=self.source, line=self.line, field=item)

    def vkey(self, text: str, sig_type: int, item: str) -> Verifier:
        try:
            verifier = Verifier.from_vkey(text)
        except NoteError as exc:
            raise self.fail(exc.reason, item) from None
        if verifier.sig_type != sig_type:
            kind = "a log key (type 0x01)" if sig_type == ED25519 else "a cosigner key (type 0x04)"
            raise self.fail(f"{verifier.fingerprint} is not {kind}", item)
        keys = [*self.logs, *self.witnesses.values()]
        if any(k.public_key == verifier.public_key for k in keys):
            raise self.fail(f"duplicate key {verifier.fingerprint}", item)
        return verifier

    def new_name(self, name: str, item: str) -> str:
        if name == NONE or name in self.witnesses or name in self.groups:
            raise self.fail(f"name {name!r} is already defined or reserved", item)
        return name

    def line_items(self, items: list[str]) -> None:
        keyword, args = items[0], items[1:]
        handler = {"log": self.log, "witness": self.witness, "group": self.group}.get(keyword)
        if keyword == "quorum":
            self.set_quorum(args)
        elif handler is None:
            raise self.fail(f"unknown keyword {keyword!r}", "keyword")
        else:
            handler(args)
        if len(self.logs) + len(self.witnesses) + len(self.groups) > MAX_ENTRIES:
            raise self.fail(f"more than {MAX_ENTRIES} entries", keyword)

    def log(self, args: list[str]) -> None:
        if not 1 <= len(args) <= 2:
            raise self.fail("expected: log <vkey> [<url>]", "log")
        self.logs.append(self.vkey(args[0], ED25519, "log"))

    def witness(self, args: list[str]) -> None:
        if not 2 <= len(args) <= 3:
            raise self.fail("expected: witness <name> <vkey> [<url>]", "witness")
        name = self.new_name(args[0], "witness")
        self.witnesses[name] = self.vkey(args[1], COSIGNATURE_V1, "witness")

    def group(self, args: list[str]) -> None:
        if len(args) < 3:
            raise self.fail("expected: group <name> all|any|<k> <member>...", "group")
        name, spec, members = self.new_name(args[0], "group"), args[1], args[2:]
        for member in members:
            if member not in self.witnesses and member not in self.groups:
                raise self.fail(f"member {member!r} is not defined on an earlier line", "group")
        if len(set(members)) != len(members):
            raise self.fail("a name is listed twice in the group", "group")
        threshold = {"all": len(members), "any": 1}.get(spec)
        if threshold is None:
            if not spec.isascii() or not spec.isdigit() or not 1 <= int(spec) <= len(members):
                raise self.fail(f"threshold {spec!r} is not all, any or 1..{len(members)}", "group")
            threshold = int(spec)
        self.groups[name] = Group(name, threshold, tuple(members))

    def set_quorum(self, args: list[str]) -> None:
        if self.quorum is not None:
            raise self.fail("a second quorum line", "quorum")
        if len(args) != 1:
            raise self.fail("expected: quorum <name>", "quorum")
        name = args[0]
        if name != NONE and name not in self.witnesses and name not in self.groups:
            raise self.fail(f"quorum {name!r} is not defined on an earlier line", "quorum")
        self.quorum = name

    def finish(self) -> TrustPolicy:
        if self.quorum is None:
            raise TrustFileError("no quorum line", file=self.source, field="quorum")
        if not self.logs:
            raise TrustFileError("no log line: nothing to trust", file=self.source, field="log")
        return TrustPolicy(
            tuple(self.logs), self.witnesses, self.groups, self.quorum, source=self.source
        )


def parse_policy(data: str | bytes, *, source: str = "trust policy") -> TrustPolicy:
    """Parse a tlog-policy text strictly (see the module docstring)."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    parser = _Parser(source)
    for number, raw in enumerate(data.split(b"\n"), start=1):
        parser.line = number
        bad = next((b for b in raw if (b < 0x20 and b != 0x09) or b == 0x7F), None)
        if bad is not None:
            raise parser.fail(f"control character 0x{bad:02x}", "text")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise parser.fail("not valid UTF-8", "text") from None
        items = [item for item in _SEPARATORS.split(line) if item]
        if items and not items[0].startswith("#"):
            parser.line_items(items)
    return parser.finish()


def load_policy(path: Path) -> TrustPolicy:
    """Read and parse a trust file; unreadable or malformed: `TrustFileError`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustFileError(f"cannot read: {exc.strerror or exc}", file=path) from None
    return parse_policy(data, source=str(path))


@dataclass(frozen=True)
class TrustedCheckpoint:
    """A checkpoint the policy accepts: the log key and the witnesses that cosigned."""

    checkpoint: Checkpoint
    note: Note
    log_key: str
    witnesses: tuple[str, ...]


def verify_checkpoint(
    data: str | bytes | Note, policy: TrustPolicy, *, source: str = "checkpoint"
) -> TrustedCheckpoint:
    """Verify a checkpoint note against `policy`, or raise `UntrustedError`.

    Accepted when the origin is one the policy names, a trusted log key for
    that origin signed it, every signature by a key the policy knows verifies,
    and the witnesses whose cosignatures verify satisfy the quorum.
    """
    if isinstance(data, Note):
        note = data
        checkpoint = parse_signed_checkpoint(format_note(note), source=source).checkpoint
    else:
        signed = parse_signed_checkpoint(data, source=source)
        note, checkpoint = signed.note, signed.checkpoint
    log_keys = [v for v in policy.logs if v.name == checkpoint.origin]
    fingerprints = tuple(dict.fromkeys(s.fingerprint for s in note.signatures))
    found = ", ".join(fingerprints)
    if not log_keys:
        raise _untrusted(
            f"origin {checkpoint.origin!r} is not in {policy.source} (signed by: {found})",
            source,
            fingerprints,
        )
    trusted = [*log_keys, *policy.witnesses.values()]
    result = verify_note(note, trusted, source=source, require=False)
    log_sigs = [s for s in result.verified if any(v.matches(s) for v in log_keys)]
    if not log_sigs:
        raise _untrusted(
            f"no signature by a log key of {policy.source} (found: {found})", source, fingerprints
        )
    cosigned = {
        name for name, v in policy.witnesses.items() if any(v.matches(s) for s in result.verified)
    }
    if not policy.witnessed(policy.quorum, cosigned):
        have = ", ".join(sorted(cosigned)) or "none"
        raise _untrusted(
            f"witness quorum {policy.quorum!r} not met (valid cosignatures from: {have})",
            source,
            fingerprints,
        )
    return TrustedCheckpoint(checkpoint, note, log_sigs[0].fingerprint, tuple(sorted(cosigned)))


def _untrusted(message: str, source: str, found: tuple[str, ...]) -> UntrustedError:
    error = UntrustedError(message, file=source)
    error.found = found
    return error


@dataclass(frozen=True)
class VerifiedInclusion:
    """An inclusion proof that holds under a trust policy."""

    trusted: TrustedCheckpoint
    index: int
    record: bytes | None


def verify_inclusion_proof(
    proof: InclusionProof,
    policy: TrustPolicy,
    *,
    record: bytes | None = None,
    source: str = "proof",
) -> VerifiedInclusion:
    """Verify a tlog-proof: a trusted checkpoint, and the record at `index` under its root.

    The record bytes are `record` when the caller has them, else the proof's
    ``extra`` line (unauthenticated by itself: it is bound by the leaf hash).
    Raises `UntrustedError` (checkpoint) or `VerificationError` (inclusion).
    """
    trusted = verify_checkpoint(proof.note, policy, source=source)
    data = record if record is not None else proof.extra
    if data is None:
        raise VerificationError("no record bytes: no extra line and none given", file=source)
    try:
        check_record(
            proof.hashes,
            proof.checkpoint.size,
            proof.checkpoint.root_hash,
            proof.index,
            record_hash(data),
        )
    except MerkleError as exc:
        raise VerificationError(str(exc), file=source) from None
    return VerifiedInclusion(trusted, proof.index, data)


def verify_consistency_proof(
    body: ConsistencyProof,
    old: Checkpoint,
    policy: TrustPolicy,
    *,
    source: str = "consistency proof",
) -> TrustedCheckpoint:
    """Verify that the body's trusted checkpoint extends `old` (same origin, proof holds)."""
    trusted = verify_checkpoint(body.note, policy, source=source)
    new = body.checkpoint
    if new.origin != old.origin or body.old_size != old.size:
        raise VerificationError(
            f"the proof starts at {body.old_size} of {new.origin!r}, "
            f"not at {old.size} of {old.origin!r}",
            file=source,
        )
    if old.size == new.size or old.size == 0:
        if body.hashes or (old.size and old.root_hash != new.root_hash):
            raise VerificationError("inconsistent checkpoints of the same size", file=source)
        return trusted
    try:
        check_tree(body.hashes, new.size, new.root_hash, old.size, old.root_hash)
    except MerkleError as exc:
        raise VerificationError(str(exc), file=source) from None
    return trusted
