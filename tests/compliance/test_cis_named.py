"""`cis_named` (the after-change judging's hosts, by name) selects what the
selection naming them one by one selects, or leaves it to that selection."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.backups.linechange import selection_of
from opskit.compliance.runs import cis_named
from opskit.errors import OpskitError
from opskit.inventory import Inventory
from opskit.inventory.model import Lifecycle
from tests.compliance.support import make_ci

NAMES = ["sw1", "sw2", "core-1", "edge.a", "old-sw", "gone-sw", "sw*", "sw[1]"]


def _inventory() -> Inventory:
    cis = [make_ci(name) for name in NAMES[:4]]
    cis += [replace(make_ci(name), lifecycle=Lifecycle.DECOMMISSIONED) for name in NAMES[4:5]]
    assert cis[-1].decommissioned
    return Inventory(path=Path("inventory"), cis={ci.name: ci for ci in cis}, groups={})


@settings(max_examples=100)
@given(names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=6))
def test_names_select_as_their_selection(names: list[str]) -> None:
    inventory = _inventory()
    found = cis_named(inventory, names)
    try:
        selected = inventory.select(selection_of(names))
    except OpskitError:
        assert found is None  # an unknown name: the selection names the error
        return
    assert found is None or found == selected
    if found is None:  # only a pattern or an unknown name is left to the selection
        assert any(set("*?[") & set(n) or n not in inventory.cis for n in names)
