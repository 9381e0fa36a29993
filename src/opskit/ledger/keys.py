"""The workspace's Ed25519 signing key, used for ledger checkpoints.

`opskit init` creates `.opskit/keys/ledger-ed25519.key` (PKCS#8 PEM, mode
0600) and `ledger-ed25519.pub` (SubjectPublicKeyInfo PEM). Checkpoints from
other workspaces sharing the same database (a team on PostgreSQL) are
trusted when their public key is placed in `.opskit/keys/trusted/*.pub`.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opskit.errors import LedgerError

if TYPE_CHECKING:
    from opskit.workspace import Workspace

PRIVATE_KEY_FILE = "ledger-ed25519.key"
PUBLIC_KEY_FILE = "ledger-ed25519.pub"
TRUSTED_DIR = "trusted"


def ensure_workspace_key(ws: Workspace) -> Path:
    """Creates the workspace's signing key if it has none; returns the key file."""
    return ensure_key(ws.keys_dir)


def ensure_key(keys_dir: Path) -> Path:
    keys_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(keys_dir, 0o700)
    private_path = keys_dir / PRIVATE_KEY_FILE
    if private_path.exists():
        return private_path
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: two processes initialising at once must not overwrite each other's key.
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return private_path
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    (keys_dir / PUBLIC_KEY_FILE).write_bytes(public_key_pem(key.public_key()))
    return private_path


def load_private_key(keys_dir: Path) -> Ed25519PrivateKey:
    path = keys_dir / PRIVATE_KEY_FILE
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise LedgerError(f"{path}: no signing key") from None
    except ValueError as exc:
        raise LedgerError(f"{path}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"{path}: not an Ed25519 key")
    return key


def load_public_key_file(path: Path) -> Ed25519PublicKey:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise LedgerError(f"{path}: {exc.strerror}") from None
    return load_public_key_pem(pem, where=str(path))


def load_public_key_pem(pem: bytes, *, where: str = "public key") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise LedgerError(f"{where}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"{where}: not an Ed25519 public key")
    return key


def trusted_public_keys(keys_dir: Path) -> dict[str, Ed25519PublicKey]:
    """The workspace's own public key plus `trusted/*.pub`, by key id."""
    keys: dict[str, Ed25519PublicKey] = {}
    own = keys_dir / PUBLIC_KEY_FILE
    if own.exists():
        key = load_public_key_file(own)
        keys[key_id(key)] = key
    elif (keys_dir / PRIVATE_KEY_FILE).exists():
        key = load_private_key(keys_dir).public_key()
        keys[key_id(key)] = key
    trusted = keys_dir / TRUSTED_DIR
    if trusted.is_dir():
        for path in sorted(trusted.glob("*.pub")):
            key = load_public_key_file(path)
            keys[key_id(key)] = key
    return keys


def raw_public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(raw_public_bytes(key)).decode()


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise LedgerError(f"public key: not a base64 Ed25519 key ({exc})") from None


def key_id(key: Ed25519PublicKey) -> str:
    """A short fingerprint: the first 16 hex digits of SHA-256 of the raw public key."""
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()[:16]


def verify_signature(key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
