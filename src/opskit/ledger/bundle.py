"""Evidence bundles: one change's events, provable offline against a signed checkpoint.

A bundle (JSON, format `opskit.ledger.bundle/1`) holds every ledger record
from the change's first event up to a signed checkpoint. Records of the
change (and purges of its blobs) are given in full, as their canonical
text; all other records only as the SHA-256 digest of their canonical text,
which is all the chain needs (hash = SHA-256(prev_hash || digest)), so other
changes' payloads are not disclosed. The verifier recomputes the chain from
the first record's prev_hash to the checkpoint's head, checks the
checkpoint's Ed25519 signature, and checks every blob against its hash.

The key a bundle carries only says who claims to have signed: a bundle is
trusted only when that key is one of the verifier's trust anchors (a pinned
key, a trust file, the workspace's keys). Withheld records carry the
exporter's labels (kind, change id), which no hash covers.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.canonical import chain_hash, record_digest
from opskit.ledger.model import PURGE_KIND, Checkpoint, Event, VerifyReport, read_json
from opskit.ledger.output import OutputFile
from opskit.ledger.reader import blob_hash

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger

BUNDLE_FORMAT = "opskit.ledger.bundle/1"
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def export_bundle(ledger: Ledger, change_id: str, out: Path, *, actor: str | None = None) -> Path:
    """Writes the bundle of `change_id` to `out` (`Ledger.export_bundle`).
    A place that cannot be written is refused before a checkpoint is signed."""
    with OutputFile(out) as target:
        target.stage(_bundle_text(ledger, change_id, actor))
        target.commit()
    return out


def _bundle_text(ledger: Ledger, change_id: str, actor: str | None) -> str:
    """The bundle as JSON text: read through the ledger's reader; a checkpoint
    is signed only when no trusted one covers the change's last event."""
    reader = ledger.reader()
    span = reader.change_span(change_id)
    if span is None:
        raise LedgerError(f"export: no ledger events for change {change_id!r}")
    first, last = span
    trusted = reader.trusted_keys() or {}
    candidates = [
        cp
        for cp in reader.checkpoints()
        if cp.seq >= last and cp.key_id in trusted and cp.signature_problem(trusted) is None
    ]
    # The nearest signed checkpoint keeps the bundle short; without one, sign one now.
    checkpoint = (
        min(candidates, key=lambda cp: cp.seq) if candidates else ledger.checkpoint(actor=actor)
    )
    public = trusted.get(checkpoint.key_id) or keymod.public_key_from_b64(checkpoint.public_key)

    rows = reader.records(first, checkpoint.seq)
    chain: list[dict[str, Any]] = []
    blob_refs: set[str] = set()
    full: list[tuple[dict[str, Any], str, str | None]] = []
    for seq, prev_hash, hash_, record, row_change, kind in rows:
        entry: dict[str, Any] = {"seq": int(seq), "prev_hash": prev_hash, "hash": hash_}
        if row_change == change_id:
            entry["record"] = record
            refs = json.loads(record)["payload"].get("blobs")
            if isinstance(refs, dict):
                blob_refs.update(v for v in refs.values() if isinstance(v, str))
        else:
            # Labels, not covered by the hash: say whose record is withheld.
            entry.update(digest=record_digest(record), kind=kind, change_id=row_change)
        chain.append(entry)
        full.append((entry, record, kind))
    # A purge of one of the change's blobs explains its missing content: show it in full.
    for entry, record, kind in full:
        is_purge = kind == PURGE_KIND and "digest" in entry
        if is_purge and json.loads(record)["payload"].get("blob") in blob_refs:
            for label in ("digest", "kind", "change_id"):
                del entry[label]
            entry["record"] = record

    blobs: dict[str, dict[str, Any]] = {}
    for ref in sorted(blob_refs):
        try:
            blobs[ref] = {"content": base64.b64encode(reader.get_blob(ref)).decode()}
        except LedgerError as exc:
            blobs[ref] = {"purged": True, "note": str(exc)}

    bundle = {
        "format": BUNDLE_FORMAT,
        "change_id": change_id,
        "public_key": keymod.public_key_pem(public).decode(),
        "key_id": keymod.key_id(public),
        "checkpoint": checkpoint.to_dict(),
        "chain": chain,
        "blobs": blobs,
    }
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"


