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
from typing import TYPE_CHECKING, Any

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


# The seq of a recent event of each change, by ledger: where to start looking
# for the change's latest event (a lower bound; a stale or rolled-back one
# only costs the full query).
_RECENT: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


def next_link(batch: Batch, change_id: str) -> dict[str, Any]:
    """The `change_link` of the next event of `change_id` appended to `batch`
    (inside its write transaction: no other writer can come between).

    The change's latest event is the batch's own last one when it has one
    (not yet written); else it is read from the events after a recent one of
    the change (a range of the primary key); else by the change id index."""
    for row in reversed(batch._rows):  # the batch's unwritten rows
        if row[4] == change_id:
            return _after(batch, change_id, int(row[0]), row[7], row[8])
    recent = _RECENT.setdefault(batch.ledger, {})
    row = None
    if change_id in recent:
        # `+change_id`: SQLite must walk the seq range, not the change's index entries.
        column = "+change_id" if batch.ledger.dialect == "sqlite" else "change_id"
        row = _latest(batch, f"seq >= ? AND {column} = ?", (recent[change_id], change_id))
    if row is None:
        row = _latest(batch, "change_id = ?", (change_id,))
    if row is None:
        return {"count": 0, "digest": EMPTY_DIGEST, "prev_hash": None, "prev_seq": None}
    recent[change_id] = int(row[0])
    return _after(batch, change_id, int(row[0]), row[1], row[2])


def _latest(batch: Batch, where: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    batch.cursor.execute(
        batch.ledger.sql(
            f"SELECT seq, hash, record FROM {EVENTS} WHERE {where} ORDER BY seq DESC LIMIT 1"
        ),
        params,
    )
    row = batch.cursor.fetchone()
    return tuple(row) if row is not None else None


def _after(batch: Batch, change_id: str, seq: int, hash_: str, record: str) -> dict[str, Any]:
    """The link of the event that follows the change's event (seq, hash_, record)."""
    last = _link_of(record)
    if last is not None:
        count, digest = last["count"] + 1, fold_one(last["digest"], seq, hash_)
    else:  # a change begun before format 2: fold over all its events once
        batch.flush()
        batch.cursor.execute(
            batch.ledger.sql(f"SELECT seq, hash FROM {EVENTS} WHERE change_id = ? ORDER BY seq"),
            (change_id,),
        )
        pairs = [(int(s), h) for s, h in batch.cursor.fetchall()]
        count, digest = len(pairs), fold(pairs)
    return {"count": count, "digest": digest, "prev_hash": hash_, "prev_seq": seq}
