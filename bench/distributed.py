"""Distributed benchmark: one change through the local thread pool vs local
worker processes (`runner: {kind: process}`) vs the Celery runner (Redis
broker, PostgreSQL ledger), with 2 and 4 worker processes each.

Starts Redis and PostgreSQL in temporary folders (as the tests do) and N
emulated IOS switches spread over several emulator processes (the emulator
is single-threaded: `--emulators`, default one per 250 devices; each is a
lab of its own workspace, merged into one inventory), and applies the same
change (fan-out's bench runbook: backup, 5 lines, verify) through each runner
at the same total concurrency: the workers share it (`--concurrency /
workers` threads each). Every run is a full change (create, approvals,
apply) on the PostgreSQL ledger, a new database for each runner; `wall` is
the apply. Each runner first
applies a warm-up change to `2 x concurrency` devices (imports and sessions
in the long-lived workers), then the measured one to all; the Celery runner
of the measured apply is a new one, as in `opskit change apply`.

Reported per runner: wall time, hosts/s, the per-host latency the
distributed path adds over the local runner at the same concurrency,
`(wall - wall_local) * concurrency / hosts` (target <= 20 ms), and where the
time and the CPU go:

- the broker's share: Redis commands per host (from INFO) and Redis's CPU;
- the ledger's share: events per host and PostgreSQL's CPU;
- CPU per host of each process group (coordinator, workers, emulators,
  Redis, PostgreSQL), which a loaded machine disturbs less than wall time;
- per-host phases, medians, from the coordinator's clock and the ledger's
  event times (one machine, one clock): `send -> claimed` (the broker, the
  worker's checks, the idempotency claim), `claimed -> verified` (device
  work, backup durable, steps), `verified -> seen` (the last steps
  committed, the result stored, the coordinator woken).

    python bench/distributed.py                    # 40 devices, concurrency 8
    python bench/distributed.py --devices 1000 --concurrency 40
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO), str(BENCH_DIR)]

TARGET_ADDED_MS = 20.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DEVICES_PER_EMULATOR = 250


# -- the lab: several emulator processes, one inventory ------------------------------
def start_labs(ws: Any, devices: int, emulators: int) -> list[Any]:
    """`devices` switches over `emulators` labs (each its own workspace and
    process), written into `ws`'s inventory `lab` as `e<i>-lab-sw...`."""
    from opskit.lab import Lab
    from opskit.workspace import init_workspace

    labs, cis = [], []
    target = ws.inventories_dir / "lab"
    target.mkdir(parents=True, exist_ok=True)
    for index in range(emulators):
        count = devices // emulators + (1 if index < devices % emulators else 0)
        sub = init_workspace(ws.root.parent / f"emulator-{index}")
        lab = Lab(sub, owner_pid=os.getpid())
        labs.append(lab)
        lab.up(devices=count, linux=0)
        source = sub.inventories_dir / "lab"
        document = yaml.safe_load((source / "lab.yaml").read_text())
        for ci in document["cis"]:
            ci["name"] = f"e{index}-{ci['name']}"
            for value in ci["credentials"].values():
                if isinstance(value, dict) and "file" in value:
                    path = (source / value["file"]).resolve()
                    value["file"] = os.path.relpath(path, target)
            cis.append(ci)
    document["cis"] = cis
    (target / "lab.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return labs


# -- one change ----------------------------------------------------------------------
def apply_once(
    ws_root: Path,
    db: str,
    runner: Any,
    concurrency: int,
    select: str = "platform:cisco_ios",
    meter: CpuMeter | None = None,
) -> dict[str, Any]:
    from fanout import _write_bench_runbook

    from opskit.changes.service import ChangeService
    from opskit.workspace import Workspace

    _write_bench_runbook(ws_root, concurrency)
    ws = Workspace.open(ws_root, db=db)
    svc = ChangeService(ws, runner=runner) if runner is not None else ChangeService(ws)
    change = svc.create(
        runbook="bench-fanout@1.0.0",
        select_expr=select,
        requester="alice",
        title="distributed benchmark",
        inventory="lab",
    )
    svc.submit(change.id, "alice")
    assessed = svc.assess(change.id, "bob", predict=False)
    for person in ((assessed.assessment or {}).get("required") or {}).get("eligible", []):
        if svc.get(change.id).state.value == "approved":
            break
        if person != change.requester:
            svc.approve(change.id, person, comment="benchmark")
    if meter is not None:
        meter.start()
    start, started = time.perf_counter(), time.time()
    summary = svc.apply(change.id, "alice")
    wall = time.perf_counter() - start
    # Before the workspace is closed: its database sessions' CPU counts.
    cpu = meter.stop() if meter is not None else {}
    events = [e for e in svc.context.ledger.events(change_id=change.id) if e.ci]
    ws.close()
    if summary["state"] != "completed":
        raise SystemExit(f"change {summary['state']}: {summary['cause']}")
    return {
        "wall": wall,
        "hosts": len(change.targets),
        "events": events,
        "started": started,
        "cpu": cpu,
    }


class SendTimes:
    """The coordinator's side of each host: when it was sent, when its
    result was seen (wraps `CeleryRunner.dispatch`, in this process only)."""

    def __init__(self) -> None:
        self.times: dict[str, tuple[float, float]] = {}

    def wrap(self, runner: Any) -> Any:
        dispatch = runner.dispatch

        def timed(job: Any, ci: Any, ctx: Any) -> dict[str, Any]:
            sent = time.time()
            try:
                return dispatch(job, ci, ctx)
            finally:
                self.times[job.ci] = (sent, time.time())

        runner.dispatch = timed
        return runner


def phases(events: list[Any], sent: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Median ms per host of each phase (see the module docstring)."""
    at: dict[tuple[str, str], float] = {}
    backup_s: dict[str, float] = {}
    for event in events:
        at.setdefault((event.ci, event.kind), datetime.fromisoformat(event.at_text).timestamp())
        if event.kind == "host.backup":
            backup_s[event.ci] = float(event.payload.get("duration_ms") or 0) / 1000
    spans: dict[str, list[float]] = {"send->claimed": [], "claimed->verified": []}
    spans["verified->seen"] = []
    spans["claimed->backup beyond its device time"] = []
    for ci, (send, seen) in sent.items():
        claimed, verified = at.get((ci, "host.dispatched")), at.get((ci, "host.verified"))
        if claimed is None or verified is None:
            continue
        spans["send->claimed"].append(claimed - send)
        spans["claimed->verified"].append(verified - claimed)
        spans["verified->seen"].append(seen - verified)
        backup = at.get((ci, "host.backup"))
        if backup is not None:
            # The claim's commit, the session's set-up outside the step, the wait
            # for the ledger's write lock: what the ledger costs before the backup.
            spans["claimed->backup beyond its device time"].append(
                backup - claimed - backup_s.get(ci, 0.0)
            )
    medians = {k: statistics.median(v) * 1000 for k, v in spans.items() if v}
    if sent:
        medians["send->claimed mean"] = statistics.mean(spans["send->claimed"]) * 1000
        medians["send->seen mean"] = statistics.mean(e - s for s, e in sent.values()) * 1000
        first = min(s for s, _ in sent.values())
        last = max(e for _, e in sent.values())
        medians["hosts in flight (mean)"] = sum(e - s for s, e in sent.values()) / (last - first)
    return medians


def device_ms(events: list[Any]) -> float:
    """Median per host of its steps' own durations (backup, apply, verify, as
    the executor timed them): the device work, without what runs between."""
    per_host: dict[str, float] = {}
    for event in events:
        if event.kind in ("host.backup", "host.applied", "host.verified"):
            per_host[event.ci] = per_host.get(event.ci, 0.0) + float(
                event.payload.get("duration_ms") or 0
            )
    return statistics.median(per_host.values()) if per_host else 0.0


def outline(result: dict[str, Any]) -> dict[str, float]:
    """Seconds of the apply before the first host step was recorded, while
    hosts ran (to the last host step), and after (the change's own finish:
    compliance of the changed hosts, final state, checkpoint), from the
    ledger's event times, the same for both runners."""
    times = [datetime.fromisoformat(e.at_text).timestamp() for e in result["events"]]
    end = result["started"] + result["wall"]
    return {
        "before": min(times) - result["started"],
        "hosts": max(times) - min(times),
        "after": end - max(times),
    }


# -- CPU -----------------------------------------------------------------------------
def cpu_of(pids: list[int]) -> float:
    """CPU seconds (user + system) of these processes, all threads, now."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    """`pid` and its children (PostgreSQL's backends), now."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def postmaster(postgres: Any) -> int:
    return int((postgres.data / "postmaster.pid").read_text().split()[0])


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """CPU seconds per process group between `start` and `stop`."""

    def __init__(self, groups: dict[str, Any]) -> None:
        self.groups = groups  # name -> callable returning the pids now
        self.before: dict[str, float] = {}

    def read(self) -> dict[str, float]:
        values = {name: cpu_of(pids()) for name, pids in self.groups.items()}
        values["coordinator"] = own_cpu()
        return values

    def start(self) -> None:
        self.before = self.read()

    def stop(self) -> dict[str, float]:
        return {k: v - self.before.get(k, 0.0) for k, v in self.read().items()}


# -- workers -------------------------------------------------------------------------
def start_workers(ws_root: Path, db: str, broker: str, count: int, threads: int) -> list[Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws_root), "--db", db, "worker",
               "--queues", "lab", "--concurrency", str(threads), "--broker", broker]  # fmt: skip
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(count)
    ]


