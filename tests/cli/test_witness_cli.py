"""`opskit witness` (the same commands as `opskit-witness`): set-up verbs and
their errors, each one line with its exit code, through the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opskit.tlog.note import COSIGNATURE_V1, Signer, Verifier
from tests.tlog.witness_support import SRC

Result = subprocess.CompletedProcess[str]
WITNESS = ("opskit.witness",)  # the opskit-witness program


def opskit(*args: str | Path, program: tuple[str, ...] = ("opskit", "witness")) -> Result:
    """``opskit witness ARGS``, or with `program` ``("opskit.witness",)``: opskit-witness."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-m", *program, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_init_add_log_and_list(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    init = opskit("init", folder, "--name", "w1.example/witness")
    assert init.returncode == 0, init.stderr
    vkey = Verifier.from_vkey(init.stdout.strip())
    assert vkey.sig_type == COSIGNATURE_V1 and vkey.name == "w1.example/witness"
    assert opskit("vkey", folder).stdout.strip() == vkey.vkey
    log = Signer.generate("ops.example.com/ledger")
    added = opskit("add-log", folder, "--origin", log.name, "--vkey", log.verifier.vkey)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"{log.name}: {log.verifier.fingerprint}"
    assert opskit("logs", folder).stdout == f"{log.name}\t0\n"


def test_errors_are_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    assert opskit("init", folder, "--name", "w1.example/witness").returncode == 0
    witness_vkey = opskit("vkey", folder).stdout.strip()
    w = WITNESS
    cases = [
        (opskit("init", folder, "--name", "again.example/w"), 1, "exists already"),
        (opskit("init", tmp_path / "x", "--name", "bad name", program=w), 1, "invalid witness"),
        (opskit("add-log", folder, "--origin", "o", "--vkey", "nonsense", program=w), 1, "--vkey"),
        # A witness's own key (type 0x04) is not a log key.
        (opskit("add-log", folder, "--origin", "o", "--vkey", witness_vkey, program=w), 1, "0x01"),
        (opskit("serve", folder, "--listen", "nowhere", program=w), 2, "HOST:PORT"),
        (opskit("vkey", tmp_path / "empty", program=w), 1, "cannot read the witness key"),
    ]
    for result, code, words in cases:
        assert result.returncode == code, (result.args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], result.stderr
        assert "Traceback" not in result.stderr
