"""A selection that only names CIs (`name:a or b or (name:c)`) is looked up
by name (`Inventory.select`) instead of matched against every CI: it selects
exactly what the general matcher (`opskit.inventory.select.select`) selects,
decommissioned CIs, patterns, `not`/`and` and unknown names included."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.errors import OpskitError
from opskit.inventory import Inventory
from opskit.inventory.model import Lifecycle
from opskit.inventory.select import compile_selection, select
from tests.compliance.support import make_ci

KNOWN = ["sw1", "sw2", "core-1", "edge.a", "old-sw"]
NAMES = [*KNOWN, "gone-sw", "sw*", "sw[1]", "e?ge.a"]


def _inventory() -> Inventory:
    cis = [make_ci(name) for name in KNOWN[:-1]]
    cis.append(replace(make_ci(KNOWN[-1]), lifecycle=Lifecycle.DECOMMISSIONED))
    return Inventory(path=Path("inventory"), cis={ci.name: ci for ci in cis}, groups={})


def _term(name: str) -> str:
    return f'name:"{name}"' if "[" in name else f"name:{name}"


joiners = st.sampled_from([" or ", " and ", " or not "])


@settings(max_examples=300)
@given(
    names=st.lists(st.sampled_from(NAMES), min_size=1, max_size=6),
    joins=st.lists(joiners, min_size=5, max_size=5),
    bare=st.booleans(),
    grouped=st.booleans(),
    everything=st.booleans(),
)
def test_names_only_select_as_the_general_matcher(
    names: list[str], joins: list[str], bare: bool, grouped: bool, everything: bool
) -> None:
    terms = [name if bare and set("*?[") & set(name) == set() else _term(name) for name in names]
    expression = terms[0] + "".join(j + t for j, t in zip(joins, terms[1:], strict=False))
    if grouped:
        expression = f"({expression})"
    inventory = _inventory()
    try:
        looked_up = inventory.select(expression, include_decommissioned=everything)
    except OpskitError:  # an unknown name: named as an error, whichever path
        assert any(n not in inventory.cis and not set("*?[") & set(n) for n in names)
        return
    matched = select(inventory.cis.values(), expression, include_decommissioned=everything)
    assert looked_up == matched


def test_only_a_union_of_plain_names_is_looked_up() -> None:
    assert compile_selection("name:a or b or (name:c)").names == {"a", "b", "c"}
    for matched in ("name:a and b", "not name:a", "name:a*", "group:x or name:a", "site:a"):
        assert compile_selection(matched).names is None
