"""Inventory benchmark: opskit vs Nornir SimpleInventory vs ansible-inventory.

Generates an estate of N CIs (default 50,000) with groups and relationships
in three equivalent formats in a temporary folder, then measures, each tool in
its own process (so peak memory is per tool):

  opskit cold   load_inventory + validate + a selection, no cache
  opskit warm   the same from the content-keyed cache
  nornir        InitNornir with SimpleInventory + the same filter
  ansible       ansible-inventory --list (from the venv)

and prints wall time, the tool's own load time, peak RSS and the ratios
against the targets (opskit cold <= 3 s, <= 1.0x Nornir, >= 20x faster than
ansible-inventory). Usage: bench/inventory.py [--cis N] [--ansible-timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
SITES = 20
ROLES = (  # role group, type, platform, share of the estate
    ("core", "switch", "cisco_ios", 0.02),
    ("access", "switch", "arista_eos", 0.38),
    ("edge", "router", "juniper_junos", 0.05),
    ("servers", "server", "linux", 0.45),
    ("services", "application", "linux", 0.10),
)
PARENT = {"core": "network", "access": "network", "edge": "network"}
PARENT |= {"servers": "linux", "services": "linux"}
SELECTION = "group:core and site:site01"


def dump(data: Any, path: Path) -> None:
    """Block-style YAML, written directly: PyYAML's emitter would take longer
    than everything measured here. Scalars are JSON, which YAML reads as is."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    _emit(data, 0, lines)
    path.write_text("\n".join(lines) + "\n")


def _emit(value: Any, indent: int, lines: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            lines[-1] += " {}" if lines else ""
            return
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                _emit(item, indent + 2, lines)
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item:
                first, *rest = item.items()
                lines.append(f"{pad}- {first[0]}:")
                if isinstance(first[1], dict | list) and first[1]:
                    _emit(first[1], indent + 4, lines)
                else:
                    lines[-1] += f" {_scalar(first[1])}"
                if rest:
                    _emit(dict(rest), indent + 2, lines)
            else:
                lines.append(f"{pad}- {_scalar(item)}")


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_./-]*|\d+\.\d+\.\d+\.\d+")
_KEYWORDS = {"yes", "no", "on", "off", "true", "false", "null", "y", "n"}


def _scalar(value: Any) -> str:
    """Plain where YAML reads it back as the same text, as people write it."""
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    if isinstance(value, str) and _PLAIN.fullmatch(value) and value.lower() not in _KEYWORDS:
        return value
    return json.dumps(value)


