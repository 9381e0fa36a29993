"""`opskit audit checkpoint / pubkey --vkey / prove / verify-proof` as a user
runs them, and the files they write checked by opskit.tlog.merkle and by Go's
own golang.org/x/mod/sumdb/note and sumdb/tlog (tests/tlog/go/verify.go)."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from opskit.tlog import merkle
from opskit.tlog.checkpoint import open_checkpoint
from opskit.tlog.note import Verifier
from opskit.tlog.proof import parse_consistency_proof, parse_inclusion_proof
from opskit.workspace import Workspace
from tests.ledger.test_ledger_cli import run
from tests.tlog.test_go_interop import go_verify  # noqa: F401  (the Go verifier, built once)


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A workspace ledger of 300 records, a checkpoint at 120 and one at 300,
    and every file the CLI writes for them."""
    from opskit.workspace import init_workspace

    folder = tmp_path_factory.mktemp("proofs")
    ws = init_workspace(folder / "ws")
    ledger = Ledger.open(ws)
    for n in range(120):
        ledger.append("change.noted", actor="alice", payload={"n": n, "é": "☃"}, change_id="C1")
    first = run("audit", "checkpoint", "--save", str(folder / "old.checkpoint"), ws=ws)
    assert first.returncode == 0, first.stderr
    with ledger.batch() as batch:
        for n in range(180):
            batch.append("host.applied", actor="ci", payload={"n": n}, ci=f"sw{n % 7}")
    latest = run("audit", "checkpoint", ws=ws)
    assert latest.returncode == 0, latest.stderr
    (folder / "checkpoint").write_text(latest.stdout)
    vkey = run("audit", "pubkey", "--vkey", ws=ws).stdout.strip()
    (folder / "trust.policy").write_text(f"# the ledger under audit\nlog {vkey}\nquorum none\n")
    for seq in (1, 2, 120, 121, 256, 300):
        result = run("audit", "prove", str(seq), "--out", str(folder / f"{seq}.tlog-proof"), ws=ws)
        assert result.returncode == 0, result.stderr
    consistency = run("audit", "prove", "--from-size", "120", ws=ws)
    assert consistency.returncode == 0, consistency.stderr
    (folder / "consistency").write_text(consistency.stdout)
    return {"ws": ws, "folder": folder, "vkey": vkey, "first": first.stdout}


def test_checkpoint_is_the_note_signed_by_the_vkey(proofs: dict[str, object]) -> None:
    folder: Path = proofs["folder"]  # type: ignore[assignment]
    verifier = Verifier.from_vkey(str(proofs["vkey"]))
    note = (folder / "checkpoint").read_text()
    tree, _ = open_checkpoint(note, [verifier])
    assert tree.size == 300 and tree.origin == verifier.name
    assert (folder / "old.checkpoint").read_text() == proofs["first"]  # --save is the note, exactly
    ws: Workspace = proofs["ws"]  # type: ignore[assignment]
    assert tree.origin == f"opskit/ws/{verifier.vkey.split('+')[0].rsplit('/', 1)[1]}"
    assert Ledger.open(ws).checkpoints()[-1].note == note


def test_proofs_verify_with_merkle_and_the_record_bytes(proofs: dict[str, object]) -> None:
    folder: Path = proofs["folder"]  # type: ignore[assignment]
    ws: Workspace = proofs["ws"]  # type: ignore[assignment]
    reader = Ledger.open(ws).reader()
    for seq in (1, 2, 120, 121, 256, 300):
        proof = parse_inclusion_proof((folder / f"{seq}.tlog-proof").read_bytes())
        (record,) = reader.records(seq, seq)
        assert proof.extra == record.record.encode() and proof.index == seq - 1
        assert json.loads(proof.extra)["seq"] == seq
        merkle.check_record(
            proof.hashes, 300, proof.checkpoint.root_hash, seq - 1, merkle.record_hash(proof.extra)
        )
    body = parse_consistency_proof((folder / "consistency").read_bytes())
    old, _ = open_checkpoint(str(proofs["first"]), [Verifier.from_vkey(str(proofs["vkey"]))])
    assert body.old_size == old.size == 120
    merkle.check_tree(body.hashes, 300, body.checkpoint.root_hash, 120, old.root_hash)


