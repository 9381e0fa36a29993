"""Evidence bundles: export one change, verify it offline, find any tampering."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import LedgerError
from opskit.ledger import Ledger, verify_bundle
from opskit.ledger.bundle import bundle_events
from opskit.ledger.bundle import export_bundle as export_v1  # format 1: still verified
from opskit.ledger.keys import PUBLIC_KEY_FILE, ensure_key
from tests.fixtures.postgres import open_ledger


@pytest.fixture
def ledger(ledger_backend: str, tmp_path: Path) -> Iterator[Ledger]:
    """Two changes whose events interleave, a blob per host, another change after."""
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    ledger.append("change.created", actor="alice", payload={"title": "vlan"}, change_id="C1")
    ledger.append("change.created", actor="bob", payload={"title": "ntp"}, change_id="C2")
    for host in ("sw1", "sw2"):
        ledger.append(
            "host.backup", actor="ci", payload={}, change_id="C1", ci=host,
            blobs={"config": f"hostname {host}\n"},
        )  # fmt: skip
        ledger.append("host.applied", actor="ci", payload={"secretless": True}, change_id="C2")
    ledger.append("change.closed", actor="alice", payload={"result": "ok"}, change_id="C1")
    ledger.append("change.created", actor="carol", payload={}, change_id="C3")
    yield ledger
    ledger.engine.dispose()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def save(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data))


def pinned(ledger: Ledger) -> Path:
    """The workspace's public key file: the trust anchor an auditor pins."""
    return ledger.keys_dir / PUBLIC_KEY_FILE  # type: ignore[operator]


def test_export_and_verify_a_change(ledger: Ledger, tmp_path: Path) -> None:
    path = export_v1(ledger, "C1", tmp_path / "c1.json", actor="auditor")
    report = verify_bundle(path, public_key=pinned(ledger))
    assert report.ok, report.problem
    assert report.trusted and report.key_id == ledger.checkpoints()[0].key_id
    # Other changes' records are withheld, labelled with their change.
    assert [(w["seq"], w["change_id"]) for w in report.withheld] == [
        (2, "C2"), (4, "C2"), (6, "C2"), (8, "C3"),
    ]  # fmt: skip
    assert "4 of 8 records disclosed; 4 withheld: 4 labelled as other changes'" in (
        report.summary()
    )
    # Without a trust anchor the same bundle is not "ok": its key vouches for itself.
    alone = verify_bundle(path)
    assert not alone.ok and alone.untrusted_only and not alone.trusted
    assert alone.key_id == report.key_id
    assert (alone.problem or "").startswith("signature not checked against a trusted key")
    assert report.counts == {
        "events": 4, "records": 8, "blobs": 2, "purged_blobs": 0, "checkpoints": 1,
    }  # fmt: skip
    data = load(path)
    # Other changes' records are there only as digests: their payloads stay private.
    assert "ntp" not in path.read_text()
    full = [entry["seq"] for entry in data["chain"] if "record" in entry]
    assert full == [1, 3, 5, 7]
    assert [e.kind for e in bundle_events(path)] == [
        "change.created", "host.backup", "host.backup", "change.closed",
    ]  # fmt: skip
    # The checkpoint taken for the export is now stored, and is reused next time.
    assert ledger.checkpoints()[0].seq == 8
    export_v1(ledger, "C1", tmp_path / "again.json")
    assert len(ledger.checkpoints()) == 1
    # The bundle's key is the workspace's key; pinning it works, another key fails.
    assert verify_bundle(path, public_key=ledger.keys_dir / PUBLIC_KEY_FILE).ok  # type: ignore[operator]
    other = tmp_path / "other"
    ensure_key(other)
    report = verify_bundle(path, public_key=other / PUBLIC_KEY_FILE)
    assert not report.ok and "not a trusted key" in (report.problem or "")
    assert not report.untrusted_only


def test_bundle_with_a_purged_blob_still_verifies(ledger: Ledger, tmp_path: Path) -> None:
    (backup, _) = [e for e in ledger.events(change_id="C1", kind="host.backup")]
    ledger.purge_blob(backup.payload["blobs"]["config"], "alice", "retention")
    path = export_v1(ledger, "C1", tmp_path / "c1.json")
    report = verify_bundle(path, public_key=pinned(ledger))
    assert report.ok, report.problem
    assert report.counts["purged_blobs"] == 1
    # The purge event itself is shown in full.
    kinds = [json.loads(e["record"])["kind"] for e in load(path)["chain"] if "record" in e]
    assert "ledger.blob_purged" in kinds