# -- the estate -------------------------------------------------------------------
def generate_estate(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Plain CI records; every CI depends only on CIs created before it (acyclic)."""
    rng = random.Random(seed)
    cis: list[dict[str, Any]] = []
    by_site_role: dict[tuple[int, str], list[str]] = {}
    plan = []
    for role, ci_type, platform, share in ROLES:
        plan += [(role, ci_type, platform)] * max(1, round(count * share))
    plan = plan[:count]
    while len(plan) < count:
        plan.append(ROLES[3][:3])
    # Build layer by layer so that dependencies point at existing CIs.
    order = {"edge": 0, "core": 1, "access": 2, "servers": 3, "services": 4}
    plan.sort(key=lambda item: order[item[0]])
    for index, (role, ci_type, platform) in enumerate(plan):
        site = index % SITES + 1
        name = f"{role}-{site:02d}-{index:06d}"
        depends_on: list[str] = []
        below = {"core": "edge", "access": "core", "servers": "access", "services": "servers"}
        if role in below:
            candidates = by_site_role.get((site, below[role]), [])
            if candidates:
                depends_on = rng.sample(candidates, min(2, len(candidates)))
        by_site_role.setdefault((site, role), []).append(name)
        cis.append(
            {
                "name": name,
                "type": ci_type,
                "platform": platform,
                "host": f"10.{site}.{index // 250 % 250}.{index % 250 + 1}",
                "port": 22,
                "role": role,
                "site": f"site{site:02d}",
                "owner": "netops" if platform != "linux" else "platform",
                "department": "network" if platform != "linux" else "infrastructure",
                "lifecycle": "decommissioned" if index % 97 == 0 else "operational",
                "criticality": ("low", "medium", "high", "critical")[index % 4],
                "depends_on": depends_on,
                "attributes": {
                    "model": f"M{index % 13:02d}",
                    "serial": f"SN{index:08d}",
                    "os_version": f"{15 + index % 3}.{index % 10}",
                    "rack": f"R{index % 40:02d}",
                },
            }
        )
    return cis


def write_opskit(cis: list[dict[str, Any]], folder: Path) -> None:
    groups: dict[str, Any] = {"network": {"vars": {"criticality": "high"}}, "linux": {}}
    for role, parent in PARENT.items():
        groups[role] = {"groups": [parent]}
    for site in range(1, SITES + 1):
        groups[f"site{site:02d}"] = {"vars": {"site": f"site{site:02d}"}}
    common = {
        "defaults": {"credentials": {"username": "admin", "password": {"env": "NET_PASSWORD"}}},
        "groups": groups,
    }
    dump(common, folder / "common.yaml")
    per_site: dict[str, list[dict[str, Any]]] = {}
    for ci in cis:
        record = {
            "name": ci["name"],
            "type": ci["type"],
            "platform": ci["platform"],
            "host": ci["host"],
            "port": ci["port"],
            "groups": [ci["role"], ci["site"]],
            "owner": ci["owner"],
            "department": ci["department"],
            "lifecycle": ci["lifecycle"],
            "criticality": ci["criticality"],
            "relationships": [{"depends_on": target} for target in ci["depends_on"]],
            "attributes": ci["attributes"],
        }
        per_site.setdefault(ci["site"], []).append(record)
    for site, records in per_site.items():
        dump({"cis": records}, folder / "sites" / f"{site}.yaml")


def write_nornir(cis: list[dict[str, Any]], folder: Path) -> None:
    hosts = {}
    for ci in cis:
        hosts[ci["name"]] = {
            "hostname": ci["host"],
            "port": ci["port"],
            "platform": ci["platform"],
            "groups": [ci["role"], ci["site"]],
            "data": {
                "type": ci["type"],
                "owner": ci["owner"],
                "department": ci["department"],
                "lifecycle": ci["lifecycle"],
                "criticality": ci["criticality"],
                "depends_on": ci["depends_on"],
                **ci["attributes"],
            },
        }
    groups: dict[str, Any] = {"network": {"data": {"criticality": "high"}}, "linux": {}}
    for role, parent in PARENT.items():
        groups[role] = {"groups": [parent]}
    for site in range(1, SITES + 1):
        groups[f"site{site:02d}"] = {"data": {"site": f"site{site:02d}"}}
    dump(hosts, folder / "hosts.yaml")
    dump(groups, folder / "groups.yaml")
    dump({"username": "admin"}, folder / "defaults.yaml")


def write_ansible(cis: list[dict[str, Any]], path: Path) -> None:
    children: dict[str, Any] = {
        "network": {"vars": {"criticality": "high"}, "children": {}},
        "linux": {"children": {}},
    }
    for role, parent in PARENT.items():
        children[parent]["children"][role] = {"hosts": {}}
    sites: dict[str, Any] = {}
    for ci in cis:
        role_group = children[PARENT[ci["role"]]]["children"][ci["role"]]
        role_group["hosts"][ci["name"]] = {
            "ansible_host": ci["host"],
            "ansible_port": ci["port"],
            "opskit_type": ci["type"],
            "opskit_platform": ci["platform"],
            "owner": ci["owner"],
            "department": ci["department"],
            "lifecycle": ci["lifecycle"],
            "criticality": ci["criticality"],
            "depends_on": ci["depends_on"],
            **ci["attributes"],
        }
        site = sites.setdefault(ci["site"], {"vars": {"site": ci["site"]}, "hosts": {}})
        site["hosts"][ci["name"]] = None
    children.update(sites)
    dump({"all": {"vars": {"ansible_user": "admin"}, "children": children}}, path)


# -- measuring --------------------------------------------------------------------
OPSKIT_SNIPPET = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
from opskit.inventory import load_inventory
imported, cpu = time.perf_counter(), time.process_time()
cache = Path(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] else None
inv = load_inventory(Path(sys.argv[1]), cache_dir=cache)
selected = inv.select(sys.argv[3] if len(sys.argv) > 3 else None)
done = time.perf_counter()
print(json.dumps({"load": done - imported, "load_cpu": time.process_time() - cpu,
                  "import": imported - start, "cis": len(inv), "selected": len(selected)}))
"""

NORNIR_SNIPPET = """
import json, sys, time
start = time.perf_counter()
from nornir import InitNornir
from nornir.core.filter import F
imported, cpu = time.perf_counter(), time.process_time()
folder = sys.argv[1]
nr = InitNornir(
    runner={"plugin": "serial"},
    logging={"enabled": False},
    inventory={"plugin": "SimpleInventory", "options": {
        "host_file": f"{folder}/hosts.yaml",
        "group_file": f"{folder}/groups.yaml",
        "defaults_file": f"{folder}/defaults.yaml"}},
)
loaded = time.perf_counter()
selected = nr.filter(F(groups__contains="core") & F(site="site01"))
done = time.perf_counter()
print(json.dumps({"load": done - imported, "load_cpu": time.process_time() - cpu,
                  "import": imported - start, "cis": len(nr.inventory.hosts),
                  "selected": len(selected.inventory.hosts)}))
"""


def measure(command: list[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Runs `command`; returns wall time, peak RSS (MB) and its JSON output if any."""
    env = {**os.environ, "ANSIBLE_INVENTORY_ENABLED": "yaml", "ANSIBLE_NOCOLOR": "1"}
    env["ANSIBLE_HOST_KEY_CHECKING"] = "False"
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        deadline = start + timeout if timeout else None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                return {
                    "wall": time.perf_counter() - start,
                    "cpu": usage.ru_utime + usage.ru_stime,
                    "timeout": True,
                    "rss_mb": None,
                }
            time.sleep(0.01)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read()
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{command[:3]} failed:\n{err.read().decode()[-2000:]}")
    result: dict[str, Any] = {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,  # robust to other load on the machine
        "rss_mb": usage.ru_maxrss / 1024,
        "timeout": False,
    }
    try:
        result |= json.loads(stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        result["output_bytes"] = len(stdout)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cis", type=int, default=50_000, help="estate size (default 50000)")
    parser.add_argument(
        "--ansible-timeout", type=float, default=900, help="give ansible-inventory up to S seconds"
    )
    parser.add_argument("--skip-ansible", action="store_true")
    parser.add_argument("--generate", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        estate = generate_estate(args.cis)
        base = Path(args.generate)
        write_opskit(estate, base / "opskit")
        write_nornir(estate, base / "nornir")
        write_ansible(estate, base / "ansible" / "hosts.yaml")
        return 0

    with tempfile.TemporaryDirectory(prefix="opskit-bench-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        # In another process: a child forked from a big parent would report
        # the parent's memory as its own peak RSS.
        subprocess.run(
            [sys.executable, __file__, "--cis", str(args.cis), "--generate", tmp], check=True
        )
        size = sum(p.stat().st_size for p in (base / "opskit").rglob("*.yaml")) / 1e6
        print(
            f"estate: {args.cis} CIs, {SITES} sites, opskit files {size:.1f} MB "
            f"(generated in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )

        py = sys.executable
        results: dict[str, dict[str, Any]] = {}
        inv = str(base / "opskit")
        cache = str(base / "cache")
        results["opskit cold"] = measure([py, "-c", OPSKIT_SNIPPET, inv, "", SELECTION])
        print_row("opskit cold", results["opskit cold"])
        measure([py, "-c", OPSKIT_SNIPPET, inv, cache, SELECTION])  # fills the cache
        results["opskit warm"] = measure([py, "-c", OPSKIT_SNIPPET, inv, cache, SELECTION])
        print_row("opskit warm", results["opskit warm"])
        results["nornir"] = measure([py, "-c", NORNIR_SNIPPET, str(base / "nornir")])
        print_row("nornir", results["nornir"])
        if not args.skip_ansible:
            ansible = str(VENV_BIN / "ansible-inventory")
            hosts = str(base / "ansible" / "hosts.yaml")
            results["ansible"] = measure(
                [ansible, "-i", hosts, "--list"], timeout=args.ansible_timeout
            )
            print_row("ansible", results["ansible"])
        if results["opskit cold"].get("selected") != results["nornir"].get("selected"):
            print(
                f"note: selections differ (opskit {results['opskit cold'].get('selected')}, "
                f"nornir {results['nornir'].get('selected')}): opskit leaves out "
                "decommissioned CIs"
            )
        report(results)
    return 0


def print_row(label: str, result: dict[str, Any]) -> None:
    load = f"{result['load']:.2f} s" if "load" in result else "-"
    load_cpu = f"{result['load_cpu']:.2f} s" if "load_cpu" in result else "-"
    rss = f"{result['rss_mb']:.0f} MB" if result.get("rss_mb") else "-"
    wall = f"{result['wall']:.2f} s" + (" (timed out)" if result.get("timeout") else "")
    print(
        f"  {label:<12} process wall {wall:<20} cpu {result['cpu']:7.2f} s   "
        f"load+select wall {load:<9} cpu {load_cpu:<9} peak RSS {rss}",
        flush=True,
    )


def report(results: dict[str, dict[str, Any]]) -> None:
    cold = results["opskit cold"]
    nornir = results["nornir"]
    print("\ntargets (wall time; CPU time in brackets, which other load on the machine")
    print("does not inflate):")
    ok = cold["load"] <= 3.0
    print(
        f"  opskit cold load+validate+select {cold['load']:.2f} s [{cold['load_cpu']:.2f} s]"
        f"  (target <= 3 s)  {_ok(ok)}"
    )
    ratio = cold["load"] / nornir["load"]
    cpu_ratio = cold["load_cpu"] / nornir["load_cpu"]
    print(
        f"  vs Nornir SimpleInventory load: {ratio:.2f}x [{cpu_ratio:.2f}x] of Nornir's "
        f"{nornir['load']:.2f} s [{nornir['load_cpu']:.2f} s]  (target <= 1.0x)  "
        f"{_ok(ratio <= 1.0)}"
    )
    print(
        f"     whole processes incl. imports: {cold['wall'] / nornir['wall']:.2f}x "
        f"[{cold['cpu'] / nornir['cpu']:.2f}x]"
    )
    if "ansible" in results:
        ansible = results["ansible"]
        speedup = ansible["wall"] / cold["wall"]
        cpu_speedup = ansible["cpu"] / cold["cpu"]
        # A timed-out run gives lower bounds.
        bound = ">= " if ansible.get("timeout") else ""
        print(
            f"  vs ansible-inventory --list (whole processes): {bound}{speedup:.1f}x "
            f"[{bound}{cpu_speedup:.1f}x] faster ({bound}{ansible['wall']:.1f} s "
            f"[{bound}{ansible['cpu']:.1f} s] vs {cold['wall']:.2f} s [{cold['cpu']:.2f} s])"
            f"  (target >= 20x)  {_ok(speedup >= 20)}"
        )
    warm = results["opskit warm"]
    print(
        f"  opskit warm (cached) load+select: {warm['load']:.2f} s [{warm['load_cpu']:.2f} s], "
        f"{cold['load'] / warm['load']:.1f}x faster than cold"
    )


def _ok(flag: bool) -> str:
    return "OK" if flag else "MISSED"


if __name__ == "__main__":
    sys.exit(main())
