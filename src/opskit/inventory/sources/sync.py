"""Sync an inventory folder from a source of truth, all or nothing.

`sync_inventory(ws, "nautobot", url=..., token_ref=SecretRef(env="NAUTOBOT_TOKEN"),
inventory="nautobot")` reads the source, maps every object (any fault: one
`SyncError` line, nothing written), compares the result with the folder on
disk and, unless `dry_run`, writes the folder through a validated staging
copy. It returns a `SyncResult`, e.g.

    SyncResult(folder=Path("inventories/nautobot"), written=True,
               plan=SyncPlan(added=["edge-rtr3"], ...), header="# Synced from ...")

The token is resolved from its secret reference and registered for
redaction; it is never written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opskit.inventory.sources.plan import SyncPlan, plan_sync
from opskit.inventory.sources.records import MappingTables, SyncError, to_inventory_data
from opskit.secrets import SecretRef
from opskit.workspace import Workspace

HEADER_MARK = "# Synced from "


@dataclass(frozen=True)
class SyncResult:
    folder: Path
    written: bool
    plan: SyncPlan
    header: str


def _fetchers() -> dict[str, Callable[..., Any]]:
    from opskit.inventory.sources.nautobot import fetch_nautobot

    return {"nautobot": fetch_nautobot}


def fetcher(source: str) -> Callable[..., Any]:
    """The reader of a source of truth by name; unknown: one `SyncError` line."""
    fetch = _fetchers().get(source)
    if fetch is None:
        raise SyncError(f"unknown source {source!r} (known: {', '.join(sorted(_fetchers()))})")
    return fetch


def source_url(source: str, url: str) -> str:
    """`url` without its trailing slash, checked like a webhook's (http or
    https, a host, no credentials: the URL goes into the inventory's header,
    and the token is a secret reference); else one `SyncError` line.

    >>> source_url("nautobot", "https://nautobot.example.org/")
    'https://nautobot.example.org'
    """
    from opskit.notify.events import url_problem

    problem = url_problem(url, f"a {source} URL")
    if problem:
        raise SyncError(problem, field="url")
    return url.rstrip("/")


def sync_inventory(
    ws: Workspace,
    source: str,
    *,
    url: str,
    token_ref: SecretRef,
    inventory: str,
    filters: Mapping[str, list[str]] | None = None,
    dry_run: bool = False,
) -> SyncResult:
    fetch = fetcher(source)
    base = source_url(source, url)
    folder = ws.inventories_dir / inventory
    file = folder / f"{source}.yaml"
    before = _synced_cis(folder, file)
    tables = MappingTables.load(ws.root / "sot" / f"{source}.yaml")
    token = token_ref.resolve(base_dir=ws.root)
    snapshot = fetch(base, token, filters, relationships=tables.relationships)
    data, notes = to_inventory_data(snapshot.objects, tables)
    plan = plan_sync(before, data["cis"])
    plan.notes = notes
    header = (
        f"{HEADER_MARK}{snapshot.source} {snapshot.url} (API version {snapshot.api_version}) "
        f"at {datetime.now(UTC).isoformat(timespec='seconds')} by `opskit inventory sync`.\n"
        f"# Do not edit: the next sync replaces this file; overrides: sot/{source}.yaml.\n"
    )
    written = False
    if not dry_run and (not plan.empty or not file.exists()):
        _write_folder(folder, file.name, header, data)
        written = True
    return SyncResult(folder, written, plan, header)


def _synced_cis(folder: Path, file: Path) -> list[dict[str, Any]]:
    """The CIs of the last sync; refuses a folder that a sync did not write."""
    from opskit.yamlfile import load_yaml

    if not folder.exists():
        return []
    others = [p.name for p in folder.iterdir() if p.name != file.name]
    if others or not file.exists() or not file.read_text().startswith(HEADER_MARK):
        raise SyncError(
            "not written by `opskit inventory sync`; choose another --inventory", file=folder
        )
    data, _locator = load_yaml(file)
    return list((data or {}).get("cis") or [])


def _write_folder(folder: Path, name: str, header: str, data: Mapping[str, Any]) -> None:
    """Writes the inventory file through a validated staging copy
    (`install_folder`); an invalid result is a SyncError naming the file."""
    from opskit.errors import InventoryError
    from opskit.inventory.ansible import bare_message, install_folder
    from opskit.yamlfile import dump_yaml

    def write(staging: Path) -> None:
        (staging / name).write_text(header + dump_yaml(dict(data)), encoding="utf-8")

    try:
        install_folder(folder, write)
    except InventoryError as exc:
        raise SyncError(
            bare_message(exc), file=folder / name, line=exc.line, field=exc.field
        ) from None
