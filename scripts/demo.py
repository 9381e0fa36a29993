"""`make demo`: the main job end to end on the embedded default.

1. A workspace (`demo-workspace/`), created once with `opskit init`.
2. The CMDB: validate and list the example inventory, and an impact analysis.
3. The change process against the emulated lab (`opskit.demo.changes`):
   a change applied and verified on every lab switch, a second one whose
   verification fails and is rolled back with proof, both closed.
   A witness process (`opskit.demo.verifiable`) cosigns the ledger's
   checkpoints meanwhile; the first change's complete bundle is then
   verified against a trust policy naming the log key and the witness.
4. `opskit audit verify` over the whole ledger.
5. The reports (`opskit.demo.reports`): the evidence report of the rolled-back
   change and the KPI report, as HTML, and where they are.

Every step is the real CLI or public API; the script stops at the first
failure with a non-zero exit. Run it twice: the second run reuses the workspace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "demo-workspace"


def opskit(*args: str, check: bool = True) -> int:
    command = [sys.executable, "-m", "opskit", "--workspace", str(WORKSPACE), *args]
    print(f"\n$ opskit {' '.join(args)}", flush=True)
    code = subprocess.call(command, cwd=REPO)
    if check and code != 0:
        sys.exit(f"demo: 'opskit {' '.join(args)}' exited {code}")
    return code


def main() -> int:
    started = time.monotonic()
    os.environ.setdefault("OPSKIT_USER", "alice")
    # The example estate's credentials are references to environment variables;
    # the demo never connects to it, so placeholders are enough.
    if not (WORKSPACE / "opskit.yaml").is_file():
        opskit("init", str(WORKSPACE))  # copies the shipped examples too
    # The example estate is refreshed from the repository (a workspace made
    # by an earlier version may hold an older copy); the lab's inventory is
    # written by `opskit lab up` itself.
    shutil.copytree(
        REPO / "inventories" / "example", WORKSPACE / "inventories" / "example", dirs_exist_ok=True
    )

    opskit("inventory", "validate", "--inventory", "example")
    opskit("inventory", "list", "--inventory", "example")
    opskit("inventory", "impact", "--inventory", "example", "core-sw1")

    from opskit.demo import verifiable
    from opskit.demo.changes import run_demo
    from opskit.demo.compliance import run_demo as compliance_demo
    from opskit.demo.reports import write_demo_reports
    from opskit.lab import Lab
    from opskit.workspace import Workspace

    keep_lab = "--keep-lab" in sys.argv
    try:
        verifiable.run(WORKSPACE, lambda: run_demo(WORKSPACE))  # a witness cosigns; bundle checked
        compliance_demo(WORKSPACE)
        opskit("audit", "verify")
        write_demo_reports(WORKSPACE)
    finally:
        if not keep_lab:
            Lab(Workspace.open(WORKSPACE)).down()
    print(f"\ndemo finished in {time.monotonic() - started:.0f} s; workspace: {WORKSPACE}")
    if keep_lab:
        print(f"the lab is still running: opskit -w {WORKSPACE} lab down  stops it")
    else:
        print("the lab is stopped (scripts/demo.py --keep-lab leaves it running)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
