"""Two segmented sites, each a network namespace with its own lab switches
and its own `opskit worker` (tests/fixtures/sites.py): a worker reaches its
site's devices and the core (Redis, PostgreSQL), never the other site's. A
change across both sites runs every host on its own site's worker; a host
whose CMDB site is wrong lands on a worker that cannot reach it, and fails
there with the reason, untouched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.changes import ChangeService
from opskit.distributed.runner import CeleryRunner
from opskit.workspace import Workspace
from tests.changes.test_change_apply import approved_change, configs
from tests.changes_support import write_policy, write_runbook
from tests.fixtures.sites import (
    NETNS_PREFIX,
    VETH_PREFIX,
    Site,
    Sites,
    _ip,
    remove_leftovers,
    segmented_sites,
)

pytestmark = [pytest.mark.xdist_group("celery-sites"), pytest.mark.slow, pytest.mark.postgres]

UNREACHABLE = "Network is unreachable"


def prepare(ws: Workspace) -> None:
    write_policy(ws, extra="runner:\n  kind: thread\n  queues: {by: site}\n")
    write_runbook(ws, "1.0.0")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    with segmented_sites(tmp_path_factory.mktemp("sites") / "ws", prepare) as built:
        yield built


def connect_from(site: Site | None, host: str, port: int) -> str:
    """`ok`, or why a TCP connection from inside `site` (None: the core)
    to host:port failed."""
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(({host!r}, {port}), timeout=5).close()\n"
        "    print('ok')\n"
        "except OSError as exc:\n"
        "    print(exc.strerror or exc)\n"
    )
    argv = [sys.executable, "-c", code]
    done = subprocess.run(
        site.command(*argv) if site else argv, capture_output=True, text=True, timeout=30
    )
    return done.stdout.strip() or done.stderr.strip()


def switch_port(sites: Sites, name: str) -> int:
    ci = yaml.safe_load(sites.inventory.read_text())["cis"]
    return int(next(c["port"] for c in ci if c["name"] == name))


def test_a_worker_reaches_its_site_and_the_core_never_the_other_site(sites: Sites) -> None:
    a, b = sites.sites["site-a"], sites.sites["site-b"]
    for site in (a, b):
        assert sites.workers[site.name].pid in site.pids()  # the worker runs in its namespace
        assert sites.switches[site.name].pid in site.pids()
        for port in (sites.redis.port, sites.postgres.port):
            assert connect_from(site, site.core, port) == "ok"
    for own, other in ((a, b), (b, a)):
        for name in sites.devices(own.name):
            port = switch_port(sites, name)
            assert connect_from(own, own.address, port) == "ok"
            assert connect_from(other, own.address, port) == UNREACHABLE
            assert connect_from(None, own.address, port) == "ok"  # the core reaches both
        # Not even the other site's link address, nor the core's loopback services.
        assert connect_from(other, own.core, sites.redis.port) == UNREACHABLE
        assert connect_from(other, "127.0.0.1", sites.redis.port) != "ok"


def dispatches(svc: ChangeService, change_id: str) -> dict[str, str]:
    """Host -> the worker that claimed it."""
    events = svc.context.ledger.events(change_id=change_id, kind="host.dispatched")
    return {e.ci: e.payload["worker"] for e in events if e.ci}


def test_a_change_across_two_sites_runs_each_host_on_its_sites_worker(sites: Sites) -> None:
    names = sorted(sites.site_of)
    before = configs(sites.ws, names)
    svc = ChangeService(sites.ws, runner=CeleryRunner(sites.broker, wait_for_worker_s=30))
    change_id = approved_change(
        svc, "chg-test@1.0.0", {"vlan_id": 231, "vlan_name": "sites"}, select_expr="*-sw*"
    )
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "completed", summary.to_dict()
    hosts = summary.to_dict()["hosts"]
    assert sorted(hosts) == names and {h["status"] for h in hosts.values()} == {"ok"}, hosts
    after = configs(sites.ws, names)
    assert all("vlan 231\n name sites" in after[name] for name in names)
    workers = dispatches(svc, change_id)
    assert sorted(workers) == names
    for name, worker in workers.items():
        site = sites.site_of[name]
        assert worker.startswith(f"opskit-{site}-{sites.workers[site].pid}@"), (name, worker)
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(sites.ws, names) == before
    assert svc.context.ledger.verify().ok
    # The broker's password (in the workers' broker URLs) is in no log and no record.
    password = str(sites.redis.password)
    logs = [p.read_text() for p in sites.ws.state_dir.glob("worker-*.log")]
    records = [json.dumps(e.payload) for e in svc.context.ledger.events(change_id=change_id)]
    assert len(logs) == 2 and records
    assert not any(password in text for text in logs + records)


@pytest.fixture
def misplaced(sites: Sites) -> Iterator[str]:
    """b-sw02 recorded in the CMDB at site-a (it sits in site-b's network)."""
    original = sites.inventory.read_text()
    document = yaml.safe_load(original)
    for ci in document["cis"]:
        if ci["name"] == "b-sw02":
            ci["site"] = "site-a"
    sites.inventory.write_text(yaml.safe_dump(document, sort_keys=False))
    try:
        yield "b-sw02"
    finally:
        sites.inventory.write_text(original)


def test_a_host_on_the_wrong_sites_queue_is_unreachable_there_and_untouched(
    sites: Sites, misplaced: str
) -> None:
    before = configs(sites.ws, [misplaced])
    svc = ChangeService(sites.ws, runner=CeleryRunner(sites.broker, wait_for_worker_s=30))
    change_id = approved_change(svc, "chg-test@1.0.0", {"vlan_id": 232}, select_expr=misplaced)
    summary = svc.apply(change_id, "alice").to_dict()
    host: dict[str, Any] = summary["hosts"][misplaced]
    assert summary["state"] == "failed"
    assert host["status"] == "failed", host
    assert host["error"] == f"{misplaced}: unreachable (connect: refused or no route)", host
    # It ran on site-a's worker, which has no route to site-b.
    worker = dispatches(svc, change_id)[misplaced]
    assert worker.startswith(f"opskit-site-a-{sites.workers['site-a'].pid}@"), worker
    events = list(svc.context.ledger.events(change_id=change_id, ci=misplaced))
    assert [e.kind for e in events] == ["host.dispatched", "host.failed"]
    assert events[-1].payload["phase"] == "backup"  # its first connection: nothing touched
    assert configs(sites.ws, [misplaced]) == before  # nothing touched
    assert svc.context.ledger.verify().ok


def test_leftovers_of_a_killed_run_are_removed(sites: Sites) -> None:
    """A namespace and a veth named for a process that is gone (a run killed
    mid-test) are removed by the next run, with what still runs inside."""
    gone = _a_pid_that_is_gone()
    netns, veth = f"{NETNS_PREFIX}{gone}-1-site-a", f"{VETH_PREFIX}{gone}-1a"
    _ip("netns", "add", netns)
    _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    sleeper = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "600"])
    try:
        _until_inside(netns, sleeper.pid)
        removed = remove_leftovers()
        assert netns in removed
        assert sleeper.wait(timeout=10) == -9
        assert netns not in _ip("netns", "list").stdout
        assert _ip("link", "show", veth, check=False).returncode != 0
        # The running fixture's own namespaces stay.
        assert all(s.netns in _ip("netns", "list").stdout for s in sites.sites.values())
    finally:
        sleeper.kill()
        _ip("netns", "delete", netns, check=False)
        _ip("link", "delete", veth, check=False)


