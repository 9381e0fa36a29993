"""Templates are checked before they reach a device: `runbook validate` parses
and compiles every Jinja string and template file (with their includes) in
the sandboxed StrictUndefined environment; `render_check` renders every step
for every target at assessment; a value never turns one line into several."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opskit.cli import app
from opskit.errors import RunbookError
from opskit.inventory.model import CI, CIType
from opskit.runbooks import load_runbook
from opskit.runbooks.rendercheck import check_renders, render_check
from opskit.runbooks.templating import render_params
from tests.runbooks.demo_support import HEADER, load_refusal, write_book

BOOK = (
    HEADER
    + """\
  required: [prefix]
  properties:
    prefix: {type: string, format: ipv4-network}
    banner: {type: string, x-opskit-multiline: true, default: "hello"}
    description: {type: string, default: x}
    password: {type: object, secret: true}
apply:
  - name: add the route
    connector: netmiko
    action: config
    params:
      template: demo/route.j2
verify:
  - name: the route is there
    connector: netmiko
    action: commands
    params:
      commands: [show ip route]
    expect:
      - contains: "{{ params.prefix }}"
rollback:
  - name: remove the route
    connector: netmiko
    action: config
    params:
      lines: ["no ip route {{ params.prefix }} Null0"]
"""
)

TEMPLATE = "ip route {{ params.prefix }} Null0\n"


def workspace(tmp_path: Path, book: str = BOOK, template: str = TEMPLATE) -> Path:
    return write_book(tmp_path, book, {"demo/route.j2": template})


def test_the_shipped_pattern_loads(tmp_path: Path) -> None:
    book = load_runbook(workspace(tmp_path), tmp_path)
    assert "templates/demo/route.j2" in book.files


@pytest.mark.parametrize(
    ("old", "new", "field", "said"),
    [
        # The typo in an expectation.
        (
            'contains: "{{ params.prefix }}"',
            'contains: "{{ params.prefix "',
            "[verify[0].expect[0].contains]",
            "step 'the route is there': template line 1: syntax error",
        ),
        (
            "no ip route {{ params.prefix }} Null0",
            "no ip route {{ params.prefx }} Null0",
            "[rollback[0].params.lines[0]]",
            "params has no attribute 'prefx'",
        ),
        (
            "name: the route is there",
            "name: the route {% if %} is there",
            "[verify[0].name]",
            "syntax error",
        ),
        (
            'contains: "{{ params.prefix }}"',
            "contains: \"{{ ''.__class__.__mro__ }}\"",
            "[verify[0].expect[0].contains]",
            "the sandbox refuses attribute '__",
        ),
        (
            'contains: "{{ params.prefix }}"',
            'contains: "{{ prefix }}"',
            "[verify[0].expect[0].contains]",
            "undefined variable 'prefix'",
        ),
        (
            'contains: "{{ params.prefix }}"',
            'contains: "{{ params.prefix | no_such_filter }}"',
            "[verify[0].expect[0].contains]",
            "No filter named 'no_such_filter'",
        ),
        (
            "no ip route {{ params.prefix }} Null0",
            "no ip route {{ secrets.description }} Null0",
            "[rollback[0].params.lines[0]]",
            "secrets has no attribute 'description' (secret parameters: password)",
        ),
        (
            'contains: "{{ params.prefix }}"',
            'contains: "{{ secrets.password }}"',
            "[verify[0].expect[0].contains]",
            "undefined variable 'secrets' (this text sees ci and params)",
        ),
    ],
)
def test_validate_parses_every_jinja_string(
    tmp_path: Path, old: str, new: str, field: str, said: str
) -> None:
    assert old in BOOK
    message = load_refusal(workspace(tmp_path, BOOK.replace(old, new)))
    assert field in message and said in message


@pytest.mark.parametrize(
    ("template", "said"),
    [
        ("ip route {{ x }\n", "templates/demo/route.j2 line 1: syntax error"),
        ("! ok\nip route {{ params.prefx }} Null0\n", "route.j2 line 2: params has no attribute"),
        ("{{ cycler.__init__.__globals__.os }}\n", "sandbox refuses attribute '__"),
        ("{{ ''.__class__.mro()[1].__subclasses__() }}\n", "sandbox refuses attribute"),
        ("{% include 'demo/missing.j2' %}\n", "line 1: templates/demo/missing.j2 does not exist"),
        ("{% include params.prefix %}\n", "line 1: an included or imported name must be a literal"),
    ],
)
def test_validate_checks_template_files(tmp_path: Path, template: str, said: str) -> None:
    message = load_refusal(workspace(tmp_path, template=template))
    assert "[apply[0].params.template]" in message and "step 'add the route'" in message
    assert said in message


def test_included_templates_are_checked_and_bound_by_the_digest(tmp_path: Path) -> None:
    path = workspace(tmp_path, template="{% include 'demo/common.j2' %}\n")
    common = tmp_path / "templates" / "demo" / "common.j2"
    common.write_text("ip route {{ params.prefix }} Null0\n{% import 'demo/m.j2' as m %}\n")
    (tmp_path / "templates" / "demo" / "m.j2").write_text("{% macro x() %}!{% endmacro %}\n")
    book = load_runbook(path, tmp_path)
    assert {"templates/demo/common.j2", "templates/demo/m.j2"} <= set(book.files)
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    values = book.validate_params({"prefix": "10.0.0.0/24"})
    assert render_params(book.apply[0], values, ci, tmp_path / "templates")["lines"] == [
        "ip route 10.0.0.0/24 Null0"
    ]
    digest = book.digest
    common.write_text("ip route {{ params.prefix }} Null0\n! edited\n")
    assert load_runbook(path, tmp_path).digest != digest
    common.write_text("ip route {{ params.prefix.__class__ }}\n")
    assert "templates/demo/common.j2 line 1: the sandbox refuses" in load_refusal(path)


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({}, "templates/demo/route.j2 line 2: includes itself (demo/route.j2 -> demo/route.j2)"),
        (
            {
                "demo/a.j2": "{% include 'demo/b.j2' %}\n",
                "demo/b.j2": "{% import 'demo/a.j2' as a %}\n",
            },
            "templates/demo/route.j2 line 2: templates/demo/a.j2 line 1: templates/demo/b.j2"
            " line 1: includes itself (demo/a.j2 -> demo/b.j2 -> demo/a.j2)",
        ),
    ],
    ids=["self", "mutual"],
)
def test_a_template_that_includes_itself_is_refused_at_load(
    tmp_path: Path, files: dict[str, str], said: str
) -> None:
    target = "demo/a.j2" if files else "demo/route.j2"
    path = workspace(
        tmp_path, template=f"ip route {{{{ params.prefix }}}} Null0\n{{% include '{target}' %}}\n"
    )
    for name, text in files.items():
        (tmp_path / "templates" / name).write_text(text)
    message = load_refusal(path)
    assert "[apply[0].params.template]" in message and said in message


def test_rendering_a_self_including_template_is_one_line(tmp_path: Path) -> None:
    # Rendering never recurses until Python gives up, even for a file no load checked.
    workspace(tmp_path, template="{% include 'demo/route.j2' %}\n")
    step = load_runbook(workspace(tmp_path / "good"), tmp_path / "good").apply[0]
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    with pytest.raises(RunbookError) as info:
        render_params(step, {"prefix": "10.0.0.0/24"}, ci, tmp_path / "templates")
    message = str(info.value)
    assert "\n" not in message
    assert "templates/demo/route.j2 includes itself" in message


def test_runbook_validate_cli_refuses_in_one_line(tmp_path: Path) -> None:
    path = workspace(tmp_path, BOOK.replace('"{{ params.prefix }}"', '"{{ params.prefix "'))
    result = CliRunner().invoke(app, ["runbook", "validate", str(path)])
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "verify[0].expect[0].contains" in lines[0], result.output


def test_render_check_names_host_step_and_template_line(tmp_path: Path) -> None:
    path = workspace(tmp_path, template="! route\nip route {{ params.prefix }} {{ ci.nexthop }}\n")
    book = load_runbook(path, tmp_path)
    values = book.validate_params({"prefix": "10.0.0.0/24", "password": {"env": "NOPE"}})
    good = CI(
        name="sw1", type=CIType.SWITCH, platform="cisco_ios", attributes={"nexthop": "1.1.1.1"}
    )
    bare = CI(name="sw2", type=CIType.SWITCH, platform="cisco_ios")
    assert render_check(book, [good], values) == []  # the secret is never resolved
    problems = render_check(book, [good, bare], values)
    assert [(p.host, p.step) for p in problems] == [("sw2", "apply[0] 'add the route'")]
    assert "templates/demo/route.j2 line 2: undefined variable" in str(problems[0])
    assert "nexthop" in str(problems[0])
    with pytest.raises(RunbookError, match=r"^cannot render: host sw2: step apply\[0\]"):
        check_renders(book, [good, bare], values)


def test_a_value_with_a_line_break_never_becomes_two_lines(tmp_path: Path) -> None:
    book = load_runbook(workspace(tmp_path, template="ip route {{ ci.nexthop }}\n"), tmp_path)
    values = book.validate_params({"prefix": "10.0.0.0/24"})
    # Inventory data is not a parameter: the renderer itself refuses the break.
    evil = CI(
        name="sw1",
        type=CIType.SWITCH,
        platform="cisco_ios",
        attributes={"nexthop": "1.1.1.1\nno ip route 0.0.0.0 0.0.0.0"},
    )
    with pytest.raises(RunbookError, match="line 1: an inserted value contains a line break"):
        render_params(book.apply[0], values, evil, tmp_path / "templates")
    problems = render_check(book, [evil], values)
    assert problems and "templates/demo/route.j2 line 1" in str(problems[0])


def test_a_whole_expression_list_keeps_one_line_per_item(tmp_path: Path) -> None:
    text = BOOK.replace("      template: demo/route.j2\n", '      lines: "{{ ci.lines }}"\n')
    book = load_runbook(workspace(tmp_path, text), tmp_path)
    values = book.validate_params({"prefix": "10.0.0.0/24"})
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios", attributes={"lines": ["a\nb"]})
    with pytest.raises(RunbookError, match="contains a line break"):
        render_params(book.apply[0], values, ci, tmp_path / "templates")


def test_a_multiline_parameter_renders_one_line_each(tmp_path: Path) -> None:
    template = "banner motd ^\n{{ params.banner }}\n^\n"
    book = load_runbook(workspace(tmp_path, template=template), tmp_path)
    from opskit.runbooks.executor import resolve_params

    values = resolve_params(
        book, book.validate_params({"prefix": "10.0.0.0/24", "banner": "line one\nline two"})
    )
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    lines = render_params(book.apply[0], values, ci, tmp_path / "templates")["lines"]
    assert lines == ["banner motd ^", "line one", "line two", "^"]
    assert book.rendered_commands(book.apply[0], values) == lines


@pytest.mark.parametrize(
    "template",
    [
        "ip route {{ params.prefix + 1 }}\n",
        "{{ params.prefix | int }}{{ 1 / (params.prefix | int) }}\n",
    ],
)
def test_a_python_error_in_an_expression_is_a_render_problem(tmp_path: Path, template: str) -> None:
    book = load_runbook(workspace(tmp_path, template=template), tmp_path)
    values = book.validate_params({"prefix": "10.0.0.0/24"})
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    problems = render_check(book, [ci], values)
    assert len(problems) == 1 and "route.j2 line 1: template error: " in str(problems[0])
