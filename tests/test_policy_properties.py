"""Property tests of the policy loader: whatever `opskit.yaml` holds, loading
it either gives a Policy or raises one one-line PolicyError naming the file
(and the line and field when there is one); a valid policy round-trips."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import PolicyError
from opskit.policy import Policy, Role, load_policy
from tests.fuzz.strategies import quorum_bound

SETTINGS = settings(
    deadline=None,
    database=None,  # keep Hypothesis' example database out of the repository
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROLES = [role.value for role in Role]
INVENTORIES = ("example", "lab")
names = st.text(string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=12)
times = st.times().map(lambda t: t.strftime("%H:%M"))
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
lengths = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=60))
days = st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1)


@st.composite
def valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    people = draw(
        st.dictionaries(
            names,
            st.fixed_dictionaries(
                {"roles": st.lists(st.sampled_from(ROLES), min_size=1, unique=True)},
                optional={"name": st.text(max_size=20), "email": st.emails()},
            ),
            min_size=1,
            max_size=6,
        )
    )

    def rule(roles: list[str] | None = None) -> dict[str, Any]:
        roles = roles or draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True))
        # A rule nobody but a requester can meet is refused (four-eyes): add an approver.
        while (eligible := quorum_bound(people, roles)) == 0:
            people[f"approver.{len(people)}"] = {"roles": list(roles)}
        return {"roles": roles, "count": draw(st.integers(1, eligible))}

    emergency = {**rule(), "retrospective": rule()}
    policy: dict[str, Any] = {
        "version": 1,
        "inventory": draw(st.sampled_from(INVENTORIES)),
        "people": people,
        "approvals": {
            "low": rule(),
            "medium": rule(),
            "high": rule(),
            "emergency": emergency,
        },
        "require_signed_approvals": draw(st.booleans()),
        "windows": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"name": names, "start": times, "end": times, "days": days},
                    optional={"timezone": st.sampled_from(["UTC", "Europe/Berlin", "Asia/Tokyo"])},
                ),
                max_size=2,
            )
        ),
        "freezes": [
            {
                "name": draw(names),
                "start": start.isoformat(),
                "end": (start + length).isoformat(),
                "emergency_override": rule(),
            }
            for start, length in draw(st.lists(st.tuples(moments, lengths), max_size=2))
        ],
        "concurrency": draw(
            st.lists(
                st.fixed_dictionaries({"group": names, "max_changing": st.integers(1, 100)}),
                max_size=2,
            )
        ),
    }
    if draw(st.booleans()):
        policy["retention_days"] = draw(st.integers(1, 36500))
    return policy


# Any YAML value: what a broken policy may hold where a field is expected.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.datetimes(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def broken_policies(draw: st.DrawFn) -> Any:
    """A valid policy with one part replaced, removed or added at a random place."""
    policy = draw(valid_policies())
    node: Any = policy
    path: list[Any] = []
    while isinstance(node, dict | list) and node and draw(st.booleans()):
        key = draw(
            st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node)))
        )
        path.append(key)
        node = node[key]
    parent: Any = policy
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "remove", "add"]))
    if not path:
        return draw(values) if action == "replace" else policy
    key = path[-1]
    if action == "replace":
        parent[key] = draw(values)
    elif action == "remove":
        del parent[key]
    elif isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=12))] = draw(values)
    else:
        parent.append(draw(values))
    return policy


def workspace_dir(tmp_path: Path) -> Path:
    for name in INVENTORIES:
        (tmp_path / "inventories" / name).mkdir(parents=True, exist_ok=True)
    return tmp_path / "opskit.yaml"


def load_or_error(path: Path) -> Policy | PolicyError:
    try:
        return load_policy(path, inventories_dir=path.parent / "inventories")
    except PolicyError as exc:  # any other exception fails the test
        message = str(exc)
        assert "\n" not in message and message.strip() == message
        assert exc.file == str(path)
        assert message.startswith(f"{path}:")
        if exc.field is not None:
            assert exc.line is not None, message
        return exc


@SETTINGS
@given(policy=valid_policies())
def test_a_valid_policy_round_trips(tmp_path: Path, policy: dict[str, Any]) -> None:
    path = workspace_dir(tmp_path)
    path.write_text(yaml.safe_dump(policy, allow_unicode=True))
    loaded = load_policy(path, inventories_dir=tmp_path / "inventories")
    assert set(loaded.people) == set(policy["people"])
    assert loaded.approvals.medium.count == policy["approvals"]["medium"]["count"]
    assert [w.start.strftime("%H:%M") for w in loaded.windows] == [
        w["start"] for w in policy["windows"]
    ]
    assert [f.end - f.start for f in loaded.freezes] == [
        datetime.fromisoformat(f["end"]) - datetime.fromisoformat(f["start"])
        for f in policy["freezes"]
    ]
    # What the loader gives back, written out again, loads to the same policy.
    path.write_text(yaml.safe_dump(loaded.model_dump(mode="json"), allow_unicode=True))
    assert load_policy(path, inventories_dir=tmp_path / "inventories") == loaded


@SETTINGS
@given(document=broken_policies())
def test_a_broken_policy_is_one_policy_error(tmp_path: Path, document: Any) -> None:
    path = workspace_dir(tmp_path)
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    load_or_error(path)


@SETTINGS
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_is_a_policy_or_one_policy_error(tmp_path: Path, text: str | bytes) -> None:
    path = workspace_dir(tmp_path)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    load_or_error(path)


@SETTINGS
@given(
    field=st.sampled_from(["version", "retention_days", "count", "max_changing"]),
    value=st.sampled_from([".nan", ".NaN", ".inf", "-.inf", ".Inf", "+.inf"]),
)
def test_no_number_in_a_policy_may_be_nan_or_infinite(
    tmp_path: Path, field: str, value: str
) -> None:
    path = workspace_dir(tmp_path)
    lines = {
        "version": f"version: {value}",
        "retention_days": f"retention_days: {value}",
        "count": f"approvals: {{low: {{roles: [cab], count: {value}}}}}",
        "max_changing": f"concurrency: [{{group: core, max_changing: {value}}}]",
    }
    path.write_text(
        f"people: {{bob: {{roles: [cab, change_manager, governance]}}}}\n{lines[field]}\n"
    )
    error = load_or_error(path)
    assert isinstance(error, PolicyError)
    assert "is not a finite number" in str(error) and error.line == 2


@SETTINGS
@given(name=st.text(max_size=400))
def test_any_inventory_name_is_a_policy_or_one_policy_error(tmp_path: Path, name: str) -> None:
    path = workspace_dir(tmp_path)
    policy = {"inventory": name, "people": {"bob": {"roles": ["cab", "change_manager"]}}}
    policy["approvals"] = {"medium": {"roles": ["cab"], "count": 1}, "high": {"roles": ["cab"]}}
    path.write_text(yaml.safe_dump(policy, allow_unicode=True))
    result = load_or_error(path)
    assert isinstance(result, PolicyError) == (name not in INVENTORIES)
