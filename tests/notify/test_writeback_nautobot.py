"""Write-back to a real Nautobot (the session's `nautobot` server): real
changes on lab switches whose CIs were synced from Nautobot leave a journal
entry on each touched device, proven by the ledger seq and hash; Nautobot
down during a change blocks nothing and the entry is delivered later; a
token that may not write is one line in the delivery status; compliance
results become journal entries and a custom field; a Nautobot relationship
mapped to `depends_on` reaches the inventory."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update

from opskit.changes import ChangeService
from opskit.compliance.runs import run_compliance
from opskit.inventory import load_workspace_inventory
from opskit.inventory.sources import sync_inventory
from opskit.ledger import Ledger
from opskit.notify import deliver, outbox_status
from opskit.notify.sender import Backoff, Sender
from opskit.notify.store import DELIVERED, PENDING, outbox
from opskit.secrets import SecretRef
from opskit.workspace import Workspace
from tests.audit_support import REPO, approved, cli, completed_change, lab_workspace
from tests.changes_support import write_policy
from tests.fixtures.nautobot import MARKS, NautobotServer
from tests.fuzz.support import run_cli
from tests.notify.relay import Relay

# The session's Nautobot runs on the worker of the "nautobot" group.
pytestmark = MARKS

NOW = Backoff(base=0.0, cap=0.0)  # retries due at once: the test drives the clock
TOKEN_ENV = "NB_WRITEBACK_TOKEN"
LOCATION = "opskit-lab"
SWITCHES = ("lab-sw01", "lab-sw02")
DEVICE = "dcim.device"


@dataclass
class Estate:
    ws: Workspace
    svc: ChangeService
    api: Any
    nautobot: NautobotServer
    relay: Relay
    ids: dict[str, str]
    mp: pytest.MonkeyPatch


def _nautobot_lab(api: Any) -> tuple[dict[str, str], list[Any]]:
    """The lab switches as Nautobot devices (with the custom fields the
    write-back fills and an uplink relationship); returns their ids and
    what to delete afterwards (the sync tests count the whole estate)."""
    active = api.extras.statuses.get(name="Active").id
    made: list[Any] = []

    def create(endpoint: Any, **data: Any) -> Any:
        made.append(endpoint.create(**data))
        return made[-1]

    maker = create(api.dcim.manufacturers, name="opskit-lab-vendor")
    kind = create(api.dcim.device_types, manufacturer=maker.id, model="lab-ios")
    platform = create(api.dcim.platforms, name="Lab IOS", network_driver="cisco_ios")
    # The sync tests' estate may have these already (and creates them if not).
    role = api.extras.roles.get(name="Switch") or create(
        api.extras.roles, name="Switch", content_types=[DEVICE]
    )
    site = api.dcim.location_types.get(name="Site") or create(
        api.dcim.location_types, name="Site", content_types=[DEVICE]
    )
    location = create(api.dcim.locations, name=LOCATION, location_type=site.id, status=active)
    ids = {}
    for name in SWITCHES:
        device = create(
            api.dcim.devices, name=name, device_type=kind.id, role=role.id,
            location=location.id, status=active, platform=platform.id,
        )  # fmt: skip
        ids[name] = str(device.id)
    create(api.extras.custom_fields, label="opskit last change", key="opskit_last_change",
           type="text", content_types=[DEVICE])  # fmt: skip
    create(api.extras.custom_fields, label="opskit compliance", key="opskit_compliance",
           type="json", content_types=[DEVICE])  # fmt: skip
    uplink = create(
        api.extras.relationships, label="opskit uplink", key="opskit_uplink",
        type="one-to-many", source_type=DEVICE, destination_type=DEVICE,
    )  # fmt: skip
    # lab-sw02 hangs off lab-sw01: its source side depends on the destination.
    api.extras.relationship_associations.create(
        relationship=uplink.id, source_type=DEVICE, source_id=ids["lab-sw02"],
        destination_type=DEVICE, destination_id=ids["lab-sw01"],
    )  # fmt: skip
    return ids, made


def _writeback_policy(url: str) -> str:
    return (
        "writeback:\n"
        "  - source: nautobot\n"
        f"    url: {url}\n"
        f"    token: {{env: {TOKEN_ENV}}}\n"
        "    inventory: nb\n"
        "    report_url: https://reports.example.org/changes/{change_id}.html\n"
        "    last_change_field: true\n"
        "    compliance: both\n"
        "    timeout: 10\n"
        "    max_attempts: 50\n"
    )


@pytest.fixture(scope="module")
def estate(nautobot: NautobotServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    import pynautobot

    api = pynautobot.api(nautobot.url, token=nautobot.token)
    ids, made = _nautobot_lab(api)
    relay = Relay(int(nautobot.url.rsplit(":", 1)[1])).start()
    mp = pytest.MonkeyPatch()
    mp.setenv(TOKEN_ENV, nautobot.token)
    try:
        with lab_workspace(tmp_path_factory.mktemp("writeback") / "ws", devices=2) as ws:
            shutil.copytree(REPO / "compliance", ws.root / "compliance", dirs_exist_ok=True)
            (ws.root / "sot").mkdir()
            (ws.root / "sot" / "nautobot.yaml").write_text(
                "relationships: {opskit_uplink: depends_on}\n"
            )
            sync_nb(ws, nautobot.url)
            write_policy(ws, extra=_writeback_policy(relay.url))
            yield Estate(ws, ChangeService(ws), api, nautobot, relay, ids, mp)
    finally:
        relay.stop()
        mp.undo()
        for record in reversed(made):
            record.delete()


@pytest.fixture(autouse=True)
def drained(estate: Estate) -> Iterator[None]:
    """Each test starts with every earlier row delivered, with the token that
    may write, whatever order the tests run in."""
    estate.mp.setenv(TOKEN_ENV, estate.nautobot.token)
    report = deliver(estate.ws, force=True, backoff=NOW)
    assert (report.retried, report.failed) == (0, 0), report
    assert outbox_status(estate.ws).pending == 0
    yield
    estate.mp.setenv(TOKEN_ENV, estate.nautobot.token)


def sync_nb(ws: Workspace, url: str) -> None:
    """(Re-)syncs the `nb` inventory from the lab location in Nautobot."""
    sync_inventory(
        ws, "nautobot", url=url, token_ref=SecretRef(env=TOKEN_ENV),
        inventory="nb", filters={"location": [LOCATION]},
    )  # fmt: skip


def notes(estate: Estate, name: str) -> list[str]:
    found = estate.api.extras.notes.filter(assigned_object_id=estate.ids[name])
    return [str(note.note) for note in found]


def rows(estate: Estate, change_id: str | None = None) -> list[Any]:
    """The write-back rows (of the change's outcome, with `change_id`)."""
    query = select(outbox).where(outbox.c.url == estate.relay.url).order_by(outbox.c.seq)
    if change_id is not None:
        query = query.where(outbox.c.change_id == change_id, outbox.c.kind.like("change.%"))
    with estate.ws.engine.connect() as conn:
        return list(conn.execute(query))


def finished_event(estate: Estate, change_id: str) -> Any:
    events = Ledger.open(estate.ws).events(change_id=change_id)
    return next(e for e in events if e.kind == "change.completed")


def test_a_relationship_mapped_to_depends_on_reaches_the_inventory(estate: Estate) -> None:
    inv = load_workspace_inventory(estate.ws, "nb")
    sw2 = inv.get("lab-sw02")
    assert {(r.kind, r.target) for r in sw2.relationships} == {("depends_on", "lab-sw01")}
    assert sw2.attributes["source_id"] == estate.ids["lab-sw02"]
    assert not inv.get("lab-sw01").relationships
    impact = run_cli("inventory", "impact", "lab-sw01", "-i", "nb", "--json",
                     workspace=estate.ws.root)  # fmt: skip
    assert impact.code == 0 and "lab-sw02" in impact.stdout, impact


def test_a_finished_change_leaves_a_journal_entry_on_each_touched_device(
    estate: Estate,
) -> None:
    change_id = completed_change(estate.svc, "name:lab-sw01 or name:lab-sw02", 721)
    event = finished_event(estate, change_id)
    (row,) = rows(estate, change_id)
    assert (row.kind, row.seq, row.state) == ("change.completed", event.seq, PENDING)
    # The change's compliance re-evaluation adds a row per switch (see below).
    report = deliver(estate.ws, backoff=NOW)
    assert (report.retried, report.failed) == (0, 0), report
    assert rows(estate, change_id)[0].state == DELIVERED
    for name in SWITCHES:
        (entry,) = [n for n in notes(estate, name) if change_id in n]
        assert f"**opskit {change_id} completed**: VLAN 721" in entry
        assert "- runbook: chg-test@1.0.0" in entry
        assert f"- ledger: seq {event.seq}, hash {event.hash}" in entry
        assert f"- evidence: https://reports.example.org/changes/{change_id}.html" in entry
        device = estate.api.dcim.devices.get(estate.ids[name])
        assert device.custom_fields["opskit_last_change"].startswith(
            f"{change_id} completed (ledger seq {event.seq}, "
        )
    # At least once, never twice per device: a redelivery finds its entries.
    with estate.ws.engine.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.id == row.id).values(state=PENDING))
    assert deliver(estate.ws, force=True, backoff=NOW).delivered == 1
    for name in SWITCHES:
        assert len([n for n in notes(estate, name) if change_id in n]) == 1


