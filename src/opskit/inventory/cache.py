"""The inventory cache: a parsed and validated inventory, pickled.

Keyed by a digest of every file's path and bytes (and the layout of the
cached classes), so any edit misses the cache. The cache lives in the
workspace's own state folder, written only by opskit; a stale, foreign or
corrupt cache is simply ignored, and a read-only folder only costs speed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.inventory.model import CI, Group, Relationship

if TYPE_CHECKING:
    from opskit.inventory.core import Inventory

# Bumped whenever the cached form changes, so that old caches are ignored.
CACHE_FORMAT = 1


def cache_key(root: Path, files: list[Path], contents: list[bytes]) -> str:
    """The hex digest a cached inventory is stored under: the cache format,
    the fields of the cached classes, the folder (as given and resolved) and
    every file's relative path, length and bytes, e.g. `"3f9a...e1"` (64
    hex digits). Any edit, added or removed file gives another key."""
    digest = hashlib.sha256(f"opskit-inventory-cache:{CACHE_FORMAT}\0".encode())
    # The layout of the cached classes: a cache from before a model change misses.
    for cls in (CI, Group, Relationship):
        digest.update(",".join(cls.__dataclass_fields__).encode() + b"\0")
    # Both spellings: messages and CI.source use the path as given.
    digest.update(str(root).encode() + b"\0" + str(root.resolve()).encode() + b"\0")
    for file, content in zip(files, contents, strict=True):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(len(content).to_bytes(8, "big"))
        digest.update(content)
    return digest.hexdigest()


def cache_file_for(cache_dir: Path, root: Path) -> Path:
    """Where the cache of inventory folder `root` lives in `cache_dir`, one
    file per folder, e.g. `.opskit/cache/inventory-5d41402abc4b2a76b9719d91.pickle`."""
    name = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:24]
    return cache_dir / f"inventory-{name}.pickle"


def read_cache(cache_file: Path, key: str) -> Inventory | None:
    """The inventory cached under `key`, or None (no cache, another key,
    or a file that cannot be read back)."""
    # The cache lives in the workspace's own state folder, written only by
    # opskit; a stale, foreign or corrupt cache is simply ignored.
    try:
        with cache_file.open("rb") as handle:
            stored_key = pickle.load(handle)
            if stored_key != key:
                return None
            return pickle.load(handle)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        return None


def write_cache(cache_file: Path, key: str, inventory: Inventory) -> None:
    """Stores `inventory` (with its digest computed) under `key`, replacing
    the file atomically; a folder that cannot be written is ignored."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".tmp{os.getpid()}")
        with temporary.open("wb") as handle:
            pickle.dump(key, handle, protocol=pickle.HIGHEST_PROTOCOL)
            inventory.digest  # noqa: B018 - computed once, stored with the cache
            pickle.dump(inventory, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, cache_file)
    except OSError:
        pass  # a read-only state folder only costs speed
