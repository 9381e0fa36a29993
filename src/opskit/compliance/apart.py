"""The after-change judging of a large rollout, in a helper process.

Judging a host's compliance is pure CPU work (rendering its intended
configuration, parsing and comparing). In the rollout's own process it
competes for the interpreter lock with the threads that talk to the devices
(the rollout's and paramiko's), and every host's device work waits a little
longer for it (on 200 emulated switches, `bench/fanout.py`, leaving the
judging out made the apply up to 3 % faster; moving it here, 1-2 %, with
configurations of 40 lines: a production configuration costs ten times as
much to judge). A `JudgeProcess` judges in a child process instead, on the
machine's other cores.

The child only judges: it reads the workspace's inventory, rules and
templates, never the ledger or a device, and records nothing. The parent
sends it post-change configurations (a pickled ``{ci: configuration}`` on its
standard input) and receives, for each, the hosts judged (a pickled
``{ci: Judged}`` on its standard output, after a first, empty answer once
it has loaded what it judges with); closing its input ends it. Until the
child is ready (starting Python and loading the rules took about 0.4 s
here) the rollout judges in-process as it would without a helper, and a
child not ready by the end of the rollout is ended, not waited for: the
helper never makes a change slower than judging in-process would. Any
failure of the child (it cannot start, it dies, it is killed) only leaves
hosts unjudged, which `opskit.compliance.after.AfterChange.finish` judges in
the rollout's process as before: nothing here can fail a change or lose a
result.

    python -m opskit.compliance.apart WORKSPACE CHANGE_ID INVENTORY
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from opskit.compliance.runs import Judged
    from opskit.workspace import Workspace

#: How long `JudgeProcess.collect` waits for the child to judge what it was
#: sent before it is killed (what it has not returned is judged in-process).
COLLECT_TIMEOUT_SECONDS = 120.0


class JudgeProcess:
    """A child process that judges hosts for one change (see the module
    docstring). Thread-safe; `collect` once, at the end."""

    def __init__(self, ws: Workspace, change_id: str, inventory: str) -> None:
        source = str(Path(__file__).resolve().parents[2])  # this opskit, whatever sys.path says
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p),
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(ws.root), change_id, inventory],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # nothing of the child's reaches the user
            env=env,
        )
        self._lock = threading.Lock()
        self._judged: dict[str, Judged] = {}
        self._ready = threading.Event()  # the child has loaded its inputs
        self._closing = threading.Event()
        # Written by a thread of its own: a child still starting reads
        # nothing, and the rollout's index writer must never wait for it.
        self._outbox: queue.SimpleQueue[dict[str, str] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=target, name=f"compliance judge {name}", daemon=True)
            for target, name in ((self._send_all, "sender"), (self._receive, "reader"))
        ]
        for thread in self._threads:
            thread.start()

    @property
    def pid(self) -> int:
        return self._process.pid

    def send(self, configs: Mapping[str, str]) -> bool:
        """Queues `configs` for the child (never waits for it); False while
        it is not ready yet and once it is being ended: the caller judges
        them itself, as it would without a helper."""
        if self._closing.is_set() or not self._ready.is_set():
            return False
        self._outbox.put(dict(configs))
        return True

    def wait_ready(self, timeout: float) -> bool:
        """Whether the child is ready to judge (waits up to `timeout` s)."""
        return self._ready.wait(timeout)

    def collect(self, timeout: float = COLLECT_TIMEOUT_SECONDS) -> dict[str, Judged]:
        """Every host the child judged: it is told to end and waited for
        (at most `timeout` seconds, then killed; killed at once when it is
        not ready yet), and reaped."""
        self._closing.set()
        if not self._ready.is_set():
            self._kill()
        self._outbox.put(None)  # the sender closes the child's input: its end
        for thread in self._threads:
            thread.join(timeout)
        if any(thread.is_alive() for thread in self._threads):
            self._kill()  # its pipes break: both threads end
        self._process.wait()
        for thread in self._threads:
            thread.join()
        with self._lock:
            return dict(self._judged)

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()

    def _send_all(self) -> None:
        stdin = self._process.stdin
        assert stdin is not None
        try:
            while (configs := self._outbox.get()) is not None:
                pickle.dump(configs, stdin, protocol=pickle.HIGHEST_PROTOCOL)
                stdin.flush()
        except (OSError, ValueError):  # the child is gone: `finish` judges the rest
            return
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def _receive(self) -> None:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            while True:
                judged = pickle.load(stdout)
                with self._lock:
                    self._judged.update(judged)
                self._ready.set()
        except Exception:  # EOF, or a child killed mid-message: what came is kept
            return
        finally:
            stdout.close()


def serve(
    ws: Workspace, change_id: str, inventory: str, *, requests: BinaryIO, answers: BinaryIO
) -> None:
    """The child's loop: judge each batch of configurations read from
    `requests`, write the hosts judged to `answers`, until end of input."""
    from opskit.compliance.runs import ConfigJudge

    judge = ConfigJudge(ws, inventory, origin=f"{change_id} verify")
    try:
        ready = judge({})  # loads the inventory, rules and templates' index
    except Exception:  # never ready: the parent judges every host itself
        return
    pickle.dump(ready, answers, protocol=pickle.HIGHEST_PROTOCOL)
    answers.flush()
    while True:
        try:
            configs = pickle.load(requests)
        except EOFError:
            return
        try:
            judged = judge(configs)
        except Exception:  # the parent judges these hosts itself
            judged = {}
        pickle.dump(judged, answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


def main(argv: list[str]) -> int:
    from opskit.workspace import Workspace

    root, change_id, inventory = argv
    # The answers go to the real standard output alone: anything else that
    # prints (a library's warning) goes to standard error.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(
        Workspace.open(root),
        change_id,
        inventory,
        requests=sys.stdin.buffer,
        answers=answers,
    )
    answers.close()
    # Everything is answered: no interpreter teardown (about 10 ms) for the
    # rollout to wait for when it reaps this process.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
