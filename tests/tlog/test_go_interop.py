"""Go's own golang.org/x/mod/sumdb/note and sumdb/tlog verify what opskit writes.

`tests/tlog/go/verify.go` is built once (GOPATH mode, the Debian packages
golang-go and golang-golang-x-mod-dev from scripts/system-deps.sh) and run on
checkpoint notes, .tlog-proof files and witness consistency bodies written by
opskit.tlog, cosigned by opskit's witness: note.Open, tlog.CheckRecord and
tlog.CheckTree accept them, and refuse them after one flipped byte."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import add_signatures, format_note
from opskit.tlog.proof import parse_consistency_proof
from opskit.tlog.witnessclient import Cosigned, submit
from opskit.witness.core import Witness
from opskit.witness.keys import create_key
from opskit.witness.state import WitnessState
from opskit.workspace import Workspace
from tests.tlog.tlog_support import MemoryLog
from tests.tlog.witness_support import SRC, WitnessProcess

GO_SOURCE = Path(__file__).parent / "go" / "verify.go"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="module")
def go_verify(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    module = GOPATH / "src" / "golang.org" / "x" / "mod" / "sumdb" / "tlog"
    if go is None or not module.is_dir():
        if os.environ.get("CI"):
            pytest.fail("go or golang-golang-x-mod-dev missing (scripts/system-deps.sh)")
        pytest.skip("go or golang-golang-x-mod-dev missing (scripts/system-deps.sh)")
    out = tmp_path_factory.mktemp("go")
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
    }
    binary = out / "verify"
    build = subprocess.run(
        [go, "build", "-o", str(binary), str(GO_SOURCE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return binary


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A log of 1,000 records, a witness, and the files opskit writes for them."""
    folder = tmp_path_factory.mktemp("interop")
    log = MemoryLog("ops.example.com/ledger")
    witness = Witness(WitnessState.open(folder / "w"), create_key(folder / "w", "w.example/w1"))
    witness.state.add_log(log.origin, [log.signer.verifier.vkey])
    log.extend(300)
    (folder / "old.checkpoint").write_text(log.note_text())
    first = witness.add_checkpoint(log.consistency(0).text().encode())
    assert first.status == 200
    log.extend(700)
    body = log.consistency(300)
    answer = witness.add_checkpoint(body.text().encode())
    assert answer.status == 200, answer.body
    cosigned = format_note(log.note()) + answer.body.decode()
    (folder / "checkpoint").write_text(cosigned)
    (folder / "consistency").write_text(body.text())
    for index in (0, 1, 299, 511, 999):
        proof = log.inclusion(index)
        (folder / f"{index}.tlog-proof").write_text(proof.text())
    return {"folder": folder, "log": log, "witness": witness.signer.verifier.vkey}


