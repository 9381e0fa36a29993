"""The hand check of a .tlog-proof documented on the ledger-format page runs
as written: it accepts opskit's proofs and refuses a flipped byte or a key
that is not the log's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.tlog.tlog_support import MemoryLog

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger-format.md"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = DOC.read_text(encoding="utf-8")
    code = text.split("<!-- tlog-proof-check -->\n```python\n", 1)[1].split("```", 1)[0]
    path = tmp_path_factory.mktemp("doc") / "check_proof.py"
    path.write_text(code, encoding="utf-8")
    return path


def run(script: Path, proof: Path, vkey: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), str(proof), vkey],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_documented_check_accepts_every_index(script: Path, tmp_path: Path) -> None:
    log = MemoryLog("ops.example.com/ledger")
    log.extend(57)
    for index in (0, 1, 31, 32, 41, 55, 56):
        path = tmp_path / f"{index}.tlog-proof"
        path.write_text(log.inclusion(index).text())
        result = run(script, path, log.signer.verifier.vkey)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"record {index} is in ops.example.com/ledger at size 57")


def test_the_documented_check_refuses_tampering(script: Path, tmp_path: Path) -> None:
    log = MemoryLog("ops.example.com/ledger")
    log.extend(57)
    text = log.inclusion(41).text()
    path = tmp_path / "41.tlog-proof"
    # A changed record (its extra line) and a changed path hash.
    for where in ("extra ", "index 41\n"):
        at = text.index(where) + len(where) + 3
        path.write_text(text[:at] + ("B" if text[at] != "B" else "C") + text[at + 1 :])
        assert run(script, path, log.signer.verifier.vkey).returncode != 0
    path.write_text(text)
    other = MemoryLog(log.origin)
    assert run(script, path, other.signer.verifier.vkey).returncode != 0
