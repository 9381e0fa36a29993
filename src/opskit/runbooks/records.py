"""What leaves a host run for the ledger: redacted, JSON-ready, secret-free.

`record_ready` is the one pass every recorder payload takes; `transcript`
and `redact_step` prepare a connector's transcript and a step's record.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from opskit.connectors.base import Connector
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


def record_ready(value: Any) -> Any:
    """`value` as the ledger takes it, in one pass: every string redacted
    (mapping keys too), and only the ledger's JSON subset left. The canonical
    JSON has no floats (RFC 8785 number pitfalls): integral floats become
    ints, others their shortest text; enums become their value, datetimes ISO
    text, tuples lists, sets sorted lists, anything else its text. What this
    returns needs no further redaction or conversion on its way to the ledger
    (`ChangeService.record(..., prepared=True)`)."""
    return _ready(value, REDACTOR.redact)


def _ready(value: Any, redact: Callable[[str], str]) -> Any:
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind is dict:
        return {
            (redact(k) if type(k) is str else _ready_key(k, redact)): _ready(v, redact)
            for k, v in value.items()
        }
    if kind is list:
        return [_ready(v, redact) for v in value]
    if value is None or kind is bool or kind is int:
        return value
    if isinstance(value, Enum):
        return redact(str(value.value))
    if isinstance(value, str):
        return redact(str(value))
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_ready_key(k, redact): _ready(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ready(v, redact) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_ready(v, redact) for v in value), key=str)
    return redact(str(value))


def _ready_key(key: Any, redact: Callable[[str], str]) -> str:
    return redact(str(key.value) if isinstance(key, Enum) else str(key))


def redact_step(step_run: StepRun) -> None:
    """A step's record never holds a secret, even before the recorder redacts."""
    step_run.commands = [REDACTOR.redact(c) for c in step_run.commands]
    step_run.output = REDACTOR.redact(step_run.output)
    step_run.diff = REDACTOR.redact(step_run.diff) if step_run.diff else step_run.diff
    step_run.error = REDACTOR.redact(step_run.error) if step_run.error else step_run.error
    step_run.data = REDACTOR.redact_obj(step_run.data)


__all__ = ["log_bug", "now", "record_ready", "redact_step", "transcript"]