def run(binary: Path, files: dict[str, object], *args: str) -> subprocess.CompletedProcess[str]:
    log: MemoryLog = files["log"]  # type: ignore[assignment]
    return subprocess.run(
        [str(binary), "-vkey", log.signer.verifier.vkey, "-cosigner", str(files["witness"]), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_go_opens_the_cosigned_checkpoint(go_verify: Path, files: dict[str, object]) -> None:
    folder: Path = files["folder"]  # type: ignore[assignment]
    result = run(go_verify, files, "-checkpoint", str(folder / "checkpoint"))
    assert result.returncode == 0, result.stderr
    assert "ok checkpoint ops.example.com/ledger 1000" in result.stdout
    log: MemoryLog = files["log"]  # type: ignore[assignment]
    assert f"ok signature {log.signer.verifier.fingerprint}" in result.stdout
    witness = "+".join(str(files["witness"]).split("+")[:2])
    assert f"ok signature {witness}" in result.stdout


def test_go_checks_inclusion_and_consistency(go_verify: Path, files: dict[str, object]) -> None:
    folder: Path = files["folder"]  # type: ignore[assignment]
    for index in (0, 1, 299, 511, 999):
        result = run(go_verify, files, "-proof", str(folder / f"{index}.tlog-proof"))
        assert result.returncode == 0, result.stderr
        assert f"ok inclusion {index} in 1000" in result.stdout
    result = run(
        go_verify,
        files,
        "-consistency",
        str(folder / "consistency"),
        "-old-checkpoint",
        str(folder / "old.checkpoint"),
    )
    assert result.returncode == 0, result.stderr
    assert "ok consistency 300 -> 1000" in result.stdout


@pytest.mark.parametrize(
    "name, flag, where, offset",
    [
        ("checkpoint", "-checkpoint", "ops.example.com/ledger\n", 2),  # the tree size
        # The cosignature itself: its first 6 characters are the key id, and a
        # changed key id only makes it a signature by an unknown key (ignored).
        ("checkpoint", "-checkpoint", "— w.example/w1 ", 20),
        ("511.tlog-proof", "-proof", "index 511\n", 2),  # first proof hash
        ("511.tlog-proof", "-proof", "extra ", 2),  # the record bytes
        ("consistency", "-consistency", "old 300\n", 2),  # first proof hash
    ],
)
def test_a_flipped_byte_fails_in_go(
    go_verify: Path,
    files: dict[str, object],
    tmp_path: Path,
    name: str,
    flag: str,
    where: str,
    offset: int,
) -> None:
    folder: Path = files["folder"]  # type: ignore[assignment]
    data = bytearray((folder / name).read_bytes())
    at = data.index(where.encode()) + len(where.encode()) + offset
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    bad = tmp_path / name
    bad.write_bytes(bytes(data))
    extra = ["-old-checkpoint", str(folder / "old.checkpoint")] if flag == "-consistency" else []
    result = run(go_verify, files, flag, str(bad), *extra)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("FAIL "), result.stderr


def test_the_untouched_note_is_what_opskit_verifies_too(files: dict[str, object]) -> None:
    """The same files through opskit's own verifier (the Go run is not the only check)."""
    from opskit.tlog.trust import parse_policy, verify_checkpoint

    log: MemoryLog = files["log"]  # type: ignore[assignment]
    folder: Path = files["folder"]  # type: ignore[assignment]
    policy = parse_policy(
        f"log {log.signer.verifier.vkey}\nwitness w1 {files['witness']}\nquorum w1\n"
    )
    trusted = verify_checkpoint((folder / "checkpoint").read_bytes(), policy)
    assert trusted.witnesses == ("w1",)
    assert add_signatures(trusted.note, ()) == trusted.note


def opskit_cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env.update(OPSKIT_WORKSPACE=str(ws.root), OPSKIT_USER="alice", PYTHONPATH=str(SRC))
    result = subprocess.run(
        [sys.executable, "-m", "opskit", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (args, result.stderr)
    return result


@pytest.mark.slow
def test_go_and_a_witness_accept_what_the_ledger_cli_prints(
    go_verify: Path, workspace: Workspace, tmp_path: Path
) -> None:
    """The ledger's own `audit checkpoint`, `pubkey --vkey` and `prove`, end to end:
    a real witness process cosigns the ledger's checkpoints, Go verifies all."""
    ledger = Ledger.open(workspace)
    for i in range(20):
        ledger.append("change.noted", actor="alice", payload={"n": i}, change_id=f"C{i % 3}")
    vkey = opskit_cli(workspace, "audit", "pubkey", "--vkey").stdout.strip()
    witness = WitnessProcess(tmp_path / "w", "w.example/witness")
    origin = vkey.split("+")[0]
    witness.add_log(origin, vkey)
    witness.start()
    try:
        opskit_cli(workspace, "audit", "checkpoint", "--save", str(tmp_path / "old.note"))
        old_size = parse_signed_checkpoint((tmp_path / "old.note").read_text()).checkpoint.size
        first = opskit_cli(workspace, "audit", "prove", "--from-size", "0").stdout
        first_result = submit(witness.url, witness.verifier, parse_consistency_proof(first))
        assert isinstance(first_result, Cosigned), first_result
        for i in range(17):
            ledger.append("change.noted", actor="bob", payload={"m": i}, change_id="C9")
        note = opskit_cli(workspace, "audit", "checkpoint", "--save", str(tmp_path / "new.note"))
        new_size = parse_signed_checkpoint(note.stdout).checkpoint.size
        assert new_size > old_size
        body = opskit_cli(workspace, "audit", "prove", "--from-size", str(old_size)).stdout
        (tmp_path / "consistency").write_text(body)
        result = submit(witness.url, witness.verifier, parse_consistency_proof(body))
        assert isinstance(result, Cosigned), result
        cosigned = note.stdout + "".join(s.line() + "\n" for s in result.signatures)
        (tmp_path / "cosigned.note").write_text(cosigned)
        for seq in (1, old_size, old_size + 1, new_size):
            opskit_cli(workspace, "audit", "prove", str(seq), "--out", str(tmp_path / f"{seq}.p"))
    finally:
        witness.stop()
    args = [str(go_verify), "-vkey", vkey, "-cosigner", witness.verifier.vkey]
    checks = [
        ["-checkpoint", str(tmp_path / "cosigned.note")],
        [
            "-consistency",
            str(tmp_path / "consistency"),
            "-old-checkpoint",
            str(tmp_path / "old.note"),
        ],
        *(["-proof", str(tmp_path / f"{seq}.p")] for seq in (1, old_size, old_size + 1, new_size)),
    ]
    for check in checks:
        go = subprocess.run(
            [*args, *check], capture_output=True, text=True, timeout=60, check=False
        )
        assert go.returncode == 0, (check, go.stderr)
    assert (
        f"ok signature {witness.verifier.fingerprint}"
        in subprocess.run(
            [*args, *checks[0]], capture_output=True, text=True, timeout=60, check=False
        ).stdout
    )
