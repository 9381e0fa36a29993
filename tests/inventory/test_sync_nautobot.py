"""`opskit inventory sync nautobot` against a real Nautobot server (the
`nautobot` fixture) populated through its REST API: a full sync, the plan of a
re-sync after changes, all-or-nothing refusals naming the object, tokens
without permission, an unreachable server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.inventory import load_inventory
from opskit.workspace import Workspace
from tests.fixtures.nautobot import MARKS, NautobotServer
from tests.fixtures.servers import free_port
from tests.fuzz.support import CliResult, run_cli
from tests.inventory.nautobot_estate import Estate, add_device, build_estate

# One worker holds the session's Nautobot server.
pytestmark = MARKS

TOKEN_REF = "{env: NAUTOBOT_TOKEN}"


@pytest.fixture(scope="module")
def estate(nautobot: NautobotServer) -> Estate:
    import pynautobot

    return build_estate(pynautobot.api(nautobot.url, token=nautobot.token))


@pytest.fixture
def ws(
    workspace: Workspace, nautobot: NautobotServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Workspace]:
    (workspace.root / "sot").mkdir()
    (workspace.root / "sot" / "nautobot.yaml").write_text("roles: {Hypervisor: server}\n")
    monkeypatch.setenv("NAUTOBOT_TOKEN", nautobot.token)
    yield workspace


def sync(ws: Workspace, nautobot: NautobotServer, *extra: str, url: str = "") -> CliResult:
    return run_cli(
        "inventory", "sync", "nautobot", "--url", url or nautobot.url,
        "--token-ref", TOKEN_REF, "-i", "nb", *extra, workspace=ws.root,
    )  # fmt: skip


def error_line(result: CliResult) -> str:
    assert result.code == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result
    return lines[0]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def ci(inv: Any, name: str) -> Any:
    return inv.get(name)


def test_full_sync_maps_the_estate_into_a_valid_inventory(
    ws: Workspace, nautobot: NautobotServer, estate: Estate
) -> None:
    result = sync(ws, nautobot)
    assert result.code == 0, result
    assert "+ core-sw1" in result.stdout and "8 added, 0 removed, 0 changed" in result.stdout
    folder = ws.inventories_dir / "nb"
    text = (folder / "nautobot.yaml").read_text()
    assert text.startswith(f"# Synced from nautobot {nautobot.url} (API version ")
    # The token is a reference, never written: not in the folder nor in the output.
    assert nautobot.token not in text + result.stdout + result.stderr
    inv = load_inventory(folder)
    sw1, sw2 = ci(inv, "core-sw1"), ci(inv, "core-sw2")
    assert (sw1.type, sw1.platform, sw1.host, sw1.site) == (
        "switch",
        "cisco_ios",
        "10.0.1.1",
        "dc1",
    )
    assert (sw1.owner, sw1.department, sw1.lifecycle) == ("netops", "network", "operational")
    assert sw1.attributes["os_version"] == "17.9.4" and sw1.attributes["rack_unit"] == 12
    assert sw1.attributes["tags"] == ["pci"] and sw1.attributes["serial"] == "FOC1001"
    assert sw1.attributes["source_id"] == estate.ids["core-sw1"]
    relations = {(r.kind, r.target) for r in sw2.relationships}
    assert relations == {("member_of", "core-sw1"), ("connected_to", "core-sw1")}
    rtr = ci(inv, "edge-rtr1")
    assert (rtr.type, rtr.platform, rtr.owner, rtr.department) == (
        "router", "arista_eos", "platform", None,
    )  # fmt: skip
    spare = ci(inv, "spare-sw9")
    assert (spare.lifecycle, spare.site, spare.host) == ("planned", "dc2", None)
    assert ci(inv, "esx1").type == "server"  # the workspace's role table
    db = ci(inv, "db-vm1")
    assert db.type == "database" and db.platform == "linux"
    assert {(r.kind, r.target) for r in db.relationships} == {
        ("runs_on", "esx1"), ("runs_on", "esx2"),
    }  # fmt: skip
    # Impact analysis works unchanged on the synced folder.
    impact = run_cli("inventory", "impact", "esx1", "-i", "nb", "--json", workspace=ws.root)
    assert impact.code == 0 and "db-vm1" in impact.stdout and "app-vm1" in impact.stdout, impact
    again = sync(ws, nautobot)
    assert again.code == 0 and "0 added, 0 removed, 0 changed; unchanged" in again.stdout, again


def test_dry_run_shows_the_plan_and_writes_nothing(
    ws: Workspace, nautobot: NautobotServer, estate: Estate
) -> None:
    result = sync(ws, nautobot, "--dry-run")
    assert result.code == 0, result
    assert "+ db-vm1" in result.stdout and "would write" in result.stdout
    assert not (ws.inventories_dir / "nb").exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        ("legacy", "device 'legacy-sw1' (id {id}): platform 'Legacy OS' has no netmiko mapping"),
        ("status", "device 'quarantined-sw1' (id {id}): status 'Quarantine' has no lifecycle"),
        ("duplicate", "duplicate name 'core-sw2': device 'core-sw2'"),
    ],
)
def test_a_bad_object_stops_the_sync_naming_it_and_nothing_is_written(
    ws: Workspace, nautobot: NautobotServer, estate: Estate, make: str, expected: str
) -> None:
    assert sync(ws, nautobot).code == 0
    folder = ws.inventories_dir / "nb"
    before = folder_bytes(folder)
    api = estate.api
    if make == "legacy":
        created = api.dcim.devices.get(add_device(estate, "legacy-sw1", platform="Legacy"))
    elif make == "status":
        status = api.extras.statuses.create(name="Quarantine", content_types=["dcim.device"])
        created = api.dcim.devices.get(add_device(estate, "quarantined-sw1", status="Quarantine"))
    else:
        created = api.virtualization.virtual_machines.create(
            name="core-sw2", cluster=estate.ids["prod"], status=estate.status("Active")
        )
    try:
        line = error_line(sync(ws, nautobot))
        assert expected.format(id=created.id) in line
        assert folder_bytes(folder) == before
    finally:
        created.delete()
        if make == "status":
            status.delete()


def test_tokens_without_access_are_refused_in_one_line(
    ws: Workspace, nautobot: NautobotServer, estate: Estate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAUTOBOT_TOKEN", nautobot.nobody_token)
    line = error_line(sync(ws, nautobot))
    assert "dcim.devices: access refused (403" in line and "permission" in line, line
    assert nautobot.nobody_token not in line
    monkeypatch.setenv("NAUTOBOT_TOKEN", "0123456789abcdef0123456789abcdef01234567")
    line = error_line(sync(ws, nautobot))
    assert "access refused (403: Invalid token)" in line, line
    assert not (ws.inventories_dir / "nb").exists()


def test_an_unreachable_server_is_one_line(ws: Workspace, nautobot: NautobotServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    line = error_line(sync(ws, nautobot, url=url))
    assert line == f"error: nautobot {url}: unreachable (ConnectionError)"


def test_drift_against_nautobot_names_what_differs(
    ws: Workspace, nautobot: NautobotServer, estate: Estate
) -> None:
    assert sync(ws, nautobot).code == 0
    drift = ("inventory", "drift", "-i", "nb", "--against", "nautobot", "--url", nautobot.url)
    clean = run_cli(*drift, "--token-ref", TOKEN_REF, workspace=ws.root)
    assert clean.code == 0 and "0 only in nautobot, 0 only in the inventory, 0 differ" in (
        clean.stdout
    ), clean
    device = estate.api.dcim.devices.get(estate.ids["core-sw2"])
    device.serial = "FOC9999"
    device.save()
    try:
        drifted = run_cli(*drift, "--token-ref", TOKEN_REF, workspace=ws.root)
        assert drifted.code == 1, drifted
        assert '~ core-sw2 attributes.serial: "FOC1002" -> "FOC9999"' in drifted.stdout
        assert "1 differ" in drifted.stdout
    finally:
        # A bulk update: `device.save()` again would send only what differs
        # from the record as first fetched, i.e. nothing.
        estate.api.dcim.devices.update([{"id": estate.ids["core-sw2"], "serial": "FOC1002"}])
    assert run_cli(*drift, "--token-ref", TOKEN_REF, workspace=ws.root).code == 0  # put back
    lonely = run_cli("inventory", "drift", "-i", "nb", "--against", "nautobot", workspace=ws.root)
    assert lonely.code == 2 and "go together" in lonely.stderr, lonely


def test_resync_after_changes_in_nautobot_shows_the_plan(
    ws: Workspace, nautobot: NautobotServer, estate: Estate
) -> None:
    """Changes the estate (added, renamed, decommissioned, platform), and
    puts it back afterwards: the other tests count on it as built."""
    assert sync(ws, nautobot).code == 0
    api = estate.api
    added = add_device(estate, "edge-rtr2", platform="EOS", role="Router", device_type="7050")
    api.dcim.devices.update(
        [
            {"id": estate.ids["spare-sw9"], "name": "spare-sw10"},
            {"id": estate.ids["edge-rtr1"], "status": estate.status("Decommissioning")},
            {"id": estate.ids["core-sw2"], "platform": estate.ids["NXOS"]},
        ]
    )
    try:
        _resync_shows_the_plan(ws, nautobot)
    finally:
        api.dcim.devices.get(added).delete()
        del estate.ids["edge-rtr2"]
        api.dcim.devices.update(
            [
                {"id": estate.ids["spare-sw9"], "name": "spare-sw9"},
                {"id": estate.ids["edge-rtr1"], "status": estate.status("Active")},
                {"id": estate.ids["core-sw2"], "platform": estate.ids["IOS"]},
            ]
        )


def _resync_shows_the_plan(ws: Workspace, nautobot: NautobotServer) -> None:
    planned = sync(ws, nautobot, "--dry-run")
    assert planned.code == 0, planned
    lines = planned.stdout.splitlines()
    for expected in (
        "+ edge-rtr2",
        "+ spare-sw10",
        "- spare-sw9",
        '~ core-sw2 platform: "cisco_ios" -> "cisco_nxos"',
        '~ edge-rtr1 lifecycle: "operational" -> "decommissioned"',
    ):
        assert expected in lines, planned
    assert "2 added, 1 removed, 2 changed; would write" in planned.stdout
    assert sync(ws, nautobot).code == 0
    inv = load_inventory(ws.inventories_dir / "nb")
    assert ci(inv, "core-sw2").platform == "cisco_nxos"
    assert ci(inv, "edge-rtr1").lifecycle == "decommissioned"
    assert "spare-sw9" not in {c.name for c in inv.select(None, include_decommissioned=True)}


def test_a_symmetric_relationship_means_connected_to_both_ways_or_is_refused(
    ws: Workspace, nautobot: NautobotServer, estate: Estate
) -> None:
    """Nautobot's symmetric relationships relate peers: no source, no
    destination. Mapped to connected_to they are read both ways; mapped to a
    kind with a direction the sync stops in one line and writes nothing."""
    api = estate.api
    peer = api.extras.relationships.create(
        label="opskit peer", key="opskit_peer", type="symmetric-many-to-many",
        source_type="dcim.device", destination_type="dcim.device",
    )  # fmt: skip
    try:
        api.extras.relationship_associations.create(
            relationship=peer.id, source_type="dcim.device", source_id=estate.ids["core-sw1"],
            destination_type="dcim.device", destination_id=estate.ids["spare-sw9"],
        )  # fmt: skip
        tables = ws.root / "sot" / "nautobot.yaml"
        tables.write_text("roles: {Hypervisor: server}\nrelationships: {opskit_peer: depends_on}\n")
        line = error_line(sync(ws, nautobot))
        assert line == (
            "error: nautobot relationship 'opskit_peer' is symmetric (peers, no source or "
            "destination): it cannot mean depends_on; map it to connected_to"
        )
        assert not (ws.inventories_dir / "nb").exists()
        tables.write_text(
            "roles: {Hypervisor: server}\nrelationships: {opskit_peer: connected_to}\n"
        )
        assert sync(ws, nautobot).code == 0
        inv = load_inventory(ws.inventories_dir / "nb")
        assert ("connected_to", "spare-sw9") in {
            (r.kind, r.target) for r in ci(inv, "core-sw1").relationships
        }
        assert {(r.kind, r.target) for r in ci(inv, "spare-sw9").relationships} == {
            ("connected_to", "core-sw1")
        }
    finally:
        peer.delete()  # and its associations with it
