"""Checking the change tables against the ledger (`opskit audit verify`).

Every change's expected rows are rebuilt from its events in one pass over
the ledger (`opskit.changes.replay`), then compared with the `changes`,
`change_hosts`, `change_approvals`, `change_locks` and
`change_group_slots` rows. A row the ledger does not explain is a
disagreement: a forged state, host status, approval or lock.

A rollout writes its host rows after the ledger (`rollout._write_index`):
while a change runs, a host still `pending` or `running` in the table is the
index lagging, not a disagreement.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import inspect, select
from sqlalchemy.exc import DBAPIError

from opskit.changes import replay, store
from opskit.changes.records import jsonable
from opskit.changes.replay import Expected
from opskit.hoststate import UNFINISHED, HostState
from opskit.ledger.store import EVENTS
from opskit.secrets import MASK

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger


def _quoted(kinds: Iterable[str]) -> str:
    return ", ".join(f"'{kind}'" for kind in sorted(kinds))


# The events of changes that were created, read in three index searches and
# merged by seq: every change-level event; the host steps that end a host
# other than `host.verified`; and `host.verified` only of changes that never
# reached `verifying` (for the others, every host still pending then
# finished `ok`, `replay._verifying`, and a rollout halts on a recorded
# failure, `replay._halted`): most events are host steps, and none of those
# is read. Only the payloads the fold reads are fetched. (`audit verify` has
# checked these indexed columns against the records.)
_COLUMNS = f"""seq, change_id, ci, kind, actor,
    CASE WHEN kind IN ({_quoted(replay.PAYLOAD_KINDS)}) THEN record END"""
_CREATED = f"SELECT change_id FROM {EVENTS} WHERE kind = 'change.created'"
REPLAY_QUERIES = (
    f"SELECT {_COLUMNS} FROM {EVENTS} WHERE ci IS NULL AND change_id IN ({_CREATED}) ORDER BY seq",
    f"SELECT {_COLUMNS} FROM {EVENTS} "
    f"WHERE kind IN ({_quoted(replay.HOST_STATUS_KINDS - {'host.verified'})}) ORDER BY seq",
    f"SELECT {_COLUMNS} FROM {EVENTS} WHERE change_id IN ({_CREATED} EXCEPT "
    f"SELECT change_id FROM {EVENTS} WHERE kind = 'change.verifying') "
    "AND ci IS NOT NULL AND kind = 'host.verified' ORDER BY seq",
)
_SHOWN = 60  # longest value quoted in a problem


def expected_changes(ledger: Ledger) -> dict[str, Expected]:
    """Every created change's expected rows, from one pass over the ledger."""
    changes: dict[str, Expected] = {}
    host_step = replay.host_step
    merged = heapq.merge(*(ledger.reader().chunks(sql) for sql in REPLAY_QUERIES))
    for seq, change_id, ci, kind, actor, record in merged:
        payload = _payload(record) if record is not None else {}
        if ci is not None and change_id in changes:  # most rows: a host's closing step
            host_step(changes[change_id], int(seq), kind, ci, payload)
        else:
            fold_one(changes, int(seq), change_id, ci, kind, actor, payload)
    return changes