def _load(path: Path) -> dict[str, Any]:
    data = read_json(path, "a JSON bundle")
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT:
        raise LedgerError(f"{path}: not an opskit evidence bundle ({BUNDLE_FORMAT})")
    for name, kind in (("change_id", str), ("public_key", str), ("chain", list), ("blobs", dict)):
        if not isinstance(data.get(name), kind):
            raise LedgerError(f"{path}: field {name!r} is missing or malformed")
    return data


def bundle_events(path: Path) -> list[Event]:
    """The change's events inside a bundle (check it with `verify_bundle` first)."""
    data = _load(path)
    events = []
    for entry in data["chain"]:
        if isinstance(entry, dict) and isinstance(entry.get("record"), str):
            event = Event.from_record(entry["record"], entry["prev_hash"], entry["hash"])
            if event.change_id == data["change_id"]:
                events.append(event)
    return events


@dataclass
class BundleReport(VerifyReport):
    """A bundle's verification: the chain's report, who signed its
    checkpoint and whether that key is trusted, and what it withholds."""

    change_id: str = ""
    key_id: str | None = None
    fingerprint: str | None = None
    trusted: bool = False
    trust_source: str | None = None
    # The only problem is that no trusted key was given (exit 3 in the CLI).
    untrusted_only: bool = False
    disclosed: int = 0
    # Records given only as their digest: {"seq", "kind", "change_id"}; kind
    # and change_id are the exporter's labels (None when absent), unproven.
    withheld: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "change_id": self.change_id,
            "key_id": self.key_id,
            "fingerprint": self.fingerprint,
            "trusted": self.trusted,
            "trust_source": self.trust_source,
            "disclosed": self.disclosed,
            "withheld": self.withheld,
        }

    def summary(self) -> str:
        """One line: what is disclosed and withheld, and who signed."""
        counts = self.counts
        total = counts.get("records", 0)
        text = (
            f"change {self.change_id}: {counts.get('events', 0)} events; "
            f"{self.disclosed} of {total} records disclosed"
        )
        if self.withheld:
            text += f"; {len(self.withheld)} withheld: {_withheld_text(self)}"
        text += f"; {counts.get('blobs', 0)} blobs, {counts.get('purged_blobs', 0)} purged"
        signer = f"key {self.key_id}" if self.key_id else "an unreadable key"
        trust = f"trusted: {self.trust_source}" if self.trusted else "not a trusted key"
        return f"{text}; checkpoint seq {self.head_seq} signed by {signer} ({trust})"


def _withheld_text(report: BundleReport, shown: int = 5) -> str:
    """The withheld records that may be the change's own first (labelled so,
    or not labelled), then a count of those labelled as other changes'."""
    own = [
        w for w in report.withheld if w["change_id"] == report.change_id or not w.get("labelled")
    ]
    others = len(report.withheld) - len(own)
    parts = [
        f"seq {w['seq']} {w['kind']}" if w["kind"] else f"seq {w['seq']} (unlabelled)"
        for w in own[:shown]
    ]
    if len(own) > shown:
        parts.append(f"{len(own) - shown} more")
    if others:
        parts.append(f"{others} labelled as other changes' or no change's")
    labels = any(w.get("labelled") for w in report.withheld)
    return ", ".join(parts) + (" (labels unproven)" if labels else "")


def anchors_for(
    public_key: Path | None = None, trust: Iterable[Path] = ()
) -> keymod.TrustAnchors | None:
    """The trust anchors from a pinned PEM key and trust files, or None."""
    anchors: keymod.TrustAnchors | None = None
    sources: list[str] = []
    if public_key is not None:
        key = keymod.load_public_key_file(Path(public_key))
        anchors = keymod.TrustAnchors(source="", keys={keymod.key_id(key): key})
        sources.append(f"pinned key {public_key}")
    for path in trust:
        loaded = keymod.load_trust_file(Path(path))
        anchors = anchors or keymod.TrustAnchors(source="")
        anchors.keys.update(loaded.keys)
        anchors.fingerprints |= loaded.fingerprints
        anchors.policy = anchors.policy or loaded.policy
        anchors.deprecated = anchors.deprecated or loaded.deprecated
        sources.append(loaded.source)
    if anchors is not None:
        anchors.source = ", ".join(sources)
    return anchors


