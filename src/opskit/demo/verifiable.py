"""The demo's verifiable end: a witness cosigns the ledger, and the first
change's bundle is verified against an auditor's trust policy.

`run(root, body)` starts an `opskit-witness` process (its own key and state
in a temporary folder, on a free loopback port), tells it the demo ledger's
log key, names it in the demo workspace's policy (`witnesses:`,
`witness_quorum: 1`), runs `body` (the change demo, whose checkpoints the
witness now cosigns), then exports the first change's complete bundle and
verifies it with `opskit audit verify-bundle --trust` against a trust policy
naming the log key and the witness (quorum: that witness). The witness is
stopped and the policy block removed at the end, whatever happens.

Example:

    >>> run(Path("demo-workspace"), lambda: run_demo("demo-workspace"))
    {'workspace': '...', 'changes': {...}, 'bundle': '.../evidence/CHG-0001.bundle.json', ...}
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError
from opskit.ledger import Ledger
from opskit.ledger.proofs import log_vkey
from opskit.workspace import Workspace

WITNESS_NAME = "demo-witness"
BEGIN = "# -- demo witness (written by opskit.demo.verifiable; removed after the demo) --"
END = "# -- end of demo witness --"
_BLOCK = re.compile(rf"{re.escape(BEGIN)}.*?{re.escape(END)}\n", re.S)


def _witness(*args: str) -> str:
    command = [sys.executable, "-m", "opskit.witness", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise OpskitError(f"opskit-witness {args[0]}: {result.stderr.strip()}")
    return result.stdout.strip()


@contextmanager
def demo_witness(ws: Workspace) -> Iterator[tuple[str, str]]:
    """A running witness that knows the workspace's log: yields (url, vkey)."""
    folder = Path(tempfile.mkdtemp(prefix="opskit-demo-witness-"))
    process: subprocess.Popen[str] | None = None
    try:
        vkey = _witness("init", str(folder / "state"), "--name", "demo.example/witness")
        ledger = Ledger.open(ws)
        _witness(
            "add-log", str(folder / "state"), "--origin", ledger.origin, "--vkey", log_vkey(ledger)
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "opskit.witness", "serve", str(folder / "state"),
             "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        line = process.stdout.readline() if process.stdout else ""
        if "listening on" not in line:
            raise OpskitError(f"the demo witness did not start: {line.strip()!r}")
        yield line.split()[-1], vkey
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


def name_witness(policy_file: Path, url: str | None, vkey: str = "") -> None:
    """Writes (url given) or removes (None) the demo witness block of the policy."""
    text = _BLOCK.sub("", policy_file.read_text(encoding="utf-8"))
    if url is not None:
        text = text.rstrip("\n") + (
            f'\n{BEGIN}\nwitnesses:\n  - name: {WITNESS_NAME}\n    url: "{url}"\n'
            f'    vkey: "{vkey}"\nwitness_quorum: 1\n{END}\n'
        )
    policy_file.write_text(text, encoding="utf-8")


def _opskit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "opskit", "--workspace", str(root), *args]
    print(f"\n$ opskit {' '.join(args)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    print(result.stdout + result.stderr, end="", flush=True)
    return result


def run(root: Path, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs `body` with a witness named in the policy, then verifies the first
    change's bundle against a trust policy (module docstring)."""
    root = Path(root).resolve()
    ws = Workspace.open(root)
    policy_file = ws.root / "opskit.yaml"
    with demo_witness(ws) as (url, witness_vkey):
        name_witness(policy_file, url, witness_vkey)
        try:
            result = body()
            change_id = next(iter(result["changes"]))
            evidence = root / "evidence"
            bundle = evidence / f"{change_id}.bundle.json"
            if _opskit(
                root, "audit", "export", "--change", change_id, "--out", str(bundle)
            ).returncode:
                raise OpskitError(f"the bundle of {change_id} could not be exported")
            trust = evidence / "audit.policy"
            vkey = log_vkey(Ledger.open(Workspace.open(root)))
            trust.write_text(
                f"# the demo ledger and its witness\nlog {vkey}\n"
                f"witness {WITNESS_NAME} {witness_vkey}\nquorum {WITNESS_NAME}\n"
            )
            checked = _opskit(root, "audit", "verify-bundle", str(bundle), "--trust", str(trust))
            if checked.returncode != 0 or f"witnesses: {WITNESS_NAME}" not in checked.stdout:
                raise OpskitError(f"the bundle of {change_id} did not verify with the witness")
        finally:
            name_witness(policy_file, None)
    return {**result, "bundle": str(bundle), "trust": str(trust)}
