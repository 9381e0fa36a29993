"""Compliance benchmark: 1,000 configurations of about 2,000 lines, 10 features.

Builds N realistic IOS configurations (default 1,000 of about 2,000 lines:
hostname, aaa, ntp, logging, snmp, a banner, VLANs, interfaces, ACLs, static
routes, vty lines), each with its intended configuration (one in ten has
drift in two features: a missing line and an extra one), and a rule set of
10 features (7 intended, 2 must-contain with CMDB values, 1 must-not-contain).
Then times (wall and CPU: on a loaded shared machine the CPU time is the
comparable figure, and the target is judged on it), in the same run:

  opskit           opskit.compliance.evaluate on every configuration (missing,
                   extra and remediation for each non-compliant feature)
  peer netutils    netutils.config.compliance.compliance (Nautobot Golden
                   Config's engine) on the same features, intended vs running
  peer hier_config hier_config used directly: parse both configurations,
                   both differences, the remediation of the drifted ones

The peers are run on a sample (``--peer-sample``, default 100) and compared
per configuration. Memory: the process's peak RSS (ru_maxrss) after the
opskit pass, and tracemalloc's peak while evaluating one configuration.
Usage: bench/compliance.py [--configs N] [--lines L] [--peer-sample K]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hier_config import Platform, WorkflowRemediation, get_hconfig
from netutils.config.compliance import compliance as netutils_compliance

from opskit import configdiff
from opskit.compliance import evaluate, load_rules, rules_for
from opskit.inventory import CI, CIType

TARGET_S = 10.0
PLATFORM = "cisco_ios"
RULES = """\
version: 1.0.0
platform: cisco_ios
features:
  - {name: system, mode: intended, match: ["^hostname ", "^service "]}
  - {name: aaa, mode: must-contain, match: ["^aaa "], lines: "aaa new-model"}
  - name: ntp
    mode: must-contain
    match: ["^ntp "]
    lines: "ntp server {{ ci.ntp_server }}"
  - {name: logging, mode: intended, match: ["^logging "]}
  - name: snmp
    mode: must-not-contain
    match: ["^snmp-server "]
    regex: true
    lines: "snmp-server community (public|private)( .*)?"
  - {name: vlans, mode: intended, match: ["^vlan "]}
  - {name: interfaces, mode: intended, match: ["^interface "]}
  - {name: acls, mode: intended, ordered: true, match: ["^ip access-list "]}
  - {name: routing, mode: intended, match: ["^ip route ", "^router "]}
  - {name: lines, mode: intended, match: ["^line ", "^banner "]}
