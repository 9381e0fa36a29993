"""Building a large, acyclic structure without the cyclic garbage collector.

`paused_gc()` is used by the inventory loader (50,000 CIs are built in one
go) and by `Inventory.digest` (the canonical data of every CI), both of which
allocate many containers and create no reference cycles.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pauses the cyclic garbage collector while building a large, acyclic
    structure: otherwise its passes over the growing heap, triggered by every
    700 new containers, take more time than the parsing itself.

    On the way out the objects alive are moved to the collector's permanent
    generation (`gc.freeze`): the inventory holds no reference cycles, so it
    never needs scanning, and the first full collection after a large load
    would otherwise cost as much as the validation. Objects still die by
    reference counting as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.freeze()
            gc.enable()