def _until_inside(netns: str, pid: int, timeout: float = 10.0) -> None:
    """Waits until process `pid` runs inside `netns`: `ip netns exec` enters
    it a moment after it starts, and a clean-up that looks before then finds
    nothing inside to kill (what a killed run leaves is inside already)."""
    deadline = time.monotonic() + timeout
    while str(pid) not in _ip("netns", "pids", netns).stdout.split():
        assert time.monotonic() < deadline, f"process {pid} never entered {netns}"
        time.sleep(0.02)


def _a_pid_that_is_gone() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    assert not Path(f"/proc/{done.pid}").exists()
    return done.pid


def ours() -> tuple[set[str], set[str]]:
    """This process's site namespaces and root-side veths, by name."""
    netns = re.findall(rf"^({NETNS_PREFIX}{os.getpid()}-\S+)", _ip("netns", "list").stdout, re.M)
    links = re.findall(rf"^\d+: ({VETH_PREFIX}{os.getpid()}-\w+)", _ip("-o", "link").stdout, re.M)
    return set(netns), set(links)


def test_everything_is_removed_when_the_set_up_fails(tmp_path: Path) -> None:
    """A failure inside the sites (here: in `prepare`, once the namespaces,
    servers and switches run) leaves no namespace, veth or process behind."""
    before = ours()  # the module's sites, when they run
    seen: dict[str, Any] = {}

    def failing(ws: Workspace) -> None:
        netns, links = ours()
        seen["netns"], seen["links"] = netns - before[0], links - before[1]
        seen["pids"] = [
            int(p) for n in seen["netns"] for p in _ip("netns", "pids", n).stdout.split()
        ]
        raise RuntimeError("prepare failed")

    with (
        pytest.raises(RuntimeError, match="prepare failed"),
        segmented_sites(tmp_path / "ws", failing),
    ):
        pytest.fail("the body ran")
    assert len(seen["netns"]) == len(seen["links"]) == len(seen["pids"]) == 2, seen
    assert ours() == before
    assert not any(Path(f"/proc/{pid}").exists() for pid in seen["pids"])  # the switches
