"""Witnessing: every checkpoint the ledger signs is sent to the policy's witnesses.

After a checkpoint is stored (end of a change, `opskit audit checkpoint`, the
periodic ones, an export), each witness named in the workspace policy
(``witnesses:``, docs/witnesses.md) gets a C2SP tlog-witness add-checkpoint
request: the checkpoint note and the consistency proof from the last tree
size that witness cosigned for this log. That size is read from the stored
cosignatures stored with the checkpoints (`opskit.ledger.cosignatures`, same
database): the largest size a witness cosigned is what it last saw.

- cosigned: the cosignature lines are stored with the checkpoint;
- unreachable, or refused for a reason that is not a conflict (400, 403...):
  a warning on that checkpoint (`WitnessOutcome.warnings`, and one
  ``checkpoint.witness_warning`` event); the checkpoint and every record stay;
- refused as inconsistent (409 naming a size this checkpoint does not
  extend, or 422: the proof does not hold): the witness saw another history
  (a split view, or records deleted). A ``checkpoint.witness_refused`` event
  is recorded and `WitnessRefusedError` raised: one line, a non-zero exit.

Fewer cosignatures than ``witness_quorum`` is a warning too.

Example:

    >>> outcome = witness_checkpoint(ledger, note_text, policy.witnesses, 1)
    >>> outcome.cosigned, outcome.warnings
    (('w1',), ())
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opskit.errors import LedgerError
from opskit.ledger.cosignatures import COSIGNATURES, last_cosigned_size
from opskit.ledger.store import TREE_HEADS
from opskit.ledger.tree import TreeReader
from opskit.tlog import merkle
from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import Signature, Verifier, add_signatures, format_note
from opskit.tlog.witnessclient import Conflict, Cosigned, Refused, cosign

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger
    from opskit.ledger.model import Checkpoint
    from opskit.policy import Witness
    from opskit.workspace import Workspace

WARNING_KIND = "checkpoint.witness_warning"
REFUSED_KIND = "checkpoint.witness_refused"
# Statuses that mean "inconsistent with what I cosigned" (C2SP tlog-witness).
SPLIT_VIEW_STATUSES = (409, 422)


class WitnessRefusedError(LedgerError):
    """A witness refused a checkpoint as inconsistent with what it cosigned."""


@dataclass(frozen=True)
class WitnessOutcome:
    """What the witnesses did with one checkpoint: the note with the
    cosignatures appended, who cosigned, and the warnings (one line each)."""

    note: str
    size: int
    cosigned: tuple[str, ...]
    warnings: tuple[str, ...]
    quorum: int


def for_workspace(ws: Workspace) -> Any:
    """The hook `Ledger.open` installs: witnesses a checkpoint when the
    workspace policy names witnesses (read when a checkpoint is made)."""

    def hook(ledger: Ledger, checkpoint: Checkpoint) -> Checkpoint:
        policy = ws.policy
        if not policy.witnesses or checkpoint.note is None:
            return checkpoint
        outcome = witness_checkpoint(
            ledger, checkpoint.note, policy.witnesses, policy.witness_quorum, actor=checkpoint.actor
        )
        ledger.last_witnessing = outcome
        return _with_note(checkpoint, outcome.note)

    return hook


def _with_note(checkpoint: Checkpoint, note: str) -> Checkpoint:
    import dataclasses

    return dataclasses.replace(checkpoint, note=note)


def witness_checkpoint(
    ledger: Ledger,
    note_text: str,
    witnesses: Sequence[Witness],
    quorum: int,
    *,
    actor: str = "opskit",
    timeout: float = 10.0,
) -> WitnessOutcome:
    """Sends the stored checkpoint `note_text` to every witness, stores the
    cosignatures with it and records warnings or a refusal (module doc)."""
    signed = parse_signed_checkpoint(note_text, source="checkpoint note")
    size = signed.checkpoint.size
    gathered: list[Signature] = []
    cosigned: list[str] = []
    warnings: list[str] = []
    refusals: list[dict[str, Any]] = []
    for witness in witnesses:
        verifier = Verifier.from_vkey(witness.vkey, source=f"policy witness {witness.name}")
        known = last_cosigned_size(ledger.reader(), verifier.fingerprint)
        result = cosign(
            witness.url,
            verifier,
            signed.note,
            lambda old: _consistency(ledger, size, old),
            known_size=known,
            timeout=timeout,
        )
        if isinstance(result, Cosigned):
            gathered.extend(result.signatures)
            cosigned.append(witness.name)
        elif isinstance(result, Conflict):
            refusals.append(
                {
                    "witness": witness.name,
                    "status": 409,
                    "reason": f"it cosigned size {result.size}",
                }
            )
        elif isinstance(result, Refused) and result.status in SPLIT_VIEW_STATUSES:
            refusals.append(
                {"witness": witness.name, "status": result.status, "reason": result.reason}
            )
        else:
            status = f"refused ({result.status})" if isinstance(result, Refused) else "unreachable"
            warnings.append(f"witness {witness.name} {status}: {result.reason}")
    note = note_text
    if gathered:
        note = format_note(add_signatures(signed.note, gathered))
        _store_cosignatures(ledger, note_text, size, gathered)
    if len(cosigned) < quorum:
        warnings.append(f"witness quorum {quorum} not met ({len(cosigned)} cosigned)")
    warnings = [_clean(w) for w in warnings]
    refusals = [{**r, "reason": _clean(str(r["reason"]))} for r in refusals]
    outcome = WitnessOutcome(note, size, tuple(cosigned), tuple(warnings), quorum)
    _record(ledger, outcome, refusals, actor)
    return outcome


def _clean(text: str) -> str:
    """A witness's words as the ledger may hold them: printable, no secret."""
    from opskit.secrets import REDACTOR

    return REDACTOR.redact("".join(c if c.isprintable() else "?" for c in text))[:300]


