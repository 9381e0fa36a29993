"""Compliance runs against the lab switches: live and from backups, what
the ledger records, an unreachable device, a CI without a backup, bad
input recorded nowhere, and the history of a configuration changed by hand."""

from __future__ import annotations

import subprocess
import sys

import pytest

from opskit import configdiff
from opskit.backups import take_backups
from opskit.compliance import IntendedError, RuleError, State, workspace_rules
from opskit.compliance.accuracy import compliance_rates
from opskit.compliance.history import feature_history
from opskit.compliance.runs import RESULT_KIND, RUN_KIND, run_compliance
from opskit.connectors.netmiko import NetmikoConnector
from opskit.errors import UsageError
from opskit.inventory import load_workspace_inventory
from opskit.ledger.core import Ledger
from opskit.workspace import Workspace
from tests.compliance.lab_variants import lab_variant
from tests.fixtures.lab import LabEnv, running_config
from tests.fixtures.processes import read_bytes_elsewhere

pytestmark = [pytest.mark.lab]


def make_compliant(lab: LabEnv, name: str) -> None:
    """Test set-up: pushes the recorded remediation of every non-compliant
    feature straight to the switch (outside the change process)."""
    run = run_compliance(lab.ws, "setup", select=f"name:{name}", inventory="lab")
    lines = run.fleet.results[0].remediation
    if lines:
        with NetmikoConnector(lab.ci(name)) as conn:
            conn.apply_config(lines)
    again = run_compliance(lab.ws, "setup", select=f"name:{name}", inventory="lab")
    assert again.ok, again.to_dict()


def test_a_live_run_is_recorded_and_changes_nothing(lab: LabEnv) -> None:
    names = [ci.name for ci in lab.switches[:2]]
    before = {n: running_config(lab.ci(n)) for n in names}
    ledger = Ledger.open(lab.ws)
    run = run_compliance(
        lab.ws, "erin", select=" or ".join(f"name:{n}" for n in names), inventory="lab"
    )
    assert {n: running_config(lab.ci(n)) for n in names} == before
    assert [r.ci for r in run.fleet.results] == names
    for result in run.fleet.results:
        assert result.state in (State.COMPLIANT, State.NON_COMPLIANT)
        # A structured feature: `show vlan` read live, parsed, VLAN 1 active.
        assert result.feature("vlan-state").state is State.COMPLIANT
        config = before[result.ci]
        for feature in result.features:
            # What the run calls missing is missing from the device, what it calls extra is there.
            if feature.missing:
                assert configdiff.missing_lines(config, list(feature.missing), "cisco_ios")
            if feature.extra:
                assert configdiff.present_lines(config, list(feature.extra), "cisco_ios")
            if feature.state is State.COMPLIANT:
                assert not feature.missing and not feature.extra
    recorded = next(e for e in ledger.events(kind=RUN_KIND, after_seq=run.seq - 1))
    assert recorded.seq == run.seq and recorded.actor == "erin"
    payload = recorded.payload
    inventory = load_workspace_inventory(lab.ws, "lab")
    assert payload["source"] == "live"
    assert payload["rules_digest"] == workspace_rules(lab.ws).digest
    assert payload["inventory_digest"] == inventory.digest
    assert payload["templates"]["intended/cisco_ios.j2"].startswith("sha256:")
    assert payload["counts"] == run.fleet.counts
    for name in names:
        event = next(
            e for e in ledger.events(ci=name, kind=RESULT_KIND) if e.seq == run.result_seqs[name]
        )
        assert event.payload["run"] == run.seq
        assert ledger.get_blob(event.blobs["config"]).decode() == before[name]
        assert ("diff" in event.blobs) == (event.payload["state"] == "non-compliant")
    assert ledger.verify().ok


def test_from_backups_no_device_is_contacted(lab: LabEnv) -> None:
    name = lab.switches[1].name
    taken = take_backups(lab.ws, "alice", select=f"name:{name}", inventory="lab")
    # The same switches, every one of them down: only the ledger can answer.
    offline = lab_variant(lab, "lab-offline", down=[ci.name for ci in lab.switches], spare=name)
    spare = f"{name}-spare"
    ledger = Ledger.open(lab.ws)
    run = run_compliance(
        lab.ws, "alice", select=f"name:{name} or name:{spare}", source="backup", inventory=offline
    )
    by_ci = {r.ci: r for r in run.fleet.results}
    assert by_ci[name].state in (State.COMPLIANT, State.NON_COMPLIANT)
    # A backup holds no live state: the structured feature cannot be judged from it.
    assert by_ci[name].feature("vlan-state").state is State.UNKNOWN
    assert by_ci[spare].state is State.UNKNOWN and by_ci[spare].reason == "no backup"
    assert all(f.state is State.UNKNOWN for f in by_ci[spare].features)
    assert not run.ok
    event = next(
        e for e in ledger.events(ci=name, kind=RESULT_KIND) if e.seq == run.result_seqs[name]
    )
    assert event.payload["origin"] == f"#{taken.results[0].seq}"
    backup = next(
        e for e in ledger.events(ci=name, kind="backup.taken") if e.seq == taken.results[0].seq
    )
    assert event.blobs["config"] == backup.blobs["running"]  # the same blob, stored once

    live = run_compliance(lab.ws, "alice", select=f"name:{name}", inventory=offline)
    result = live.fleet.results[0]
    assert result.state is State.UNKNOWN and "unreachable" in (result.reason or "")


