"""Ledger throughput: opskit's hash-chained append and verify against a raw insert.

Appends N events (default 200,000) with realistic payloads (~350 bytes of
canonical JSON each) through `Ledger.batch()` in batches of 1,000 (the
records, their hash chain and their Merkle tree), then verifies the whole
chain and tree. As the floor, the same rows go into the same kind
of database (same table, same pragmas) with `executemany` (PostgreSQL:
COPY, as the ledger does), encoded but not hashed. Then it builds a ledger
of `--proof-records` (default 1,000,000) and times inclusion proofs of
random records and consistency proofs from random sizes against its
checkpoint. A burst (`--burst`, default 5,000 events) of one change from 8
threads through the change engine's journal under group commit, as a
rollout records its hosts' steps, against the same burst with no change id
(no change links): what the links cost. Prints events/s, milliseconds a
proof and the ratios against the targets; repeats on PostgreSQL when
Debian's server binaries are installed.

    .venv/bin/python bench/ledger.py [--events N] [--rounds 3] [--proof-records N]
                                     [--burst N] [--no-postgres]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any, cast

from sqlalchemy import MetaData

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opskit.db import create_schema, open_engine, sqlite_url  # noqa: E402
from opskit.ledger import Ledger  # noqa: E402
from opskit.ledger.canonical import encode_canonical_bytes  # noqa: E402
from opskit.ledger.keys import ensure_key  # noqa: E402
from opskit.ledger.store import events_table  # noqa: E402

BATCH = 1_000
TARGET_APPEND = 50_000
TARGET_VERIFY = 200_000
TARGET_RATIO = 0.5
TARGET_PROOF_MS = 10.0
PROOFS = 200
BURST_THREADS = 8
RAW_TABLE = "raw_events"


def payloads(count: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(kind, change_id, ci, payload) tuples shaped like the change engine's events."""
    kinds = ("host.backup", "host.applied", "host.verified", "compliance.result")
    rows = []
    for i in range(count):
        change = f"CHG-{i // 400:06d}"
        ci = f"sw-access-{i % 2000:04d}"
        rows.append(
            (
                kinds[i % 4],
                change,
                ci,
                {
                    "runbook": "vlan-add",
                    "version": "1.4.2",
                    "status": "ok" if i % 17 else "failed",
                    "params": {"vlan_id": 100 + i % 3000, "name": f"users-{i % 50}"},
                    "duration_ms": 1000 + i % 9000,
                    "commands": 12 + i % 7,
                    "diff": {"added": 3, "removed": 1},
                    "message": "applied 4 lines, checks passed",
                },
            )
        )
    return rows


def bench_ledger(engine: Any, keys_dir: Path, events: list[tuple[str, str, str, dict]]) -> dict:
    ledger = Ledger(engine, keys_dir=keys_dir)
    start, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, len(events), BATCH):
        with ledger.batch() as batch:
            for kind, change, ci, payload in events[offset : offset + BATCH]:
                batch.append(kind, actor="ci-pipeline", payload=payload, change_id=change, ci=ci)
    append_s, append_cpu = time.perf_counter() - start, time.process_time() - cpu
    start, cpu = time.perf_counter(), time.process_time()
    report = ledger.verify()
    verify_s, verify_cpu = time.perf_counter() - start, time.process_time() - cpu
    if not report.ok or report.counts["events"] != len(events):
        raise SystemExit(f"verify failed: {report}")
    sizes = [
        len(record)
        for (record,) in ledger.reader().query("SELECT record FROM ledger_events LIMIT 1000")
    ]
    return {
        "append": len(events) / append_s,
        "verify": len(events) / verify_s,
        "append_cpu": len(events) / append_cpu,
        "verify_cpu": len(events) / verify_cpu,
        "record_bytes": sum(sizes) / len(sizes),
    }


