"""Content digests in opskit's one written form, `"sha256:<64 hex>"`.

Used for every digest opskit shows or compares: inventories, runbooks,
bindings, snapshots, configurations, and the ledger's blob addresses
(docs/ledger-format.md). The ledger's chain hashes are bare hex and live
with the chain (`opskit.ledger.canonical`).

Example:
    >>> sha256_text("hostname sw1\\n")
    'sha256:5b0c...'
"""

from __future__ import annotations

import hashlib

PREFIX = "sha256:"
_sha256 = hashlib.sha256


def sha256_bytes(data: bytes) -> str:
    """`"sha256:"` and the hex SHA-256 of `data`."""
    return PREFIX + _sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """`sha256_bytes` of `text` in UTF-8."""
    return PREFIX + _sha256(text.encode()).hexdigest()
