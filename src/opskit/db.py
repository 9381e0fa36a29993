"""The state layer: one SQLAlchemy engine per workspace, SQLite or PostgreSQL.

Every subsystem declares its tables on the shared `metadata`; `create_schema`
imports them all and creates what is missing. SQLite runs in WAL mode with
`synchronous=FULL` so that an acknowledged write survives a crash.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import ArgumentError, DatabaseError

from opskit.errors import WorkspaceError

metadata = MetaData()

# Modules that declare tables on `metadata`; each may also register DDL
# (triggers) through SQLAlchemy events.
TABLE_MODULES = (
    "opskit.ledger.store",
    "opskit.ledger.cosignatures",
    "opskit.inventory.observed",
    "opskit.changes.store",
    "opskit.notify.store",
)


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _configure_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # Only takes effect on a new (empty) database. 16 KiB pages halve the
    # CPU and I/O of a ledger append against the 4 KiB default: its three
    # secondary indexes split and rewrite far fewer pages (bench/ledger.py).
    cursor.execute("PRAGMA page_size=16384")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """Creates an engine for `url` (sqlite:///path or postgresql+psycopg://...)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(engine, "connect", _configure_sqlite)
        else:
            engine = create_engine(url, pool_pre_ping=True)
    except (ArgumentError, ImportError) as exc:
        raise WorkspaceError(f"database URL {redact_url(url)}: {exc}") from None
    return engine


def create_schema(engine: Engine) -> None:
    """Creates every table (and trigger) that is missing; idempotent."""
    for module in TABLE_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A subsystem not yet installed in this build has no tables to create.
            if exc.name != module:
                raise
    try:
        metadata.create_all(engine)
    except DatabaseError as exc:  # unreachable server, or a file that is not a database
        raise WorkspaceError(f"database {redact_url(str(engine.url))}: {exc.orig}") from None


def redact_url(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid database URL>"