def wait_for(runner: Any, count: int) -> None:
    deadline = time.monotonic() + 120
    while True:
        replies = runner.app.control.ping(timeout=1.0) or []
        if len(replies) >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not start")


def stop(workers: list[Any]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.wait(timeout=60)


def redis_commands(url: str) -> int:
    import redis

    return int(redis.Redis.from_url(url).info("stats")["total_commands_processed"])


# -- the run -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--emulators", type=int, default=0, help="default: 1 per 250 devices")
    args = parser.parse_args(argv)
    emulators = args.emulators or max(1, -(-args.devices // DEVICES_PER_EMULATOR))

    from tests.fixtures.postgres import PostgresServer, find_bindir
    from tests.fixtures.redis import RedisServer, find_redis

    from opskit.workspace import init_workspace

    bindir, redis_binary = find_bindir(), find_redis()
    if bindir is None or redis_binary is None:
        print("distributed: PostgreSQL or redis-server missing (scripts/system-deps.sh)")
        return 1
    postgres, redis_server = PostgresServer(bindir).start(), RedisServer(redis_binary).start()
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="opskit-bench-dist-") as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        started = time.perf_counter()
        labs = start_labs(ws, args.devices, emulators)
        print(
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.devices} devices in "
            f"{emulators} emulator processes (started in {time.perf_counter() - started:.0f} s), "
            f"concurrency {args.concurrency}, {os.cpu_count()} cores",
            flush=True,
        )
        try:
            emulator_pids = [lab.status().switches_pid for lab in labs]
            context = {
                # A database of its own for each runner: the same empty ledger
                # and compliance history (the compliance of the changed hosts
                # after a change reads their history, which grows run by run).
                "db": postgres.create_database,
                "broker": redis_server.url(0),
                "groups": {
                    "emulators": lambda: emulator_pids,
                    "redis": lambda: [redis_server.process.pid],
                    "postgres": lambda: children_of(postmaster(postgres)),
                },
            }
            rows.append(("local threads", run_local(ws.root, args, context)))
            _print_row(*rows[-1], rows[0][1], args.concurrency)
            for count in args.workers:
                rows.append((f"local processes, {count} x {-(-args.concurrency // count)}",
                             run_processes(ws.root, args, context, count)))  # fmt: skip
                _print_row(*rows[-1], rows[0][1], args.concurrency)
            for count in args.workers:
                rows.append((f"Celery, {count} workers x {max(1, args.concurrency // count)}",
                             run_celery(ws.root, args, context, count)))  # fmt: skip
                _print_row(*rows[-1], rows[0][1], args.concurrency)
        finally:
            for lab in labs:
                lab.down()
            redis_server.stop()
            postgres.stop()
    report(rows, args.concurrency)
    return 0


def warm_up(ws_root: Path, concurrency: int) -> str:
    """The warm-up change's selection: 2 x concurrency devices (imports,
    caches, the workers' first sessions)."""
    document = yaml.safe_load((ws_root / "inventories" / "lab" / "lab.yaml").read_text())
    names = [ci["name"] for ci in document["cis"]][: 2 * concurrency]
    return " or ".join(f"name:{name}" for name in names)


def run_local(ws_root: Path, args: Any, context: dict[str, Any]) -> dict[str, Any]:
    warm = warm_up(ws_root, args.concurrency)
    db = context["db"]()
    apply_once(ws_root, db, None, args.concurrency, select=warm)
    meter = CpuMeter(context["groups"])
    return apply_once(ws_root, db, None, args.concurrency, meter=meter)


def run_processes(ws_root: Path, args: Any, context: dict[str, Any], count: int) -> dict[str, Any]:
    """The hosts in `count` local worker processes (`runner: {kind: process}`);
    each apply's workers are new (they end with its rollout), their launcher
    prepared before the apply, as `opskit change apply` prepares it at once."""
    from opskit.distributed.processes import ProcessRunner

    db = context["db"]()
    warm = ProcessRunner(ws_root, db=db, processes=count)
    warm.prepare(wait=True)
    apply_once(ws_root, db, warm, args.concurrency, select=warm_up(ws_root, args.concurrency))
    runner, sent = ProcessRunner(ws_root, db=db, processes=count), SendTimes()
    runner.prepare(wait=True)
    meter = CpuMeter(context["groups"])
    result = apply_once(ws_root, db, sent.wrap(runner), args.concurrency, meter=meter)
    runner.wait_stopped()
    result["cpu"]["workers"] = runner.worker_cpu_seconds  # their own report: they have ended
    result["phases"] = phases(result["events"], sent.times)
    return result


def run_celery(ws_root: Path, args: Any, context: dict[str, Any], count: int) -> dict[str, Any]:
    from opskit.distributed.runner import CeleryRunner

    db, broker = context["db"](), context["broker"]
    threads = max(1, args.concurrency // count)
    workers = start_workers(ws_root, db, broker, count, threads)
    try:
        wait_for(CeleryRunner(broker, default="lab"), count)
        # Warm-up, as for the local runner: the workers' first hosts import
        # the connectors; long-lived workers pay that once.
        warm = warm_up(ws_root, args.concurrency)
        apply_once(ws_root, db, CeleryRunner(broker, default="lab"), args.concurrency, warm)
        groups = {**context["groups"], "workers": lambda: [w.pid for w in workers]}
        meter, sent = CpuMeter(groups), SendTimes()
        runner = sent.wrap(CeleryRunner(broker, default="lab"))  # new, as in the CLI
        before = redis_commands(broker)
        result = apply_once(ws_root, db, runner, args.concurrency, meter=meter)
        result["redis"] = redis_commands(broker) - before
        result["phases"] = phases(result["events"], sent.times)
        return result
    finally:
        stop(workers)


# -- the report ----------------------------------------------------------------------
def _added(r: dict[str, Any], local: dict[str, Any], concurrency: int) -> float:
    return (r["wall"] - local["wall"]) * concurrency / r["hosts"] * 1000


def _print_row(name: str, r: dict[str, Any], local: dict[str, Any], concurrency: int) -> None:
    cpu = ", ".join(f"{k} {v * 1000 / r['hosts']:.1f}" for k, v in sorted(r["cpu"].items()))
    print(
        f"{name}: wall {r['wall']:.2f} s, {r['hosts'] / r['wall']:.1f} hosts/s, "
        f"added {_added(r, local, concurrency):+.0f} ms/host; CPU ms/host: {cpu}",
        flush=True,
    )
    print(
        "  apply (s): " + ", ".join(f"{k} {v:.2f}" for k, v in outline(r).items())
        + f"; device work a host (median of its steps' durations) {device_ms(r['events']):.0f} ms"
    )  # fmt: skip
    if "phases" in r:
        print("  phases (median ms/host): "
              + ", ".join(f"{k} {v:.0f}" for k, v in r["phases"].items()), flush=True)  # fmt: skip


def report(rows: list[tuple[str, dict[str, Any]]], concurrency: int) -> None:
    local = rows[0][1]
    print(
        "\n| runner | hosts | wall s | hosts/s | added ms/host | CPU ms/host "
        "| Redis cmds/host | Redis CPU share | ledger events/host | PostgreSQL CPU share |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        hosts, cpu = r["hosts"], r["cpu"]
        total = sum(cpu.values()) or 1.0
        redis = f"{r['redis'] / hosts:.0f}" if "redis" in r else "-"
        print(
            f"| {name} | {hosts} | {r['wall']:.2f} | {hosts / r['wall']:.1f} | "
            f"{_added(r, local, concurrency):+.0f} | {total * 1000 / hosts:.0f} | {redis} | "
            f"{cpu.get('redis', 0) / total:.0%} | {len(r['events']) / hosts:.1f} | "
            f"{cpu.get('postgres', 0) / total:.0%} |"
        )
    worst = max((_added(r, local, concurrency) for _n, r in rows[1:]), default=0)
    verdict = "met" if worst <= TARGET_ADDED_MS else "missed"
    print(
        f"\nadded latency per host: worst {worst:.0f} ms, "
        f"target <= {TARGET_ADDED_MS:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
