"""The `notify:` entries of the policy: webhook URLs and event filters
(Hypothesis properties), and a malformed one refused in one line that names
the policy file, the line and the field, with nothing written."""

from __future__ import annotations

import hashlib
import string
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import PolicyError
from opskit.notify.events import GROUPS, KINDS, event_problem, expand, url_problem
from opskit.policy import DEFAULT_POLICY_YAML, load_policy
from opskit.workspace import Workspace
from tests.audit_support import cli

SETTINGS = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
hosts = st.one_of(
    st.lists(labels, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
paths = st.lists(st.text(string.ascii_letters + string.digits + "-_.~", max_size=8), max_size=4)


@st.composite
def webhook_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.one_of(st.none(), st.integers(1, 65535)))
    netloc = draw(hosts) + (f":{port}" if port else "")
    query = draw(st.one_of(st.just(""), labels.map(lambda q: f"?token={q}")))
    return f"{scheme}://{netloc}/" + "/".join(draw(paths)) + query


@SETTINGS
@given(webhook_urls())
def test_a_well_formed_url_is_accepted_and_can_be_posted_to(url: str) -> None:
    assert url_problem(url) is None
    request = urllib.request.Request(url, data=b"{}", method="POST")
    assert urlsplit(request.full_url).hostname


@SETTINGS
@given(webhook_urls(), labels, st.one_of(st.none(), labels))
def test_credentials_in_the_url_are_refused(url: str, user: str, password: str | None) -> None:
    scheme, rest = url.split("://", 1)
    userinfo = user + (f":{password}" if password else "")
    assert "credentials" in (url_problem(f"{scheme}://{userinfo}@{rest}") or "")


@SETTINGS
@given(st.text(max_size=80))
def test_any_text_is_judged_never_crashes(text: str) -> None:
    problem = url_problem(text)
    if problem is None:
        parts = urlsplit(text)
        assert parts.scheme in ("http", "https") and parts.hostname
        assert parts.username is None and parts.password is None
        assert not any(ch.isspace() or ord(ch) < 32 for ch in text)


@SETTINGS
@given(webhook_urls(), st.sampled_from(["ftp", "file", "javascript", "gopher", "ws", "HTTPS "]))
def test_other_schemes_are_refused(url: str, scheme: str) -> None:
    assert url_problem(scheme + url[url.index(":") :]) is not None


names = st.one_of(
    st.sampled_from(sorted(GROUPS)),
    st.sampled_from(sorted(KINDS)),
    st.sampled_from(sorted(k.removeprefix("change.") for k in KINDS)),
)


@SETTINGS
@given(st.lists(names, max_size=6), st.lists(names, max_size=6))
def test_event_filters_expand_to_known_kinds_by_union(a: list[str], b: list[str]) -> None:
    assert all(event_problem(name) is None for name in a + b)
    assert expand(a) <= KINDS
    assert expand(a + b) == expand(a) | expand(b)
    assert expand(["all"]) == KINDS


@SETTINGS
@given(st.text(max_size=30))
def test_an_unknown_event_name_is_refused_with_the_known_ones(name: str) -> None:
    known = name in GROUPS or name in KINDS or f"change.{name}" in KINDS
    problem = event_problem(name)
    assert (problem is None) == known
    if problem:
        assert "known:" in problem


@SETTINGS
@given(
    st.one_of(webhook_urls(), st.text(max_size=40)),
    st.lists(st.one_of(names, st.text(max_size=12)), max_size=3),
    st.one_of(st.just({"env": "HOOK_SECRET"}), st.just("plain-text"), st.just({"nope": 1})),
)
def test_a_policy_notify_entry_loads_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory, url: str, events: list[str], secret: object
) -> None:
    path = tmp_path_factory.mktemp("policy") / "opskit.yaml"
    entry = {"url": url, "events": events, "secret": secret}
    path.write_text(DEFAULT_POLICY_YAML + yaml.safe_dump({"notify": [entry]}))
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}:")
        assert "notify" in message
        return
    (hook,) = policy.notify
    assert url_problem(hook.url) is None and events and not any(map(event_problem, events))
    assert isinstance(secret, dict) and secret == {"env": "HOOK_SECRET"}


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://bob:hunter2@itsm.example.org/hook", "must not hold credentials"),
        ("ftp://itsm.example.org/hook", "starts with http:// or https://"),
        ("https:///hook", "names a host"),
        ("https://itsm.example.org:99999/hook", "Port out of range"),
    ],
)
def test_a_malformed_webhook_url_is_one_line_and_writes_nothing(
    workspace: Workspace, url: str, problem: str
) -> None:
    text = workspace.policy_path.read_text()
    text += f"notify:\n  - url: {url}\n    secret: {{env: HOOK_SECRET}}\n"
    workspace.policy_path.write_text(text)
    line = text.splitlines().index(f"  - url: {url}") + 1
    before = _digest(workspace.state_dir)
    for command in (
        ("--as", "alice", "change", "create", "--runbook", "vlan-interface@1.0.0",
         "--select", "core-sw1", "--title", "t", "--param", "vlan_id=5"),
        ("notify", "deliver", "--once"),
    ):  # fmt: skip
        done = cli(*command, ws=workspace)
        assert done.returncode != 0 and done.stdout == ""
        (message,) = done.stderr.splitlines()
        assert message.startswith(f"error: {workspace.policy_path}:{line} [notify[0].url]: ")
        assert problem in message and "hunter2" not in message
    assert _digest(workspace.state_dir) == before


