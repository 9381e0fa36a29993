"""Compliance from backups: 1,000, 5,000 and 10,000 CIs, no device contacted.

Builds a workspace whose inventory holds 10,000 Cisco IOS switches and whose
ledger holds one ``backup.taken`` per switch (about 110 lines each: 48
access ports, VLANs, a tenth of them without the standard VLAN 10, so
non-compliant), with the shipped rules (compliance/cisco_ios.yaml) and
intended template (templates/intended/cisco_ios.j2). Then, each size in its
own process (so peak memory is per size), `opskit.compliance.runs.run_compliance(
source="backup")` over the first N switches: rules and intended
configurations rendered, every latest backup read from the ledger,
evaluated, and the run recorded (one ``compliance.run`` and N
``compliance.result`` events, configurations deduplicated against the
backups' blobs). Prints wall time, per-CI time, peak RSS, and whether the
time scales linearly (per-CI time at 10,000 within 1.3x of that at 1,000).

Usage: bench/compliance_backups.py [--sizes 1000,5000,10000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PORTS = 48
NON_COMPLIANT_EVERY = 10
LINEAR_TOLERANCE = 1.3


def name(i: int) -> str:
    return f"sw{i:05d}"


def inventory_yaml(count: int) -> str:
    lines = ["cis:"]
    for i in range(count):
        lines += [
            f"- name: {name(i)}",
            "  type: switch",
            "  platform: cisco_ios",
            f"  host: 10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            f"  site: site{i % 20:02d}",
            "  attributes:",
            f"    access_ports: {PORTS}",
        ]
    return "\n".join(lines) + "\n"


def config(i: int) -> str:
    lines = ["version 12.1", "!", f"hostname {name(i)}", "!", "vlan 1", "!"]
    if i % NON_COMPLIANT_EVERY:
        lines += ["vlan 10", " name users", "!"]
    for port in range(1, PORTS + 1):
        lines += [f"interface FastEthernet0/{port}", "!"]
    return "\n".join(lines) + "\nend\n"


def build(root: Path, sizes: list[int]) -> None:
    from opskit.backups.history import BACKUP_KIND
    from opskit.configdiff import config_hash
    from opskit.ledger.core import Ledger
    from opskit.workspace import init_workspace

    ws = init_workspace(root)
    for size in sizes:  # one inventory per size: the first `size` switches
        folder = ws.inventories_dir / f"bench{size}"
        folder.mkdir()
        (folder / "estate.yaml").write_text(inventory_yaml(size))
    count = max(sizes)
    ledger = Ledger.open(ws)
    for start in range(0, count, 1000):
        with ledger.batch() as batch:
            for i in range(start, min(count, start + 1000)):
                text = config(i)
                batch.append(
                    BACKUP_KIND,
                    actor="bench",
                    ci=name(i),
                    payload={"platform": "cisco_ios", "hash": config_hash(text, "cisco_ios")},
                    blobs={"running": text},
                )
    ws.close()


def measure(root: Path, count: int) -> dict[str, float]:
    from opskit.compliance.runs import run_compliance
    from opskit.workspace import Workspace

    ws = Workspace.open(root)
    start = time.perf_counter()
    run = run_compliance(ws, "bench", source="backup", inventory=f"bench{count}")
    seconds = time.perf_counter() - start
    assert len(run.fleet.results) == count, (len(run.fleet.results), count)
    counts = run.fleet.counts
    assert counts["non-compliant"] == count // NON_COMPLIANT_EVERY, counts
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"cis": count, "seconds": seconds, "rss_mib": rss}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workspace", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.workspace, args.measure)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="opskit-bench-compliance-") as tmp:
        root = Path(tmp) / "ws"
        started = time.perf_counter()
        build(root, sizes)
        print(
            f"workspace with {max(sizes):,} backups built in {time.perf_counter() - started:.1f} s"
        )
        print(f"{'CIs':>7} {'wall':>8} {'per CI':>9} {'peak RSS':>9}")
        rows = []
        for size in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--measure", str(size), "--workspace", str(root)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(row)
            per_ci = row["seconds"] / row["cis"] * 1000
            wall, rss = f"{row['seconds']:>7.2f}s", f"{row['rss_mib']:>6.0f} MiB"
            print(f"{row['cis']:>7,} {wall} {per_ci:>7.2f}ms {rss}", flush=True)
    first, last = rows[0], rows[-1]
    ratio = (last["seconds"] / last["cis"]) / (first["seconds"] / first["cis"])
    linear = ratio <= LINEAR_TOLERANCE
    print(
        f"per-CI time at {last['cis']:,} vs {first['cis']:,}: {ratio:.2f}x "
        f"({'linear' if linear else 'NOT linear'}; target <= {LINEAR_TOLERANCE}x)"
    )
    return 0 if linear else 1


if __name__ == "__main__":
    sys.exit(main())
