"""The Celery application of opskit's workers, and why its settings are what
they are (at most once, never twice: docs/distributed.md).

- `task_acks_late=False`: a message is acknowledged when its task *starts*,
  so a worker that dies mid-host never has its host run again by another
  worker (Celery's `acks_late` would re-run it: at least once).
- `task_reject_on_worker_lost=False`: likewise, a lost worker's task is not
  requeued.
- `worker_disable_prefetch=True` (Celery >= 5.6, Redis), with
  `worker_prefetch_multiplier=1`: a worker takes a message only when a slot
  is free. With early acknowledgement the multiplier alone still lets a
  worker reserve one message per busy slot, so one worker held hosts waiting
  while another one's slots were idle (measured: 60 ms a host on average).
  (`opskit worker` turns its event loop every 10 ms, so that a freed slot
  takes its next message at once: `opskit.distributed.worker`.)
- `visibility_timeout` (Redis): a reserved, unacknowledged message comes back
  after this long; 12 hours, far above the reservation of one prefetched
  message. Should it come back anyway, the idempotency claim in the ledger
  (`opskit.distributed.hostjob`) records it as a duplicate and runs nothing.
- `task_track_started=True`: the coordinator sees which worker started a host
  and checks its announcement, so a dead worker's host is reported
  `unknown`, not waited for.
- JSON only: the messages are plain data (`HostJob`), never pickles.
"""

from __future__ import annotations

from typing import Any

TASK_NAME = "opskit.host"
VISIBILITY_TIMEOUT_S = 12 * 3600

SETTINGS: dict[str, Any] = {
    "task_acks_late": False,
    "task_reject_on_worker_lost": False,
    "worker_prefetch_multiplier": 1,
    "worker_disable_prefetch": True,
    "task_track_started": True,
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_expires": 24 * 3600,
    "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
    "result_backend_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_S},
    "broker_connection_retry_on_startup": True,
    # A Redis restart is waited out (results stored when it is back), not fatal.
    "result_backend_always_retry": True,
    "result_backend_max_retries": 60,
    "broker_connection_max_retries": None,
    "worker_hijack_root_logger": False,
    "task_default_queue": "default",
}


def make_app(broker: str) -> Any:
    """A Celery app on `broker` (redis://...), results kept in the same Redis.

    >>> make_app("redis://127.0.0.1:6379/0").conf.task_acks_late
    False
    """
    from celery import Celery

    app = Celery("opskit", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(SETTINGS)
    return app
