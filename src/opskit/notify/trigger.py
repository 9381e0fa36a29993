"""Starting a background sender when a process has enqueued notifications.

The CLI's entry point (`opskit.cli.main`, not the import of `opskit.cli`)
runs each command in `background_delivery()`: the first time a command
enqueues a notification, a detached `opskit notify deliver --linger-pid PID`
process is started. It delivers while the command runs (a rollout's
`change.started` reaches the receiver before the rollout ends) and until
nothing is due once the command has exited. It never blocks or fails the
command: its output goes to `.opskit/notify.log`, and a notification it
cannot deliver stays in the outbox. Library callers deliver with
`opskit.notify.deliver` (or call `enable_background()` themselves).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opskit.workspace import Workspace

_background = False
_started: set[str] = set()
_lock = threading.Lock()


def enable_background(enabled: bool = True) -> None:
    """Whether enqueuing starts a background sender (once per workspace and process)."""
    global _background
    _background = enabled


@contextmanager
def background_delivery() -> Iterator[None]:
    """Background senders enabled while the block runs (a CLI command), then
    as before: a program that runs the CLI in process keeps its own setting."""
    global _background
    saved = _background
    _background = True
    try:
        yield
    finally:
        _background = saved


def enqueued(ws: Workspace) -> None:
    """Called by the outbox hook after it wrote rows (before the commit)."""
    if not _background:
        return
    key = str(ws.root)
    with _lock:
        if key in _started:
            return
        _started.add(key)
    # Started from a thread: the ledger transaction that called this does not
    # wait for the fork (the thread is not a daemon: it finishes before exit).
    threading.Thread(target=spawn_sender, args=(ws,), name="opskit-notify-spawn").start()


def spawn_sender(ws: Workspace) -> subprocess.Popen[bytes] | None:
    """Starts the detached sender; None when it cannot be started (never raises)."""
    env = dict(os.environ)
    if ws.db_url_override:
        env["OPSKIT_DB"] = ws.db_url_override
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "notify"]
    command += ["deliver", "--linger-pid", str(os.getpid())]
    try:
        ws.state_dir.mkdir(parents=True, exist_ok=True)
        with open(ws.state_dir / "notify.log", "ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
    except Exception:  # never fail the command that recorded the events
        return None
