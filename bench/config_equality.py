"""Configuration equality benchmark: the rollback proof on 50,000-line configurations.

Builds a realistic IOS configuration of N lines (default 50,000: interfaces
with descriptions and VLANs, ACLs, static routes, prefix lists, the volatile
preamble) and a second fetch of the same device (other timestamps), then times:

  equal, same      opskit.configdiff.equal on two fetches of an unchanged device
  equal, changed   the same with 10 lines changed and a duplicated line
  diff, scattered  opskit.configdiff.diff with 500 scattered changes
  diff, removed    opskit.configdiff.diff with every interface description removed
  peer difflib     difflib.unified_diff on the scattered pair (the previous implementation)
  peer hier_config hier_config's own comparison (parse both, ==) on the unchanged
                   pair (it refuses the changed one: DuplicateChildError)

and prints each time with its ratio against the target (equal <= 0.5 s) and
against the peers. Usage: bench/config_equality.py [--lines N] [--skip-difflib]
"""

from __future__ import annotations

import argparse
import difflib
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hier_config import Platform, get_hconfig

from opskit import configdiff

TARGET_S = 0.5
PLATFORM = "cisco_ios"


def build_config(lines: int, stamp: str, seed: int = 7) -> list[str]:
    """A long IOS configuration: repetitive, as real large ones are."""
    rnd = random.Random(seed)
    out = [
        "Building configuration...",
        "",
        f"Current configuration : {lines * 30} bytes",
        "!",
        f"! Last configuration change at {stamp} UTC Mon Nov 23 2026 by admin",
        f"! NVRAM config last updated at {stamp} UTC Mon Nov 23 2026 by admin",
        "!",
        "version 15.2",
        "hostname bench-core-01",
        "!",
    ]
    n = 0
    while len(out) < lines * 0.55:
        slot, port = divmod(n, 48)
        out += [
            f"interface GigabitEthernet{slot}/0/{port + 1}",
            f" description access port {n} to floor {n % 12}",
            " switchport mode access",
            f" switchport access vlan {100 + n % 300}",
            " spanning-tree portfast",
            " spanning-tree bpduguard enable",
            " no shutdown",
            "!",
        ]
        n += 1
    acl = 0
    while len(out) < lines * 0.8:
        out.append(f"ip access-list extended ACL-{acl}")
        for seq in range(10, 210, 10):
            net = f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.0"
            out.append(f" {seq} permit tcp {net} 0.0.0.255 any eq {rnd.choice([22, 80, 443])}")
        out.append("!")
        acl += 1
    k = 0
    while len(out) < lines - 2:
        out.append(f"ip route 172.{16 + k // 65536 % 16}.{k // 256 % 256}.{k % 256} "
                   "255.255.255.255 Null0")  # fmt: skip
        k += 1
    out += ["!", "end"]
    return out


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--skip-difflib", action="store_true", help="skip the slow peer")
    args = parser.parse_args()

    base = build_config(args.lines, "10:12:01")
    same = build_config(args.lines, "11:47:33")  # a second fetch: other timestamps
    changed = list(same)
    for i in range(1000, len(changed), len(changed) // 10):
        changed[i] = changed[i] + " changed"
    changed.insert(len(changed) // 2, changed[len(changed) // 2])  # a duplicated line
    scattered = list(same)
    for i in range(500, len(scattered), max(1, len(scattered) // 500)):
        scattered[i] = scattered[i] + " x"
    removed = [line for line in same if not line.startswith(" description")]
    a, b, c, d, e = ("\n".join(x) for x in (base, same, changed, scattered, removed))
    print(f"configurations: {len(base):,} lines, {len(a) / 1e6:.1f} MB each")

    # Fresh strings each time, so that no normalisation cache helps.
    t_same, (eq_same, _) = timed(lambda: configdiff.equal(a + " ", b + " ", PLATFORM))
    t_changed, (eq_changed, residual) = timed(lambda: configdiff.equal(a + " ", c + " ", PLATFORM))
    t_scattered, scattered_diff = timed(lambda: configdiff.diff(a + " ", d + " ", PLATFORM), 1)
    t_removed, removed_diff = timed(lambda: configdiff.diff(a + " ", e + " ", PLATFORM), 1)
    assert eq_same and not eq_changed, "the benchmark's configurations are wrong"
    changed_lines = sum(1 for x in residual.splitlines() if x[:1] in "+-" and x[:3] not in "+++---")
    rows = [
        ("opskit equal, same", t_same, "equal"),
        ("opskit equal, changed", t_changed, f"{changed_lines} lines differ"),
        ("opskit diff, scattered", t_scattered, f"{scattered_diff.count(chr(10)):,} diff lines"),
        ("opskit diff, removed", t_removed, f"{removed_diff.count(chr(10)):,} diff lines"),
    ]

    na = configdiff.normalize(a, PLATFORM).splitlines(keepends=True)
    nd = configdiff.normalize(d, PLATFORM).splitlines(keepends=True)
    # hier_config refuses the duplicated line: its peer measure is the unchanged pair.
    na_text, nb_text = configdiff.normalize(a, PLATFORM), configdiff.normalize(b, PLATFORM)
    t_hier, _ = timed(
        lambda: (
            get_hconfig(Platform.CISCO_IOS, na_text) == get_hconfig(Platform.CISCO_IOS, nb_text)
        ),
        1,
    )
    rows.append(("peer hier_config parse + ==", t_hier, "unchanged pair (refuses the duplicate)"))
    t_difflib = None
    if not args.skip_difflib:
        t_difflib, _ = timed(lambda: "".join(difflib.unified_diff(na, nd)), 1)
        rows.append(("peer difflib unified_diff", t_difflib, "scattered pair (previous opskit)"))

    print(f"{'measure':32} {'seconds':>8}  {'vs target 0.5 s':>15}  note")
    for name, seconds, note in rows:
        ratio = f"{seconds / TARGET_S:.2f}x" if name.startswith("opskit equal") else ""
        print(f"{name:32} {seconds:8.3f}  {ratio:>15}  {note}")
    worst = max(t_same, t_changed)
    print(f"\nequality: {worst:.3f} s worst case = {worst / TARGET_S:.2f}x the 0.5 s target "
          f"({'met' if worst <= TARGET_S else 'MISSED'})")  # fmt: skip
    print(f"vs hier_config's parse + ==: {t_hier / worst:.1f}x faster")
    if t_difflib is not None:
        print(
            f"diff vs difflib (the previous implementation): {t_difflib / t_scattered:.1f}x faster"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