def verify_bundle(
    path: Path,
    *,
    public_key: Path | None = None,
    trust: keymod.TrustAnchors | None = None,
) -> BundleReport:
    """Checks a bundle with nothing but its own content and trust anchors: a
    pinned PEM key (`public_key`) and/or `trust`. The key a bundle carries is
    never trusted for being there: without an anchor the report is not ok
    (`untrusted_only` when nothing else is wrong)."""
    path = Path(path)
    data = _load(path)
    change_id = data["change_id"]
    checkpoint = Checkpoint.from_dict(data.get("checkpoint"), where=f"{path}: checkpoint")
    pinned = anchors_for(public_key)
    if pinned is not None and trust is not None:
        pinned.keys.update(trust.keys)
        pinned.fingerprints |= trust.fingerprints
        pinned.source += f", {trust.source}"
    anchors = pinned or trust
    signer = _check_signer(data, checkpoint, anchors)
    problems = list(signer.problems)
    chain = _check_chain(data["chain"], change_id, checkpoint)
    problems += chain.problems
    blobs_checked, purged, blob_problems = _check_blobs(data["blobs"], chain.referenced)
    problems += blob_problems
    counts = {
        "events": chain.events,
        "records": len(data["chain"]),
        "blobs": blobs_checked,
        "purged_blobs": purged,
        "checkpoints": 1,
    }
    # Nothing else wrong, but no anchor to check the signer against.
    untrusted_only = not problems and not signer.trusted
    if untrusted_only:
        problems.append((None, _untrusted_text(checkpoint.seq, signer)))
    base = VerifyReport.from_problems(
        problems, counts=counts, head_seq=checkpoint.seq, head_hash=checkpoint.head
    )
    return BundleReport(
        **{f.name: getattr(base, f.name) for f in fields(VerifyReport)},
        change_id=change_id,
        key_id=signer.key_id,
        fingerprint=signer.fingerprint,
        trusted=signer.trusted,
        trust_source=anchors.source if anchors and signer.trusted else None,
        untrusted_only=untrusted_only,
        disclosed=chain.disclosed,
        withheld=chain.withheld,
    )


def _untrusted_text(seq: int, signer: _Signer) -> str:
    return (
        f"signature not checked against a trusted key: the checkpoint at seq {seq} is "
        f"signed by key {signer.key_id} (sha256 {signer.fingerprint}), which only the "
        "bundle vouches for; pin a key with --pubkey or --trust FILE"
    )


class _Signer(NamedTuple):
    problems: list[tuple[int | None, str]]
    key_id: str | None
    fingerprint: str | None
    trusted: bool


def _check_signer(
    data: dict[str, Any], checkpoint: Checkpoint, anchors: keymod.TrustAnchors | None
) -> _Signer:
    """Who signed the checkpoint, whether the signature holds, and whether the
    signer is one of the anchors. The key the bundle carries only says who
    claims to have signed."""
    seq = checkpoint.seq
    try:
        signing = keymod.public_key_from_b64(checkpoint.public_key)
    except LedgerError:
        return _Signer(
            [(seq, f"bad checkpoint signature at seq {seq}: unreadable public key")],
            None, None, False,
        )  # fmt: skip
    key_id, fingerprint = keymod.key_id(signing), keymod.fingerprint(signing)
    problems: list[tuple[int | None, str]] = []
    if key_id != checkpoint.key_id:
        problems.append(
            (seq, f"bad checkpoint signature at seq {seq}: key id does not match its key")
        )
    try:
        carried = keymod.load_public_key_pem(data["public_key"].encode())
    except LedgerError:
        carried = None
    if carried is None or keymod.raw_public_bytes(carried) != keymod.raw_public_bytes(signing):
        problems.append(
            (seq, f"bad checkpoint signature at seq {seq}: the bundle's public key is not "
             f"the key {key_id} that signed its checkpoint")
        )  # fmt: skip
    check_with = signing if anchors is None else anchors.key_for(signing)
    if check_with is None:
        problems.append(
            (seq, f"bad checkpoint signature at seq {seq}: signed by key {key_id}, "
             f"which is not a trusted key ({anchors.source})")  # type: ignore[union-attr]
        )  # fmt: skip
    elif not keymod.verify_signature(check_with, checkpoint.signature, checkpoint.message()):
        problems.append((seq, f"bad checkpoint signature at seq {seq} (key {key_id})"))
    trusted = anchors is not None and check_with is not None and not problems
    return _Signer(problems, key_id, fingerprint, trusted)


class _Chain(NamedTuple):
    problems: list[tuple[int | None, str]]
    events: int
    disclosed: int
    withheld: list[dict[str, Any]]
    referenced: dict[str, int]


