"""Content digests in opskit's one written form, `"sha256:<64 hex>"`, and
the one canonical JSON text they are taken over.

Used for every digest opskit shows or compares: inventories, runbooks,
bindings, snapshots, configurations, and the ledger's blob addresses
(docs/ledger-format.md). The ledger's chain hashes are bare hex and live
with the chain (`opskit.ledger.canonical`).

`canonical_json` is the canonical text of the inventory digest, the runbook
digest, the binding digest and the approval signatures: sorted keys, no
whitespace, text as UTF-8 (not escaped). The ledger's records use the same
text (`opskit.ledger.canonical.encode_canonical`, built from
`JSON_OPTIONS`) for the narrower set of values it admits, and refuses the
others instead of writing them as text. `files_digest` is the one digest in
another form, kept because it is recorded (docs/ledger-format.md, "Digests
outside the chain").

Example:
    >>> sha256_text("hostname sw1\\n")
    'sha256:5b0c...'
    >>> canonical_json({"b": 1, "a": ["é", None]})
    '{"a":["é",null],"b":1}'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PREFIX = "sha256:"
_sha256 = hashlib.sha256

#: The canonical JSON form: `json.dumps` options shared by every writer.
JSON_OPTIONS: dict[str, Any] = {
    "sort_keys": True,
    "separators": (",", ":"),
    "ensure_ascii": False,
}


def sha256_bytes(data: bytes) -> str:
    """`"sha256:"` and the hex SHA-256 of `data`."""
    return PREFIX + _sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    """`sha256_bytes` of `text` in UTF-8."""
    return PREFIX + _sha256(text.encode()).hexdigest()


def canonical_json(data: Any) -> str:
    """The canonical JSON text of `data` (see the module docstring); a value
    JSON has no type for is written as its text (`str`), and when a mapping
    has keys of several types (YAML allows `{1: a, b: c}`) every key that is
    not text is marked with its type (`text_keys`)."""
    try:
        return json.dumps(data, default=str, **JSON_OPTIONS)
    except TypeError:  # keys of several types cannot be sorted
        return json.dumps(text_keys(data), default=str, **JSON_OPTIONS)


def ascii_canonical_json(data: Any) -> str:
    """`canonical_json` with every non-ASCII character escaped (`\\u00e9`):
    the form of the compliance template digest (`Intended.template_digest`),
    kept because those digests are recorded."""
    return json.dumps(text_keys(data), default=str, **{**JSON_OPTIONS, "ensure_ascii": True})


def canonical_digest(data: Any) -> str:
    """`sha256_text(canonical_json(data))`: the digest of a document."""
    return sha256_text(canonical_json(data))


def text_keys(data: Any) -> Any:
    """Every mapping key as text; a key that is not text is marked with its
    type, so that `{1: x}` and `{"1": x}` keep different digests."""
    if isinstance(data, dict):
        return {
            (k if isinstance(k, str) else f"\0{type(k).__name__}:{k!r}"): text_keys(v)
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [text_keys(v) for v in data]
    return data


def files_digest(files: Mapping[str, str | None]) -> str:
    """The digest of a snapshot of files: `sha256_text` of
    `json.dumps({path: bare hex SHA-256 of the text, or null when absent},
    sort_keys=True)`, with `json.dumps`'s default separators and ASCII
    escapes. Not `canonical_json`: these digests are recorded in the ledger
    and the CMDB, and the same files must keep the same digest."""
    listing = {
        path: (_sha256(text.encode()).hexdigest() if text is not None else None)
        for path, text in files.items()
    }
    return sha256_text(json.dumps(listing, sort_keys=True))
