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
    return link if isinstance(link, dict) else None


def next_link(batch: Batch, change_id: str) -> dict[str, Any]:
    """The `change_link` of the next event of `change_id` appended to `batch`
    (inside its write transaction: no other writer can come between)."""
    batch.flush()  # the batch's own earlier events are then visible
    sql = batch.ledger.sql
    cursor = batch.cursor
    cursor.execute(
        sql(
            f"SELECT seq, hash, record FROM {EVENTS} WHERE change_id = ? ORDER BY seq DESC LIMIT 1"
        ),
        (change_id,),
    )
    row = cursor.fetchone()
    if row is None:
        return {"count": 0, "digest": EMPTY_DIGEST, "prev_hash": None, "prev_seq": None}
    seq, hash_, record = int(row[0]), row[1], row[2]
    last = _link_of(record)
    if last is not None and isinstance(last.get("count"), int):
        count, digest = last["count"] + 1, fold_one(last["digest"], seq, hash_)
    else:  # a change begun before format 2: fold over all its events once
        cursor.execute(
            sql(f"SELECT seq, hash FROM {EVENTS} WHERE change_id = ? ORDER BY seq"), (change_id,)
        )
        pairs = [(int(s), h) for s, h in cursor.fetchall()]
        count, digest = len(pairs), fold(pairs)
    return {"count": count, "digest": digest, "prev_hash": hash_, "prev_seq": seq}
