"""A ledger writer process for the concurrency and crash tests (no tests here).

    python tests/ledger/ledger_writer.py URL ACK_FILE WRITER_ID COUNT [GO_FILE]

Appends COUNT events (0: until killed) as single appends, batches and
appends with a blob, and after each commit writes one line per event to
ACK_FILE: "seq hash writer n". A line is written only once the append has
returned, so every line is an acknowledged, supposedly durable event.
With GO_FILE it writes "ready" and waits for that file to exist before
starting, so that several writers start at the same moment. It also writes "start <t>" and
"end <t>" lines (monotonic clock) around its appends.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    from opskit.db import open_engine
    from opskit.ledger import Ledger

    url, ack_path, writer, count = argv[0], argv[1], argv[2], int(argv[3])
    go = Path(argv[4]) if len(argv) > 4 else None
    ledger = Ledger(open_engine(url))
    ack = os.open(ack_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    rng = random.Random(f"{writer}-{os.getpid()}")
    if go is not None:
        os.write(ack, b"ready\n")
        while not go.exists():
            time.sleep(0.005)
    os.write(ack, f"start {time.monotonic()}\n".encode())
    n = 0
    while count == 0 or n < count:
        choice = rng.random()
        if choice < 0.6:
            events = [ledger.append("test.write", actor=writer, payload={"writer": writer, "n": n})]
            n += 1
        elif choice < 0.85:
            size = rng.randint(2, 6)
            if count:
                size = min(size, count - n)
            with ledger.batch() as batch:
                events = [
                    batch.append("test.batch", actor=writer, payload={"writer": writer, "n": n + i})
                    for i in range(size)
                ]
            n += size
        else:
            blob = f"output of {writer} #{n}\n".encode() * rng.randint(1, 50)
            events = [
                ledger.append(
                    "test.blob",
                    actor=writer,
                    payload={"writer": writer, "n": n},
                    blobs={"out": blob},
                )
            ]
            n += 1
        # One write() per line: a kill can fall between lines, never inside one.
        for event in events:
            line = f"{event.seq} {event.hash} {writer} {event.payload['n']}\n"
            os.write(ack, line.encode())
    os.write(ack, f"end {time.monotonic()}\n".encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