def _payload(record: str) -> dict[str, Any]:
    """A record's payload; {} for a record that is not one (the chain check
    names it)."""
    try:
        payload = json.loads(record).get("payload")
    except (ValueError, AttributeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def expected_change(ledger: Ledger, change_id: str) -> Expected | None:
    """One change's expected rows (its events through the change_id index)."""
    changes: dict[str, Expected] = {}
    for event in ledger.events(change_id=change_id):
        fold_one(changes, event.seq, change_id, event.ci, event.kind, event.actor, event.payload)
    return changes.get(change_id)


def fold_one(
    changes: dict[str, Expected],
    seq: int,
    change_id: str,
    ci: str | None,
    kind: str,
    actor: str,
    payload: dict[str, Any] | None,
) -> None:
    if kind == "change.created" and ci is None:
        changes[change_id] = replay.start(change_id, seq, payload or {})
    elif change_id in changes:
        replay.fold(changes[change_id], seq, kind, actor, ci, payload)


class TableCheck(NamedTuple):
    """What `verify_change_tables` found: how many changes the ledger rebuilt,
    the rows that disagree with it, each `(None, "CHG-000001: ...")` in change
    order, and `skipped` (why the tables could not be read) or None. No
    problem and `skipped` None: the tables are an exact index of the ledger.
    """

    changes: int  # changes rebuilt from the ledger
    problems: list[tuple[int | None, str]]  # (None, "change ID: ..."), by change
    skipped: str | None = None  # why the tables were not checked


def verify_change_tables(ledger: Ledger) -> TableCheck:
    """Every row that disagrees with the ledger, ordered by change, each
    problem naming its change first. A role that may read the ledger but not
    the change tables (docs/operations.md: `opskit_writer`) gets `skipped`, not an error."""
    engine = ledger.engine
    if not inspect(engine).has_table(store.changes.name):
        return TableCheck(0, [])  # no change was ever made here: no row to disagree
    try:
        tables = _read_tables(ledger)
    except (DBAPIError, ledger.reader().dbapi_error) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return TableCheck(0, [], f"the change tables cannot be read ({reason})")
    expected = expected_changes(ledger)
    problems = compare(expected, tables)
    ordered = [(None, text) for _, text in sorted(problems, key=lambda p: p[0])]
    return TableCheck(len(expected), ordered)


def disagreements(ledger: Ledger, change_id: str) -> list[str]:
    """What in one change's rows disagrees with the ledger (for `change show`)."""
    if not inspect(ledger.engine).has_table(store.changes.name):
        return []
    expected = expected_change(ledger, change_id)
    tables = _read_tables(ledger, change_id)
    return [text for _, text in compare({change_id: expected} if expected else {}, tables)]


def _read_tables(ledger: Ledger, change_id: str | None = None) -> dict[str, Any]:
    """The change tables' rows (of one change, or all). Host rows, the many,
    come grouped by change as {ci: (status, batch)}, read a chunk at a time
    through the ledger's reader."""

    def rows(table: Any, order: Any, columns: Iterable[str] = ()) -> list[Mapping[str, Any]]:
        picked = [table.c[c] for c in columns] or [table]
        query = select(*picked).order_by(*order)
        if change_id is not None:
            key = table.c.id if table is store.changes else table.c.change_id
            query = query.where(key == change_id)
        return list(conn.execute(query).mappings())

    hosts: dict[str, dict[str, tuple[str, int | None]]] = {}
    sql = f"SELECT change_id, ci, status, batch FROM {store.hosts.name}"
    params: tuple[str, ...] = ()
    if change_id is not None:
        sql, params = sql + " WHERE change_id = ?", (change_id,)
    for owner, ci, status, batch in ledger.reader().chunks(sql, params):
        hosts.setdefault(owner, {})[ci] = (status, batch)
    with ledger.engine.connect() as conn:
        return {
            "changes": rows(store.changes, [store.changes.c.id]),
            "hosts": hosts,
            "approvals": rows(
                store.approvals, [store.approvals.c.id], ("change_id", *_APPROVAL_FIELDS)
            ),
            "locks": rows(store.locks, [store.locks.c.ci]),
            "slots": rows(store.group_slots, [store.group_slots.c.id]),
        }


def compare(expected: Mapping[str, Expected], tables: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(change id, problem) for every row that disagrees with `expected`."""
    problems: list[tuple[str, str]] = []
    approvals: dict[str, list[Mapping[str, Any]]] = {}
    for row in tables["approvals"]:
        approvals.setdefault(row["change_id"], []).append(row)
    hosts = tables["hosts"]
    seen = set()
    for row in tables["changes"]:
        change_id = row["id"]
        seen.add(change_id)
        exp = expected.get(change_id)
        if exp is None:
            problems.append((change_id, f"change {change_id}: has a row in the changes table "
                             "but no change.created event in the ledger"))  # fmt: skip
            continue
        found = [
            *_change_row(exp, row),
            *_hosts(exp, hosts.get(change_id, {})),
            *_approvals(exp, approvals.get(change_id, [])),
        ]
        problems += [(change_id, f"change {change_id}: {p}") for p in found]
    for change_id, exp in expected.items():
        if change_id not in seen:
            problems.append(
                (change_id, f"change {change_id}: created in the ledger (seq "
                 f"{exp.created_seq}) but has no row in the changes table")
            )  # fmt: skip
    for change_id in sorted((set(hosts) | set(approvals)) - seen - set(expected)):
        problems.append((change_id, f"change {change_id}: host or approval rows of a change "
                         "the ledger does not know"))  # fmt: skip
    problems += _locks(expected, tables["locks"], tables["slots"])
    return problems


def _change_row(exp: Expected, row: Mapping[str, Any]) -> list[str]:
    problems = []
    if row["state"] != exp.state:
        problems.append(
            f"state is {row['state']!r} in the changes table; the ledger says "
            f"{exp.state!r} (seq {exp.state_seq})"
        )
    number = exp.change_id.rpartition("-")[2]
    if number.isdigit() and row["number"] != int(number):
        problems.append(f"number is {row['number']} in the changes table, not {int(number)}")
    for column, value in exp.columns.items():
        name, _, key = column.partition(".")
        actual = row.get(name)
        if key:
            actual = actual.get(key) if isinstance(actual, dict) else None
        if not _same(actual, value, column):
            problems.append(
                f"{column} {_quote(actual, column)}in the changes table differs from the "
                f"ledger{_quote(value, column, ' ')} (seq {exp.sources[column]})"
            )
    return problems


def _hosts(exp: Expected, rows: dict[str, tuple[str, int | None]]) -> list[str]:
    if exp.plan is None:
        return [f"{len(rows)} host row(s) but the ledger records no start"] if rows else []
    if rows == exp.hosts:
        return []  # the common case, compared in C
    problems = []
    unknown = set(rows) - set(exp.hosts)
    lagging_allowed = exp.state in replay.ACTIVE
    for ci, (want, planned) in exp.hosts.items():
        row = rows.get(ci)
        if row is None:
            # The rows are written just after `change.started` (`init_hosts`):
            # a runner that died in between left none for hosts still pending.
            if want != HostState.PENDING:
                problems.append(f"host {ci}: no row in change_hosts (ledger: {want})")
            continue
        status, batch = row
        if status != want and not (lagging_allowed and status in UNFINISHED):
            problems.append(
                f"host {ci}: status is {status!r} in change_hosts; the ledger says "
                f"{want!r} (seq {exp.host_seqs[ci]})"
            )
        if planned is not None and batch != planned:
            problems.append(
                f"host {ci}: batch is {batch} in change_hosts; the ledger says {planned}"
            )
    problems += [
        f"host {ci}: a change_hosts row the ledger does not know" for ci in sorted(unknown)
    ]
    return problems


_APPROVAL_FIELDS = ("kind", "approver", "comment", "binding_hash", "signature", "roles")


def _approvals(exp: Expected, rows: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    for number, (row, recorded) in enumerate(zip(rows, exp.approvals, strict=False), 1):
        for name in _APPROVAL_FIELDS:
            if name in recorded and not _same(row[name], recorded[name], name):
                problems.append(
                    f"approval row {number} ({row['kind']} by {row['approver']}): {name} "
                    f"differs from the ledger (seq {recorded['seq']})"
                )
    for row in rows[len(exp.approvals) :]:
        problems.append(f"the {row['kind']} row by {row['approver']} is not in the ledger")
    for recorded in exp.approvals[len(rows) :]:
        problems.append(
            f"the {recorded['kind']} by {recorded['approver']} (seq {recorded['seq']}) "
            "has no row in change_approvals"
        )
    return problems


def _locks(
    expected: Mapping[str, Expected],
    locks: Iterable[Mapping[str, Any]],
    slots: Iterable[Mapping[str, Any]],
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    held: dict[str, str] = {}
    for row in locks:
        ci, holder = row["ci"], row["change_id"]
        held[ci] = holder
        exp = expected.get(holder)
        if exp is None or ci not in exp.lockable():
            state = exp.state if exp else "unknown to the ledger"
            problems.append((holder, f"change {holder}: holds the lock on {ci}, but it is "
                             f"{state} in the ledger and not running there"))  # fmt: skip
    for change_id, exp in expected.items():
        for ci in sorted(exp.lockable()):
            if held.get(ci) != change_id:
                holder = f"held by {held[ci]}" if ci in held else "missing"
                problems.append((change_id, f"change {change_id}: is {exp.state} in the "
                                 f"ledger, but its lock on {ci} is {holder}"))  # fmt: skip
    for row in slots:
        exp = expected.get(row["change_id"])
        if exp is None or not exp.running or row["ci"] not in exp.hosts:
            problems.append((row["change_id"], f"change {row['change_id']}: holds slot "
                             f"{row['slot']} of group {row['group_name']} for {row['ci']}, "
                             "but is not running it in the ledger"))  # fmt: skip
    return problems


# -- comparing values ------------------------------------------------------------
def _same(actual: Any, recorded: Any, column: str = "") -> bool:
    """The row's value against the ledger's: the ledger holds the JSON subset
    (`records.jsonable`) with secrets masked, which match anything."""
    if column.startswith("window_"):
        return _instant(actual) == _instant(recorded)
    if actual == recorded:  # the common case, compared in C
        return True
    if _match(jsonable(actual), recorded):
        return True
    # Recorded before the one float rule (docs/ledger-format.md): 6 digits.
    legacy = _legacy_floats(actual)
    return legacy is not actual and _match(jsonable(legacy), recorded)


def _legacy_floats(value: Any) -> Any:
    """`value` with every float as the change process wrote it before the
    one float rule (`f"{v:.6g}"`); `value` itself when it holds no float."""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping):
        items = {k: _legacy_floats(v) for k, v in value.items()}
        changed = any(items[k] is not v for k, v in value.items())
        return items if changed else value
    if isinstance(value, list | tuple):
        listed = [_legacy_floats(v) for v in value]
        changed = any(a is not b for a, b in zip(listed, value, strict=True))
        return listed if changed else value
    return value


def _match(actual: Any, recorded: Any) -> bool:
    if isinstance(recorded, str) and MASK in recorded:
        return True
    if isinstance(recorded, dict):
        return (
            isinstance(actual, dict)
            and set(actual) == set(recorded)
            and all(_match(actual[k], v) for k, v in recorded.items())
        )
    if isinstance(recorded, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(recorded)
            and all(_match(a, r) for a, r in zip(actual, recorded, strict=True))
        )
    return actual == recorded and type(actual) is type(recorded)


def _instant(value: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _quote(value: Any, column: str, prefix: str = "") -> str:
    """A short scalar quoted (with a trailing space), else nothing: long or
    structured values (parameters, diffs) are not repeated in a message."""
    if column == "parameters" or not isinstance(value, str | int | type(None)):
        return ""
    text = repr(value)
    if len(text) > _SHOWN:
        return ""
    return f"{prefix}{text}" if prefix else f"{text} "
