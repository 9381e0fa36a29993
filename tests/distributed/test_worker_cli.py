"""`opskit worker` and `change apply --runner` refuse bad set-ups in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opskit.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def opskit(ws: Workspace, *args: str, db: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("OPSKIT_DB", None)
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws.root)]
    command += ["--db", db] if db else []
    return subprocess.run([*command, *args], capture_output=True, text=True, env=env, timeout=60)


def test_worker_refuses_sqlite_and_a_missing_broker(workspace: Workspace) -> None:
    done = opskit(workspace, "worker", "--queues", "dc1")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: opskit worker needs the PostgreSQL ledger (--db postgresql://...)"
    ]
    done = opskit(workspace, "worker", db="postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert done.returncode != 0
    assert "needs a broker: --broker or runner.broker in opskit.yaml" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_apply_with_an_unknown_runner_is_one_line(workspace: Workspace) -> None:
    done = opskit(workspace, "change", "apply", "CHG-000001", "--runner", "mesh")
    assert done.returncode != 0
    refusal = "error: --runner mesh: give thread, process or celery"
    assert done.stderr.strip().splitlines() == [refusal]


def test_worker_refuses_a_broker_url_that_is_not_redis_in_one_line(workspace: Workspace) -> None:
    """It was a Celery traceback (ImproperlyConfigured) on the worker's start."""
    db = "postgresql+psycopg://nobody@127.0.0.1:1/x"
    done = opskit(workspace, "worker", "--broker", "amqp://:pw@127.0.0.1/", db=db)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "error: the broker URL must start with redis:// or rediss://"
    ]