def bench_raw(engine: Any, events: list[tuple[str, str, str, dict]]) -> tuple[float, float]:
    """The floor: the same rows, JSON-encoded the same way, inserted without hashing."""
    encode = encode_canonical_bytes  # the ledger's own encoder: the floor pays the same for JSON
    dialect = engine.dialect.name
    mark = "?" if dialect == "sqlite" else "%s"
    # The ledger's own table definition (columns, key, indexes), without its triggers.
    events_table.to_metadata(MetaData(), name=RAW_TABLE).create(engine)
    fairy = engine.raw_connection()
    cursor = fairy.cursor()
    insert = f"INSERT INTO {RAW_TABLE} VALUES ({', '.join([mark] * 9)})"
    at = "2026-01-01T00:00:00.000000Z"
    zero = "0" * 64
    start, cpu = time.perf_counter(), time.process_time()
    seq = 0
    for offset in range(0, len(events), BATCH):
        rows = []
        for kind, change, ci, payload in events[offset : offset + BATCH]:
            seq += 1
            record = encode(
                {
                    "actor": "ci-pipeline",
                    "at": at,
                    "change_id": change,
                    "ci": ci,
                    "kind": kind,
                    "payload": payload,
                    "seq": seq,
                }
            ).decode()
            rows.append((seq, at, "ci-pipeline", kind, change, ci, zero, zero, record))
        if dialect == "postgresql":  # as the ledger does: COPY is PostgreSQL's fastest load
            with cursor.copy(f"COPY {RAW_TABLE} FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(insert, rows)
        fairy.commit()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    fairy.close()
    return len(events) / elapsed, len(events) / cpu


def bench_proofs(engine: Any, keys_dir: Path, count: int) -> dict:
    """A ledger of `count` records, one checkpoint, then PROOFS inclusion and
    consistency proofs of random records and sizes, each timed alone."""
    import random

    from opskit.ledger.proofs import prove_consistency, prove_record
    from opskit.tlog import merkle

    create_schema(engine)
    ledger = Ledger(engine, keys_dir=keys_dir)
    start = time.perf_counter()
    for offset in range(0, count, BATCH * 10):
        batch_events = payloads(min(BATCH * 10, count - offset))
        with ledger.batch() as batch:
            for kind, change, ci, payload in batch_events:
                batch.append(kind, actor="ci-pipeline", payload=payload, change_id=change, ci=ci)
    build_s = time.perf_counter() - start
    ledger.checkpoint("bench")
    rng = random.Random(6962)
    inclusion, consistency = [], []
    for _ in range(PROOFS):
        seq = rng.randint(1, count)
        start = time.perf_counter()
        proof = prove_record(ledger, seq)
        inclusion.append((time.perf_counter() - start) * 1000)
        leaf = merkle.record_hash(proof.extra or b"")
        merkle.check_record(proof.hashes, count, proof.checkpoint.root_hash, seq - 1, leaf)
        size = rng.randint(1, count)
        start = time.perf_counter()
        prove_consistency(ledger, size)
        consistency.append((time.perf_counter() - start) * 1000)
    engine.dispose()
    return {
        "records": count,
        "build": count / build_s,
        "inclusion_ms": median(inclusion),
        "inclusion_max_ms": max(inclusion),
        "inclusion_min_ms": min(inclusion),
        "consistency_ms": median(consistency),
        "hashes": len(proof.hashes),
    }


def bench_burst(engine: Any, keys_dir: Path, count: int, change_id: str | None) -> tuple:
    """`count` events from BURST_THREADS threads through the journal under
    group commit, as a rollout records them (each host thread waits for
    every fourth event, a backup, and queues the others); `change_id` None:
    the same events outside any change, which carry no change link.
    Returns (events/s, events per CPU-second of this process)."""
    from opskit.changes.journal import Journal

    create_schema(engine)
    ledger = Ledger(engine, keys_dir=keys_dir)
    # The journal needs a workspace only to open its ledger, given here.
    journal = Journal(cast(Any, None), ledger=ledger)
    per_thread = count // BURST_THREADS

    def host(thread: int) -> None:
        waits = []
        for n, (kind, _, _, payload) in enumerate(payloads(per_thread)):
            event = {"actor": "ci-pipeline", "change_id": change_id, "ci": f"sw-{thread:04d}"}
            if n % 4:
                waits.append(journal.record_later(kind, payload=payload, prepared=True, **event))
            else:
                journal.record(kind, payload=payload, prepared=True, **event)
        for wait in waits:
            wait()

    threads = [threading.Thread(target=host, args=(t,)) for t in range(BURST_THREADS)]
    start, cpu = time.perf_counter(), time.process_time()
    with journal.group_commit():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    written = per_thread * BURST_THREADS
    if ledger.head()[0] != written or not ledger.verify().ok:
        raise SystemExit("burst: the ledger does not verify")
    return written / elapsed, written / cpu


def measure_burst(make_engine: Callable[[str], Any], keys: Path, count: int, rounds: int) -> dict:
    """Medians over `rounds` of the burst with and without change links,
    alternating, each on a fresh database."""
    runs: dict[str, list[tuple[float, float]]] = {"linked": [], "unlinked": []}
    for index in range(rounds):
        order = ("linked", "unlinked") if index % 2 == 0 else ("unlinked", "linked")
        for name in order:
            engine = make_engine(f"burst_{name}_{index}")
            change = "CHG-BURST" if name == "linked" else None
            runs[name].append(bench_burst(engine, keys, count, change))
            engine.dispose()
    return {
        name: (median(r[0] for r in rates), median(r[1] for r in rates))
        for name, rates in runs.items()
    }


def report_burst(name: str, count: int, result: dict) -> None:
    print(f"{name}: a burst of {count:,} events, {BURST_THREADS} threads, group commit")
    print(f"  {'':20} {'events/s':>10} {'per CPU-s':>10}")
    unlinked, linked = result["unlinked"], result["linked"]
    print(f"  {'no change (no link)':20} {unlinked[0]:>10,.0f} {unlinked[1]:>10,.0f}")
    print(
        f"  {'one change (linked)':20} {linked[0]:>10,.0f} {linked[1]:>10,.0f}  "
        f"{unlinked[0] / linked[0]:.2f}x the time, {unlinked[1] / linked[1]:.2f}x the CPU"
    )


def report_proofs(name: str, result: dict) -> None:
    print(f"{name}: proofs from a ledger of {result['records']:,} records")
    print(
        f"  {'inclusion proof':20} {result['inclusion_ms']:>7.2f} ms median, "
        f"{result['inclusion_min_ms']:.2f} min, {result['inclusion_max_ms']:.2f} max of {PROOFS} "
        f"({result['inclusion_ms'] / TARGET_PROOF_MS:.2f}x the {TARGET_PROOF_MS:.0f} ms target; "
        f"{result['hashes']} hashes)"
    )
    print(f"  {'consistency proof':20} {result['consistency_ms']:>7.2f} ms median")
    print(f"  {'(building it)':20} {result['build']:>10,.0f} events/s appended")


def report(name: str, result: dict, raw: tuple[float, float]) -> None:
    """Wall-clock rates against the targets; per CPU-second of this process
    too, which stays comparable when other jobs share the machine."""
    ratio = result["append"] / raw[0]
    print(f"{name}: records of {result['record_bytes']:.0f} bytes canonical JSON")
    print(f"  {'':20} {'events/s':>10} {'per CPU-s':>10}")
    print(f"  {'raw insert (floor)':20} {raw[0]:>10,.0f} {raw[1]:>10,.0f}")
    print(
        f"  {'ledger append':20} {result['append']:>10,.0f} {result['append_cpu']:>10,.0f}  "
        f"{result['append'] / TARGET_APPEND:.2f}x target {TARGET_APPEND:,}; "
        f"{ratio:.2f}x raw (target >= {TARGET_RATIO})"
    )
    print(
        f"  {'ledger verify':20} {result['verify']:>10,.0f} {result['verify_cpu']:>10,.0f}  "
        f"{result['verify'] / TARGET_VERIFY:.2f}x target {TARGET_VERIFY:,}"
    )


def measure(
    make_engine: Callable[[str], Any], keys: Path, events: list, rounds: int
) -> tuple[dict, tuple[float, float]]:
    """Medians over `rounds` of the ledger and the floor, each on a fresh
    database, in alternating order: a shared machine's slow spells fall on
    both."""
    results: list[dict] = []
    raws: list[tuple[float, float]] = []

    def ledger_run(index: int) -> None:
        engine = make_engine(f"ledger_{index}")
        create_schema(engine)
        results.append(bench_ledger(engine, keys, events))
        engine.dispose()

    def raw_run(index: int) -> None:
        engine = make_engine(f"raw_{index}")
        raws.append(bench_raw(engine, events))
        engine.dispose()

    for index in range(rounds):
        for run in (ledger_run, raw_run) if index % 2 == 0 else (raw_run, ledger_run):
            run(index)
    result = {key: median(r[key] for r in results) for key in results[0]}
    raw = (median(r[0] for r in raws), median(r[1] for r in raws))
    return result, raw


def run_backend(name: str, make_engine: Callable[[str], Any], keys: Path, args: Any) -> None:
    """Every part of the bench asked for, on one backend."""
    if args.events:
        result, raw = measure(make_engine, keys, payloads(args.events), args.rounds)
        report(f"{name}, {args.events:,} events, median of {args.rounds} rounds", result, raw)
    if args.burst:
        report_burst(name, args.burst, measure_burst(make_engine, keys, args.burst, args.rounds))
    if args.proof_records:
        report_proofs(name, bench_proofs(make_engine("proofs"), keys, args.proof_records))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="0: no append/verify")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians count")
    parser.add_argument("--proof-records", type=int, default=1_000_000, help="0: no proofs")
    parser.add_argument("--burst", type=int, default=5_000, help="0: no burst")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opskit-bench-") as tmp:
        folder = Path(tmp)
        keys = folder / "keys"
        ensure_key(keys)
        run_backend(
            "SQLite (WAL, synchronous=FULL)",
            lambda db: open_engine(sqlite_url(folder / f"{db}.db")),
            keys,
            args,
        )
        if args.no_postgres:
            return 0
        from tests.fixtures.postgres import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            print("PostgreSQL: binaries not found, skipped (run scripts/system-deps.sh)")
            return 0
        server = PostgresServer(bindir)
        # The bench measures a durable server: fsync stays on, unlike the test fixture.
        server.start(durable=True)
        try:
            run_backend(
                f"PostgreSQL {bindir.parent.name} (loopback, fsync on)",
                lambda db: open_engine(server.create_database(f"bench_{db}")),
                keys,
                args,
            )
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
