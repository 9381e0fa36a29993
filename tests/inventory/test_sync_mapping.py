"""The source-neutral mapping and the plan, with adversarial objects: every
object list either maps to data the inventory loader accepts, or is refused
with one `SyncError` line naming the object; nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from opskit.inventory import load_inventory
from opskit.inventory.sources import MappingTables, SourceObject, SyncError, plan_sync
from opskit.inventory.sources.records import to_inventory_data
from opskit.inventory.sources.sync import _write_folder

# Mostly valid, so that both outcomes are common (see the `event`s).
valid_names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
names = st.one_of(valid_names, valid_names, valid_names, st.text(max_size=6))
statuses = st.sampled_from(["Active", "Active", "Planned", "Offline", None, "Quarantine"])
texts = st.one_of(st.none(), st.text(max_size=8))
values = st.one_of(st.none(), st.integers(), st.text(max_size=8), st.booleans())


@st.composite
def objects(draw: st.DrawFn) -> SourceObject:
    pool = draw(st.lists(names, min_size=1, max_size=4))
    return SourceObject(
        kind=draw(st.sampled_from(["device", "virtual_machine"])),
        source_id=draw(st.uuids()).hex,
        name=draw(st.sampled_from(pool)),
        platform=draw(st.sampled_from(["Cisco IOS", "Cisco IOS", "Cisco IOS", None, "Odd"])),
        drivers=draw(
            st.sampled_from([{"netmiko": "cisco_ios"}] * 4 + [{}, {"netmiko": "Bad Type"}])
        ),
        host=draw(st.one_of(st.none(), st.text(min_size=1, max_size=8))),
        site=draw(texts),
        role=draw(st.sampled_from([None, "Switch", "Core Router", "database"])),
        tenant=draw(texts),
        status=draw(statuses),
        custom_fields=draw(st.dictionaries(st.text(max_size=6), values, max_size=3)),
        tags=tuple(draw(st.lists(st.text(max_size=5), max_size=3))),
        relations={"depends_on": tuple(draw(st.lists(st.sampled_from(pool), max_size=2)))},
    )


@given(st.lists(objects(), max_size=5))
def test_mapping_is_valid_or_refused_in_one_line(tmp_path_factory, objs) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("inv") / "nb"
    tables = MappingTables(statuses={"Offline": "maintenance"})
    try:
        data, _notes = to_inventory_data(objs, tables)
        _write_folder(folder, "nautobot.yaml", "# Synced from test\n", data)
    except SyncError as exc:
        assert "\n" not in str(exc)
        assert not folder.exists()
        event("refused")
        return
    event("written")
    inv = load_inventory(folder)
    assert sorted(c.name for c in inv.select(None, include_decommissioned=True)) == sorted(
        {o.name for o in objs}
    )


def test_mapping_tables_are_checked(tmp_path: Path) -> None:
    table = tmp_path / "nautobot.yaml"
    table.write_text("statuses: {Quarantine: quarantined}\n")
    with pytest.raises(
        SyncError, match=r"\[statuses.Quarantine\]: 'quarantined' is not a lifecycle"
    ):
        MappingTables.load(table)
    table.write_text("platform: {}\n")
    with pytest.raises(SyncError, match="unknown key 'platform'"):
        MappingTables.load(table)


@given(
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 3)),
    st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 3)),
)
def test_plan_lists_exactly_what_differs(old: dict[str, int], new: dict[str, int]) -> None:
    before = [{"name": n, "attributes": {"v": v}} for n, v in old.items()]
    after = [{"name": n, "attributes": {"v": v}} for n, v in new.items()]
    plan = plan_sync(before, after)
    assert plan.added == sorted(new.keys() - old.keys())
    assert plan.removed == sorted(old.keys() - new.keys())
    assert set(plan.changed) == {n for n in old.keys() & new.keys() if old[n] != new[n]}
    assert plan_sync(after, after).empty


@given(st.lists(st.text(max_size=12), max_size=4))
def test_filters_parse_or_are_refused_in_one_line(items: list[str]) -> None:
    from opskit.cli.sync import parse_filters
    from opskit.errors import UsageError

    try:
        filters = parse_filters(items)
    except UsageError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("--filter ")
        return
    assert sum(len(v) for v in filters.values()) == len(items)
    assert all(key and all(values) for key, values in filters.items())


@given(st.text(max_size=40))
def test_token_refs_parse_or_are_refused_without_echoing_a_token(text: str) -> None:
    from opskit.cli.sync import parse_token_ref
    from opskit.errors import OpskitError
    from opskit.secrets import SecretRef

    try:
        ref = parse_token_ref(text)
    except OpskitError as exc:
        assert "\n" not in str(exc) and "--token-ref" in str(exc)
        assert not text.strip() or len(text) < 6 or text not in str(exc)
        return
    assert isinstance(ref, SecretRef)


def test_a_plain_token_is_refused_as_a_token_ref() -> None:
    from opskit.cli.sync import parse_token_ref
    from opskit.errors import UsageError

    token = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(UsageError, match="never the token itself") as caught:
        parse_token_ref(token)
    assert token not in str(caught.value)
