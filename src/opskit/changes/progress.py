"""Counting a rollout's progress callbacks: every host once, in the bucket
of its latest final status, so that the hosts counted never exceed the hosts.

A host reports `running`, then its outcome; under `rollback_all` a host that
was done reports again when it is rolled back, and moves from "done" to
"rolled back" (it is not counted twice). A host that failed and was rolled
back by its own run counts as failed: it did fail.
"""

from __future__ import annotations

import threading

from opskit.hoststate import NOT_PUT_BACK, HostState

BUCKETS = (HostState.OK, HostState.FAILED, HostState.ROLLED_BACK, HostState.SKIPPED)


class ProgressTally:
    """Thread-safe: the rollout reports from its worker threads."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._final: dict[str, HostState] = {}
        self._lock = threading.Lock()

    def update(self, ci: str, status: str) -> bool:
        """Counts `ci`'s new status; False when it is not a final one (running)."""
        with self._lock:
            bucket = self._bucket(status, self._final.get(ci))
            if bucket is None:
                return False
            self._final[ci] = bucket
            return True

    @staticmethod
    def _bucket(status: str, previous: str | None) -> HostState | None:
        if status in (HostState.OK, HostState.SKIPPED):
            return HostState(status)
        if status in NOT_PUT_BACK:
            return HostState.FAILED
        if status == HostState.ROLLED_BACK:
            rolled_back_after_success = previous in (HostState.OK, HostState.ROLLED_BACK)
            return HostState.ROLLED_BACK if rolled_back_after_success else HostState.FAILED
        return None

    @property
    def counts(self) -> dict[str, int]:
        with self._lock:
            values = list(self._final.values())
        return {bucket.value: values.count(bucket) for bucket in BUCKETS}

    @property
    def completed(self) -> int:
        with self._lock:
            return len(self._final)
