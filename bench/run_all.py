"""Runs every benchmark script under bench/ in turn (`make bench`).

Each script measures opskit against its peer tools in the same run and
prints the ratios against the targets; this runner only sequences them and
reports which ones failed to run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = (
    "inventory.py",
    "ledger.py",
    "audit_tables.py",
    "fanout.py",
    "config_equality.py",
    "compliance.py",
    "compliance_backups.py",
    "distributed.py",
)


def main() -> int:
    failed: list[str] = []
    extra = sys.argv[1:]
    for name in SCRIPTS:
        script = BENCH_DIR / name
        if not script.exists():
            print(f"== {name}: missing", flush=True)
            failed.append(name)
            continue
        print(f"\n== {name}", flush=True)
        if subprocess.call([sys.executable, str(script), *extra]) != 0:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that did not complete: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