def test_nautobot_down_blocks_no_change_and_the_entry_is_delivered_later(
    estate: Estate,
) -> None:
    estate.relay.stop()  # nothing listens at the write-back URL
    try:
        change_id = completed_change(estate.svc, "name:lab-sw01", 722)
        assert estate.svc.get(change_id).state.value == "completed"
        for _ in range(2):
            report = deliver(estate.ws, force=True, backoff=NOW)
            assert (report.delivered, report.retried) == (0, 1), report
        # The oldest row (the change's compliance re-evaluation) failed
        # twice; the change's row waits behind it, in ledger order.
        oldest = outbox_status(estate.ws).oldest_pending
        assert oldest is not None and oldest.attempts == 2
        assert oldest.last_error.startswith(f"nautobot {estate.relay.url}: unreachable ("), oldest
        (row,) = rows(estate, change_id)
        assert (row.state, row.attempts) == (PENDING, 0)
        assert not [n for n in notes(estate, "lab-sw01") if change_id in n]
    finally:
        estate.relay.start()
    report = deliver(estate.ws, force=True, backoff=NOW)
    assert (report.retried, report.failed) == (0, 0) and report.delivered >= 1, report
    assert outbox_status(estate.ws).pending == 0
    (row,) = rows(estate, change_id)
    assert (row.state, row.attempts) == (DELIVERED, 1)
    (entry,) = [n for n in notes(estate, "lab-sw01") if change_id in n]
    assert f"seq {finished_event(estate, change_id).seq}" in entry


