"""Evidence bundles against forgery: a bundle never verifies against a key
it carries itself, the signing key is always shown, and a withheld record
shows in the one-line summary.

The forgery is built exactly as an attacker would: a real change ends
`rolled_back` on a lab switch, its real bundle is exported, the
`change.rolled_back` record is rewritten to `change.completed`, the chain
is recomputed and a new checkpoint is signed with a freshly generated key
that the bundle carries.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from opskit.changes import ChangeService
from opskit.ledger import Ledger, verify_bundle
from opskit.ledger import keys as keymod
from opskit.ledger.bundle import export_bundle as export_v1
from opskit.ledger.canonical import chain_hash, record_digest
from opskit.ledger.keys import PUBLIC_KEY_FILE
from opskit.ledger.model import Checkpoint
from opskit.workspace import Workspace
from tests.audit_support import cli, lab_workspace, rolled_back_change

pytestmark = [pytest.mark.xdist_group("audit-lab"), pytest.mark.slow]

UNTRUSTED_EXIT = 3


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, str, Path]]:
    """A real rolled-back change in a lab workspace, and its exported bundle."""
    root = tmp_path_factory.mktemp("bundle-trust")
    with lab_workspace(root / "ws", devices=1) as ws:
        svc = ChangeService(ws)
        change_id = rolled_back_change(svc, "lab-sw01", 301)
        bundle = root / "evidence.json"
        # A bundle of format 1 (the hash chain to a JSON checkpoint), which
        # verify-bundle still checks; format 2 is tests/ledger/test_change_bundles.py's.
        export_v1(Ledger.open(ws), change_id, bundle)
        yield ws, change_id, bundle


def forge(bundle: Path, out: Path) -> tuple[dict[str, Any], str]:
    """Rewrites rolled_back into completed, recomputes the chain from there and
    signs a new checkpoint with a new key; returns the bundle and that key's id."""
    data = json.loads(bundle.read_text())
    chain = data["chain"]
    index = next(
        i
        for i, entry in enumerate(chain)
        if '"kind":"change.rolled_back"' in entry.get("record", "")
    )
    record = chain[index]["record"]
    forged = record.replace('"kind":"change.rolled_back"', '"kind":"change.completed"').replace(
        '"to":"rolled_back"', '"to":"completed"'
    )
    assert forged != record
    chain[index]["record"] = forged
    prev = chain[index]["prev_hash"]
    for entry in chain[index:]:
        entry["prev_hash"] = prev
        digest = record_digest(entry["record"]) if "record" in entry else entry["digest"]
        entry["hash"] = prev = chain_hash(entry["prev_hash"], digest)
    key = Ed25519PrivateKey.generate()
    checkpoint = Checkpoint.sign(key, seq=chain[-1]["seq"], head=prev, actor="auditor")
    data["checkpoint"] = checkpoint.to_dict()
    data["public_key"] = keymod.public_key_pem(key.public_key()).decode()
    data["key_id"] = checkpoint.key_id
    out.write_text(json.dumps(data))
    return data, checkpoint.key_id


def test_a_forged_bundle_signed_by_its_own_key_never_verifies(
    evidence: tuple[Workspace, str, Path], tmp_path: Path
) -> None:
    ws, _change_id, bundle = evidence
    _forged, forged_key = forge(bundle, tmp_path / "forged.json")
    elsewhere = tmp_path / "elsewhere"  # an auditor's machine: no workspace
    elsewhere.mkdir()
    real_pub = ws.keys_dir / PUBLIC_KEY_FILE
    real_key = keymod.key_id(keymod.load_public_key_file(real_pub))

    # No trust anchor: the key is shown, and it is not "OK" (exit 3).
    result = cli("audit", "verify-bundle", str(tmp_path / "forged.json"), cwd=elsewhere)
    assert result.returncode == UNTRUSTED_EXIT, (result.stdout, result.stderr)
    assert "signature not checked against a trusted key" in result.stderr
    assert forged_key in result.stderr
    assert "OK" not in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1

    # The JSON report names the signing key too.
    result = cli("audit", "verify-bundle", str(tmp_path / "forged.json"), "--json", cwd=elsewhere)
    assert result.returncode == UNTRUSTED_EXIT
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["key_id"] == forged_key
    assert report["trusted"] is False

    # Pinned to the real key (a PEM file, or a trust file with its key id): refused.
    result = cli(
        "audit", "verify-bundle", str(tmp_path / "forged.json"), "--pubkey", str(real_pub),
        cwd=elsewhere,
    )  # fmt: skip
    assert result.returncode == 1
    assert forged_key in result.stderr and "FAILED" in result.stderr
    trust = tmp_path / "trusted_keys"
    trust.write_text(f"# the production workspace\n{real_key}\n")
    result = cli(
        "audit", "verify-bundle", str(tmp_path / "forged.json"), "--trust", str(trust),
        cwd=elsewhere,
    )  # fmt: skip
    assert result.returncode == 1 and forged_key in result.stderr
    # Inside the workspace its own keys are the anchors: refused as well.
    result = cli("audit", "verify-bundle", str(tmp_path / "forged.json"), ws=ws)
    assert result.returncode == 1 and forged_key in result.stderr

    # The genuine bundle: OK against each anchor, and the line names the key.
    for extra in (["--pubkey", str(real_pub)], ["--trust", str(trust)]):
        result = cli("audit", "verify-bundle", str(bundle), *extra, cwd=elsewhere)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout and real_key in result.stdout
    result = cli("audit", "verify-bundle", str(bundle), ws=ws)
    assert result.returncode == 0, result.stderr
    result = cli("audit", "verify-bundle", str(bundle), cwd=elsewhere)
    assert result.returncode == UNTRUSTED_EXIT and real_key in result.stderr


def test_a_withheld_record_shows_in_the_summary(
    evidence: tuple[Workspace, str, Path], tmp_path: Path
) -> None:
    ws, change_id, bundle = evidence
    real_pub = ws.keys_dir / PUBLIC_KEY_FILE
    data = json.loads(bundle.read_text())
    own = [e for e in data["chain"] if "record" in e]
    hidden = next(e for e in own if '"kind":"host.verify_failed"' in e["record"])
    # Hiding the event keeps the chain intact: its digest is all the chain needs.
    hidden["digest"] = record_digest(hidden.pop("record"))
    (tmp_path / "hidden.json").write_text(json.dumps(data))

    report = verify_bundle(tmp_path / "hidden.json", public_key=real_pub)
    assert report.ok, report.problem
    assert [w["seq"] for w in report.withheld] == [hidden["seq"]]
    result = cli("audit", "verify-bundle", str(tmp_path / "hidden.json"), "--pubkey", str(real_pub))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert f"{len(own) - 1} of {len(data['chain'])} records disclosed" in line
    assert f"1 withheld: seq {hidden['seq']}" in line
    assert len(line.splitlines()) == 1

    # The exporter labels what it withholds; a label is shown, marked unproven.
    hidden["kind"], hidden["change_id"] = "host.verify_failed", change_id
    (tmp_path / "labelled.json").write_text(json.dumps(data))
    result = cli(
        "audit", "verify-bundle", str(tmp_path / "labelled.json"), "--pubkey", str(real_pub)
    )
    assert result.returncode == 0, result.stderr
    assert f"1 withheld: seq {hidden['seq']} host.verify_failed" in result.stdout
