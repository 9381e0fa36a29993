"""Distributed benchmark: one change through the local thread pool vs the
Celery runner (Redis broker, PostgreSQL ledger) with 2 and 4 worker processes.

Starts Redis and PostgreSQL in temporary folders (as the tests do), a lab of
N emulated IOS switches, and applies the same change (fan-out's bench
runbook: backup, 5 lines, verify) through each runner at the same total
concurrency: the workers share it (`--concurrency / workers` threads each).
Every run is a full change (create, approvals, apply) on the PostgreSQL
ledger; `wall` is the apply. Each runner applies one warm-up change first
(sessions, imports in the long-lived workers), then the measured one.

Reported per runner: wall time, hosts/s, and the per-host latency the
distributed path adds over the local runner at the same concurrency,
`(wall - wall_local) * concurrency / hosts` (target <= 20 ms), and the
broker's share: Redis commands per host (from INFO) and the ledger events
per host (what PostgreSQL appends).

    python bench/distributed.py                    # 40 devices, concurrency 8
    python bench/distributed.py --devices 200 --concurrency 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO), str(BENCH_DIR)]

TARGET_ADDED_MS = 20.0


def apply_once(ws_root: Path, db: str, runner: Any, concurrency: int) -> dict[str, Any]:
    from fanout import _write_bench_runbook

    from opskit.changes.service import ChangeService
    from opskit.workspace import Workspace

    _write_bench_runbook(ws_root, concurrency)
    ws = Workspace.open(ws_root, db=db)
    svc = ChangeService(ws, runner=runner) if runner is not None else ChangeService(ws)
    change = svc.create(
        runbook="bench-fanout@1.0.0",
        select_expr="platform:cisco_ios",
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
    start = time.perf_counter()
    summary = svc.apply(change.id, "alice")
    wall = time.perf_counter() - start
    events = sum(1 for e in svc.context.ledger.events(change_id=change.id) if e.ci)
    ws.close()
    if summary["state"] != "completed":
        raise SystemExit(f"change {summary['state']}: {summary['cause']}")
    return {"wall": wall, "hosts": len(change.targets), "events": events}


def start_workers(ws_root: Path, db: str, broker: str, count: int, threads: int) -> list[Any]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opskit",
                "--workspace",
                str(ws_root),
                "--db",
                db,
                "worker",
                "--queues",
                "lab",
                "--concurrency",
                str(threads),
                "--broker",
                broker,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args(argv)

    from tests.fixtures.postgres import PostgresServer, find_bindir
    from tests.fixtures.redis import RedisServer, find_redis

    from opskit.distributed.runner import CeleryRunner
    from opskit.lab import Lab
    from opskit.workspace import init_workspace

    bindir, redis_binary = find_bindir(), find_redis()
    if bindir is None or redis_binary is None:
        print("distributed: PostgreSQL or redis-server missing (scripts/system-deps.sh)")
        return 1
    postgres, redis_server = PostgresServer(bindir).start(), RedisServer(redis_binary).start()
    broker = redis_server.url(0)
    rows: list[tuple[str, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="opskit-bench-dist-") as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        lab = Lab(ws, owner_pid=os.getpid())
        lab.up(devices=args.devices, linux=0)
        try:
            db = postgres.create_database()
            apply_once(ws.root, db, None, args.concurrency)  # warm-up: sessions, caches
            rows.append(("local threads", apply_once(ws.root, db, None, args.concurrency)))
            for count in args.workers:
                threads = max(1, args.concurrency // count)
                workers = start_workers(ws.root, db, broker, count, threads)
                try:
                    runner = CeleryRunner(broker, default="lab")
                    wait_for(runner, count)
                    # Warm-up, as for the local runner: the workers' first host imports
                    # the connectors; long-lived workers pay that once.
                    apply_once(ws.root, db, runner, args.concurrency)
                    before = redis_commands(broker)
                    result = apply_once(ws.root, db, runner, args.concurrency)
                    result["redis"] = redis_commands(broker) - before
                    rows.append((f"celery {count} workers x {threads}", result))
                finally:
                    stop(workers)
        finally:
            lab.down()
            redis_server.stop()
            postgres.stop()
    report(rows, args.concurrency)
    return 0


def report(rows: list[tuple[str, dict[str, Any]]], concurrency: int) -> None:
    local = rows[0][1]["wall"]
    print(
        "| runner | hosts | wall s | hosts/s | added ms/host | redis cmds/host "
        "| ledger events/host |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        hosts = r["hosts"]
        added = (r["wall"] - local) * concurrency / hosts * 1000
        redis = f"{r['redis'] / hosts:.0f}" if "redis" in r else "-"
        print(
            f"| {name} | {hosts} | {r['wall']:.2f} | {hosts / r['wall']:.1f} | "
            f"{added:+.0f} | {redis} | {r['events'] / hosts:.1f} |"
        )
    worst = max(
        ((r["wall"] - local) * concurrency / r["hosts"] * 1000 for _n, r in rows[1:]), default=0
    )
    verdict = "met" if worst <= TARGET_ADDED_MS else "missed"
    print(
        f"\nadded latency per host: worst {worst:.0f} ms, "
        f"target <= {TARGET_ADDED_MS:.0f} ms: {verdict}"
    )


if __name__ == "__main__":
    sys.exit(main())
