"""The ledger's tables, and the triggers that make them append-only.

- `ledger_events`: one row per event. `record` is the canonical JSON text
  that was hashed; the other columns (at, actor, kind, change_id, ci) are
  copies for indexed queries, checked against `record` by `verify`.
- `ledger_blobs`: content-addressed blobs. The only permitted UPDATE sets
  `content` to NULL for a hash that has a row in `ledger_purges` (written in
  the same transaction as the purge event), or restores purged content.
- `ledger_purges`: which blob each purge event emptied.
- `ledger_checkpoints`: signed (seq, head hash) statements.
- `ledger_tree`: the RFC 6962 Merkle tree over the records, as runs of Go
  `sumdb/tlog` stored hashes (`opskit.ledger.tree`), written in the
  transaction that writes the records.
- `ledger_tree_heads`: the C2SP checkpoint note signed with a checkpoint.

All six refuse DELETE (and UPDATE, except the blob purge path), in SQLite
and in PostgreSQL (where TRUNCATE is refused too).
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    event,
)

from opskit.db import metadata

EVENTS = "ledger_events"
BLOBS = "ledger_blobs"
PURGES = "ledger_purges"
CHECKPOINTS = "ledger_checkpoints"
TREE = "ledger_tree"
TREE_HEADS = "ledger_tree_heads"

events_table = Table(
    EVENTS,
    metadata,
    # In SQLite an INTEGER primary key is the rowid itself: one B-tree less
    # to update per event than a BIGINT key with its own unique index.
    Column(
        "seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("change_id", Text),
    Column("ci", Text),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    Column("record", Text, nullable=False),
    # One index for "a change's events" and "a change's events on a CI". A CI's
    # whole history is found by scanning this index alone (no table rows),
    # about 8 ms per 200,000 events; a separate index on `ci` would take
    # random page writes on every append and halve the append rate
    # (bench/ledger.py), for the rarest of the queries.
    Index("ix_ledger_events_change_id_ci", "change_id", "ci"),
    Index("ix_ledger_events_kind", "kind"),
)

blobs_table = Table(
    BLOBS,
    metadata,
    Column("hash", Text, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("content", LargeBinary),
)

purges_table = Table(
    PURGES,
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("blob_hash", Text, nullable=False),
    Index("ix_ledger_purges_blob_hash", "blob_hash"),
)

checkpoints_table = Table(
    CHECKPOINTS,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("seq", BigInteger, nullable=False),
    Column("head", Text, nullable=False),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("key_id", Text, nullable=False),
    Column("public_key", Text, nullable=False),
    Column("signature", Text, nullable=False),
)

tree_table = Table(
    TREE,
    metadata,
    # One row per write: the stored hashes of records first_seq..last_seq,
    # which are stored hashes first_index.. of Go's layout, 32 bytes each.
    Column(
        "first_seq",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("last_seq", BigInteger, nullable=False),
    Column("first_index", BigInteger, nullable=False),
    Column("hashes", LargeBinary, nullable=False),
)

tree_heads_table = Table(
    TREE_HEADS,
    metadata,
    Column("checkpoint_id", Integer, primary_key=True, autoincrement=False),
    Column("origin", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("note", Text, nullable=False),
)

APPEND_ONLY = "ledger is append-only"

# -- SQLite ----------------------------------------------------------------


def _sqlite_refuse(table: str, operation: str) -> str:
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{operation.lower()} "
        f"BEFORE {operation} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: {operation} on {table} refused'); END"
    )


SQLITE_BLOB_UPDATE = f"""
CREATE TRIGGER IF NOT EXISTS {BLOBS}_guard_update BEFORE UPDATE ON {BLOBS}
WHEN NOT (
    NEW.hash = OLD.hash AND NEW.size = OLD.size AND (
        (NEW.content IS NULL AND OLD.content IS NOT NULL
         AND EXISTS (SELECT 1 FROM {PURGES} WHERE blob_hash = OLD.hash))
        OR (OLD.content IS NULL AND NEW.content IS NOT NULL)
    )
)
BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}: a blob can only be purged through a purge event'); END
"""

event.listen(
    blobs_table, "after_create", DDL(_sqlite_refuse(BLOBS, "DELETE")).execute_if(dialect="sqlite")
)
event.listen(blobs_table, "after_create", DDL(SQLITE_BLOB_UPDATE).execute_if(dialect="sqlite"))

# -- PostgreSQL ------------------------------------------------------------

PG_REFUSE_FUNCTION = f"""
CREATE OR REPLACE FUNCTION opskit_ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{APPEND_ONLY}: %% on %% refused', TG_OP, TG_TABLE_NAME;
END $$
"""

PG_BLOB_GUARD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION opskit_ledger_blob_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.hash = OLD.hash AND NEW.size = OLD.size AND (
        (NEW.content IS NULL AND OLD.content IS NOT NULL
         AND EXISTS (SELECT 1 FROM {PURGES} WHERE blob_hash = OLD.hash))
        OR (OLD.content IS NULL AND NEW.content IS NOT NULL
            AND 'sha256:' || encode(sha256(NEW.content), 'hex') = OLD.hash)
    ) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '{APPEND_ONLY}: a blob can only be purged through a purge event';
END $$
"""


def _pg_trigger(table: str, when: str, function: str, per: str = "ROW") -> str:
    name = f"{table}_{when.lower().replace(' ', '_')}"
    return (
        f"CREATE TRIGGER {name} BEFORE {when} ON {table} "
        f"FOR EACH {per} EXECUTE FUNCTION {function}()"
    )


def _with_pg_functions(table: Table) -> None:
    # The functions are (re)created only when a ledger table is being created, so
    # that a role with only INSERT and SELECT can open an existing schema.
    for function in (PG_REFUSE_FUNCTION, PG_BLOB_GUARD_FUNCTION):
        event.listen(table, "before_create", DDL(function).execute_if(dialect="postgresql"))


def append_only(table: Table) -> None:
    """Makes `table` refuse UPDATE and DELETE of its rows (and TRUNCATE, on
    PostgreSQL) with triggers created with it: the one way every append-only
    table of the ledger, and beside it (witness cosignatures), is made so."""
    _with_pg_functions(table)
    for operation in ("UPDATE", "DELETE"):
        sql = _sqlite_refuse(table.name, operation)
        event.listen(table, "after_create", DDL(sql).execute_if(dialect="sqlite"))
    for ddl in (
        _pg_trigger(table.name, "UPDATE OR DELETE", "opskit_ledger_refuse"),
        _pg_trigger(table.name, "TRUNCATE", "opskit_ledger_refuse", per="STATEMENT"),
    ):
        event.listen(table, "after_create", DDL(ddl).execute_if(dialect="postgresql"))


for _table in (events_table, purges_table, checkpoints_table, tree_table, tree_heads_table):
    append_only(_table)
# A blob's content may be purged (set NULL, through a purge event) or put back:
# its own guard instead of a plain refusal of UPDATE.
_with_pg_functions(blobs_table)
for _ddl in (
    _pg_trigger(BLOBS, "DELETE", "opskit_ledger_refuse"),
    _pg_trigger(BLOBS, "TRUNCATE", "opskit_ledger_refuse", per="STATEMENT"),
    _pg_trigger(BLOBS, "UPDATE", "opskit_ledger_blob_guard"),
):
    event.listen(blobs_table, "after_create", DDL(_ddl).execute_if(dialect="postgresql"))
