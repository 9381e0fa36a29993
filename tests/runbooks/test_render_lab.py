"""The issue's scenarios against emulated IOS switches: a runbook whose
templates cannot render is refused by `runbook validate` and by `change
assess` (so the change can never be approved), a newline in a parameter is
refused at `change create`, and in every case the device is untouched."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.changes import ChangeService, State
from opskit.connectors.pool import ConnectionPool
from opskit.errors import ChangeError, ChangeRefused, OpskitError
from opskit.inventory import load_workspace_inventory
from opskit.lab import Lab
from opskit.workspace import Workspace, init_workspace
from tests.changes_support import write_policy

pytestmark = [pytest.mark.xdist_group("render-lab"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SWITCH = "lab-sw01"

RUNBOOK = """\
name: route-test
version: 1.0.0
description: A static route to Null0 (render checks).
owner: ops
risk: low
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  additionalProperties: false
  required: [prefix]
  properties:
    prefix: {type: string, format: ipv4}
    description: {type: string, default: opskit}
requires: [get_config, config_lines]
apply:
  - name: add the route
    connector: netmiko
    action: config
    params:
      template: route-test/route.j2
verify:
  - name: the route is there
    connector: netmiko
    action: get_config
    expect:
      - contains: "ip route {{ params.prefix }}"
