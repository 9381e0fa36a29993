"""Signed tree heads: the C2SP checkpoint note each ledger checkpoint carries.

A checkpoint signs the tree of the ledger's first `size` records as a C2SP
`tlog-checkpoint` (https://c2sp.org/tlog-checkpoint): the note body is the
log's origin line, the tree size and the base64 RFC 6962 root hash, and the
note (https://c2sp.org/signed-note) is signed by the workspace's Ed25519 log
key under the origin as key name (signature type 0x01, key id = the first 4
bytes of SHA-256(origin || 0x0A || 0x01 || public key), as Go's
`sumdb/note`). Example of a note:

    opskit/ops-team/3f2a9c1d
    1042
    Xh8sW8N0...base64 root...=

    — opskit/ops-team/3f2a9c1d Ab3dEf...base64(key id || signature)...

The log never signs two inconsistent tree heads: before signing, the new
tree is recomputed from the records since the last signed head and checked
against it with an RFC 6962 consistency proof (`check_extends`); any
mismatch (records or tree rewritten, records deleted) refuses the checkpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.store import EVENTS, TREE_HEADS
from opskit.ledger.tree import TreeReader
from opskit.tlog import merkle
from opskit.tlog.checkpoint import Checkpoint as TreeHead
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import ED25519, NoteError, Signer, Verifier, format_note, sign_note

if TYPE_CHECKING:
    from opskit.workspace import Workspace

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_origin(public_key: Ed25519PublicKey, label: str = "ledger") -> str:
    """The origin of a workspace that names none: ``opskit/<label>/<key id>``,
    the label being the workspace folder's name (letters, digits, ``._-``)
    and the key id the first 8 hex digits of SHA-256 of the log's public key,
    which makes it unique to the workspace's key."""
    slug = _UNSAFE.sub("-", label).strip("-") or "ledger"
    return f"opskit/{slug}/{keymod.key_id(public_key)[:8]}"


def workspace_origin(ws: Workspace) -> str:
    """The policy's `log_origin`, else `default_origin` of the workspace's
    log key and folder name."""
    configured = ws.policy.log_origin
    if configured:
        return configured
    return default_origin(keymod.load_private_key(ws.keys_dir).public_key(), ws.root.name)


def verifier_for(origin: str, public_key: Ed25519PublicKey) -> Verifier:
    """The note verifier of a log key: its vkey is what auditors pin."""
    return Verifier(origin, ED25519, keymod.raw_public_bytes(public_key))


def sign_tree_head(key: Ed25519PrivateKey, origin: str, size: int, root: bytes) -> str:
    """The signed checkpoint note of a tree head, as text."""
    try:
        signer = Signer(origin, key)
    except NoteError as exc:
        raise LedgerError(f"checkpoint: origin {origin!r} is not a valid key name: {exc}") from None
    return format_note(sign_note(TreeHead(origin, size, root).text(), signer))


def last_signed(cursor: Any, sql: Callable[[str], str], origin: str) -> TreeHead | None:
    """The last tree head this ledger signed for `origin`, or None."""
    cursor.execute(
        sql(f"SELECT note FROM {TREE_HEADS} WHERE origin = ? ORDER BY checkpoint_id DESC LIMIT 1"),
        (origin,),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    try:
        return parse_signed_checkpoint(row[0], source=TREE_HEADS).checkpoint
    except NoteError as exc:
        raise LedgerError(
            f"checkpoint refused: the last signed checkpoint is unreadable ({exc})"
        ) from None


def check_extends(
    cursor: Any, sql: Callable[[str], str], last: TreeHead, size: int, root: bytes
) -> None:
    """Raises LedgerError unless the tree (`size`, `root`) extends `last`.

    The records after `last` are hashed again from the stored edge of the
    tree at `last.size`, which must fold to `last`'s root; they must give
    `root`; and the consistency proof between the two, read from the stored
    tree, must verify.
    """
    refused = (
        f"checkpoint refused: the ledger is not consistent with its checkpoint at size {last.size}"
    )
    if size < last.size:
        raise LedgerError(f"{refused}: it has only {size} records (records deleted)")
    reader = TreeReader(cursor, sql)
    try:
        builder = merkle.TreeBuilder.from_reader(last.size, reader)
        if builder.root() != last.root_hash:
            raise LedgerError(
                f"{refused}: the tree of its first {last.size} records differs from the one "
                "signed (history rewritten)"
            )
        cursor.execute(
            sql(f"SELECT record FROM {EVENTS} WHERE seq > ? AND seq <= ? ORDER BY seq"),
            (last.size, size),
        )
        while rows := cursor.fetchmany(5_000):
            for (record,) in rows:
                builder.append(merkle.record_hash(record.encode()))
        if builder.size != size or builder.root() != root:
            raise LedgerError(f"{refused}: the stored tree does not match the records")
        if last.size:
            proof = merkle.prove_tree(size, last.size, reader)
            merkle.check_tree(proof, size, root, last.size, last.root_hash)
    except merkle.MerkleError as exc:
        raise LedgerError(f"{refused}: {exc}") from None
