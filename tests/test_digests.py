"""One digest form, written in one place (`opskit.digests`)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import opskit
from opskit.digests import (
    canonical_digest,
    canonical_json,
    files_digest,
    sha256_bytes,
    sha256_text,
)

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


# Digests computed by opskit before the canonical encoders were one
# (main at 003d1ba): the same documents must keep the same digests.
PINNED = {
    "runbook": "sha256:81038779a6788bcd28d66c91c80a4c3ebcf1beaf2d4d3c10efe764dcbf2a8c42",
    "binding": "sha256:bee765aa0f86e680e4e52aadf3c68fe265c9e4cf014d5d7956a5445ff6802d44",
    "inventory": "sha256:6d49da7210c888b0c5dbce32acbdc43e2739ee55eb416e7b7c5b803ae9608e1f",
    "files": "sha256:20958ebd051a585cb9bd588b454beaa8484dda5746810ac7bcaf3dddfc76fb30",
}


def test_the_one_canonical_encoder_keeps_every_pinned_digest() -> None:
    from opskit.changes.model import binding_hash
    from opskit.inventory.core import canonical_json as inventory_json
    from opskit.runbooks.loader import runbook_digest
    from opskit.runbooks.snapshot import Snapshot

    runbook = {"name": "x", "steps": [{"a": 1, "b": "é"}], "ratio": 0.25}
    assert runbook_digest(runbook, {"templates/a.j2": "sha256:" + "0" * 64}) == PINNED["runbook"]
    binding = {
        "change_id": "CHG-000001",
        "runbook": "r@1.0.0",
        "targets": ["sw1", "sw2"],
        "inventory_digest": "sha256:" + "1" * 64,
        "parameters": {"vlan_id": 10, "name": "ünï", "ratio": 0.5},
        "predicted_diff": {"sw1": None},
    }
    assert binding_hash(binding) == PINNED["binding"]
    # Keys of two types (YAML allows them): each non-text key marked with its type.
    inventory = {"cis": [{"name": "sw1", "vars": {1: "one", "1": "text", "ratio": 0.5, "ü": None}}]}
    assert sha256_bytes(inventory_json(inventory)) == PINNED["inventory"]
    files = {"/etc/hosts": "127.0.0.1 localhost\n", "/etc/motd": None, "/etc/ünï": "é\n"}
    assert Snapshot("fabric", "files", "linux", files=files).hash == PINNED["files"]
    assert files_digest(files) == PINNED["files"]


def test_one_canonical_json_form() -> None:
    value = {"b": [1, "é\n", None, True], "a": {"x": 2}, "c": 0.5}
    text = canonical_json(value)
    assert text == '{"a":{"x":2},"b":[1,"é\\n",null,true],"c":0.5}'
    assert canonical_digest(value) == sha256_text(text)
    # What JSON has no type for is written as its text.
    assert canonical_json({"when": Path("/x")}) == '{"when":"/x"}'


def test_no_module_writes_its_own_canonical_json() -> None:
    """The compact canonical form is spelled once (`opskit.digests.JSON_OPTIONS`)."""
    compact = re.compile(r"""separators=\(\s*["'],["']\s*,\s*["']:["']\s*\)""")
    offenders = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if path.name != "digests.py" and compact.search(path.read_text())
    }
    # `audit show` prints payloads compactly (unsorted): output, not a digest.
    assert offenders <= {"cli/audit.py"}, sorted(offenders)