rollback: auto
"""
TEMPLATE = "ip route {{ params.prefix }} 255.255.255.0 Null0 name {{ params.description }}\n"


@pytest.fixture(scope="module")
def lab_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path_factory.mktemp("render-lab") / "ws")
    lab = Lab(ws)
    lab.up(devices=1, linux=0)
    try:
        write_policy(ws)
        yield ws
    finally:
        lab.down()
        ws.close()


def running(ws: Workspace) -> str:
    inventory = load_workspace_inventory(ws, "lab")
    with ConnectionPool(1) as pool, pool.session(inventory.get(SWITCH), "netmiko") as conn:
        return conn.get_config("running")


def write(ws: Workspace, book: str = RUNBOOK, template: str = TEMPLATE) -> Path:
    path = ws.root / "runbooks" / "route-test" / "1.0.0.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(book)
    (ws.root / "templates" / "route-test").mkdir(parents=True, exist_ok=True)
    (ws.root / "templates" / "route-test" / "route.j2").write_text(template)
    return path


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "-w", str(ws.root), "--as", "alice", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def submitted(svc: ChangeService) -> str:
    change = svc.create(
        runbook="route-test@1.0.0",
        select_expr=SWITCH,
        requester="alice",
        title="a route",
        params={"prefix": "198.51.100.0"},
    )
    svc.submit(change.id, "alice")
    return change.id


BROKEN = {
    "expectation typo": (
        RUNBOOK.replace('prefix }}"', 'prefix "'),
        TEMPLATE,
        "verify[0].expect[0]",
    ),
    "template syntax": (RUNBOOK, "ip route {{ x }\n", "route.j2 line 1: syntax error"),
    "undefined attribute": (
        RUNBOOK,
        "!\nip route {{ params.prefx }} 255.255.255.0 Null0\n",
        "route.j2 line 2: params has no attribute 'prefx'",
    ),
    "sandbox escape": (
        RUNBOOK,
        "{{ params.prefix.__class__.__mro__[1].__subclasses__() }}\n",
        "route.j2 line 1: the sandbox refuses attribute '__",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_runbook_that_cannot_render_is_refused_and_touches_nothing(
    lab_ws: Workspace, case: str
) -> None:
    book, template, said = BROKEN[case]
    before = running(lab_ws)
    write(lab_ws)
    svc = ChangeService(lab_ws)
    change_id = submitted(svc)  # filed while the runbook was sound
    path = write(lab_ws, book, template)

    checked = cli(lab_ws, "runbook", "validate", str(path))
    assert checked.returncode == 1, checked.stdout
    lines = [line for line in (checked.stdout + checked.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and said in lines[0] and "route-test/1.0.0.yaml" in lines[0], lines

    with pytest.raises(OpskitError) as info:
        svc.assess(change_id, "bob", predict=True)
    assert said in str(info.value) and "\n" not in str(info.value)
    assert svc.get(change_id).state is State.SUBMITTED
    with pytest.raises(ChangeError):
        svc.approve(change_id, "bob")
    assert running(lab_ws) == before


def test_assess_renders_every_step_for_every_target_first(lab_ws: Workspace) -> None:
    """Statically sound, but the lab switch has no `nexthop`: only rendering
    for the real target finds it, before any device is contacted."""
    before = running(lab_ws)
    write(lab_ws, template="ip route {{ params.prefix }} 255.255.255.0 {{ ci.nexthop }}\n")
    svc = ChangeService(lab_ws)
    change_id = submitted(svc)
    with pytest.raises(ChangeRefused) as info:
        svc.assess(change_id, "bob", predict=True)
    message = str(info.value)
    assert (
        f"host {SWITCH}: step apply[0] 'add the route': templates/route-test/route.j2 line 1"
        in (message)
    )
    assert "nexthop" in message and "\n" not in message
    refused = [
        e for e in svc.context.ledger.events(change_id=change_id) if e.kind == "change.refused"
    ]
    assert refused and refused[-1].payload["action"] == "assess"
    assert svc.get(change_id).state is State.SUBMITTED
    assert running(lab_ws) == before

    # The same change with a sound template assesses, and predicts the line.
    write(lab_ws)
    assessed = svc.assess(change_id, "bob", predict=True)
    assert assessed.state in (State.ASSESSED, State.APPROVED)
    assert "198.51.100.0" in str(assessed.predicted_diff)
    assert running(lab_ws) == before


def test_a_newline_in_a_parameter_is_refused_at_create(lab_ws: Workspace) -> None:
    before = running(lab_ws)
    write(lab_ws)
    svc = ChangeService(lab_ws)
    count = len(svc.list())
    created = cli(
        lab_ws,
        "change",
        "create",
        "--runbook",
        "route-test@1.0.0",
        "--select",
        SWITCH,
        "--title",
        "newline",
        "--param",
        "prefix=198.51.100.0",
        "--param",
        "description=x\nno ip route 0.0.0.0 0.0.0.0 192.0.2.1",
    )
    assert created.returncode == 1
    output = (created.stdout + created.stderr).strip()
    assert len(output.splitlines()) == 1, output
    assert "parameter 'description'" in output and "line feed" in output
    assert "no ip route" not in output
    base = ["change", "create", "--runbook", "route-test@1.0.0", "--select", SWITCH]
    for param, said in [
        ("description=x\x01", "U+0001"),
        ("prefix=NaN", "not a finite number"),
        ("prefix=999.1.1.1", "'999.1.1.1' is not a 'ipv4'"),
    ]:
        refused = cli(
            lab_ws, *base, "--title", "bad", "--param", "prefix=198.51.100.0", "--param", param
        )
        assert refused.returncode == 1 and said in refused.stdout + refused.stderr
    assert len(ChangeService(lab_ws).list()) == count
    assert running(lab_ws) == before


def test_a_multiline_parameter_predicts_one_line_each(lab_ws: Workspace) -> None:
    """x-opskit-multiline: the runbook's choice; each line of the value is its
    own configuration line in the predicted diff (and still checked)."""
    book = RUNBOOK.replace(
        "    description: {type: string, default: opskit}\n",
        "    description: {type: string, default: opskit}\n"
        "    notes: {type: string, x-opskit-multiline: true, default: ''}\n",
    )
    before = running(lab_ws)
    write(lab_ws, book, TEMPLATE + "{{ params.notes }}\n")
    svc = ChangeService(lab_ws)
    change = svc.create(
        runbook="route-test@1.0.0",
        select_expr=SWITCH,
        requester="alice",
        title="notes",
        params={
            "prefix": "198.51.100.0",
            "notes": "ip domain-name a.example\nip name-server 192.0.2.53",
        },
    )
    svc.submit(change.id, "alice")
    assessed = svc.assess(change.id, "bob", predict=True)
    assert assessed.predicted_diff[SWITCH]["diff"].splitlines() == [
        "+ ip route 198.51.100.0 255.255.255.0 Null0 name opskit",
        "+ ip domain-name a.example",
        "+ ip name-server 192.0.2.53",
    ]
    with pytest.raises(
        OpskitError, match=r"parameter .notes.: contains the control character U\+0007 at line 2"
    ):
        svc.create(
            runbook="route-test@1.0.0",
            select_expr=SWITCH,
            requester="alice",
            title="notes",
            params={"prefix": "198.51.100.0", "notes": "ip domain-name a\nip \x07"},
        )
    assert running(lab_ws) == before
