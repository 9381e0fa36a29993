"""One digest form, written in one place (`opskit.digests`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import opskit
from opskit.digests import sha256_bytes, sha256_text

SRC = Path(opskit.__file__).resolve().parent
# `"sha256:" + hashlib.sha256(...).hexdigest()` written out by hand.
WRITTEN_OUT = re.compile(r"""["']sha256:["']\s*\+\s*(hashlib\.)?_?sha256\(""")


def test_the_digest_form() -> None:
    data = "hostname sw1\nvlan 10 ünïcode\n"
    expected = "sha256:" + hashlib.sha256(data.encode()).hexdigest()
    assert sha256_text(data) == sha256_bytes(data.encode()) == expected
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", sha256_bytes(b""))


def test_no_module_writes_the_digest_out_by_hand() -> None:
    offenders = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if path.name != "digests.py" and WRITTEN_OUT.search(path.read_text())
    }
    assert not offenders, sorted(offenders)
