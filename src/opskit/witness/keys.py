"""The witness's own key: a cosigner key (type 0x04) in ``witness.key``.

The file holds one line, the signer key in Go's note format
(``PRIVATE+KEY+<name>+<hex id>+<base64(0x04 || seed)>``), readable by its owner
only (mode 0600). The key never leaves the file: only the vkey is printed.

Example:

    >>> create_key(Path("w1"), "witness.example/w1").verifier.vkey
    'witness.example/w1+0e4a1b22+BNq1...'
"""

from __future__ import annotations

import os
from pathlib import Path

from opskit.errors import OpskitError
from opskit.tlog.note import COSIGNATURE_V1, NoteError, Signer, is_valid_name

KEY_NAME = "witness.key"


class WitnessKeyError(OpskitError):
    """The witness key is missing, unreadable, malformed or would be overwritten."""


def create_key(folder: Path, name: str) -> Signer:
    """Generate the witness key in `folder` (refuses to replace an existing one)."""
    if not is_valid_name(name):
        raise WitnessKeyError(f"invalid witness name {name!r}: no spaces, no '+'")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KEY_NAME
    signer = Signer.generate(name, COSIGNATURE_V1)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise WitnessKeyError(f"{path}: a witness key exists already") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(signer.skey + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return signer


def load_signer(folder: Path) -> Signer:
    """The witness key of `folder`."""
    path = folder / KEY_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WitnessKeyError(f"{path}: cannot read the witness key ({exc})") from None
    try:
        signer = Signer.from_skey(text, source=str(path))
    except NoteError:
        # Never echo the file: it is a private key.
        raise WitnessKeyError(f"{path}: not a witness signer key") from None
    if signer.verifier.sig_type != COSIGNATURE_V1:
        raise WitnessKeyError(f"{path}: not a cosigner key (type 0x04)")
    return signer
