"""`audit verify --checkpoint FILE --trust POLICY`: a checkpoint an auditor
holds, checked under their trust policy, that the ledger must extend.

The checkpoint file is a C2SP checkpoint note (`opskit audit checkpoint
--save`) or the older JSON checkpoint (`--out`). A note must satisfy the
policy (`opskit.tlog.trust.verify_checkpoint`: a trusted log key, the witness
quorum) and the ledger's tree of that size must have the note's root. A JSON
checkpoint must be signed by one of the policy's log keys. Nothing is
reported verified without a trusted key: `CheckpointUntrusted` lists the
fingerprints found.

Example:

    >>> trusted_checkpoint(ledger, Path("q3.checkpoint"), Path("audit.policy"))
    'checkpoint of tree size 1042 trusted: signed by ops.example.com/ledger+734e31ad, witnesses: w1'
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod
from opskit.ledger.model import Checkpoint
from opskit.ledger.tree import TreeReader
from opskit.tlog import merkle
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.trust import UntrustedError, verify_checkpoint

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger


class CheckpointUntrusted(LedgerError):
    """The checkpoint is not signed as the trust policy requires (one line)."""


def read_checkpoint_file(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None


def found_fingerprints(path: Path) -> str:
    """Who signed a checkpoint file (for the person deciding what to trust)."""
    text = read_checkpoint_file(path)
    if text.lstrip().startswith("{"):
        checkpoint = Checkpoint.load(path)
        return f"key {checkpoint.key_id}"
    signed = parse_signed_checkpoint(text, source=str(path))
    return ", ".join(s.fingerprint for s in signed.note.signatures)


def trusted_checkpoint(ledger: Ledger, path: Path, trust: Path) -> str:
    """Checks the checkpoint file under the trust file; returns one line
    saying what is trusted, or raises `CheckpointUntrusted`/`LedgerError`."""
    anchors = keymod.load_trust_file(trust)
    text = read_checkpoint_file(path)
    if text.lstrip().startswith("{"):
        checkpoint = Checkpoint.load(path)
        signer = keymod.public_key_from_b64(checkpoint.public_key)
        if anchors.key_for(signer) is None:
            raise CheckpointUntrusted(
                f"{path}: signed by key {keymod.key_id(signer)} (sha256 "
                f"{keymod.fingerprint(signer)}), which {trust} does not trust"
            )
        return f"checkpoint at seq {checkpoint.seq} signed by trusted key {checkpoint.key_id}"
    try:
        trusted = verify_checkpoint(text, keymod.load_trust_policy(trust), source=str(path))
    except UntrustedError as exc:
        raise CheckpointUntrusted(str(exc)) from None
    tree = trusted.checkpoint
    with ledger.reader().session() as session:
        cursor = session.cursor()
        try:
            head = ledger.head()[0]
            if tree.size > head:
                raise LedgerError(
                    f"{path}: the ledger has {head} records, fewer than the {tree.size} "
                    "the checkpoint signs (records deleted)"
                )
            root = merkle.TreeBuilder.from_reader(tree.size, TreeReader(cursor, ledger.sql)).root()
        finally:
            cursor.close()
    if root != tree.root_hash:
        raise LedgerError(
            f"{path}: the ledger's first {tree.size} records are not the tree the checkpoint "
            "signs (history rewritten)"
        )
    witnesses = ", ".join(trusted.witnesses) or "none"
    return (
        f"checkpoint of tree size {tree.size} trusted: signed by {trusted.log_key}, "
        f"witnesses: {witnesses}"
    )
