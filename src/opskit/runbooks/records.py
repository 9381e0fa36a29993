"""What leaves a host run for the ledger: redacted, JSON-ready, secret-free.

`record_ready` (the ledger's one converter, `opskit.ledger.values`) is the
one pass every recorder payload takes; `transcript` and `redact_step`
prepare a connector's transcript and a step's record; `share_blob_texts`
stores a configuration an event also keeps as a blob once, as the blob
(docs/ledger-format.md, "Texts stored as blobs"), and `full_output` puts it
back.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator, Mapping
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


# A step's or transcript entry's output holding a blob's text of at least
# this many characters refers to the blob instead (shorter ones stay inline:
# a reference is not worth it).
MIN_SHARED_CHARS = 64


def share_blob_texts(payload: dict[str, Any], blobs: Mapping[str, bytes | str] | None) -> None:
    """Stores, in place, every step or transcript-entry `output` of a
    ledger-ready `payload` that holds the text of one of the event's `blobs`
    (a configuration: the snapshot of `host.backup`, the configuration after
    the change of `host.verified`) by reference: the text is cut out of
    `output`, `output_blob` names the blob and `output_at` is where its text
    goes back (`full_output`). A configuration is then stored once, as a
    blob addressed by its hash (and purging that blob removes it).

    Example: ``{"command": "show running-config", "output": "Building
    configuration...\n", "output_blob": "config", "output_at": 26}``.
    """
    texts = [
        (name, text)
        for name, text in (blobs or {}).items()
        if type(text) is str and len(text) >= MIN_SHARED_CHARS
    ]
    if not texts:
        return
    for holder in _output_holders(payload):
        output = holder.get("output")
        if type(output) is not str or len(output) < MIN_SHARED_CHARS:
            continue
        for name, text in texts:
            at = output.find(text)
            if at >= 0:
                holder["output"] = output[:at] + output[at + len(text) :]
                holder["output_blob"] = name
                holder["output_at"] = at
                break


def full_output(holder: Mapping[str, Any], blobs: Mapping[str, bytes | str]) -> str:
    """The whole `output` of a recorded step or transcript entry, its blob's
    text put back (`share_blob_texts`); `blobs` maps blob names to contents."""
    output = str(holder.get("output") or "")
    name = holder.get("output_blob")
    if name is None:
        return output
    text = blobs[name]
    text = text.decode() if isinstance(text, bytes) else text
    at = int(holder["output_at"])
    return output[:at] + text + output[at:]


def _output_holders(payload: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The steps of a host event (`steps`, `step`) and the transcript entries
    of those steps and of the event itself (`transcript`)."""
    steps = [payload.get("step"), *(payload.get("steps") or ())]
    for step in steps:
        if type(step) is dict:
            yield step
            yield from (e for e in step.get("transcript") or () if type(e) is dict)
    yield from (e for e in payload.get("transcript") or () if type(e) is dict)


__all__ = [
    "MIN_SHARED_CHARS",
    "full_output",
    "log_bug",
    "now",
    "record_ready",
    "redact_step",
    "share_blob_texts",
    "transcript",
]
