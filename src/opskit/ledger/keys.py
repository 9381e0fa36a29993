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
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from opskit.errors import LedgerError

if TYPE_CHECKING:
    from opskit.tlog.trust import TrustPolicy
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


def fingerprint(key: Ed25519PublicKey) -> str:
    """The full fingerprint: SHA-256 of the raw public key, in hex."""
    return hashlib.sha256(raw_public_bytes(key)).hexdigest()


@dataclass
class TrustAnchors:
    """The keys a signature may be checked against, and where they came from.

    `keys` are public keys by key id; `fingerprints` are key ids (16 hex
    digits) or full fingerprints (64) of keys given by fingerprint only: a
    carried key whose fingerprint matches is then as good as the key itself.
    """

    source: str
    keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    fingerprints: set[str] = field(default_factory=set)
    # The trust policy the anchors were read from (None: the deprecated
    # one-key-a-line file, a pinned key or the workspace's keys).
    policy: TrustPolicy | None = None
    deprecated: bool = False

    def key_for(self, key: Ed25519PublicKey) -> Ed25519PublicKey | None:
        """The trusted key to check a signature by `key` against, or None."""
        if key_id(key) in self.keys:
            return self.keys[key_id(key)]
        if {key_id(key), fingerprint(key)} & self.fingerprints:
            return key
        return None

    def __bool__(self) -> bool:
        return bool(self.keys or self.fingerprints)


_HEX_ID = re.compile(r"(?:sha256:)?([0-9a-f]{16}|[0-9a-f]{64})\Z")
_B64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=\Z")


DEPRECATED_TRUST_FILE = (
    "deprecated trust file format (one key a line): write a trust policy instead, "
    "`log <vkey>` (opskit audit pubkey --vkey) and `quorum none` (docs/ledger-format.md)"
)
_POLICY_KEYWORDS = ("log", "witness", "group", "quorum")


def is_policy_text(text: str) -> bool:
    """Whether a trust file is a trust policy (its first item is a policy keyword)."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line.split()[0] in _POLICY_KEYWORDS
    return False


def load_trust_file(path: Path) -> TrustAnchors:
    """A trust file: the trust policy (C2SP tlog-policy, `opskit.tlog.trust`),
    the one format; its log keys are the anchors and `policy` is set. The
    older format (one anchor a line: a key id, a SHA-256 fingerprint, a base64
    or PEM key) is still read, with `deprecated` set for the caller to say so."""
    from opskit.tlog.trust import load_policy

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if is_policy_text(text):
        policy = load_policy(path)
        keys = {}
        for verifier in policy.logs:
            key = Ed25519PublicKey.from_public_bytes(verifier.public_key)
            keys[key_id(key)] = key
        return TrustAnchors(source=f"trust policy {path}", keys=keys, policy=policy)
    lines = text.splitlines()
    anchors = TrustAnchors(source=f"trust file {path} (deprecated format)", deprecated=True)
    pem: list[str] | None = None
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip() if pem is None else raw.strip()
        if pem is not None:
            pem.append(line)
            if line.startswith("-----END"):
                key = load_public_key_pem("\n".join(pem).encode(), where=f"{path}:{number}")
                anchors.keys[key_id(key)] = key
                pem = None
        elif not line:
            continue
        elif line.startswith("-----BEGIN"):
            pem = [line]
        elif match := _HEX_ID.match(line.lower()):
            anchors.fingerprints.add(match.group(1))
        elif _B64_KEY.match(line):
            key = public_key_from_b64(line)
            anchors.keys[key_id(key)] = key
        else:
            raise LedgerError(
                f"{path}:{number}: not a key id, SHA-256 fingerprint, base64 key or PEM key"
            )
    if pem is not None:
        raise LedgerError(f"{path}:{len(lines)}: PEM block without its END line")
    if not anchors:
        raise LedgerError(f"{path}: no trusted key in the file")
    return anchors


def load_trust_policy(path: Path) -> TrustPolicy:
    """The trust policy in a trust file; a file of the deprecated format is
    refused with a one-line hint (a checkpoint note needs the log's vkey)."""
    anchors = load_trust_file(path)
    if anchors.policy is None:
        from opskit.tlog.trust import TrustFileError

        raise TrustFileError(
            "the old one-key-a-line format cannot check a checkpoint note: write a trust "
            "policy, `log <vkey>` (opskit audit pubkey --vkey) and `quorum none`",
            file=path,
        )
    return anchors.policy


def workspace_anchors(keys_dir: Path) -> TrustAnchors | None:
    """The workspace's own key and `trusted/*.pub`, or None when it has none."""
    keys = trusted_public_keys(keys_dir) if keys_dir.is_dir() else {}
    return TrustAnchors(source=f"workspace keys {keys_dir}", keys=keys) if keys else None


def verify_signature(key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True
