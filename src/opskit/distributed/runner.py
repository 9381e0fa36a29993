"""The coordinator's side: `CeleryRunner`, a runner (`RunnerFactory` and
`RemoteHosts`, `opskit.changes.runners`) that sends each host to the Celery
queue of its site and waits for the worker's result.

The rollout is unchanged: its threads (a local pool of the width it asks
for) only wait here, so canary, batches, error budget and group caps work as
with the thread pool. A waiting thread is woken when its result is stored
(`opskit.distributed.results`: one subscriber for all of them, no polling).
Per host:

- the queue is the CI's `site` (or the attribute `queues.by` names, or
  `queues.default`); a CI with no queue is refused before the change starts;
- no live worker consumes that queue within `wait_for_worker_s`: the host is
  failed, `unreachable: no worker for queue dc2`, and its idempotency key is claimed
  by the coordinator, so the message, should a worker come later, runs nothing;
- the worker that started the host is no longer announced (for
  `LOST_AFTER_S`; `opskit.distributed.liveness`): the host is `unknown`
  (as after a crash of the local runner; `opskit change recover` and
  `opskit change rollback` handle it from the ledger).

>>> runner = CeleryRunner("redis://127.0.0.1:6379/0", by="zone", default="dc1")
>>> runner.by, runner.default
('zone', 'dc1')
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Any

from opskit.changes.runners import HostJob
from opskit.distributed.app import broker_label, require_broker
from opskit.distributed.hostjob import give_up, unknown
from opskit.distributed.liveness import BEAT_S
from opskit.errors import OpskitError

# A waiting thread looks at its result itself at least this often (a notification
# may be lost while Redis restarts), and at the announcement of the worker that
# started its host.
CHECK_EVERY_S = 2.0
# That worker missing from its queue's announcements this long: it is lost.
LOST_AFTER_S = 2 * BEAT_S
# A queue seen served by the broadcast (when no worker announced it: a 1 s
# broadcast) is trusted this long; a worker gone meanwhile is caught by the
# check of the host it started.
LIVE_FOR_S = 30.0
# How long a broker outage is waited out before the host counts as `unknown`.
BROKER_OUTAGE_S = 120.0


class CeleryRunner:
    """Runs a change's hosts on Celery workers (see the module docstring)."""

    def __init__(
        self,
        broker: str,
        *,
        by: str = "site",
        default: str | None = None,
        wait_for_worker_s: float = 10.0,
    ) -> None:
        from opskit.distributed.app import make_app
        from opskit.distributed.results import ResultWatcher

        self.broker = broker
        self.by = by
        self.default = default
        self.wait_for_worker_s = wait_for_worker_s
        self.app = make_app(broker)
        self._live: dict[str, float] = {}  # queue -> when a worker was last seen on it
        # The backend's key (and channel) of a task, without the task id.
        prefix = self.app.backend.get_key_for_task("x")[:-1]
        self._results = ResultWatcher(broker, prefix)
        self._lock = threading.Lock()
        self._redis: Any = None  # a client for the workers' announcements

    # -- RunnerFactory --------------------------------------------------------
    def __call__(self, workers: int) -> Executor:
        """The rollout's threads: each waits for one remote host."""
        return ThreadPoolExecutor(max_workers=workers)

    # -- RemoteHosts ------------------------------------------------------------
    def queue_of(self, ci: Any) -> str | None:
        """The queue of `ci`: its site, or the attribute `by`, or the default."""
        value = ci.site if self.by == "site" else (ci.attributes or {}).get(self.by)
        if value is None or value == "":
            return self.default
        return str(value) if isinstance(value, str | int) else None

    def blockers(self, ws: Any, cis: list[Any]) -> list[str]:
        """SQLite, an unreachable broker, a CI without a queue: each one line."""
        if not str(ws.db_url).startswith("postgresql"):
            return [
                "the celery runner needs the PostgreSQL ledger (--db postgresql://...), not SQLite"
            ]
        reasons = self.queue_problems(cis)
        try:
            require_broker(self.app, self.broker)
        except OpskitError as exc:
            reasons.append(str(exc))
        return reasons

    def queue_problems(self, cis: list[Any]) -> list[str]:
        """The CIs without a queue, one line each, naming the CI."""
        return [
            f"{ci.name}: no queue for the celery runner ({self.by} is missing and no default)"
            for ci in cis
            if self.queue_of(ci) is None
        ]

    def dispatch(self, job: HostJob, ci: Any, ctx: Any) -> dict[str, Any]:
        from opskit.distributed.app import TASK_NAME

        queue = self.queue_of(ci) or "default"
        if not self._wait_for_worker(queue):
            return give_up(ctx, job, f"unreachable: no worker for queue {queue}")
        task_id = str(uuid.uuid4())
        done = self._results.register(task_id)  # before sending: no result goes unseen
        try:
            result = self.app.send_task(
                TASK_NAME,
                args=[job.to_message()],
                queue=queue,
                task_id=task_id,
                retry=True,  # a broker restart is waited out, bounded
                retry_policy={
                    "max_retries": int(BROKER_OUTAGE_S),
                    "interval_start": 0,
                    "interval_step": 1,
                    "interval_max": 1,
                },
            )
            return self._wait(result, ctx, job, queue, done)
        finally:
            self._results.forget(task_id)

    # -- waiting ------------------------------------------------------------------
    def live_queues(self) -> set[str]:
        """The queues some worker consumes now (a broadcast, 1 s for replies)."""
        try:
            replies = self.app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception:  # the broker is away (restarting): no worker seen now
            return set()
        return {q["name"] for queues in replies.values() for q in queues}

    def _wait_for_worker(self, queue: str) -> bool:
        deadline = time.monotonic() + self.wait_for_worker_s
        while True:
            if self._announced(queue):
                return True
            with self._lock:
                seen = self._live.get(queue, 0.0)
                if time.monotonic() - seen < LIVE_FOR_S:
                    return True
                now = time.monotonic()
                for name in self.live_queues():
                    self._live[name] = now
                if queue in self._live and self._live[queue] == now:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def _announced(self, queue: str, worker: str | None = None) -> bool:
        """A worker (`worker`, or any) announced `queue`
        (`opskit.distributed.liveness`): one command."""
        from opskit.distributed.liveness import announced

        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(self.broker)
            return announced(self._redis, queue, worker)
        except Exception:  # the broker is away: the broadcast decides
            return False

    def _wait(
        self, result: Any, ctx: Any, job: HostJob, queue: str, done: threading.Event
    ) -> dict[str, Any]:
        """The worker's result, read when `done` says it is stored (or every
        `CHECK_EVERY_S`). The broker may go away meanwhile (a Redis restart):
        the worker goes on with its host and stores its result when Redis is
        back, so this keeps asking, for at most `BROKER_OUTAGE_S`."""
        last_check, missing, outage = time.monotonic(), 0.0, 0.0
        while True:
            try:
                done.clear()  # before looking: a result stored after the look sets it
                if result.ready():
                    break
                outage = 0.0
                done.wait(max(0.0, CHECK_EVERY_S - (time.monotonic() - last_check)))
                if time.monotonic() - last_check < CHECK_EVERY_S:
                    continue
                last_check = time.monotonic()
                lost = self._lost(result, queue, missing)
                if isinstance(lost, str):
                    return unknown(lost)
                missing = lost
                if (
                    result.state == "PENDING"
                    and not self._taken(ctx, job)
                    and not self._wait_for_worker(queue)
                ):
                    self.app.control.revoke(result.id)
                    return give_up(ctx, job, f"unreachable: no worker for queue {queue}")
            except Exception:  # the transport's own connection errors
                outage = outage or time.monotonic()
                if time.monotonic() - outage > BROKER_OUTAGE_S:
                    broker = broker_label(self.broker)
                    return unknown(f"broker {broker} gone for {BROKER_OUTAGE_S:g} s")
                time.sleep(0.5)
        return self._outcome(result)

    def _lost(self, result: Any, queue: str, missing: float) -> float | str:
        """Since when the worker that started the host is missing from its
        queue's announcements (0.0: it is there, or no worker started the
        host yet), or why it counts as lost: missing for `LOST_AFTER_S` (a
        worker announces itself again within `BEAT_S` after a Redis restart).
        One Redis command, never a broadcast: thousands of waiting threads
        pinging their workers shared the app's few broker connections and
        starved the sending of hosts (measured at 40 threads)."""
        meta = self.app.backend.get_task_meta(result.id)
        info = meta.get("result")
        if meta.get("status") != "STARTED" or not isinstance(info, dict):
            return 0.0
        name = info.get("hostname")
        if not name or self._announced(queue, name):
            return 0.0
        since = missing or time.monotonic()
        return f"worker {name} lost mid-host" if time.monotonic() - since >= LOST_AFTER_S else since

    @staticmethod
    def _taken(ctx: Any, job: HostJob) -> bool:
        """A worker claimed the host (its result state may be lost with the broker)."""
        from opskit.distributed.hostjob import DISPATCHED

        events = ctx.ledger.events(change_id=job.change_id, ci=job.ci, kind=DISPATCHED)
        return any(e.payload.get("key") == job.key for e in events)

    @staticmethod
    def _outcome(result: Any) -> dict[str, Any]:
        if result.failed():
            return unknown(f"worker error: {type(result.result).__name__}")
        outcome = dict(result.get(propagate=False))
        result.forget()
        if outcome.get("status") == "duplicate":  # a redelivery overwrote the result
            return unknown("the host's result was replaced by a duplicate delivery")
        return outcome


def runner_from_policy(policy: Any, *, broker: str | None = None) -> CeleryRunner:
    """The Celery runner the policy's `runner:` describes (`broker` overrides)."""
    from opskit.errors import UsageError

    settings = policy.runner
    url = broker or settings.broker
    if not url:
        raise UsageError("the celery runner needs a broker: runner.broker in opskit.yaml")
    return CeleryRunner(
        url,
        by=settings.queues.by,
        default=settings.queues.default,
        wait_for_worker_s=settings.wait_for_worker_s,
    )
