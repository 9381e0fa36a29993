"""Inspection thresholds on real `show interfaces` captures (ntc-templates' own
test samples, tests/data/configs/show_interfaces/): a value the device does not
report (ntc-templates leaves ``output_errors`` empty for ``Vlan1``) is "not
reported", named in the finding, and never fails the check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.inventory.model import CI, CIType
from opskit.runbooks.expectations import StepOutput, evaluate
from opskit.runbooks.model import Expectation

SAMPLES = sorted((Path(__file__).parents[1] / "data" / "configs" / "show_interfaces").glob("*.raw"))
SWITCH = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios", host="192.0.2.1")


def expected_rows(raw: Path) -> list[dict[str, Any]]:
    """ntc-templates' own expected parse of the sample."""
    return yaml.safe_load(raw.with_suffix(".yml").read_text())["parsed_sample"]


def check(raw: Path, field: str, limit: int) -> tuple[bool, str, bool]:
    """The inspection runbook's interface-error expectation on the sample."""
    spec = {"template": "show interfaces", "field": field, "max": limit, "all": True}
    (result,) = evaluate(
        [Expectation("textfsm", spec)],
        StepOutput(text=raw.read_text(), by_command={"show interfaces": raw.read_text()}),
        conn=None,  # type: ignore[arg-type]  # a TextFSM check never reaches the device
        ci=SWITCH,
    )
    return result.passed, result.detail, result.unavailable


def test_the_samples_include_interfaces_without_error_counters() -> None:
    empty = [r for raw in SAMPLES for r in expected_rows(raw) if r["output_errors"] == ""]
    assert len(SAMPLES) == 7 and len(empty) >= 10
    assert any(r["interface"].startswith("Vlan") for r in empty)


@pytest.mark.parametrize("raw", SAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("field", ["input_errors", "output_errors"])
def test_unreported_counters_are_named_and_never_fail(raw: Path, field: str) -> None:
    rows = expected_rows(raw)
    unreported = [r["interface"] for r in rows if r[field] == ""]
    counting = [r for r in rows if r[field] != ""]
    # No threshold is crossed: the check passes, whatever the device did not report.
    passed, detail, unavailable = check(raw, field, 10**12)
    assert passed and not unavailable, detail
    assert f"within limits in all {len(counting)} row(s)" in detail
    if unreported:
        assert f"{field} not reported (not checked) in {len(unreported)} row(s): " in detail
        assert all(name in detail for name in unreported[:5])
    else:
        assert "not reported" not in detail
    # The threshold still catches a real counter above it.
    over = [r["interface"] for r in counting if int(r[field]) > 0]
    passed, detail, _ = check(raw, field, 0)
    assert passed == (not over), detail
    if over:
        assert detail.startswith(f"{len(over)} row(s) out of limits: ")
        assert not any(f"{name}: {field}=''" in detail for name in unreported)


@pytest.mark.lab
def test_the_inspection_runbook_passes_a_lab_switch_with_an_svi(lab) -> None:
    """The shipped runbook on a switch with `interface Vlan1` (an SVI): no
    interface-error exception; the finding says Vlan1's counter is not reported."""
    from opskit.connectors.netmiko import NetmikoConnector
    from opskit.connectors.pool import ConnectionPool
    from opskit.runbooks import RunbookCatalog
    from opskit.runbooks.inspection import run_inspection

    switch = lab.switches[2]
    with NetmikoConnector(switch) as conn:
        conn.apply_config(["interface Vlan1", " ip address 10.1.1.1 255.255.255.0", "exit"])
    try:
        book = RunbookCatalog(Path(__file__).resolve().parents[2]).get("inspection")
        with ConnectionPool(max_sessions=2) as pool:
            report, _ = run_inspection(book, [switch], pool=pool)
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config(["no interface Vlan1"])
            assert "interface Vlan1" not in conn.get_config()
    [host] = report.to_dict()["hosts"]
    finding = next(f for f in host["findings"] if f["check"] == "interface_errors")
    assert finding["status"] == "ok", finding
    assert "output_errors not reported (not checked) in 1 row(s): Vlan1" in finding["detail"]
    assert "input_errors within limits in all 13 row(s)" in finding["detail"]
