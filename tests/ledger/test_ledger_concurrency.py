"""Several writer processes on one ledger: one linear chain with no fork and
no gap, and every acknowledged append survives SIGKILL at random points
(SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from tests.fixtures.postgres import open_ledger
from tests.fixtures.processes import crash_context

WRITER = Path(__file__).with_name("ledger_writer.py")
REPO = Path(__file__).resolve().parents[2]


def start_writer(url: str, ack: Path, writer: str, count: int, go: Path | None = None):  # type: ignore[no-untyped-def]
    args = [sys.executable, str(WRITER), url, str(ack), writer, str(count)]
    if go is not None:
        args.append(str(go))
    return subprocess.Popen(args, cwd=REPO, stderr=subprocess.PIPE)


@dataclass
class Acks:
    events: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    spans: list[tuple[float, float | None]] = field(default_factory=list)


def read_acks(files: list[Path]) -> Acks:
    acks = Acks()
    for path in files:
        start = end = None
        for line in path.read_text().splitlines():
            parts = line.split()
            if parts[0] == "ready":
                continue
            if parts[0] == "start":
                start = float(parts[1])
            elif parts[0] == "end":
                end = float(parts[1])
            else:
                seq, hash_, writer, n = parts
                assert int(seq) not in acks.events, f"seq {seq} acknowledged twice: a fork"
                acks.events[int(seq)] = (hash_, writer, int(n))
        if start is not None:
            acks.spans.append((start, end))
    return acks


def check_ledger_holds(ledger: Ledger, acks: Acks) -> int:
    """Verifies the chain and that every acknowledged event is in it, unchanged."""
    report = ledger.verify()
    assert report.ok, f"seq {report.first_bad_seq}: {report.problem}"
    events = {event.seq: event for event in ledger.events()}
    assert sorted(events) == list(range(1, report.head_seq + 1)), "gap in the chain"
    for seq, (hash_, writer, n) in acks.events.items():
        event = events.get(seq)
        assert event is not None, f"acknowledged seq {seq} lost"
        assert (event.hash, event.payload["writer"], event.payload["n"]) == (hash_, writer, n)
    return report.head_seq


@pytest.mark.slow
def test_concurrent_writers_form_one_chain(ledger_backend: str, tmp_path: Path) -> None:
    ledger = open_ledger(ledger_backend, None)
    go = tmp_path / "go"
    per_writer = 60
    acks = [tmp_path / f"ack-{i}" for i in range(3)]
    writers = [
        start_writer(ledger_backend, ack, f"w{i}", per_writer, go) for i, ack in enumerate(acks)
    ]
    # Start them together once all three have imported opskit and connected.
    deadline = time.monotonic() + 120
    while not all(ack.exists() and b"ready" in ack.read_bytes() for ack in acks):
        assert time.monotonic() < deadline, "writers did not get ready"
        assert all(process.poll() is None for process in writers), "a writer died"
        time.sleep(0.02)
    go.touch()
    for process in writers:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr.decode()[-2000:]
    result = read_acks(acks)
    # The writers really ran at the same time.
    assert max(start for start, _ in result.spans) < min(end for _, end in result.spans)  # type: ignore[type-var]
    assert len(result.events) == 3 * per_writer
    assert check_ledger_holds(ledger, result) == 3 * per_writer
    # Each writer's events keep their order along the chain.
    for writer in ("w0", "w1", "w2"):
        ns = [e.payload["n"] for e in ledger.events() if e.actor == writer]
        assert ns == list(range(per_writer))
    ledger.engine.dispose()


def forked_writer(url: str, ack: Path, writer: str) -> None:
    """Runs in a child of the fork server, where opskit is already imported,
    so it starts in milliseconds and the test spends its time killing, not
    importing."""
    from tests.ledger.ledger_writer import main

    main([url, str(ack), writer, "0"])


@pytest.mark.slow
def test_acknowledged_appends_survive_sigkill(ledger_backend: str, tmp_path: Path) -> None:
    """Three writers appending at once, each killed with SIGKILL at a random
    moment once it is appending, then replaced: 50 kills per backend (100 in
    the run)."""
    ledger = open_ledger(ledger_backend, None)
    ledger.engine.dispose()  # no pooled connection is inherited by the children
    fork = crash_context()
    kills_wanted, kills = 50, 0
    rng = random.Random(1234)
    ack_files: list[Path] = []
    slots: list[dict] = [{} for _ in range(3)]
    deadline = time.monotonic() + 240
    while kills < kills_wanted:
        assert time.monotonic() < deadline, f"only {kills} kills in time"
        for index, slot in enumerate(slots):
            if not slot:
                ack = tmp_path / f"ack-{index}-{len(ack_files)}"
                ack.touch()
                ack_files.append(ack)
                process = fork.Process(
                    target=forked_writer, args=(ledger_backend, ack, f"w{index}")
                )
                process.start()
                slot.update(process=process, ack=ack, kill_at=None)
                continue
            process = slot["process"]
            if not process.is_alive():
                raise AssertionError(f"writer w{index} died by itself ({process.exitcode})")
            if slot["kill_at"] is None:
                # Kill only once it is appending, at a random point after its first ack.
                if slot["ack"].read_bytes().count(b"\n") >= 2:
                    slot["kill_at"] = time.monotonic() + rng.uniform(0.0, 0.2)
            elif time.monotonic() >= slot["kill_at"]:
                os.kill(process.pid, signal.SIGKILL)
                process.join()
                assert process.exitcode == -signal.SIGKILL
                kills += 1
                slot.clear()
        time.sleep(0.005)
    for slot in slots:
        if slot:
            os.kill(slot["process"].pid, signal.SIGKILL)
            slot["process"].join()
    acks = read_acks(ack_files)
    assert len(acks.events) > kills_wanted  # every writer acknowledged before dying
    check_ledger_holds(ledger, acks)
    # And the ledger still takes appends after all those deaths.
    assert ledger.append("after", actor="ci", payload={}).seq == ledger.head()[0]
    assert ledger.verify().ok
    ledger.engine.dispose()
