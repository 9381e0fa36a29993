"""Configuration backups as a first-class record in the ledger.

Public API:

- `take_backups(ws, actor, select=, inventory=)` -> `BackupRun`: the running
  (and startup) configuration of each selected CI, read-only through the
  connectors, recorded as ``backup.taken`` events with deduplicated blobs
  (``backup.failed`` with the reason when a CI cannot be read).
- `backup_history(ledger, ci)` -> [`Backup`]: a CI's backups, oldest first,
  the change engine's pre-change snapshots (``host.backup``) included.
- `latest_backups(ledger, cis)` -> {ci: `Backup`}; `resolve(history, ref,
  ci=)` -> `Backup` (REF: latest, latest~N, a seq, a hash prefix, a date);
  `config_of(ledger, backup)` -> text; `backup_diff(ledger, a, b)` -> the
  normalised unified diff.
- `restore_change(svc, ci, ref, requester=)` -> a draft change request that
  restores the backup through the change process (`linechange`).

Example:
    >>> run = take_backups(ws, "alice", select="group:lab_switches", inventory="lab")
    >>> run.counts()
    {'taken': 3, 'unchanged': 1}
"""

from opskit.backups.history import (
    BACKUP_FAILED_KIND,
    BACKUP_KIND,
    SNAPSHOT_KIND,
    Backup,
    backup_diff,
    backup_history,
    config_of,
    latest_backups,
    resolve,
)
from opskit.backups.restore import restore_change
from opskit.backups.take import BackupResult, BackupRun, take_backups

__all__ = [
    "BACKUP_FAILED_KIND",
    "BACKUP_KIND",
    "SNAPSHOT_KIND",
    "Backup",
    "BackupResult",
    "BackupRun",
    "backup_diff",
    "backup_history",
    "config_of",
    "latest_backups",
    "resolve",
    "restore_change",
    "take_backups",
]
