"""Signed approvals: Ed25519 over the canonical binding document.

An approver's public key is in the policy (`people.NAME.signing_key`, the
raw 32 bytes in base64). The private key file may hold the raw 32 bytes in
base64, or a PEM PKCS#8 key.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opskit.digests import canonical_json
from opskit.errors import ChangeError


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChangeError(f"{path}: cannot read the signing key ({exc.strerror})") from None
    if b"BEGIN" in data:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise ChangeError(f"{path}: not a PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ChangeError(f"{path}: not an Ed25519 key")
        return key
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ChangeError(f"{path}: neither PEM nor base64 raw Ed25519 private key") from None
    if len(raw) != 32:
        raise ChangeError(f"{path}: an Ed25519 private key has 32 bytes, this one {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def generate_keypair() -> tuple[str, str]:
    """(private, public) as base64 raw keys: for tests and `opskit change keygen`."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(private).decode(), public_key_b64(key)


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def sign_document(key: Ed25519PrivateKey, document: dict[str, Any]) -> str:
    return base64.b64encode(key.sign(canonical_json(document).encode())).decode()


def verify_signature(public_key_b64_text: str, document: dict[str, Any], signature: str) -> bool:
    try:
        raw = base64.b64decode(public_key_b64_text, validate=True)
        public = Ed25519PublicKey.from_public_bytes(raw)
        public.verify(base64.b64decode(signature, validate=True), canonical_json(document).encode())
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
