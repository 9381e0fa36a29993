"""Witness cosignatures of the ledger's checkpoints: the table and its reads.

`ledger_cosignatures` holds one row per cosignature line a witness returned
for a checkpoint (`opskit.ledger.witnessing`): the checkpoint's id, the
witness key's fingerprint (``name+hexid``), the tree size it cosigned and
the signature line exactly as received. The table is append-only like the
ledger's own (DELETE, UPDATE and, on PostgreSQL, TRUNCATE refused). A
checkpoint's note "with its cosignatures" is the stored note with these
lines appended (`note_with_cosignatures`).

Example:

    >>> note_with_cosignatures(reader, 7, note)
    'opskit/ws/3f2a9c1d\\n57\\n...=\\n\\n— opskit/ws/3f2a9c1d ...\\n— w1.example/w ...\\n'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Column, Index, Integer, Table, Text

from opskit.db import metadata
from opskit.ledger.store import append_only

if TYPE_CHECKING:
    from opskit.ledger.reader import LedgerReader

COSIGNATURES = "ledger_cosignatures"

cosignatures_table = Table(
    COSIGNATURES,
    metadata,
    Column("checkpoint_id", Integer, primary_key=True, autoincrement=False),
    Column("line", Text, primary_key=True),
    Column("witness", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Index("ix_ledger_cosignatures_witness", "witness", "size"),
)
append_only(cosignatures_table)


def cosignature_lines(reader: LedgerReader, checkpoint_id: int) -> list[str]:
    """The stored cosignature lines of one checkpoint, by witness."""
    rows = reader.query(
        f"SELECT line FROM {COSIGNATURES} WHERE checkpoint_id = ? ORDER BY witness, line",
        (checkpoint_id,),
    )
    return [row[0] for row in rows]


def note_with_cosignatures(reader: LedgerReader, checkpoint_id: int, note: str) -> str:
    """The stored checkpoint note with its witnesses' cosignature lines appended."""
    return note + "".join(line + "\n" for line in cosignature_lines(reader, checkpoint_id))


def last_cosigned_size(reader: LedgerReader, witness: str) -> int:
    """The largest tree size witness `witness` (``name+hexid``) cosigned; 0: never."""
    rows: Any = reader.query(f"SELECT MAX(size) FROM {COSIGNATURES} WHERE witness = ?", (witness,))
    value = next(iter(rows), (None,))[0]
    return int(value) if value is not None else 0
