"""How the change engine's records are made: the ledger's JSON subset,
redaction, and statements run on the ledger's own database cursor."""

from __future__ import annotations

from typing import Any

from opskit.ledger.values import to_ledger_json


def dbapi_statement(statement: Any, dialect: Any) -> tuple[str, Any]:
    """`statement` as DB-API SQL and parameters for `dialect`, the values
    converted as SQLAlchemy binds them (datetimes, JSON): for a statement run
    on the ledger's own DB-API cursor, inside its transaction."""
    compiled = statement.compile(dialect=dialect)
    values = {}
    for name, value in compiled.construct_params().items():
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        values[name] = process(value) if process is not None else value
    if compiled.positiontup is not None:  # qmark (SQLite)
        return compiled.string, tuple(values[name] for name in compiled.positiontup)
    return compiled.string, values  # pyformat (psycopg)


def jsonable(value: Any) -> Any:
    """The ledger's JSON subset (`opskit.ledger.values.to_ledger_json`: the
    one converter, one float rule), not redacted."""
    return to_ledger_json(value)


def redact_obj(data: Any) -> Any:
    from opskit.secrets import REDACTOR

    return REDACTOR.redact_obj(data)