"""
# The same features for netutils (its "section" is a list of line starts).
NETUTILS_FEATURES = [
    {"name": "system", "ordered": False, "section": ["hostname ", "service "]},
    {"name": "aaa", "ordered": False, "section": ["aaa "]},
    {"name": "ntp", "ordered": False, "section": ["ntp "]},
    {"name": "logging", "ordered": False, "section": ["logging "]},
    {"name": "snmp", "ordered": False, "section": ["snmp-server "]},
    {"name": "vlans", "ordered": False, "section": ["vlan "]},
    {"name": "interfaces", "ordered": False, "section": ["interface "]},
    {"name": "acls", "ordered": True, "section": ["ip access-list "]},
    {"name": "routing", "ordered": False, "section": ["ip route ", "router "]},
    {"name": "lines", "ordered": False, "section": ["line ", "banner "]},
]


def build(index: int, lines: int) -> list[str]:
    rnd = random.Random(index)
    out = [
        "Building configuration...",
        "Current configuration : 81234 bytes",
        "! Last configuration change at 10:12:01 UTC Mon Nov 23 2026 by admin",
        "version 15.2",
        "service timestamps debug datetime msec",
        "service password-encryption",
        f"hostname sw{index:05d}",
        "aaa new-model",
        "aaa authentication login default group tacacs+ local",
        "ntp server 10.0.0.123",
        "ntp server 10.8.0.123",
        "logging buffered 64000",
        "logging host 10.0.0.50",
        "snmp-server community n0t-publ1c RO",
        "snmp-server location dc1",
        "banner motd ^C",
        "Authorised access only.",
        "^C",
    ]
    out += [f"vlan {v}\n name vlan-{v}" for v in range(100, 160)]
    port = 0
    while len(out) < lines * 0.6:
        out += [
            f"interface GigabitEthernet1/0/{port + 1}",
            f" description access port {port} to floor {port % 12}",
            " switchport mode access",
            f" switchport access vlan {100 + port % 60}",
            " spanning-tree portfast",
            " no shutdown",
            "!",
        ]
        port += 1
    acl = 0
    while len(out) < lines * 0.85:
        out.append(f"ip access-list extended ACL-{acl}")
        for seq in range(10, 210, 10):
            net = f"10.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.0"
            out.append(f" {seq} permit tcp {net} 0.0.0.255 any eq {rnd.choice([22, 80, 443])}")
        acl += 1
    k = 0
    while len(out) < lines - 6:
        out.append(f"ip route 172.16.{k // 256}.{k % 256} 255.255.255.255 Null0")
        k += 1
    out += ["line vty 0 4", " transport input ssh", " exec-timeout 10 0", "end"]
    return "\n".join(out).splitlines()


def drifted(config: list[str], index: int) -> list[str]:
    """One configuration in ten: an interface lost its description, an extra route."""
    if index % 10:
        return config
    out = [line for line in config if line != " description access port 3 to floor 3"]
    return [*out[:-1], "ip route 192.0.2.0 255.255.255.0 Null0", out[-1]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--peer-sample", type=int, default=100)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench.yaml").write_text(RULES)
        ruleset = load_rules(Path(tmp) / "bench.yaml")
    cis, running, intended = [], [], []
    for i in range(args.configs):
        base = build(i, args.lines)
        cis.append(
            CI(
                name=f"sw{i:05d}",
                type=CIType.SWITCH,
                platform=PLATFORM,
                attributes={"ntp_server": "10.0.0.123"},
            )
        )
        running.append("\n".join(drifted(base, i)))
        intended.append("\n".join(line for line in base[3:] if line != "end"))
    total_lines = sum(r.count("\n") + 1 for r in running)
    print(f"{args.configs:,} configurations, {total_lines / args.configs:,.0f} lines each")

    start, cpu = time.perf_counter(), time.process_time()
    results = []
    for ci, run, want in zip(cis, running, intended, strict=True):
        results.append(evaluate(ci, run, want, rules_for(ci, ruleset)))
    t_opskit, c_opskit = time.perf_counter() - start, time.process_time() - cpu
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    bad = sum(1 for r in results if r.counts["non-compliant"])
    expected = len(range(0, args.configs, 10))
    assert bad == expected, f"{bad} non-compliant, expected {expected}"
    tracemalloc.start()
    evaluate(cis[0], running[0], intended[0], rules_for(cis[0], ruleset))
    peak_kb = tracemalloc.get_traced_memory()[1] / 1024
    tracemalloc.stop()

    sample = range(min(args.peer_sample, args.configs))
    normal_run = [configdiff.normalize(running[i], PLATFORM) for i in sample]
    normal_want = [configdiff.normalize(intended[i], PLATFORM) for i in sample]

    def netutils_pass() -> None:
        for have, want in zip(normal_run, normal_want, strict=True):
            netutils_compliance(NETUTILS_FEATURES, have, want, PLATFORM, "string")

    def hier_config_pass() -> None:
        for have, want in zip(normal_run, normal_want, strict=True):
            h, w = get_hconfig(Platform.CISCO_IOS, have), get_hconfig(Platform.CISCO_IOS, want)
            missing, extra = list(w.difference(h).lines()), list(h.difference(w).lines())
            if missing or extra:
                list(WorkflowRemediation(h, w).remediation_config.lines())

    peers = {"peer netutils compliance": timed(netutils_pass, len(sample)),
             "peer hier_config direct": timed(hier_config_pass, len(sample))}  # fmt: skip

    wall, cpu = t_opskit / args.configs, c_opskit / args.configs
    print(f"{'measure':26} {'wall s':>7} {'cpu s':>7} {'ms/config wall':>15} {'cpu':>6}  ratio")
    target = f"{c_opskit / TARGET_S:.2f}x the {TARGET_S:.0f} s target (cpu)"
    print(f"{'opskit evaluate':26} {t_opskit:7.2f} {c_opskit:7.2f} {wall * 1000:15.2f}"
          f" {cpu * 1000:6.2f}  {target}")  # fmt: skip
    for name, (p_wall, p_cpu) in peers.items():
        print(f"{name:26} {p_wall * args.configs:7.2f} {p_cpu * args.configs:7.2f}"
              f" {p_wall * 1000:15.2f} {p_cpu * 1000:6.2f}  opskit {p_cpu / cpu:.1f}x faster"
              f" (cpu; sample of {len(sample)}, totals extrapolated)")  # fmt: skip
    print(f"memory: peak RSS {rss_mb:,.0f} MB after the opskit pass (all configurations held);"
          f" tracemalloc peak {peak_kb:,.0f} KB evaluating one configuration")  # fmt: skip
    fastest_peer = min(p_cpu for _, p_cpu in peers.values())
    ok = c_opskit <= TARGET_S and cpu <= fastest_peer
    print(f"\ntarget {'met' if ok else 'MISSED'}: {c_opskit:.2f} s cpu ({t_opskit:.2f} s wall) for"
          f" {args.configs:,} configurations, {bad:,} with drift; machine load"
          f" {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    return 0 if ok else 1


def timed(run: Callable[[], None], count: int) -> tuple[float, float]:
    """Wall and CPU seconds per configuration of ``run`` over ``count`` of them."""
    start, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - start) / count, (time.process_time() - cpu) / count


if __name__ == "__main__":
    sys.exit(main())
