"""Taking configuration backups: read-only, through the connectors.

`take_backups(ws, actor, select=...)` fetches each selected CI's running
configuration (and its startup configuration where the platform keeps one)
and records one ``backup.taken`` event per CI with the configurations as
ledger blobs. The ledger stores a blob once per content: an unchanged
configuration adds a record (``unchanged: true``), not a blob. A CI that
cannot be read gets a ``backup.failed`` record with the reason; the run
goes on. Nothing on a device changes: only `get_config` is called.

Example::

    >>> run = take_backups(ws, "alice", select="platform:cisco_ios", inventory="lab")
    >>> [(r.ci, r.status) for r in run.results]
    [('lab-sw01', 'taken'), ('lab-sw02', 'unchanged'), ('lab-sw03', 'unreachable')]
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit import configdiff
from opskit.backups.history import BACKUP_FAILED_KIND, BACKUP_KIND, latest_backups
from opskit.connectors import Capability, capabilities
from opskit.errors import ConnectorError, OpskitError
from opskit.hoststate import HostState
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory.model import CI
    from opskit.ledger.core import Ledger
    from opskit.workspace import Workspace

#: The connector that reads configurations, in order of preference.
CONFIG_CONNECTORS = ("netmiko", "napalm")
#: What a device answers when it keeps no startup configuration.
NO_STARTUP = ("startup-config is not present", "no startup config", "% Startup-config")
DEFAULT_CONCURRENCY = 20


@dataclass
class Fetched:
    """What was read from one device (or why nothing could be)."""

    ci: str
    platform: str
    connector: str | None = None
    running: str | None = None
    startup: str | None = None
    status: str = HostState.OK  # or SKIPPED, or a connection failure, or FAILED
    reason: str | None = None


@dataclass
class BackupResult:
    """One CI's outcome: ``taken``, ``unchanged``, ``skipped`` or a failure
    status (``unreachable``, ``failed``, ...), with the ledger record."""

    ci: str
    status: str
    seq: int | None = None
    hash: str | None = None
    reason: str | None = None
    startup: bool = False

    @property
    def ok(self) -> bool:
        return self.status in ("taken", "unchanged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "status": self.status,
            "seq": self.seq,
            "hash": self.hash,
            "startup": self.startup,
            "reason": self.reason,
        }


@dataclass
class BackupRun:
    results: list[BackupResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok or r.status == HostState.SKIPPED for r in self.results)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.results:
            counts[result.status] = counts.get(result.status, 0) + 1
        return dict(sorted(counts.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "results": [r.to_dict() for r in self.results]}


def config_connector(platform: str) -> str | None:
    """The first connector that can fetch `platform`'s configuration."""
    for name in CONFIG_CONNECTORS:
        if Capability.GET_CONFIG in capabilities(name, platform):
            return name
    return None


def fetch(ci: CI, pool: ConnectionPool) -> Fetched:
    """Reads one CI's configurations through the pool (never raises a
    connector error: the outcome says what happened)."""
    fetched = Fetched(ci.name, ci.platform)
    name = config_connector(ci.platform)
    if name is None:
        fetched.status, fetched.reason = (
            HostState.SKIPPED,
            f"no connector fetches {ci.platform} configs",
        )
        return fetched
    fetched.connector = name
    try:
        with pool.session(ci, name) as conn:
            fetched.running = conn.get_config("running")
            if Capability.SAVE in conn.capabilities:
                # A platform that saves has a startup configuration.
                startup = conn.get_config("startup")
                if not any(marker.lower() in startup.lower() for marker in NO_STARTUP):
                    fetched.startup = startup
    except ConnectorError as exc:
        fetched.status = getattr(exc, "status", HostState.FAILED)
        fetched.reason = REDACTOR.redact(str(exc))
    except OpskitError as exc:
        fetched.status, fetched.reason = HostState.FAILED, REDACTOR.redact(str(exc))
    return fetched


def record(ledger: Ledger, fetched: Fetched, actor: str, previous_hash: str | None) -> BackupResult:
    """Records one CI's backup (or its failure) in the ledger."""
    if fetched.running is None:
        event = ledger.append(
            BACKUP_FAILED_KIND,
            actor=actor,
            ci=fetched.ci,
            payload={"status": str(fetched.status), "reason": fetched.reason},
        )
        return BackupResult(fetched.ci, str(fetched.status), event.seq, reason=fetched.reason)
    digest = configdiff.config_hash(fetched.running, fetched.platform)
    blobs = {"running": fetched.running}
    if fetched.startup is not None:
        blobs["startup"] = fetched.startup
    payload = {
        "platform": fetched.platform,
        "connector": fetched.connector,
        "source": "running",
        "hash": digest,
        "bytes": len(fetched.running.encode()),
        "startup_hash": (
            configdiff.config_hash(fetched.startup, fetched.platform)
            if fetched.startup is not None
            else None
        ),
        "unchanged": digest == previous_hash,
    }
    try:
        event = ledger.append(BACKUP_KIND, actor=actor, ci=fetched.ci, payload=payload, blobs=blobs)
    except OpskitError as exc:  # a configuration holding a secret is refused
        reason = f"not recorded: {REDACTOR.redact(str(exc))}"
        failed = Fetched(fetched.ci, fetched.platform, status=HostState.FAILED, reason=reason)
        return record(ledger, failed, actor, None)
    status = "unchanged" if payload["unchanged"] else "taken"
    return BackupResult(fetched.ci, status, event.seq, digest, startup=fetched.startup is not None)


def take_backups(
    ws: Workspace,
    actor: str,
    *,
    select: str | None = None,
    inventory: str | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    progress: Callable[[BackupResult], None] | None = None,
) -> BackupRun:
    """Backs up every selected CI (the policy's inventory by default)."""
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory import load_workspace_inventory
    from opskit.ledger.core import Ledger

    inv = load_workspace_inventory(ws, inventory or ws.policy.inventory)
    cis = inv.select(select)
    ledger = Ledger.open(ws)
    previous = {name: b.hash for name, b in latest_backups(ledger, [c.name for c in cis]).items()}
    run = BackupRun()
    width = max(1, min(concurrency, len(cis) or 1))
    with ConnectionPool(width) as pool, ThreadPoolExecutor(max_workers=width) as threads:
        for fetched in threads.map(lambda ci: fetch(ci, pool), cis):
            result = record(ledger, fetched, actor, previous.get(fetched.ci))
            run.results.append(result)
            if progress is not None:
                progress(result)
    return run


__all__ = ["BackupResult", "BackupRun", "config_connector", "fetch", "take_backups"]
