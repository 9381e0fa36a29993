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


SYMMETRIC = ("symmetric-many-to-many", {"value": "symmetric-one-to-one", "label": "Symmetric"})
TYPES = ("one-to-one", "one-to-many", {"value": "many-to-many", "label": "Many"}, None, *SYMMETRIC)


def symmetric(relationship: object) -> bool:
    kind = relationship.get("type") if isinstance(relationship, dict) else None
    return kind in SYMMETRIC


ends = st.one_of(st.sampled_from(list(IDS.values())), st.text(max_size=6), st.none())
associations = st.fixed_dictionaries(
    {
        "relationship": st.one_of(
            st.fixed_dictionaries(
                {"key": st.sampled_from([*TABLE, "unmapped", None])},
                # Nautobot's types; a choice may come as a value or as {value, label}.
                optional={"type": st.sampled_from(TYPES)},
            ),
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
    try:
        objects = _with_relationships(base_objects(), rows, TABLE)
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
            pairs = [(source, target)]
            if symmetric(row["relationship"]):  # accepted only as connected_to: both ways
                assert TABLE[key] == "connected_to"
                pairs.append((target, source))
            for one, other in pairs:
                assert (TABLE[key], other) in {
                    (r.kind.value, r.target) for r in inv.get(one).relationships
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


def test_a_symmetric_relationship_is_connected_to_both_ways_or_refused() -> None:
    peers = {"relationship": {"key": "peer", "type": {"value": "symmetric-many-to-many"}},
             "source_id": IDS["sw1"], "destination_id": IDS["sw3"]}  # fmt: skip
    objects = _with_relationships(base_objects(), [peers], TABLE)
    data, _notes = to_inventory_data(objects, MappingTables())
    by_name = {ci["name"]: ci for ci in data["cis"]}
    assert by_name["sw1"]["relationships"] == [{"connected_to": "sw3"}]
    assert by_name["sw3"]["relationships"] == [{"connected_to": "sw1"}]
    # Peers have no direction: which of the two would depend on the other?
    uplink = {**peers, "relationship": {"key": "uplink", "type": "symmetric-one-to-one"}}
    with pytest.raises(SyncError) as caught:
        _with_relationships(base_objects(), [uplink], TABLE)
    assert str(caught.value) == (
        "nautobot relationship 'uplink' is symmetric (peers, no source or destination): "
        "it cannot mean depends_on; map it to connected_to"
    )


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