def test_go_sumdb_verifies_the_cli_files(go_verify: Path, proofs: dict[str, object]) -> None:  # noqa: F811
    folder: Path = proofs["folder"]  # type: ignore[assignment]

    def go(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(go_verify), "-vkey", str(proofs["vkey"]), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    result = go("-checkpoint", str(folder / "checkpoint"))
    assert result.returncode == 0, result.stderr
    assert " 300\n" in result.stdout
    for seq in (1, 2, 120, 121, 256, 300):
        result = go("-proof", str(folder / f"{seq}.tlog-proof"))
        assert result.returncode == 0, result.stderr
        assert f"ok inclusion {seq - 1} in 300" in result.stdout
    result = go(
        "-consistency",
        str(folder / "consistency"),
        "-old-checkpoint",
        str(folder / "old.checkpoint"),
    )
    assert result.returncode == 0, result.stderr
    assert "ok consistency 120 -> 300" in result.stdout
    # One changed record byte: Go's tlog.CheckRecord refuses it.
    proof = (folder / "121.tlog-proof").read_text()
    extra = proof.split("\n")[1].removeprefix("extra ")
    data = bytearray(base64.b64decode(extra))
    data[10] ^= 0x01
    forged = proof.replace(extra, base64.b64encode(bytes(data)).decode())
    (folder / "forged.tlog-proof").write_text(forged)
    assert go("-proof", str(folder / "forged.tlog-proof")).returncode == 1


def test_verify_proof_needs_a_trusted_key(proofs: dict[str, object], tmp_path: Path) -> None:
    folder: Path = proofs["folder"]  # type: ignore[assignment]
    proof = folder / "256.tlog-proof"
    result = run("audit", "verify-proof", str(proof), "--trust", str(folder / "trust.policy"))
    assert result.returncode == 0, result.stderr
    assert "OK: record seq 256 is in the tree of size 300" in result.stdout

    # Without a trust policy nothing is verified: the signer's fingerprint, exit 3.
    result = run("audit", "verify-proof", str(proof))
    fingerprint = "+".join(str(proofs["vkey"]).split("+")[:2])
    assert result.returncode == 3
    assert "NOT VERIFIED" in result.stderr and fingerprint in result.stderr

    # A policy trusting another key: refused, naming what signed it.
    other = tmp_path / "other.policy"
    other_key = Verifier(str(proofs["vkey"]).split("+")[0], 1, bytes(range(32)))
    other.write_text(f"log {other_key.vkey}\nquorum none\n")
    result = run("audit", "verify-proof", str(proof), "--trust", str(other))
    assert result.returncode == 1 and fingerprint in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

    # A changed proof hash: one line, no traceback.
    lines = proof.read_text().split("\n")
    lines[3] = merkle.hash_text(merkle.record_hash(b"forged"))
    forged = tmp_path / "forged.tlog-proof"
    forged.write_text("\n".join(lines))
    result = run("audit", "verify-proof", str(forged), "--trust", str(folder / "trust.policy"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        len(result.stderr.strip().splitlines()) == 1 and "invalid inclusion proof" in result.stderr
    )

    # Garbage: one line naming the file and the line.
    garbage = tmp_path / "garbage.tlog-proof"
    garbage.write_text("c2sp.org/tlog-proof@v1\nindex x\n\nnot a note\n")
    result = run("audit", "verify-proof", str(garbage), "--trust", str(folder / "trust.policy"))
    assert result.returncode == 1 and f"{garbage}:2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prove_refuses_bad_input_in_one_line(proofs: dict[str, object]) -> None:
    ws: Workspace = proofs["ws"]  # type: ignore[assignment]
    for args, expected in (
        (("prove", "0"), "seq 0 is not in the ledger"),
        (("prove", "301"), "seq 301 is not in the ledger"),
        (("prove", "--from-size", "301"), "tree size 300"),
        (("prove",), "give a SEQ or --from-size N"),
        (("prove", "5", "--from-size", "3"), "give a SEQ or --from-size N"),
    ):
        result = run("audit", *args, ws=ws)
        assert result.returncode != 0 and expected in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
