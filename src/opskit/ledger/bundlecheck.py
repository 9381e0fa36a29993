"""Verifying a complete change bundle (``opskit.ledger.bundle/2``) offline.

What is checked, in this order (docs/ledger-format.md, "Change bundles"):

1. the checkpoint note under a trust policy (C2SP tlog-policy,
   `opskit.tlog.trust`): a trusted log key signed it and the witnesses'
   cosignatures meet the policy's quorum. Without a policy nothing is
   verified: the report lists the fingerprints the note carries;
2. every event (disclosed or withheld) and every purge: sequence numbers
   strictly ascending and within the tree, a disclosed record states that
   seq and the bundle's change id, and its leaf (RFC 6962:
   SHA-256(0x00 || record bytes), or the withheld event's leaf hash) is
   included at index seq-1 under the checkpoint's root;
3. completeness: each event's chain hash is SHA-256(prev_hash || digest);
   each disclosed event's ``change_link`` must name the bundle's previous
   event as its back-link and count and fold (`opskit.ledger.changelink`)
   exactly the events before it. A missing, reordered or invented event
   fails here. Completeness is proven up to the latest linked disclosed
   event: for a closed change, up to its closing event at least; for an open
   one, "only up to its latest event". Events without links (a ledger older
   than format 2) make completeness unprovable, which the report says;
4. the blobs of the disclosed events against their hashes; a purged blob
   needs its purge event, included like the events.

Example:

    >>> report = verify_change_bundle(Path("chg1.bundle.json"), load_policy(Path("audit.policy")))
    >>> report.summary()
    'change CHG-1: 7 events (1 withheld: seq 15 host.output); complete up to seq 31 ...'
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError
from opskit.ledger.canonical import chain_hash, record_digest
from opskit.ledger.changelink import EMPTY_DIGEST, LINK_FIELD, fold_one
from opskit.ledger.model import PURGE_KIND, read_json
from opskit.ledger.reader import blob_hash
from opskit.tlog import merkle
from opskit.tlog.checkpoint import Checkpoint, parse_signed_checkpoint
from opskit.tlog.note import b64decode_strict
from opskit.tlog.trust import TrustPolicy, UntrustedError, verify_checkpoint

CLOSED_KIND = "change.closed"
BUNDLE_FORMAT_V2 = "opskit.ledger.bundle/2"


class BundleFormatError(OpskitError):
    """A bundle that is not a well-formed change bundle (one line)."""


@dataclass
class ChangeBundleReport:
    """The verdict on a change bundle; `summary()` is one line."""

    change_id: str
    ok: bool = False
    trusted: bool = False
    problems: list[str] = field(default_factory=list)
    found_keys: tuple[str, ...] = ()
    log_key: str | None = None
    witnesses: tuple[str, ...] = ()
    tree_size: int = 0
    events: int = 0
    withheld: list[dict[str, Any]] = field(default_factory=list)
    complete_to: int | None = None  # seq up to which completeness is proven
    closed_at: int | None = None
    later_unproven: int = 0  # events after `complete_to`
    unlinked: bool = False
    blobs: int = 0
    purged_blobs: int = 0

    @property
    def problem(self) -> str | None:
        return self.problems[0] if self.problems else None

    def completeness(self) -> str:
        if self.unlinked and self.complete_to is None:
            return "completeness cannot be proven (events written before ledger format 2)"
        if self.complete_to is None:
            return "completeness not proven (no disclosed linked event)"
        if self.closed_at is not None and self.later_unproven == 0:
            text = f"complete: closed at seq {self.closed_at}"
            if self.complete_to != self.closed_at:
                text += f", events proven up to seq {self.complete_to}"
            return text
        text = f"complete only up to seq {self.complete_to}"
        if self.closed_at is None:
            text += " (open change: later events cannot be proven absent)"
        if self.later_unproven:
            text += f"; {self.later_unproven} later event(s) unproven"
        return text

    def summary(self) -> str:
        text = f"change {self.change_id}: {self.events} events"
        if self.withheld:
            shown = ", ".join(
                f"seq {w['seq']} {w['kind'] or '(unlabelled)'}" for w in self.withheld[:5]
            )
            more = f", {len(self.withheld) - 5} more" if len(self.withheld) > 5 else ""
            text += f" ({len(self.withheld)} withheld, verifiable by digest: {shown}{more})"
        text += f"; {self.completeness()}; {self.blobs} blobs, {self.purged_blobs} purged"
        signer = self.log_key or ", ".join(self.found_keys) or "no key"
        witnesses = ", ".join(self.witnesses) or "none"
        trust = "trusted" if self.trusted else "NOT trusted"
        return (
            f"{text}; tree size {self.tree_size} signed by {signer} ({trust}), "
            f"witnesses: {witnesses}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "change_id": self.change_id,
            "trusted": self.trusted,
            "problems": self.problems,
            "found_keys": list(self.found_keys),
            "log_key": self.log_key,
            "witnesses": list(self.witnesses),
            "tree_size": self.tree_size,
            "events": self.events,
            "withheld": self.withheld,
            "complete_to": self.complete_to,
            "closed_at": self.closed_at,
            "completeness": self.completeness(),
            "blobs": self.blobs,
            "purged_blobs": self.purged_blobs,
        }


def load_change_bundle(path: Path) -> dict[str, Any]:
    data = read_json(path, "a JSON bundle")
    if not isinstance(data, dict) or data.get("format") != BUNDLE_FORMAT_V2:
        raise BundleFormatError(f"{path}: not an opskit change bundle ({BUNDLE_FORMAT_V2})")
    for name, kind in (("change_id", str), ("checkpoint", str), ("events", list), ("blobs", dict)):
        if not isinstance(data.get(name), kind):
            raise BundleFormatError(f"{path}: field {name!r} is missing or malformed")
    if not isinstance(data.get("purges", []), list):
        raise BundleFormatError(f"{path}: field 'purges' is malformed")
    return data


def verify_change_bundle(path: Path, policy: TrustPolicy | None) -> ChangeBundleReport:
    """Checks a change bundle (module docstring); `policy` None: nothing is
    trusted and the report is not ok, but every other check still runs."""
    data = load_change_bundle(Path(path))
    report = ChangeBundleReport(change_id=data["change_id"])
    signed = parse_signed_checkpoint(data["checkpoint"], source=f"{path}: checkpoint")
    checkpoint = signed.checkpoint
    report.tree_size = checkpoint.size
    report.found_keys = tuple(dict.fromkeys(s.fingerprint for s in signed.note.signatures))
    if policy is None:
        report.problems.append(
            "no trust policy: nothing verified (signed by "
            f"{', '.join(report.found_keys)}; pin the log's vkey with --trust FILE)"
        )
    else:
        try:
            trusted = verify_checkpoint(signed.note, policy, source=f"{path}: checkpoint")
            report.trusted, report.log_key = True, trusted.log_key
            report.witnesses = trusted.witnesses
        except UntrustedError as exc:
            report.problems.append(f"checkpoint not trusted: {exc}")
    entries = _check_entries(data["events"], data["change_id"], checkpoint, report)
    _check_links(entries, report)
    referenced = _blob_refs(entries)
    purged_by = _check_purges(data.get("purges", []), checkpoint, report)
    _check_blobs(data["blobs"], referenced, purged_by, report)
    report.ok = not report.problems
    return report


@dataclass
class _Entry:
    seq: int
    hash: str
    record: dict[str, Any] | None  # None: withheld


def _check_entries(
    raw: list[Any], change_id: str, checkpoint: Checkpoint, report: ChangeBundleReport
) -> list[_Entry]:
    entries: list[_Entry] = []
    last = 0
    for position, item in enumerate(raw):
        try:
            entry = _check_entry(item, checkpoint, last)
        except _Bad as exc:
            report.problems.append(f"event #{position + 1}: {exc}")
            return entries
        if entry.record is not None and entry.record.get("change_id") != change_id:
            report.problems.append(f"invented event: seq {entry.seq} is not of change {change_id}")
            return entries
        if entry.record is None:
            kind = item.get("kind")
            report.withheld.append(
                {"seq": entry.seq, "kind": kind if isinstance(kind, str) else None}
            )
        entries.append(entry)
        last = entry.seq
    report.events = len(entries)
    if not entries:
        report.problems.append(f"missing record: no event of change {change_id} in the bundle")
    return entries


class _Bad(Exception):
    pass


def _check_entry(item: Any, checkpoint: Checkpoint, last: int) -> _Entry:
    """One event or purge: its order, its record and its inclusion proof."""
    if not isinstance(item, dict) or type(item.get("seq")) is not int:
        raise _Bad("malformed entry")
    seq = item["seq"]
    if seq <= last:
        raise _Bad(f"reordered: seq {seq} comes after seq {last}")
    if not 1 <= seq <= checkpoint.size:
        raise _Bad(f"seq {seq} is outside the checkpoint's tree (size {checkpoint.size})")
    prev_hash, proof = item.get("prev_hash"), item.get("proof")
    if not isinstance(prev_hash, str) or not isinstance(proof, list):
        raise _Bad(f"seq {seq} lacks its prev_hash or proof")
    record: dict[str, Any] | None = None
    try:
        hashes = [b64decode_strict(h) for h in proof]
        if isinstance(item.get("record"), str):
            text = item["record"]
            record = json.loads(text)
            digest, leaf = record_digest(text), merkle.record_hash(text.encode())
            if not isinstance(record, dict) or record.get("seq") != seq:
                raise _Bad(f"reordered: the record given as seq {seq} states another seq")
        else:
            digest, leaf = item.get("digest"), b64decode_strict(item.get("leaf_hash"))
            if not isinstance(digest, str) or len(digest) != 64:
                raise _Bad(f"withheld seq {seq} has no digest")
        merkle.check_record(hashes, checkpoint.size, checkpoint.root_hash, seq - 1, leaf)
    except (ValueError, TypeError, OpskitError) as exc:
        raise _Bad(f"seq {seq} is not in the checkpoint's tree ({exc})") from None
    return _Entry(seq, chain_hash(prev_hash, digest), record)


def _check_links(entries: list[_Entry], report: ChangeBundleReport) -> None:
    """Every disclosed linked event must commit to exactly the events before it."""
    digest, count = EMPTY_DIGEST, 0
    previous: _Entry | None = None
    for entry in entries:
        link = entry.record.get("payload", {}).get(LINK_FIELD) if entry.record else None
        if entry.record is not None and link is None:
            report.unlinked = True
        elif isinstance(link, dict):
            expected = {
                "count": count,
                "digest": digest,
                "prev_seq": previous.seq if previous else None,
                "prev_hash": previous.hash if previous else None,
            }
            if any(link.get(k) != v for k, v in expected.items()):
                report.problems.append(
                    f"incomplete or altered change: the event at seq {entry.seq} commits to "
                    f"{link.get('count')} earlier event(s) (back-link seq {link.get('prev_seq')}), "
                    f"not to the {count} before it in the bundle"
                )
                return
            report.complete_to = entry.seq
        if entry.record is not None and entry.record.get("kind") == CLOSED_KIND:
            report.closed_at = report.closed_at or entry.seq
        digest, count, previous = fold_one(digest, entry.seq, entry.hash), count + 1, entry
    if report.complete_to is not None:
        report.later_unproven = sum(1 for e in entries if e.seq > report.complete_to)


def _blob_refs(entries: list[_Entry]) -> dict[str, int]:
    refs: dict[str, int] = {}
    for entry in entries:
        blobs = (entry.record or {}).get("payload", {}).get("blobs")
        if isinstance(blobs, dict):
            for ref in blobs.values():
                if isinstance(ref, str):
                    refs.setdefault(ref, entry.seq)
    return refs


def _check_purges(raw: list[Any], checkpoint: Checkpoint, report: ChangeBundleReport) -> set[str]:
    """The blobs whose purge event the bundle proves."""
    purged: set[str] = set()
    for item in raw:
        try:
            entry = _check_entry(item, checkpoint, 0)
        except _Bad as exc:
            report.problems.append(f"purge: {exc}")
            continue
        record = entry.record or {}
        if record.get("kind") == PURGE_KIND and isinstance(record.get("payload"), dict):
            purged.add(str(record["payload"].get("blob")))
    return purged


def _check_blobs(
    blobs: dict[str, Any],
    referenced: dict[str, int],
    purged_by: set[str],
    report: ChangeBundleReport,
) -> None:
    for ref, seq in referenced.items():
        blob = blobs.get(ref)
        if not isinstance(blob, dict):
            report.problems.append(f"missing blob: {ref} referenced by seq {seq}")
        elif blob.get("purged") is True:
            if ref not in purged_by:
                report.problems.append(f"blob {ref} said purged without its purge event")
            report.purged_blobs += 1
        else:
            try:
                content = base64.b64decode(blob.get("content", ""), validate=True)
            except (ValueError, TypeError):
                content = b""
            if blob_hash(content) != ref:
                report.problems.append(f"blob content changed: {ref}")
            report.blobs += 1


def policy_from_anchors(anchors: Any, note_text: str) -> TrustPolicy | None:
    """The trust policy to check a change bundle with: the anchors' policy;
    else (a pinned PEM key, the deprecated key-a-line file, the workspace's
    keys) the pinned raw keys as log keys under the checkpoint's origin, with
    no witness quorum. Key ids or fingerprints alone cannot check a note: None."""
    from opskit.ledger import keys as keymod
    from opskit.tlog.note import ED25519, Verifier

    if anchors is None:
        return None
    if anchors.policy is not None:
        return anchors.policy  # type: ignore[no-any-return]
    if not anchors.keys:
        return None
    origin = parse_signed_checkpoint(note_text, source="checkpoint").checkpoint.origin
    logs = tuple(
        Verifier(origin, ED25519, keymod.raw_public_bytes(key)) for key in anchors.keys.values()
    )
    return TrustPolicy(logs, source=anchors.source)
