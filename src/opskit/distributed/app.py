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
from urllib.parse import urlsplit

from opskit.errors import OpskitError, UsageError

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
    """A Celery app on `broker` (redis://...), results kept in the same Redis;
    a URL that is not Redis's is a `UsageError` (one line, without the URL:
    it may hold a password).

    >>> make_app("redis://127.0.0.1:6379/0").conf.task_acks_late
    False
    """
    from celery import Celery

    problem = broker_problem(broker)
    if problem:
        raise UsageError(problem)
    app = Celery("opskit", broker=broker, backend=broker, set_as_current=False)
    app.conf.update(SETTINGS)
    return app


def broker_problem(url: str) -> str | None:
    """Why `url` is not a broker URL (None: it is one): redis:// or rediss://,
    a host, a valid port."""
    if not url.startswith(("redis://", "rediss://")):
        return "the broker URL must start with redis:// or rediss://"
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError as exc:
        return f"the broker URL is not valid: {exc}"
    return None if parts.hostname or parts.path else "the broker URL names no host"


def broker_label(url: str) -> str:
    """The broker URL without its password, for messages:
    ``redis://:pw@10.0.0.5:6379/0`` -> ``redis://10.0.0.5:6379/0``."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


def require_broker(app: Any, url: str, *, timeout: float = 2.0) -> None:
    """Raises one `OpskitError` line when `app`'s broker does not answer
    (one attempt, `timeout` seconds): a daemon started on a wrong or dead
    broker says so instead of retrying silently."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=timeout)
    except Exception as exc:  # kombu raises its transport's own errors
        raise OpskitError(f"broker {broker_label(url)} unreachable: {type(exc).__name__}") from None
