"""Property tests (Hypothesis) for the template checks: any Jinja-like text in
an expectation, a step's lines or a template file either loads (and then
`render_check` reports problems as values, never raises) or is refused by
`load_runbook` in one `RunbookError` line naming the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import RunbookError
from opskit.inventory.model import CI, CIType
from opskit.runbooks import load_runbook
from opskit.runbooks.rendercheck import render_check

TOKENS = [
    "{{", "}}", "{%", "%}", "{#", "#}", " ", "\n", "params", "ci", "secrets", ".", "prefix",
    "name", "nope", "__class__", "mro", "|", "upper", "int", "default('x')", "if", "endif",
    "for", "x", "in", "endfor", "set", "=", "'", '"', "(", ")", "[", "]", "1", "0", "+", "/",
    "include", "'other.j2'", "ip route", "~",
]  # fmt: skip
jinja_text = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)
PROFILE = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def document(expect: str, line: str) -> dict[str, Any]:
    return {
        "name": "demo",
        "version": "1.0.0",
        "description": "A demo runbook.",
        "owner": "ops",
        "risk": "low",
        "targets": {"platforms": ["cisco_ios"]},
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"prefix": {"type": "string", "default": "10.0.0.0"}},
        },
        "apply": [
            {
                "name": "add it",
                "connector": "netmiko",
                "action": "config",
                "params": {"template": "demo/t.j2"},
            },
            {
                "name": "more",
                "connector": "netmiko",
                "action": "config",
                "params": {"lines": [line]},
            },
        ],
        "verify": [
            {
                "name": "check",
                "connector": "netmiko",
                "action": "commands",
                "params": {"commands": ["show run"]},
                "expect": [{"contains": expect}],
            }
        ],
        "rollback": "auto",
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("templates")
    (root / "runbooks" / "demo").mkdir(parents=True)
    (root / "templates" / "demo").mkdir(parents=True)
    (root / "templates" / "other.j2").write_text("! other {{ params.prefix }}\n")
    return root


@PROFILE
@given(expect=jinja_text, line=jinja_text, template=jinja_text)
def test_any_template_text_loads_or_is_refused_in_one_line(
    root: Path, expect: str, line: str, template: str
) -> None:
    path = root / "runbooks" / "demo" / "1.0.0.yaml"
    path.write_text(yaml.safe_dump(document(expect, line), allow_unicode=True))
    (root / "templates" / "demo" / "t.j2").write_text(template)
    try:
        book = load_runbook(path, root)
    except RunbookError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(f"{path}:")
        assert "[" in message, "names the field"
        return
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios", attributes={"name2": "x"})
    values = book.validate_params({})
    for problem in render_check(book, [ci], values):
        assert problem.host == "sw1" and "\n" not in str(problem)
