"""Complete change bundles: every event of one change, each with a Merkle
inclusion proof against ONE cosigned checkpoint (format ``opskit.ledger.bundle/2``).

A bundle is JSON (docs/ledger-format.md, "Change bundles")::

    {
     "format": "opskit.ledger.bundle/2",
     "change_id": "CHG-0001",
     "checkpoint": "<C2SP checkpoint note, with the witnesses' cosignatures>",
     "events": [
      {"seq": 12, "prev_hash": "<hex>", "record": "<canonical text>", "proof": ["<b64>", ...]},
      {"seq": 15, "prev_hash": "<hex>", "digest": "<hex>", "leaf_hash": "<b64>",
       "proof": [...], "withheld": true, "kind": "host.output"}
     ],
     "purges": [{"seq": 40, "prev_hash": "<hex>", "record": "...", "proof": [...]}],
     "blobs": {"sha256:<hex>": {"content": "<b64>"} | {"purged": true}}
    }

`events` holds every event of the change up to the checkpoint, oldest first;
a withheld (redacted) event is given by the digest of its record (what the
hash chain hashes) and its leaf hash, never its content. `purges` are the
purge events of the change's blobs whose content is gone. Each event's
``change_link`` (`opskit.ledger.changelink`) lets `opskit.ledger.bundlecheck`
prove that none is missing, reordered or invented.

Example:

    >>> export_change_bundle(ledger, "CHG-0001", Path("chg1.bundle.json"), withhold={15})
    PosixPath('chg1.bundle.json')
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.errors import LedgerError, UsageError
from opskit.ledger.bundlecheck import BUNDLE_FORMAT_V2
from opskit.ledger.canonical import record_digest
from opskit.ledger.output import OutputFile
from opskit.ledger.proofs import latest_note
from opskit.ledger.store import EVENTS, PURGES
from opskit.ledger.tree import TreeReader, leaf_index
from opskit.tlog import merkle
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import b64encode

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger


def export_change_bundle(
    ledger: Ledger,
    change_id: str,
    out: Path,
    *,
    actor: str | None = None,
    withhold: Iterable[int] = (),
) -> Path:
    """Writes the complete bundle of `change_id` to `out`; the events whose
    seq is in `withhold` are given by digest only. A place that cannot be
    written is refused before a checkpoint is signed."""
    with OutputFile(out) as target:
        target.stage(change_bundle_text(ledger, change_id, actor=actor, withhold=withhold))
        target.commit()
    return out


def change_bundle_text(
    ledger: Ledger, change_id: str, *, actor: str | None = None, withhold: Iterable[int] = ()
) -> str:
    """The bundle as JSON text (see the module docstring)."""
    reader = ledger.reader()
    rows = [
        (int(seq), prev, record)
        for seq, prev, record in reader.query(
            f"SELECT seq, prev_hash, record FROM {EVENTS} WHERE change_id = ? ORDER BY seq",
            (change_id,),
        )
    ]
    if not rows:
        raise LedgerError(f"export: no ledger events for change {change_id!r}")
    hidden = set(withhold)
    unknown = hidden - {seq for seq, _, _ in rows}
    if unknown:
        raise UsageError(f"export --withhold {min(unknown)}: not an event of change {change_id}")
    note = _covering_note(ledger, rows[-1][0], actor)
    size = parse_signed_checkpoint(note).checkpoint.size
    refs = _blob_refs(record for seq, _, record in rows if seq not in hidden)
    blobs, purged = _blobs(ledger, refs)
    purges = _purge_rows(ledger, purged, size)
    with reader.session() as session:
        cursor = session.cursor()
        try:
            tree = TreeReader(cursor, ledger.sql)
            events = [
                _entry(seq, prev, record, seq in hidden, size, tree) for seq, prev, record in rows
            ]
            purge_entries = [
                _entry(seq, prev, record, False, size, tree) for seq, prev, record in purges
            ]
        finally:
            cursor.close()
    bundle = {
        "format": BUNDLE_FORMAT_V2,
        "change_id": change_id,
        "checkpoint": note,
        "events": events,
        "purges": purge_entries,
        "blobs": blobs,
    }
    return json.dumps(bundle, indent=1, ensure_ascii=False) + "\n"


def _covering_note(ledger: Ledger, last_seq: int, actor: str | None) -> str:
    """The latest checkpoint note (with cosignatures) when it covers the
    change's last event; else a new checkpoint (sent to the witnesses)."""
    note = latest_note(ledger)
    if note is None or parse_signed_checkpoint(note).checkpoint.size < last_seq:
        ledger.checkpoint(actor)
        note = latest_note(ledger)
    assert note is not None  # a checkpoint was just stored
    return note


def _entry(
    seq: int, prev_hash: str, record: str, withheld: bool, size: int, tree: TreeReader
) -> dict[str, Any]:
    data = record.encode()
    proof = [b64encode(h) for h in merkle.prove_record(size, leaf_index(seq), tree)]
    if not withheld:
        return {"seq": seq, "prev_hash": prev_hash, "record": record, "proof": proof}
    # Labels only: the kind is the exporter's word, no hash covers it here.
    kind = json.loads(record).get("kind")
    return {
        "seq": seq,
        "prev_hash": prev_hash,
        "digest": record_digest(record),
        "leaf_hash": b64encode(merkle.record_hash(data)),
        "proof": proof,
        "withheld": True,
        "kind": kind,
    }


def _blob_refs(records: Iterable[str]) -> set[str]:
    refs: set[str] = set()
    for record in records:
        blobs = json.loads(record)["payload"].get("blobs")
        if isinstance(blobs, dict):
            refs.update(v for v in blobs.values() if isinstance(v, str))
    return refs


def _blobs(ledger: Ledger, refs: set[str]) -> tuple[dict[str, Any], set[str]]:
    blobs: dict[str, Any] = {}
    purged: set[str] = set()
    for ref in sorted(refs):
        try:
            blobs[ref] = {"content": base64.b64encode(ledger.get_blob(ref)).decode()}
        except LedgerError as exc:
            blobs[ref] = {"purged": True, "note": str(exc)}
            purged.add(ref)
    return blobs, purged


def _purge_rows(ledger: Ledger, purged: set[str], size: int) -> list[tuple[int, str, str]]:
    """The purge events (within the checkpoint) that emptied the change's blobs."""
    rows: list[tuple[int, str, str]] = []
    for ref in sorted(purged):
        rows += [
            (int(seq), prev, record)
            for seq, prev, record in ledger.reader().query(
                f"SELECT e.seq, e.prev_hash, e.record FROM {PURGES} p "
                f"JOIN {EVENTS} e ON e.seq = p.seq WHERE p.blob_hash = ? AND e.seq <= ?",
                (ref, size),
            )
        ]
    return sorted(rows)
