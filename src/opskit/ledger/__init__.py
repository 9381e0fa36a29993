"""The tamper-evident change ledger: append-only, hash-chained, signed
checkpoints, verifiable offline. See docs/ledger.md for the guarantees and
the exact encoding an auditor re-implements."""

from opskit.ledger.core import Batch, Ledger, blob_hash
from opskit.ledger.model import Checkpoint, Event, VerifyReport


def verify_bundle(path: object, **kwargs: object) -> VerifyReport:
    """Checks an evidence bundle offline (no workspace, no database)."""
    from opskit.ledger.bundle import verify_bundle as _verify_bundle

    return _verify_bundle(path, **kwargs)  # type: ignore[arg-type]


__all__ = ["Batch", "Checkpoint", "Event", "Ledger", "VerifyReport", "blob_hash", "verify_bundle"]
