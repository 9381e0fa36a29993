"""The tamper-evident change ledger: append-only, hash-chained, signed
checkpoints, verifiable offline. docs/ledger.md states the guarantees and
docs/ledger-format.md the exact encoding an auditor re-implements."""

from opskit.ledger.bundle import verify_bundle
from opskit.ledger.core import Batch, Ledger
from opskit.ledger.model import Checkpoint, Event, VerifyReport
from opskit.ledger.reader import LedgerReader, StoredRecord, blob_hash

__all__ = [
    "Batch",
    "Checkpoint",
    "Event",
    "Ledger",
    "LedgerReader",
    "StoredRecord",
    "VerifyReport",
    "blob_hash",
    "verify_bundle",
]
