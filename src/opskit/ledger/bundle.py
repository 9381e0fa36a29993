"""Evidence bundles: one change's events, provable offline against a signed checkpoint.

A bundle (JSON, format `opskit.ledger.bundle/1`) holds every ledger record
from the change's first event up to a signed checkpoint. Records of the
change (and purges of its blobs) are given in full, as their canonical
text; all other records only as the SHA-256 digest of their canonical text,
which is all the chain needs (hash = SHA-256(prev_hash || digest)), so other
changes' payloads are not disclosed. The verifier recomputes the chain from
the first record's prev_hash to the checkpoint's head, checks the
checkpoint's Ed25519 signature, and checks every blob against its hash.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.canonical import chain_hash, record_digest
from opskit.ledger.core import blob_hash
from opskit.ledger.model import PURGE_KIND, Checkpoint, Event, VerifyReport, read_json, write_file
from opskit.ledger.store import EVENTS

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger

BUNDLE_FORMAT = "opskit.ledger.bundle/1"
HEX64 = re.compile(r"[0-9a-f]{64}\Z")


def export_bundle(ledger: Ledger, change_id: str, out: Path, *, actor: str | None = None) -> Path:
    own = list(
        ledger._query(
            f"SELECT seq FROM {EVENTS} WHERE change_id = ? ORDER BY seq LIMIT 1", (change_id,)
        )
    )
    if not own:
        raise LedgerError(f"export: no ledger events for change {change_id!r}")
    first = int(own[0][0])
    last = int(
        next(
            iter(ledger._query(f"SELECT MAX(seq) FROM {EVENTS} WHERE change_id = ?", (change_id,)))
        )[0]
    )
    trusted = ledger.trusted_keys() or {}
    candidates = [
        cp
        for cp in ledger.checkpoints()
        if cp.seq >= last and cp.key_id in trusted and cp.signature_problem(trusted) is None
    ]
    # The nearest signed checkpoint keeps the bundle short; without one, sign one now.
    checkpoint = (
        min(candidates, key=lambda cp: cp.seq) if candidates else ledger.checkpoint(actor=actor)
    )
    public = trusted.get(checkpoint.key_id) or keymod.public_key_from_b64(checkpoint.public_key)

    rows = list(
        ledger._query(
            f"SELECT seq, prev_hash, hash, record, change_id, kind FROM {EVENTS} "
            "WHERE seq >= ? AND seq <= ? ORDER BY seq",
            (first, checkpoint.seq),
        )
    )
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
            entry["digest"] = record_digest(record)
        chain.append(entry)
        full.append((entry, record, kind))
    # A purge of one of the change's blobs explains its missing content: show it in full.
    for entry, record, kind in full:
        is_purge = kind == PURGE_KIND and "digest" in entry
        if is_purge and json.loads(record)["payload"].get("blob") in blob_refs:
            del entry["digest"]
            entry["record"] = record

    blobs: dict[str, dict[str, Any]] = {}
    for ref in sorted(blob_refs):
        try:
            blobs[ref] = {"content": base64.b64encode(ledger.get_blob(ref)).decode()}
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
    write_file(out, json.dumps(bundle, indent=1, ensure_ascii=False) + "\n")
    return out


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


def verify_bundle(path: Path, *, public_key: Path | None = None) -> VerifyReport:
    """Checks a bundle with nothing but its own content (and optionally a pinned key)."""
    path = Path(path)
    data = _load(path)
    change_id = data["change_id"]
    problems: list[tuple[int | None, str]] = []

    checkpoint = Checkpoint.from_dict(data.get("checkpoint"), where=f"{path}: checkpoint")
    if public_key is not None:
        pinned = keymod.load_public_key_file(Path(public_key))
    else:
        try:
            pinned = keymod.load_public_key_pem(data["public_key"].encode())
        except LedgerError:
            pinned = None
    if pinned is None:
        problems.append((checkpoint.seq, f"bad checkpoint signature at seq {checkpoint.seq}: "
                         "the bundle's public key is unreadable"))  # fmt: skip
    elif (bad := checkpoint.signature_problem({keymod.key_id(pinned): pinned})) is not None:
        problems.append((checkpoint.seq, bad))

    chain = data["chain"]
    events = blobs_checked = purged = 0
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
            later = {e.get("seq") for e in chain if isinstance(e, dict)}
            if seq > expected and expected in later:
                problems.append(
                    (expected, f"reordered record: seq {seq} comes before seq {expected}")
                )
            elif seq > expected:
                problems.append((expected, f"missing record: seq {expected} absent from the chain"))
            else:
                problems.append((seq, f"reordered record: seq {seq} appears after seq {seq + 1}"))
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
            if event.change_id == change_id:
                events += 1
                for ref in event.blobs.values():
                    referenced.setdefault(ref, seq)
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

    for ref, seq in referenced.items():
        blob = data["blobs"].get(ref)
        if not isinstance(blob, dict):
            problems.append((seq, f"missing blob: {ref} referenced by seq {seq}"))
        elif blob.get("purged") is True:
            purged += 1
        else:
            try:
                content = base64.b64decode(blob.get("content", ""), validate=True)
            except ValueError:
                content = b""
            if blob_hash(content) != ref:
                problems.append((seq, f"blob content changed: {ref}"))
            blobs_checked += 1

    counts = {
        "events": events,
        "records": len(chain),
        "blobs": blobs_checked,
        "purged_blobs": purged,
        "checkpoints": 1,
    }
    return VerifyReport.from_problems(
        problems, counts=counts, head_seq=checkpoint.seq, head_hash=checkpoint.head
    )