def test_a_webhook_named_twice_is_refused(tmp_path: Path) -> None:
    hook = {"url": "https://itsm.example.org/hook", "secret": {"env": "S"}}
    path = tmp_path / "opskit.yaml"
    path.write_text(DEFAULT_POLICY_YAML + yaml.safe_dump({"notify": [hook, hook]}))
    with pytest.raises(PolicyError, match=r"\[notify\]: https://itsm.example.org/hook is named"):
        load_policy(path)


@SETTINGS
@given(
    st.one_of(webhook_urls(), st.text(max_size=40)),
    st.one_of(st.just({"env": "NB_TOKEN"}), st.just("0123456789abcdef"), st.just({"nope": 1})),
    st.one_of(st.none(), webhook_urls(), st.text(max_size=20)),
    st.sampled_from(["journal", "custom_field", "both", "none", "off", "sometimes", 3]),
    st.sampled_from([True, False, "yes", None]),
)
def test_a_policy_writeback_entry_loads_or_is_one_line(
    tmp_path_factory: pytest.TempPathFactory,
    url: str,
    token: object,
    report_url: str | None,
    compliance: object,
    last_change: object,
) -> None:
    path = tmp_path_factory.mktemp("policy") / "opskit.yaml"
    entry = {"url": url, "token": token, "report_url": report_url, "compliance": compliance,
             "last_change_field": last_change}  # fmt: skip
    path.write_text(DEFAULT_POLICY_YAML + yaml.safe_dump({"writeback": [entry]}))
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}:")
        assert "writeback" in message and "0123456789abcdef" not in message
        return
    (written,) = policy.writeback
    assert url_problem(written.url) is None and token == {"env": "NB_TOKEN"}
    assert report_url is None or url_problem(report_url) is None
    assert compliance in ("journal", "custom_field", "both", "none")
    assert isinstance(last_change, bool)


def test_a_url_both_webhook_and_writeback_is_refused(tmp_path: Path) -> None:
    url = "https://nautobot.example.org"
    document = {"notify": [{"url": url, "secret": {"env": "S"}}],
                "writeback": [{"url": url, "token": {"env": "T"}}]}  # fmt: skip
    path = tmp_path / "opskit.yaml"
    path.write_text(DEFAULT_POLICY_YAML + yaml.safe_dump(document))
    with pytest.raises(PolicyError, match=r"https://nautobot.example.org is named twice"):
        load_policy(path)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("url", "ftp://nautobot.example.org", "a write-back URL starts with http://"),
        ("url", "https://u:p@nautobot.example.org", "a write-back URL must not hold credentials"),
        ("report_url", "https://reports/x y", "a report URL must not hold blanks"),
    ],
)
def test_a_bad_writeback_url_is_named_as_such_not_as_a_webhook(
    tmp_path: Path, field: str, value: str, expected: str
) -> None:
    entry = {"url": "https://nautobot.example.org", "token": {"env": "T"}, field: value}
    path = tmp_path / "opskit.yaml"
    path.write_text(DEFAULT_POLICY_YAML + yaml.safe_dump({"writeback": [entry]}))
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    message = str(refused.value)
    assert f"[writeback[0].{field}]: {expected}" in message and "webhook" not in message