def _record(
    ledger: Ledger, outcome: WitnessOutcome, refusals: list[dict[str, Any]], actor: str
) -> None:
    """Warnings and refusals become events; a refusal is then raised."""
    base = {"tree_size": outcome.size, "cosigned": list(outcome.cosigned), "quorum": outcome.quorum}
    if outcome.warnings:
        warned = {**base, "warnings": list(outcome.warnings)}
        ledger.append(WARNING_KIND, actor=actor, payload=warned)
    if refusals:
        ledger.append(REFUSED_KIND, actor=actor, payload={**base, "refusals": refusals})
        first = refusals[0]
        raise WitnessRefusedError(
            f"SPLIT VIEW: witness {first['witness']} refused the checkpoint of tree size "
            f"{outcome.size} as inconsistent with what it cosigned ({first['reason']}); "
            "this ledger's history differs from the one the witness saw"
        )


def _consistency(ledger: Ledger, size: int, old: int) -> list[bytes]:
    with ledger.reader().session() as session:
        cursor = session.cursor()
        try:
            return merkle.prove_tree(size, old, TreeReader(cursor, ledger.sql))
        finally:
            cursor.close()


def _store_cosignatures(ledger: Ledger, note_text: str, size: int, lines: list[Signature]) -> None:
    """Stores the cosignature lines with the checkpoint whose note is `note_text`."""
    with ledger.batch() as batch:
        cursor = batch.cursor
        cursor.execute(
            ledger.sql(f"SELECT checkpoint_id FROM {TREE_HEADS} WHERE note = ?"), (note_text,)
        )
        row = cursor.fetchone()
        if row is None:
            raise LedgerError("witnessing: the checkpoint note is not stored in this ledger")
        cursor.executemany(
            ledger.sql(
                f"INSERT INTO {COSIGNATURES} (checkpoint_id, line, witness, size) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING"
            ),
            [(row[0], s.line(), s.fingerprint, size) for s in lines],
        )
