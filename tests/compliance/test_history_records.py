"""The compliance history derived from a real ledger (SQLite): transitions,
``unknown`` results left out, the cause of each move (a change applied to
the CI in between, or "outside opskit"), --since, and the compliance rate."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.compliance.accuracy import compliance_rates
from opskit.compliance.history import (
    OUTSIDE,
    feature_history,
    latest_feature_states,
    latest_feature_states_of,
)
from opskit.compliance.runs import RESULT_KIND
from opskit.errors import UsageError
from opskit.ledger.core import Ledger
from opskit.workspace import Workspace


def _result(ledger: Ledger, ci: str, **states: str) -> int:
    features = [{"feature": name, "state": state} for name, state in states.items()]
    payload: dict[str, Any] = {"features": features, "source": "live", "run": 0}
    return ledger.append(RESULT_KIND, actor="erin", ci=ci, payload=payload).seq


def test_transitions_causes_and_rates(workspace: Workspace) -> None:
    ledger = Ledger.open(workspace)
    _result(ledger, "sw1", ntp="compliant", vlans="non-compliant")
    _result(ledger, "sw2", ntp="compliant", vlans="compliant")
    _result(ledger, "sw1", ntp="unknown", vlans="unknown")  # unreachable: no move
    ledger.append("host.applied", actor="alice", ci="sw1", change_id="CHG-000007")
    _result(ledger, "sw1", ntp="compliant", vlans="compliant")
    _result(ledger, "sw1", ntp="non-compliant", vlans="compliant")  # changed by hand
    moves = [(t.ci, t.feature, t.before, t.after, t.cause) for t in feature_history(ledger)]
    assert moves == [
        ("sw1", "ntp", None, "compliant", "first result"),
        ("sw1", "vlans", None, "non-compliant", "first result"),
        ("sw2", "ntp", None, "compliant", "first result"),
        ("sw2", "vlans", None, "compliant", "first result"),
        ("sw1", "vlans", "non-compliant", "compliant", "CHG-000007"),
        ("sw1", "ntp", "compliant", "non-compliant", OUTSIDE),
    ]
    assert [t.feature for t in feature_history(ledger, ci="sw1", feature="ntp")] == ["ntp", "ntp"]
    assert latest_feature_states(ledger, "sw1")["ntp"][0] == "non-compliant"
    # One pass for many CIs (the after-change evaluation) says what one query per CI says.
    assert latest_feature_states_of(ledger, ["sw1", "sw2", "sw9"]) == {
        "sw1": latest_feature_states(ledger, "sw1"),
        "sw2": latest_feature_states(ledger, "sw2"),
        "sw9": {},
    }
    rates = compliance_rates(ledger)
    assert (rates["judged"], rates["compliant"], rates["rate"]) == (2, 1, 0.5)
    assert rates["features"]["vlans"]["rate"] == 1.0
    assert rates["features"]["ntp"]["rate"] == 0.5
    last = feature_history(ledger)[-1]
    assert feature_history(ledger, since=last.at) == [last]
    assert feature_history(ledger, since="2999-01-01") == []


ISO_TIMES = st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat())


@given(st.text(max_size=30) | ISO_TIMES | st.dates().map(str))
def test_any_since_is_a_date_or_one_usage_error(since: str) -> None:
    from opskit.compliance.history import _since_text

    try:
        text = _since_text(since)
    except UsageError as exc:
        assert "\n" not in str(exc) and "--since" in str(exc)
    else:
        assert text.endswith("Z")


def test_a_ledger_without_results_has_no_history(workspace: Workspace) -> None:
    ledger = Ledger.open(workspace)
    assert feature_history(ledger) == []
    assert compliance_rates(ledger)["rate"] is None
    with pytest.raises(UsageError, match="--since"):
        feature_history(ledger, since="yesterday")
    with pytest.raises(UsageError, match="--since"):  # was an OverflowError traceback
        feature_history(ledger, since="9999-12-31T23:59:59-23:59")
