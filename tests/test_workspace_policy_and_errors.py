"""The workspace, the policy file and the CLI's error contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from opskit.errors import PolicyError, WorkspaceError
from opskit.policy import load_policy
from opskit.workspace import Workspace, init_workspace

OPSKIT = [sys.executable, "-m", "opskit"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OPSKIT, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_init_creates_layout_and_default_policy(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "w")
    for sub in ("inventories", "runbooks", "playbooks", "templates", ".opskit"):
        assert (ws.root / sub).is_dir()
    policy = ws.policy
    assert policy.inventory == "example"
    assert "change_manager" in {r.value for r in policy.people["bob"].roles}


def test_init_twice_refuses(tmp_path: Path) -> None:
    init_workspace(tmp_path / "w")
    with pytest.raises(WorkspaceError, match="already a workspace"):
        init_workspace(tmp_path / "w")


def test_open_missing_workspace(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="not an opskit workspace"):
        Workspace.open(tmp_path)


def test_policy_error_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "opskit.yaml"
    path.write_text("version: 1\npeople:\n  bob:\n    roles: [change_manager, wizard]\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    message = str(info.value)
    assert f"{path}:4" in message
    assert "people.bob.roles[1]" in message


def test_policy_rejects_unknown_field_and_bad_timezone(tmp_path: Path) -> None:
    path = tmp_path / "opskit.yaml"
    path.write_text("version: 1\nbogus: true\n")
    with pytest.raises(PolicyError, match=r":2 \[bogus\]"):
        load_policy(path)
    path.write_text('windows:\n  - {name: w, timezone: Mars/Base, start: "22:00", end: "05:00"}\n')
    with pytest.raises(PolicyError, match="unknown timezone"):
        load_policy(path)


def test_cli_expected_error_is_one_line_exit_1(tmp_path: Path) -> None:
    result = run_cli("--workspace", str(tmp_path / "none"), "audit", "verify")
    assert result.returncode in (1, 2)
    if result.returncode == 1:
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_cli_usage_error_exit_2() -> None:
    result = run_cli("--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_redactor_masks_plain_and_json_escaped_multiline_secret() -> None:
    import json

    from opskit.secrets import MASK, REDACTOR

    key = '-----BEGIN KEY-----\nabc123"def\n-----END KEY-----'
    REDACTOR.register(key)
    payload = json.dumps({"stdout": f"key is {key}"})
    assert key[:20] not in REDACTOR.redact(f"x {key} y")
    redacted = REDACTOR.redact(payload)
    assert "abc123" not in redacted and MASK in redacted
    assert REDACTOR.find(payload)


@pytest.mark.parametrize("extra", [0, 40], ids=["substring-search", "alternation"])
def test_redactor_finds_and_masks_alike_with_few_or_many_secrets(extra: int) -> None:
    """Few registered forms are searched value by value, many with one
    compiled alternation: the verdicts and the masked text are the same."""
    from opskit.secrets import MASK, SCAN_BY_SUBSTRING, Redactor

    redactor = Redactor()
    for secret in ("hunter2-long", "hunter2", "pässwörd", 'q"uote\nline'):
        redactor.register(secret)
    for i in range(extra):
        redactor.register(f"device-{i:03d}-secret")
    assert (len(redactor.values) > SCAN_BY_SUBSTRING) == bool(extra)
    clean = "interface Fa0/1\n description uplink\n" * 50
    assert redactor.find(clean) is False
    assert redactor.redact(clean) is clean  # untouched, not copied
    text = f'{clean}login hunter2-long then hunter2; pw=pässwörd json={{"k": "q\\"uote\\nline"}}'
    assert redactor.find(text) is True
    masked = redactor.redact(text)
    assert f"login {MASK} then {MASK}; pw={MASK}" in masked  # the longest form masked whole
    assert "hunter2" not in masked and "pässwörd" not in masked and "uote" not in masked
    assert redactor.find(masked) is False
    assert redactor.find(b"bytes with hunter2 inside") is True
    if extra:
        assert redactor.redact("x device-039-secret y") == f"x {MASK} y"
    redactor.clear()
    assert redactor.find(text) is False and redactor.redact(text) is text


def test_every_log_record_is_redacted_even_from_third_party_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from opskit.secrets import REDACTOR

    secret = "canary-4f9a1c"
    REDACTOR.register(secret)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("paramiko.transport").debug("auth with %s", secret)
    try:
        raise ValueError(f"bad password {secret}")
    except ValueError:
        logging.getLogger("netmiko").exception("failed")
    assert "auth with ********" in caplog.text
    assert secret not in caplog.text
    assert "bad password ********" in caplog.text


# A wrong option value is a usage error (exit 2): one line naming the option
# and what it accepts, found before the workspace or the database is touched.
DAY = "2026-01-02T00:00Z"
CREATE = ["change", "create", "--runbook", "vlan-interface", "--select", "name:sw1", "--title", "t"]
WRONG_OPTION_VALUES = [
    ([*CREATE, "--type", "bogus"], "error: --type 'bogus': use one of standard, normal, emergency"),
    (["change", "list", "--state", "opened"], "error: --state 'opened': use one of draft, "),
    (
        ["change", "close", "CHG-000001", "--review", "ok", "--outcome", "great"],
        "error: --outcome 'great': use one of rejected, completed, failed, rolled_back",
    ),
    (["change", "recover", "--stale-after", "-1"], "error: --stale-after -1: give 0 or more"),
    ([*CREATE, "--window-start", "soon"], "error: --window-start 'soon': use ISO 8601"),
    (
        [*CREATE, "--window-start", "2026-01-02T00:00+00:00", "--window-end", "2026-01-01T00:00Z"],
        "error: --window-end 2026-01-01T00:00Z: must be after --window-start",
    ),
    (
        ["change", "schedule", "CHG-1", "--start", DAY, "--end", DAY],
        f"error: --end {DAY}: must be after --start {DAY}",
    ),
    (["change", "create", "--runbook", "x", "--select", "y", "--title", " "], "error: --title: "),
    (["change", "reject", "CHG-1", "--reason", ""], "error: --reason: give a non-empty text"),
    (["change", "close", "CHG-1", "--review", "  "], "error: --review: give a non-empty text"),
    (["audit", "log", "--since", "yesterday"], "error: --since 'yesterday': use ISO 8601"),
    (["inventory", "export", "--format", "xml"], "error: --format 'xml': use one of yaml, json"),
]


@pytest.mark.parametrize(
    ("args", "message"),
    WRONG_OPTION_VALUES,
    ids=[message.split()[1] + "-" + args[1] for args, message in WRONG_OPTION_VALUES],
)
def test_a_wrong_option_value_is_a_one_line_usage_error(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # No workspace at all: the value is refused before anything is opened.
    result = run_cli("--workspace", str(tmp_path / "none"), "--as", "alice", *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
def test_errors_about_the_world_stay_exit_1(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    base = ["--workspace", str(ws.root), "--as", "alice"]
    for args, message in (
        (["change", "close", "CHG-000404", "--review", "ok", "--outcome", "failed"], "no change"),
        (["change", "list", "--state", "closed"], None),
        (["audit", "log", "--since", "2026-01-01"], None),
    ):
        result = run_cli(*base, *args)
        if message is None:
            assert result.returncode == 0, result.stderr
        else:
            assert result.returncode == 1, result.stderr
            assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_an_output_or_workspace_that_cannot_be_written_is_one_line(
    workspace: Workspace, tmp_path: Path
) -> None:
    base = ["--workspace", str(workspace.root)]
    missing = tmp_path / "no" / "such" / "dir"
    for args, where in (
        ([*base, "runbook", "doc", "inspection", "--out", str(missing / "x.md")], missing),
        ([*base, "runbook", "doc", "inspection", "--out", str(tmp_path)], tmp_path),
        ([*base, "inventory", "export", "--out", str(missing / "hosts.yaml")], missing),
    ):
        result = run_cli(*args)
        assert result.returncode == 1, result.stderr
        assert result.stderr.startswith(f"error: {where}"), result.stderr
        assert "cannot write" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    result = run_cli("init", str(a_file))
    assert (result.returncode, result.stderr) == (
        1,
        f"error: {a_file}: exists and is not a folder\n",
    )
    result = run_cli("init", str(a_file / "ws"))  # a parent that is a file
    assert result.returncode == 1 and "cannot create the workspace" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert a_file.read_text() == "x"


def test_init_workspace_api_turns_an_unwritable_place_into_one_line(tmp_path: Path) -> None:
    from opskit.errors import WorkspaceError
    from opskit.workspace import init_workspace

    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    with pytest.raises(WorkspaceError, match=r"cannot create the workspace \(Not a directory\)"):
        init_workspace(a_file / "ws")
    assert a_file.read_text() == "x"
