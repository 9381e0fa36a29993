"""Workspaces whose policy names real witness processes, and the CLI run in them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from opskit.ledger import Ledger
from opskit.ledger.proofs import log_vkey
from opskit.workspace import Workspace, init_workspace
from tests.tlog.witness_support import SRC, WitnessProcess


def witnessed_workspace(
    root: Path,
    witnesses: Sequence[WitnessProcess],
    *,
    db: str | None = None,
    quorum: int | None = None,
    urls: Sequence[str] | None = None,
) -> Workspace:
    """A new workspace whose policy names `witnesses` (each told the log's key)."""
    ws = init_workspace(root, db=db)
    ledger = Ledger.open(ws)
    for witness in witnesses:
        witness.add_log(ledger.origin, log_vkey(ledger))
    set_witnesses(ws, witnesses, quorum=quorum, urls=urls)
    ws.close()
    return Workspace.open(root, db=db)


def set_witnesses(
    ws: Workspace,
    witnesses: Sequence[WitnessProcess],
    *,
    quorum: int | None = None,
    urls: Sequence[str] | None = None,
) -> None:
    policy = yaml.safe_load((ws.root / "opskit.yaml").read_text())
    policy["witnesses"] = [
        {"name": w.name.split(".")[0], "url": url, "vkey": w.verifier.vkey}
        for w, url in zip(witnesses, urls or [w.url for w in witnesses], strict=True)
    ]
    policy["witness_quorum"] = len(witnesses) if quorum is None else quorum
    (ws.root / "opskit.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))


def trust_policy(ws: Workspace, witnesses: Sequence[WitnessProcess], quorum: str) -> str:
    """A C2SP tlog-policy trusting the workspace's log and `witnesses`."""
    lines = [f"log {log_vkey(Ledger.open(ws))}"]
    lines += [f"witness {w.name.split('.')[0]} {w.verifier.vkey}" for w in witnesses]
    if len(witnesses) > 1:
        names = " ".join(w.name.split(".")[0] for w in witnesses)
        lines.append(f"group every all {names}")
    lines.append(f"quorum {quorum}")
    return "\n".join(lines) + "\n"


def opskit_cli(
    *args: str, ws: Workspace | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`opskit ARGS` in a subprocess, in `ws` (its database too) when given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    env["PYTHONPATH"] = str(SRC)
    env["COLUMNS"] = "250"
    if ws is not None:
        env["OPSKIT_WORKSPACE"] = str(ws.root)
        env["OPSKIT_USER"] = "alice"
        if ws.db_url_override:
            env["OPSKIT_DB"] = ws.db_url_override
    return subprocess.run(
        [sys.executable, "-m", "opskit", *args],
        capture_output=True,
        text=True,
        cwd=cwd or "/",
        env=env,
        timeout=120,
        check=False,
    )
