"""Change links: every event of a change commits to all the change's earlier events.

Ledger format 2 (docs/ledger-format.md) adds a payload field ``change_link``
to every event that has a change id::

    "change_link": {"count": 2, "digest": "9c1f...", "prev_hash": "5e0a...", "prev_seq": 41}

- ``prev_seq``, ``prev_hash``: the sequence number and chain hash of the
  change's previous event (both null on its first event): the back-link;
- ``count``: how many events of the change come before this one;
- ``digest``: the fold of those events, oldest first: starting from 64
  zeros, ``digest = SHA-256(digest || " " || decimal seq || " " || hash)``
  over the ASCII text, in lowercase hex.

So the latest event of a change commits to the whole list of (seq, hash)
of the events before it, and the closing event (``change.closed``) to all
the events of the change: a bundle that withholds, reorders or invents an
event cannot fold to the digest a disclosed event carries. Events written
before format 2 have no link; the first linked event of such a change folds
over all of them.

Example:

    >>> fold([(3, "ab" * 32), (7, "cd" * 32)])
    '5f0e...'
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from opskit.ledger.store import EVENTS

if TYPE_CHECKING:
    from opskit.ledger.core import Batch

LINK_FIELD = "change_link"
EMPTY_DIGEST = "0" * 64


def fold_one(digest: str, seq: int, hash_: str) -> str:
    """The digest after one more event."""
    return hashlib.sha256(f"{digest} {seq} {hash_}".encode()).hexdigest()


def fold(events: Iterable[tuple[int, str]], digest: str = EMPTY_DIGEST) -> str:
    """The digest of (seq, hash) pairs, oldest first."""
    for seq, hash_ in events:
        digest = fold_one(digest, seq, hash_)
    return digest


def _link_of(record: str) -> dict[str, Any] | None:
    link = json.loads(record).get("payload", {}).get(LINK_FIELD)
    return link if isinstance(link, dict) and isinstance(link.get("count"), int) else None


class _Known(NamedTuple):
    """What a link computed here says, as a fact of the chain: the change's
    events before `seq`, on the chain whose record seq-1 has the chain hash
    `prev_hash`, are `count` events folding to `digest`. That chain hash
    commits to every record before `seq`, so the fact holds on any chain
    that has it, whether or not the event at `seq` was written."""

    seq: int
    prev_hash: str
    count: int
    digest: str


# By ledger: the _Known of the latest link each change got here, so that the
# next link folds one event onto it instead of parsing the previous record.
_KNOWN: weakref.WeakKeyDictionary[Any, dict[str, _Known]] = weakref.WeakKeyDictionary()
# A long-lived process forgets them all past this many changes (it only
# costs one parse of a record per change).
KNOWN_LIMIT = 10_000


def next_link(batch: Batch, change_id: str) -> dict[str, Any]:
    """The `change_link` of the next event of `change_id` appended to `batch`
    (inside its write transaction: no other writer can come between).

    The change's latest event is the batch's own last one when it has one
    (not yet written); else the last one this ledger committed, when the
    batch starts on the head of that commit; else it is read from the events
    after the one the previous link here was for (a range of the primary
    key); else by the change id index. Its own link is known without reading
    its record when this ledger computed it, on the same chain up to that
    event."""
    known = _KNOWN.setdefault(batch.ledger, {})
    last = known.get(change_id)
    row = _in_batch(batch, change_id) or _in_last_commit(batch, change_id)
    if row is None and last is not None:
        # `+change_id`: SQLite must walk the seq range, not the change's index entries.
        column = "+change_id" if batch.ledger.dialect == "sqlite" else "change_id"
        row = _latest(batch, f"seq >= ? AND {column} = ?", (last.seq, change_id))
    if row is None:
        row = _latest(batch, "change_id = ?", (change_id,))
    if row is None:
        link = {"count": 0, "digest": EMPTY_DIGEST, "prev_hash": None, "prev_seq": None}
    else:
        seq, prev_hash, hash_, record = int(row[0]), row[1], row[2], row[3]
        if last is not None and last.seq == seq and last.prev_hash == prev_hash:
            count, digest = last.count + 1, fold_one(last.digest, seq, hash_)
            link = {"count": count, "digest": digest, "prev_hash": hash_, "prev_seq": seq}
        else:
            link = _after(batch, change_id, seq, hash_, record)
    if len(known) >= KNOWN_LIMIT and change_id not in known:
        known.clear()
    known[change_id] = _Known(batch.seq + 1, batch.head, link["count"], link["digest"])
    return link


def _in_batch(batch: Batch, change_id: str) -> tuple[Any, ...] | None:
    """(seq, prev_hash, hash, record) of the change's latest event among the
    batch's unwritten rows, or None."""
    for row in reversed(batch.unwritten):
        if row[4] == change_id:
            return row[0], row[6], row[7], row[8]
    return None


def _in_last_commit(batch: Batch, change_id: str) -> tuple[Any, ...] | None:
    """(seq, prev_hash, hash, None) of the change's latest event when it is
    among the events of this ledger's last commit and the batch starts on
    that commit's head (its chain hash commits to every record up to it: no
    event came after them), and the batch flushed none of its rows (those are
    found by reading them); else None."""
    last_commit = batch.ledger.last_commit
    if last_commit is None or last_commit[0] != batch.start_head:
        return None
    if batch.seq - len(batch.unwritten) != batch.start_seq:
        return None
    for event in reversed(last_commit[1]):
        if event.change_id == change_id:
            return event.seq, event.prev_hash, event.hash, None
    return None


def _latest(batch: Batch, where: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    batch.cursor.execute(
        batch.ledger.sql(
            f"SELECT seq, prev_hash, hash, record FROM {EVENTS} "
            f"WHERE {where} ORDER BY seq DESC LIMIT 1"
        ),
        params,
    )
    row = batch.cursor.fetchone()
    return tuple(row) if row is not None else None


def _after(
    batch: Batch, change_id: str, seq: int, hash_: str, record: str | None
) -> dict[str, Any]:
    """The link of the event that follows the change's event (seq, hash_,
    record: read here when None)."""
    if record is None:
        batch.cursor.execute(batch.ledger.sql(f"SELECT record FROM {EVENTS} WHERE seq = ?"), (seq,))
        (record,) = batch.cursor.fetchone()
    last = _link_of(record)
    if last is not None:
        count, digest = last["count"] + 1, fold_one(last["digest"], seq, hash_)
    else:  # a change begun before format 2: fold over all its events once
        # Written rows from the database, unwritten ones from the batch: a
        # flush here would write the commit's earlier events after the
        # savepoint of a guarded event, and its refusal would undo them.
        batch.cursor.execute(
            batch.ledger.sql(f"SELECT seq, hash FROM {EVENTS} WHERE change_id = ? ORDER BY seq"),
            (change_id,),
        )
        pairs = [(int(s), h) for s, h in batch.cursor.fetchall()]
        pairs += [(int(row[0]), row[7]) for row in batch.unwritten if row[4] == change_id]
        count, digest = len(pairs), fold(pairs)
    return {"count": count, "digest": digest, "prev_hash": hash_, "prev_seq": seq}