def test_cli_exit_codes_and_unreachable(lab: LabEnv) -> None:
    offline = lab_variant(lab, "lab-half", down=[lab.switches[1].name])

    def opskit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "opskit", "-w", str(lab.ws.root), "--as", "erin", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    select = f"name:{lab.switches[0].name} or name:{lab.switches[1].name}"
    out = opskit("compliance", "run", "--inventory", offline, "--select", select, "--json")
    assert out.returncode == 1, out.stderr
    import json

    data = json.loads(out.stdout)
    states = {r["ci"]: r["state"] for r in data["results"]}
    assert states[lab.switches[1].name] == "unknown"
    assert states[lab.switches[0].name] in ("compliant", "non-compliant")
    verified = opskit("audit", "verify")
    assert verified.returncode == 0 and "ledger OK" in verified.stdout, verified.stderr
    shown = opskit("compliance", "show", lab.switches[0].name)
    assert shown.returncode == 0 and lab.switches[0].name in shown.stdout
    bad = opskit("compliance", "run", "--inventory", "lab", "--feature", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr and bad.stderr.count("\n") == 1
    bad = opskit("compliance", "run", "--inventory", "lab", "--source", "cache")
    assert bad.returncode == 2 and "--source" in bad.stderr


def test_bad_rules_or_template_record_nothing(workspace: Workspace) -> None:
    ledger = Ledger.open(workspace)
    head = ledger.head()
    rules = workspace.root / "compliance" / "cisco_ios.yaml"
    good = rules.read_text()
    rules.write_text(good.replace("mode: intended", "mode: sometimes", 1))
    with pytest.raises(RuleError) as caught:
        run_compliance(workspace, "alice", select="platform:cisco_ios", inventory="example")
    assert "cisco_ios.yaml" in str(caught.value) and caught.value.line
    command = ["compliance", "run", "--inventory", "example", "--source", "backup"]
    cli = subprocess.run(
        [sys.executable, "-m", "opskit", "-w", str(workspace.root), "--as", "alice", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and "Traceback" not in cli.stderr
    assert f"cisco_ios.yaml:{caught.value.line}" in cli.stderr and "[" in cli.stderr  # the field
    rules.write_text(good)
    template = workspace.templates_dir / "intended" / "cisco_ios.j2"
    template.write_text("hostname {{ ci.name }}\n{{ ci.no_such_field.x }}\n")
    with pytest.raises(IntendedError, match=r"intended/cisco_ios.j2"):
        run_compliance(workspace, "alice", select="platform:cisco_ios", inventory="example")
    with pytest.raises(UsageError, match="--source"):
        run_compliance(workspace, "alice", source="cache", inventory="example")
    assert ledger.head() == head


def test_history_shows_a_change_made_outside_opskit(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    make_compliant(lab, ci.name)
    ledger = Ledger.open(lab.ws)
    start = ledger.head()[0]
    try:
        with NetmikoConnector(ci) as conn:
            conn.apply_config(["interface FastEthernet0/12", " description by-hand", "exit"])
        run_compliance(
            lab.ws, "erin", select=f"name:{ci.name}", inventory="lab", features=["interfaces"]
        )
    finally:
        with NetmikoConnector(ci) as conn:
            conn.apply_config(["interface FastEthernet0/12", " no description", "exit"])
    run_compliance(
        lab.ws, "erin", select=f"name:{ci.name}", inventory="lab", features=["interfaces"]
    )
    moves = [t for t in feature_history(ledger, ci=ci.name, feature="interfaces") if t.seq > start]
    assert [(t.before, t.after, t.cause) for t in moves] == [
        ("compliant", "non-compliant", "outside opskit"),
        ("non-compliant", "compliant", "outside opskit"),
    ]
    rates = compliance_rates(ledger, [ci.name])
    assert rates["features"]["interfaces"]["rate"] == 1.0


def test_a_secret_on_the_device_is_never_recorded(lab: LabEnv) -> None:
    """The canary: the lab's device password, registered as a secret when
    opskit connects, put into a switch's configuration; the run records the
    result masked and without the configuration, and no byte of the
    database holds it."""
    ci = lab.dedicated_switch
    password = (lab.ws.state_dir / "lab" / "password").read_text().strip()
    ledger = Ledger.open(lab.ws)
    with NetmikoConnector(ci) as conn:
        conn.apply_config(["interface FastEthernet0/11", f" description {password}", "exit"])
    try:
        run = run_compliance(lab.ws, "erin", select=f"name:{ci.name}", inventory="lab")
        take_backups(lab.ws, "erin", select=f"name:{ci.name}", inventory="lab")
    finally:
        with NetmikoConnector(ci) as conn:
            conn.apply_config(["interface FastEthernet0/11", " no description", "exit"])
    result = run.fleet.results[0]
    assert any(password in line for f in result.features for line in f.extra)  # seen, in memory
    event = next(e for e in ledger.events(ci=ci.name, kind=RESULT_KIND) if e.seq == run.seq + 1)
    assert "config" not in event.blobs and "diff" not in event.blobs
    assert "********" in str(event.payload["features"])
    for path in lab.ws.state_dir.glob("opskit.db*"):
        assert password.encode() not in read_bytes_elsewhere(path)
    assert ledger.verify().ok
