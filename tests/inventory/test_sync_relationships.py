"""Nautobot relationships mapped to CI relationship kinds (`relationships:`
in sot/nautobot.yaml), with adversarial associations: every result either
loads as an inventory or is refused in one line, nothing half-written; a bad
table entry is one line naming its field. The real Nautobot run is in
tests/notify/test_writeback_nautobot.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from opskit.inventory import load_inventory
from opskit.inventory.sources import MappingTables, SourceObject, SyncError
from opskit.inventory.sources.nautobot import _with_relationships
from opskit.inventory.sources.records import RELATION_KINDS, to_inventory_data
from opskit.inventory.sources.sync import _write_folder

NAMES = ("sw1", "sw2", "sw3", "vm1")
IDS = {name: f"id-{name}" for name in NAMES}
TABLE = {"uplink": "depends_on", "hosted": "runs_on", "peer": "connected_to"}


def base_objects() -> list[SourceObject]:
    driver = {"netmiko": "cisco_ios"}
    return [
        SourceObject("device", IDS[name], name, platform="IOS", drivers=driver, status="Active")
        for name in NAMES
    ]


ends = st.one_of(st.sampled_from(list(IDS.values())), st.text(max_size=6), st.none())
associations = st.fixed_dictionaries(
    {
        "relationship": st.one_of(
            st.fixed_dictionaries({"key": st.sampled_from([*TABLE, "unmapped", None])}),
            st.none(),
            st.text(max_size=4),
        ),
        "source_id": ends,
        "destination_id": ends,
    }
)


@given(st.lists(associations, max_size=8))
def test_associations_load_or_are_refused_in_one_line(tmp_path_factory, rows) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("inv") / "nb"
    objects = _with_relationships(base_objects(), rows, TABLE)
    try:
        data, notes = to_inventory_data(objects, MappingTables())
        _write_folder(folder, "nautobot.yaml", "# Synced from test\n", data)
    except SyncError as exc:
        assert "\n" not in str(exc)  # e.g. a depends_on cycle
        assert not folder.exists()
        event("refused")
        return
    event("written")
    inv = load_inventory(folder)
    names = {IDS[n]: n for n in NAMES}
    for row in rows:
        key = row["relationship"].get("key") if isinstance(row["relationship"], dict) else None
        source, target = names.get(str(row["source_id"])), names.get(str(row["destination_id"]))
        if key in TABLE and source and target and source != target:
            assert (TABLE[key], target) in {
                (r.kind.value, r.target) for r in inv.get(source).relationships
            }
    # An end that was not synced is named in a note, never a dangling edge.
    assert all("left out (not synced)" in note for note in notes)


def test_a_mapped_association_becomes_the_kind_from_source_to_destination() -> None:
    rows = [{"relationship": {"key": "uplink"}, "source_id": IDS["sw2"],
             "destination_id": IDS["sw1"]}]  # fmt: skip
    objects = _with_relationships(base_objects(), rows, TABLE)
    data, _notes = to_inventory_data(objects, MappingTables())
    by_name = {ci["name"]: ci for ci in data["cis"]}
    assert by_name["sw2"]["relationships"] == [{"depends_on": "sw1"}]
    assert "relationships" not in by_name["sw1"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("relationships: {uplink: needs}\n", "relationships.uplink"),
        ("relationships: [uplink]\n", "relationships"),
    ],
)
def test_a_bad_relationship_table_is_one_line(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "nautobot.yaml"
    path.write_text(text)
    with pytest.raises(SyncError) as caught:
        MappingTables.load(path)
    assert caught.value.field == field and "\n" not in str(caught.value)
    if field.endswith("uplink"):
        assert all(kind in str(caught.value) for kind in RELATION_KINDS)