def test_a_token_that_may_not_write_is_one_line_and_the_change_goes_on(
    estate: Estate,
) -> None:
    estate.mp.setenv(TOKEN_ENV, estate.nautobot.reader_token)
    change_id = approved(estate.svc, "name:lab-sw02", {"vlan_id": 723})
    assert estate.svc.apply(change_id, "alice")["state"] == "completed"
    assert deliver(estate.ws, force=True, backoff=NOW).retried == 1
    # The oldest row (the change's compliance re-evaluation: a custom field)
    # is refused first; the change's journal row waits behind it.
    oldest = outbox_status(estate.ws).oldest_pending
    assert oldest is not None and oldest.attempts == 1
    refused = (
        f"nautobot {estate.relay.url}: {{}}: access refused (403: You do not have "
        "permission to perform this action.); the token needs permission to {}"
    )
    expected = {
        "compliance.result": refused.format("dcim.devices", "change dcim.devices"),
        "change.completed": refused.format("extras.notes", "add extras.notes"),
    }[oldest.kind]
    assert oldest.last_error == expected
    status = run_cli("notify", "status", workspace=estate.ws.root)
    assert status.code == 0 and expected in status.stdout, status
    assert estate.nautobot.reader_token not in status.stdout + json.dumps(
        outbox_status(estate.ws).to_dict()
    )
    # Given a token that may write, the same rows are delivered: nothing lost.
    estate.mp.setenv(TOKEN_ENV, estate.nautobot.token)
    assert deliver(estate.ws, force=True, backoff=NOW).retried == 0
    assert outbox_status(estate.ws).pending == 0
    assert [n for n in notes(estate, "lab-sw02") if change_id in n]


def test_the_token_never_reaches_the_outbox_ledger_output_or_errors(estate: Estate) -> None:
    canary = "c4n4ry" + "0123456789abcdef" * 2 + "beef"
    estate.mp.setenv(TOKEN_ENV, canary)
    try:
        change_id = completed_change(estate.svc, "name:lab-sw01", 724)
        result = run_cli("notify", "deliver", "--once", "--now", workspace=estate.ws.root)
        assert result.code == 0 and "retry later 1" in result.stdout, result
        oldest = outbox_status(estate.ws).oldest_pending
        assert oldest is not None and "access refused (403: Invalid token)" in str(
            oldest.last_error
        ), oldest
        stored = [json.dumps([list(r) for r in rows(estate)], default=str)]
        stored += [json.dumps(e.to_dict(), default=str) for e in Ledger.open(estate.ws).events()]
        log = estate.ws.state_dir / "notify.log"
        stored += [result.stdout, result.stderr, log.read_text() if log.exists() else ""]
        assert not [text for text in stored if canary in text]
    finally:
        estate.mp.setenv(TOKEN_ENV, estate.nautobot.token)
    assert deliver(estate.ws, force=True, backoff=NOW).retried == 0
    assert [n for n in notes(estate, "lab-sw01") if change_id in n]


