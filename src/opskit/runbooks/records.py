"""What leaves a host run for the ledger: redacted, JSON-ready, secret-free.

`record_ready` (the ledger's one converter, `opskit.ledger.values`) is the
one pass every recorder payload takes; `transcript` and `redact_step`
prepare a connector's transcript and a step's record.
"""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from typing import Any

from opskit.connectors.base import Connector
from opskit.ledger.values import record_ready
from opskit.runbooks.results import StepRun, ms
from opskit.secrets import REDACTOR

LOG = logging.getLogger("opskit.runbooks.executor")


def now() -> str:
    return datetime.now(UTC).isoformat()


def log_bug(message: str) -> None:
    """Logs the exception being handled with its traceback, redacted: the
    text may quote a rendered secret, and logs are as secret-free as records."""
    LOG.error("%s\n%s", REDACTOR.redact(message), REDACTOR.redact(traceback.format_exc()))


def transcript(conn: Connector) -> list[dict[str, Any]]:
    """The connector's transcript since the last call, durations in whole ms."""
    # TranscriptEntry.to_dict without its dataclasses.asdict deep copy (only
    # strings inside): this runs for every step of every host.
    return [
        {
            "command": entry.command,
            "output": entry.output,
            "started": entry.started.isoformat(),
            "status": entry.status,
            "duration_ms": ms(float(entry.duration)),
        }
        for entry in conn.take_transcript()
    ]


def redact_step(step_run: StepRun) -> None:
    """A step's record never holds a secret, even before the recorder redacts."""
    step_run.commands = [REDACTOR.redact(c) for c in step_run.commands]
    step_run.output = REDACTOR.redact(step_run.output)
    step_run.diff = REDACTOR.redact(step_run.diff) if step_run.diff else step_run.diff
    step_run.error = REDACTOR.redact(step_run.error) if step_run.error else step_run.error
    step_run.data = REDACTOR.redact_obj(step_run.data)


__all__ = ["log_bug", "now", "record_ready", "redact_step", "transcript"]
