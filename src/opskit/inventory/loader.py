"""Loading an inventory folder: parse, validate, merge, check, all or nothing.

`load_inventory(path)` reads every *.yaml / *.yml file under `path` (hidden
files and folders excepted, in path order) and returns an `Inventory`, or
raises one `InventoryError` naming the file, the line and the field; nothing
partial is ever returned. For example::

    >>> inv = load_inventory("inventories/example")
    >>> sorted(inv.cis)[:2], inv.digest[:7]
    (['access-sw1', 'access-sw2'], 'sha256:')

The steps live in their own modules: `opskit.inventory.validation` parses
and validates each file (yaml-rs and a compiled JSON Schema, about 20x faster
than PyYAML plus jsonschema; the line of a fault from the slow, line-aware
parser), `opskit.inventory.builder` merges defaults, groups and CIs by
precedence and checks names and relationships, and `opskit.inventory.cache`
keeps a parsed and validated inventory (pickle) under `cache_dir`, keyed by a
digest of every file's path and bytes, so any edit misses the cache.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import InventoryError, WorkspaceError
from opskit.inventory.builder import InventoryBuilder
from opskit.inventory.cache import cache_file_for, cache_key, read_cache, write_cache
from opskit.inventory.gcpause import paused_gc
from opskit.inventory.validation import check_and_validate, parse

if TYPE_CHECKING:
    from opskit.inventory.core import Inventory
    from opskit.workspace import Workspace

YAML_SUFFIXES = (".yaml", ".yml")


# -- public entry points --------------------------------------------------------
def load_inventory(path: str | Path, *, cache_dir: Path | None = None) -> Inventory:
    """Loads and validates the inventory folder `path` (every *.yaml / *.yml in it,
    recursively, in path order). Raises InventoryError naming file, line, field."""
    with paused_gc():
        return _load(Path(path), cache_dir)


def _load(root: Path, cache_dir: Path | None) -> Inventory:
    from opskit.inventory.core import Inventory

    if not root.is_dir():
        raise InventoryError(f"{root}: no such inventory folder")
    files = _inventory_files(root)
    if not files:
        raise InventoryError(f"{root}: no *.yaml files in the inventory folder")
    contents = [_read(file) for file in files]
    key = cache_key(root, files, contents)
    cache_file = cache_file_for(cache_dir, root) if cache_dir is not None else None
    if cache_file is not None:
        cached = read_cache(cache_file, key)
        if cached is not None:
            return cached
    texts = [_decode(file, raw) for file, raw in zip(files, contents, strict=True)]
    parsed = [
        check_and_validate(file, text, data)
        for file, text, data in zip(files, texts, map(parse, texts), strict=True)
    ]
    inventory: Inventory = InventoryBuilder(root, files, texts, parsed).build(Inventory)
    if cache_file is not None:
        write_cache(cache_file, key, inventory)
    return inventory


def load_workspace_inventory(ws: Workspace, name: str | None = None) -> Inventory:
    """Loads inventory `name` (default: the policy's `inventory`) of a workspace,
    cached under the workspace's state folder. A name is one folder under
    `inventories/`: `.`, `..` or a path would load folders that are not an
    inventory (all of them at once, the workspace itself)."""
    from opskit.policy_check import INVENTORY_NAME

    if name is not None and not INVENTORY_NAME.match(name):
        have = sorted(p.name for p in ws.inventories_dir.glob("*") if p.is_dir())
        listed = f" (have: {', '.join(have)})" if have else ""
        raise WorkspaceError(
            f"{name!r} is not an inventory name: use a folder name under inventories/{listed}"
        )
    path = ws.inventory_path(name)
    return load_inventory(_display_path(path), cache_dir=ws.state_dir / "cache")


# -- files ----------------------------------------------------------------------
def _inventory_files(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden folders (.git, editors' state) are not part of the inventory.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in filenames:
            if filename.endswith(YAML_SUFFIXES) and not filename.startswith("."):
                found.append(Path(dirpath) / filename)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _display_path(path: Path) -> Path:
    """Shorter paths in messages: relative to the current folder when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise InventoryError(f"cannot read: {exc.strerror}", file=file) from None


def _decode(file: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InventoryError("not UTF-8 text", file=file, line=line) from None
