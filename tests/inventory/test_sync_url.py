"""The source-of-truth URL of `opskit inventory sync` and `drift --against`:
checked before the token is resolved or anything is read, one line, and a
password in it never echoed (it would also have gone into the synced
inventory's header, which is committed to git)."""

from __future__ import annotations

import pytest

from opskit.workspace import Workspace
from tests.fuzz.support import run_cli

PASSWORD = "hunter2-canary-71c3"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"http://admin:{PASSWORD}@127.0.0.1:1", "a nautobot URL must not hold credentials"),
        ("ftp://127.0.0.1/", "a nautobot URL starts with http:// or https://"),
        ("http://127.0.0.1:99999", "not a valid URL: Port out of range"),
    ],
)
@pytest.mark.parametrize("command", [("sync", "nautobot"), ("drift", "--against", "nautobot")])
def test_a_bad_source_url_is_one_line_without_its_password(
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
    url: str,
    expected: str,
) -> None:
    monkeypatch.setenv("NB_SYNC_TOKEN", "t0ken-not-this-one")
    before = sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*"))
    done = run_cli(
        "inventory", *command, "--url", url, "--token-ref", "{env: NB_SYNC_TOKEN}",
        workspace=workspace.root,
    )  # fmt: skip
    assert done.code != 0
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: [url]: {expected}"), done
    assert PASSWORD not in done.stdout + done.stderr
    assert sorted(p.relative_to(workspace.root) for p in workspace.root.rglob("*")) == before