def test_compliance_results_are_written_back_per_feature(estate: Estate) -> None:
    run = run_compliance(estate.ws, "erin", select="name:lab-sw01", inventory="lab")
    (result,) = run.fleet.results
    report = deliver(estate.ws, force=True, backoff=NOW)
    assert report.failed == 0 and report.retried == 0, report
    device = estate.api.dcim.devices.get(estate.ids["lab-sw01"])
    field = device.custom_fields["opskit_compliance"]
    assert field["state"] == result.state.value and field["run"] == run.seq
    assert field["features"] == {f.feature: f.state.value for f in result.features}
    assert field["seq"] == run.result_seqs["lab-sw01"]
    # A journal entry per state change (the first result is one): the
    # changes above re-evaluated the switch after each change.
    results = list(Ledger.open(estate.ws).events(ci="lab-sw01", kind="compliance.result"))
    changed = [
        event for before, event in zip([None, *results], results, strict=False)
        if before is None or before.payload["state"] != event.payload["state"]
    ]  # fmt: skip
    entries = [n for n in notes(estate, "lab-sw01") if "opskit compliance" in n]
    assert len(entries) == len(changed) >= 1
    for event in changed:
        (entry,) = [n for n in entries if f"seq {event.seq}, hash {event.hash}" in n]
        assert f"**opskit compliance: {event.payload['state']}**" in entry
        for feature in event.payload["features"]:
            assert f"- {feature['feature']}: {feature['state']}" in entry


def test_a_ci_without_source_id_is_found_by_name_and_an_unknown_one_skipped(
    estate: Estate,
) -> None:
    from opskit.notify.nautobot import NautobotWriter

    entry = estate.ws.policy.writeback[0].model_copy(update={"url": estate.nautobot.url})
    document = {
        "delivery": "by-name-0001", "event": "change.failed", "seq": 1, "hash": "ab" * 32,
        "at": "2026-12-06T00:00:00.000000Z", "actor": "alice", "change_id": "CHG-999999",
        "title": "by name", "runbook": "chg-test@1.0.0", "outcome": "failed",
        "inventory": "lab", "cis": ["lab-sw02", "not-in-nautobot"], "report_url": None,
    }  # fmt: skip
    # The lab inventory has no source_id: lab-sw02 is found by its name.
    assert "source_id" not in load_workspace_inventory(estate.ws, "lab").get("lab-sw02").attributes
    assert NautobotWriter(estate.ws, entry).write(document) == ["not-in-nautobot"]
    (entry_text,) = [n for n in notes(estate, "lab-sw02") if "CHG-999999" in n]
    assert "**opskit CHG-999999 failed**: by name" in entry_text and "evidence" not in entry_text


def test_a_cli_rollout_is_written_back_in_the_background(estate: Estate) -> None:
    """`opskit change apply` starts the background sender: the journal entry
    reaches Nautobot without anyone running `opskit notify deliver`."""
    change_id = approved(estate.svc, "name:lab-sw02", {"vlan_id": 725})
    done = cli("change", "apply", change_id, ws=estate.ws)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while not (found := [n for n in notes(estate, "lab-sw02") if change_id in n]):
        log = estate.ws.state_dir / "notify.log"
        assert time.monotonic() < deadline, (
            outbox_status(estate.ws).to_dict(),
            log.read_text()[-3000:] if log.exists() else "no notify.log",
        )
        time.sleep(0.5)
    assert f"seq {finished_event(estate, change_id).seq}" in found[0]


def test_a_long_lived_sender_sees_a_device_replaced_in_nautobot_and_resynced(
    estate: Estate,
) -> None:
    """A background sender lives up to an hour: a device replaced in Nautobot
    (new object, same name) and re-synced gets the next entry, not the old one."""
    sender = Sender(estate.ws, backoff=NOW)
    first = completed_change(estate.svc, "name:lab-sw02", 726)
    assert sender.deliver(force=True).retried == 0
    assert [n for n in notes(estate, "lab-sw02") if first in n]
    old = estate.api.dcim.devices.get(estate.ids["lab-sw02"])
    old.update({"name": "lab-sw02-old"})
    new = estate.api.dcim.devices.create(
        name="lab-sw02", device_type=old.device_type.id, role=old.role.id,
        location=old.location.id, status=old.status.id, platform=old.platform.id,
    )  # fmt: skip
    try:
        sync_nb(estate.ws, estate.nautobot.url)
        second = completed_change(estate.svc, "name:lab-sw02", 727)
        assert sender.deliver(force=True).retried == 0
        on_new = estate.api.extras.notes.filter(assigned_object_id=str(new.id))
        assert [str(n.note) for n in on_new if second in str(n.note)]
        assert not [n for n in notes(estate, "lab-sw02") if second in n]
    finally:
        new.delete()
        # A bulk update: `old.update` would send only what differs from the
        # record as first fetched, i.e. nothing, and leave it "lab-sw02-old".
        estate.api.dcim.devices.update([{"id": estate.ids["lab-sw02"], "name": "lab-sw02"}])
        sync_nb(estate.ws, estate.nautobot.url)
    assert estate.api.dcim.devices.get(estate.ids["lab-sw02"]).name == "lab-sw02"  # put back