def tamper_record(data: dict[str, Any]) -> int:
    entry = next(e for e in data["chain"] if e["seq"] == 5)
    entry["record"] = entry["record"].replace("sw2", "sw9")
    return 5


def tamper_digest(data: dict[str, Any]) -> int:
    entry = next(e for e in data["chain"] if e["seq"] == 4)
    entry["digest"] = ("0" if entry["digest"][0] != "0" else "1") + entry["digest"][1:]
    return 4


def drop_entry(data: dict[str, Any]) -> int:
    data["chain"] = [e for e in data["chain"] if e["seq"] != 6]
    return 6


def swap_entries(data: dict[str, Any]) -> int:
    chain = data["chain"]
    chain[1], chain[2] = chain[2], chain[1]
    return chain[1]["seq"] - 1


def change_blob(data: dict[str, Any]) -> int:
    ref = next(iter(data["blobs"]))
    data["blobs"][ref]["content"] = base64.b64encode(b"hostname evil\n").decode()
    return 3


def forge_signature(data: dict[str, Any]) -> int:
    signature = bytearray(base64.b64decode(data["checkpoint"]["signature"]))
    signature[0] ^= 1
    data["checkpoint"]["signature"] = base64.b64encode(bytes(signature)).decode()
    return data["checkpoint"]["seq"]


def move_checkpoint(data: dict[str, Any]) -> int:
    data["chain"] = data["chain"][:-1]  # the chain no longer reaches the signed head
    return data["checkpoint"]["seq"]


@pytest.mark.parametrize(
    "tamper, problem",
    [
        (tamper_record, "changed content"),
        (tamper_digest, "changed content"),
        (drop_entry, "missing record"),
        (swap_entries, "reordered record"),
        (change_blob, "blob content changed"),
        (forge_signature, "bad checkpoint signature"),
        (move_checkpoint, "changed content"),
    ],
)
def test_tampered_bundle_is_refused(ledger: Ledger, tmp_path: Path, tamper, problem: str) -> None:  # type: ignore[no-untyped-def]
    path = export_v1(ledger, "C1", tmp_path / "c1.json")
    data = load(path)
    expected_seq = tamper(data)
    save(path, data)
    for report in (verify_bundle(path), verify_bundle(path, public_key=pinned(ledger))):
        assert not report.ok and not report.untrusted_only
        assert report.problem.startswith(problem), report.problem  # type: ignore[union-attr]
        assert report.first_bad_seq == expected_seq


def test_export_of_an_unknown_change_and_bad_files(ledger: Ledger, tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="no ledger events for change 'C404'"):
        export_v1(ledger, "C404", tmp_path / "x.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(LedgerError, match="not a JSON bundle"):
        verify_bundle(tmp_path / "junk.json")
    with pytest.raises(LedgerError, match="No such file"):
        verify_bundle(tmp_path / "missing.json")


def test_the_documented_manual_check_accepts_a_bundle(ledger: Ledger, tmp_path: Path) -> None:
    """the ledger format's stdlib-only check (and openssl for the signature) agree
    with verify_bundle, so an auditor can really re-implement verification."""
    docs = (Path(__file__).parents[2] / "docs" / "ledger-format.md").read_text()
    script = docs.split("<!-- bundle-check -->\n```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "check_bundle.py").write_text(script)
    bundle = export_v1(ledger, "C1", tmp_path / "c1.json")
    result = subprocess.run(
        [sys.executable, "check_bundle.py", str(bundle)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "chain OK from seq 1 to the checkpoint at seq 8" in result.stdout
    if shutil.which("openssl"):
        command = [
            "openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "checkpoint.pub", "-rawin",
            "-in", "checkpoint.msg", "-sigfile", "checkpoint.sig",
        ]  # fmt: skip
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0 and "Verified Successfully" in result.stdout, result.stderr

    data = load(bundle)
    data["chain"][2]["record"] = data["chain"][2]["record"].replace("sw1", "sw7")
    save(bundle, data)
    result = subprocess.run(
        [sys.executable, "check_bundle.py", str(bundle)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode != 0 and "seq 3: hash mismatch" in result.stderr


@pytest.mark.parametrize("field", ["public_key", "key_id", "signature"])
@pytest.mark.parametrize("value", [None, 5, []])
def test_checkpoint_field_of_the_wrong_type_is_a_clear_error(
    ledger: Ledger, tmp_path: Path, field: str, value: Any
) -> None:
    path = export_v1(ledger, "C1", tmp_path / "c1.json")
    data = load(path)
    data["checkpoint"][field] = value
    save(path, data)
    with pytest.raises(LedgerError, match="checkpoint: malformed field types"):
        verify_bundle(path)