def _check_chain(chain: list[Any], change_id: str, checkpoint: Checkpoint) -> _Chain:
    """Recomputes the chain from its first record to the checkpoint's head."""
    problems: list[tuple[int | None, str]] = []
    events = disclosed = 0
    withheld: list[dict[str, Any]] = []
    referenced: dict[str, int] = {}
    prev: str | None = None
    expected: int | None = None
    for entry in chain:
        if not isinstance(entry, dict) or type(entry.get("seq")) is not int:
            problems.append((expected, "changed content: a chain entry is malformed"))
            break
        seq = entry["seq"]
        prev_hash, stored = entry.get("prev_hash"), entry.get("hash")
        record, digest = entry.get("record"), entry.get("digest")
        if expected is not None and seq != expected:
            problems.append(_out_of_order(chain, seq, expected))
            break
        if not (isinstance(prev_hash, str) and isinstance(stored, str)):
            problems.append((seq, f"changed content: record {seq} lacks its hashes"))
            break
        if isinstance(record, str):
            digest = record_digest(record)
        elif not (isinstance(digest, str) and HEX64.match(digest)):
            problems.append((seq, f"changed content: record {seq} has neither record nor digest"))
            break
        if prev is not None and prev_hash != prev:
            problems.append((seq, f"changed content: record {seq} does not link to seq {seq - 1}"))
            break
        if chain_hash(prev_hash, digest) != stored:
            problems.append((seq, f"changed content: record {seq} does not match its hash"))
            break
        if isinstance(record, str):
            try:
                event = Event.from_record(record, prev_hash, stored)
            except (ValueError, KeyError, TypeError):
                problems.append((seq, f"changed content: record {seq} is not a ledger record"))
                break
            if event.seq != seq:
                problems.append(
                    (seq, f"reordered record: seq {seq} holds the record of seq {event.seq}")
                )
                break
            disclosed += 1
            if event.change_id == change_id:
                events += 1
                for ref in event.blobs.values():
                    referenced.setdefault(ref, seq)
        else:
            withheld.append(_label(entry))
        prev, expected = stored, seq + 1
    else:
        if not chain:
            problems.append((None, "missing record: the bundle holds no records"))
        elif expected - 1 != checkpoint.seq or prev != checkpoint.head:  # type: ignore[operator]
            problems.append(
                (
                    checkpoint.seq,
                    f"changed content: the chain ends at seq {expected - 1} with a hash "  # type: ignore[operator]
                    f"the checkpoint (seq {checkpoint.seq}) does not sign",
                )
            )
        elif events == 0:
            problems.append((None, f"missing record: no event of change {change_id} in the bundle"))
    return _Chain(problems, events, disclosed, withheld, referenced)


def _out_of_order(chain: list[Any], seq: int, expected: int) -> tuple[int | None, str]:
    later = {e.get("seq") for e in chain if isinstance(e, dict)}
    if seq > expected and expected in later:
        return expected, f"reordered record: seq {seq} comes before seq {expected}"
    if seq > expected:
        return expected, f"missing record: seq {expected} absent from the chain"
    return seq, f"reordered record: seq {seq} appears after seq {seq + 1}"


def _label(entry: dict[str, Any]) -> dict[str, Any]:
    """A withheld record as the exporter labelled it (labels are not hashed)."""
    kind, owner = entry.get("kind"), entry.get("change_id")
    return {
        "seq": entry["seq"],
        "kind": kind if isinstance(kind, str) else None,
        "change_id": owner if isinstance(owner, str) else None,
        "labelled": "kind" in entry or "change_id" in entry,
    }


def _check_blobs(
    blobs: dict[str, Any], referenced: dict[str, int]
) -> tuple[int, int, list[tuple[int | None, str]]]:
    problems: list[tuple[int | None, str]] = []
    checked = purged = 0
    for ref, seq in referenced.items():
        blob = blobs.get(ref)
        if not isinstance(blob, dict):
            problems.append((seq, f"missing blob: {ref} referenced by seq {seq}"))
        elif blob.get("purged") is True:
            purged += 1
        else:
            try:
                content = base64.b64decode(blob.get("content", ""), validate=True)
            except (ValueError, TypeError):  # not base64, or not text at all
                content = b""
            if blob_hash(content) != ref:
                problems.append((seq, f"blob content changed: {ref}"))
            checked += 1
    return checked, purged, problems
