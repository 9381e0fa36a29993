"""Distributed runs: a change's hosts on Celery workers (Redis broker,
PostgreSQL ledger), or on worker processes of this machine, behind the
rollout's runner seam (`opskit.changes.runners`).

- `opskit.distributed.processes`: `ProcessRunner`, the hosts in local worker
  processes over pipes (no broker; SQLite or PostgreSQL), so that a change's
  SSH sessions use every core;
- `opskit.distributed.app`: the Celery application and its at-most-once settings;
- `opskit.distributed.runner`: `CeleryRunner`, the coordinator's side (queues
  per site, bounded wait for a worker, lost-worker detection);
- `opskit.distributed.hostjob`: the worker's side (digest and version checks,
  the idempotency claim, the host's run recorded in the ledger);
- `opskit.distributed.schedule`: the policy's recurring read-only jobs on
  Celery beat (`opskit schedule run`), run by the same workers.

The coordinator (`opskit change apply --runner celery`) keeps the change
process; a worker (`opskit worker`) runs one host at a time from its queues.
See docs/distributed.md.

Waiting for the workers: `opskit.distributed.results` (one Redis subscriber
wakes the coordinator's threads when their results are stored) and
`opskit.distributed.liveness` (the workers' announcements of their queues).
"""
