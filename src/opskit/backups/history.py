"""A CI's configuration backups as read from the ledger, and how one is named.

Two kinds of ledger event are backups of a CI's configuration:

- ``backup.taken``: a backup run (`opskit.backups.take_backups`), with the
  running configuration (and the startup one, where the platform has one)
  as blobs named ``running`` / ``startup``;
- ``host.backup``: the change engine's pre-change snapshot, with the blob
  ``config`` (a snapshot of files, on a Linux host, is not a configuration
  backup and is left out).

`backup_history(ledger, ci)` merges both, oldest first, into `Backup` values;
nothing is copied, so the change engine's snapshots are never stored twice.
A REF names one of them (`resolve`):

- ``latest`` (the default), ``latest~N`` (N backups before the latest);
- a ledger sequence number (``1234``, also ``#1234``);
- a configuration hash or its prefix (``sha256:3f2a9c``, at least 6 hex digits);
- an ISO date or time (``2026-12-06``, ``2026-12-06T03:00+00:00``): the
  latest backup at or before it (a bare date means the end of that day, UTC).

Example::

    >>> [b.label for b in backup_history(ledger, "lab-sw01")]
    ['#12 backup', '#57 CHG-000003 snapshot', '#80 backup (unchanged)']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from opskit import configdiff
from opskit.errors import UsageError

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger
    from opskit.ledger.model import Event

BACKUP_KIND = "backup.taken"
BACKUP_FAILED_KIND = "backup.failed"
SNAPSHOT_KIND = "host.backup"
KINDS = (BACKUP_KIND, SNAPSHOT_KIND)

_LATEST = re.compile(r"latest(?:~(\d{1,6}))?\Z")
_SEQ = re.compile(r"#?(\d{1,18})\Z")
_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{6,64})\Z")


@dataclass(frozen=True)
class Backup:
    """One stored configuration of a CI: where it is in the ledger and what it holds.

    ``origin`` is ``backup`` (a backup run) or ``change`` (a change's
    pre-change snapshot, ``change_id`` set). ``blob`` is the ledger blob of
    the configuration ``source`` (running, or startup), ``hash`` its
    normalised configuration hash (`opskit.configdiff.config_hash`).
    """

    seq: int
    at: str
    actor: str
    ci: str
    origin: str
    source: str
    platform: str | None
    hash: str | None
    blob: str
    change_id: str | None = None
    unchanged: bool = False
    startup_blob: str | None = None

    @property
    def label(self) -> str:
        what = f"{self.change_id} snapshot" if self.origin == "change" else "backup"
        return f"#{self.seq} {what}" + (" (unchanged)" if self.unchanged else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "ci": self.ci,
            "origin": self.origin,
            "change_id": self.change_id,
            "source": self.source,
            "platform": self.platform,
            "hash": self.hash,
            "blob": self.blob,
            "startup_blob": self.startup_blob,
            "unchanged": self.unchanged,
        }


def from_event(event: Event) -> Backup | None:
    """The backup an event records (None: not a configuration backup)."""
    blobs = event.blobs
    payload = event.payload
    if event.kind == BACKUP_KIND and "running" in blobs:
        return Backup(
            seq=event.seq,
            at=event.at_text,
            actor=event.actor,
            ci=event.ci or "",
            origin="backup",
            source="running",
            platform=payload.get("platform"),
            hash=payload.get("hash"),
            blob=blobs["running"],
            unchanged=bool(payload.get("unchanged")),
            startup_blob=blobs.get("startup"),
        )
    if event.kind == SNAPSHOT_KIND and "config" in blobs:
        snapshot = payload.get("snapshot") or {}
        return Backup(
            seq=event.seq,
            at=event.at_text,
            actor=event.actor,
            ci=event.ci or "",
            origin="change",
            source=str(snapshot.get("source") or "running"),
            platform=snapshot.get("platform"),
            hash=snapshot.get("hash"),
            blob=blobs["config"],
            change_id=event.change_id,
        )
    return None


def backup_history(ledger: Ledger, ci: str) -> list[Backup]:
    """Every configuration backup of `ci`, oldest first (both kinds)."""
    return [b for b in _backups(ledger.events(ci=ci)) if b.ci == ci]


def latest_backups(ledger: Ledger, cis: Iterable[str] | None = None) -> dict[str, Backup]:
    """The latest backup of each CI (all CIs when `cis` is None), read in
    one pass per event kind rather than one query per CI."""
    wanted = None if cis is None else set(cis)
    latest: dict[str, Backup] = {}
    for kind in KINDS:
        for backup in _backups(ledger.events(kind=kind)):
            if wanted is not None and backup.ci not in wanted:
                continue
            known = latest.get(backup.ci)
            if known is None or backup.seq > known.seq:
                latest[backup.ci] = backup
    return latest


def _backups(events: Iterator[Event]) -> Iterator[Backup]:
    for event in events:
        if event.kind in KINDS and event.ci:
            backup = from_event(event)
            if backup is not None:
                yield backup


def resolve(history: list[Backup], ref: str | None, *, ci: str) -> Backup:
    """The backup `ref` names in `history` (see the module docstring); a
    UsageError naming the REF when it names none."""
    if not history:
        raise UsageError(f"{ci}: no backup recorded (opskit backup run --select {ci})")
    text = (ref or "latest").strip()
    latest = _LATEST.match(text)
    if latest:
        back = int(latest.group(1) or 0)
        if back >= len(history):
            raise UsageError(f"{text!r}: {ci} has only {len(history)} backup(s)")
        return history[-1 - back]
    seq = _SEQ.match(text)
    if seq:
        found = [b for b in history if b.seq == int(seq.group(1))]
        if found:
            return found[0]
        raise UsageError(f"{text!r}: no backup of {ci} is ledger record #{seq.group(1)}")
    digest = _HASH.match(text)
    if digest:
        prefix = "sha256:" + digest.group(1)
        found = [b for b in history if (b.hash or "").startswith(prefix)]
        if found:
            return found[-1]
        raise UsageError(f"{text!r}: no backup of {ci} has that configuration hash")
    moment = _moment(text)
    found = [b for b in history if b.at <= moment]
    if not found:
        raise UsageError(f"{text!r}: {ci} has no backup at or before {moment}")
    return found[-1]


def _moment(text: str) -> str:
    """An ISO date or time as the ledger's stored time text (UTC)."""
    try:
        if len(text) == 10:
            # The end of that day: the day after, less a microsecond.
            day = datetime.fromisoformat(text).date()
            moment = datetime.combine(day, time(23, 59, 59, 999999), UTC)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                raise UsageError(f"{text!r}: give a timezone offset (e.g. +00:00)")
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except (ValueError, OverflowError):  # not a date, or beyond what UTC can show
        raise UsageError(
            f"backup REF {text!r}: use latest, latest~N, a ledger seq, a configuration "
            "hash (sha256:...) or an ISO date"
        ) from None


def config_of(ledger: Ledger, backup: Backup, *, startup: bool = False) -> str:
    """The configuration text a backup holds (its startup one with `startup`)."""
    blob = backup.startup_blob if startup else backup.blob
    if blob is None:
        raise UsageError(f"{backup.ci}: backup {backup.label} holds no startup configuration")
    return ledger.get_blob(blob).decode("utf-8", "replace")


def backup_diff(ledger: Ledger, before: Backup, after: Backup) -> str:
    """The unified diff between two backups, normalised (volatile lines such
    as timestamps ignored: `opskit.configdiff.normalize`); "" when equal."""
    platform = after.platform or before.platform
    return configdiff.diff(
        config_of(ledger, before),
        config_of(ledger, after),
        platform,
        before_name=f"{before.ci} {before.label} {before.at}",
        after_name=f"{after.ci} {after.label} {after.at}",
    )


__all__ = [
    "BACKUP_FAILED_KIND",
    "BACKUP_KIND",
    "SNAPSHOT_KIND",
    "Backup",
    "backup_diff",
    "backup_history",
    "config_of",
    "from_event",
    "latest_backups",
    "resolve",
]
