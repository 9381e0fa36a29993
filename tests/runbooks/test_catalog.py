"""Runbook files: schema and rule errors, parameters, templating, digests,
the versioned catalog, plans, the Markdown procedure and `opskit runbook`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opskit.cli import app
from opskit.errors import RunbookError, ValidationError
from opskit.inventory.model import CI, CIType
from opskit.runbooks import RunbookCatalog, load_runbook
from opskit.runbooks.doc import render_markdown
from opskit.runbooks.templating import render_params
from opskit.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [
    "config-backup",
    "config-lines",
    "config-lines-high",
    "inspection",
    "linux-change",
    "napalm-merge",
    "user-rotation",
    "vlan-interface",
    "vlan-interface-guarded",
]

MINIMAL = """\
name: demo
version: {version}
description: A demo runbook.
owner: ops
risk: low
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  required: [vlan_id]
  properties:
    vlan_id: {{type: integer, minimum: 2, maximum: 4094}}
apply:
  - name: add the vlan
    connector: netmiko
    action: config
    params:
      template: demo/vlan.j2
"""


def write_runbook(root: Path, text: str, name: str = "demo", version: str = "1.0.0") -> Path:
    path = root / "runbooks" / name / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    template = root / "templates" / "demo" / "vlan.j2"
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        template.write_text("vlan {{ params.vlan_id }}\n")
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for sub in ("runbooks", "templates", "playbooks"):
        (tmp_path / sub).mkdir()
    return tmp_path


def test_every_shipped_runbook_is_valid() -> None:
    books = RunbookCatalog(REPO).list()
    assert sorted({b.name for b in books}) == SHIPPED
    for book in books:
        assert book.digest.startswith("sha256:") and len(book.digest) == 71
        assert book.implementation_plan() and book.rollback_plan()


@pytest.mark.parametrize(
    ("mutation", "line", "field", "message"),
    [
        (("risk: low", "risk: extreme"), 5, "risk", "'extreme' is not one of"),
        (("owner: ops\n", "owner: ops\ncolour: blue\n"), 5, "colour", "unknown field 'colour'"),
        (
            ("    action: config\n", "    action: config\n    frobnicate: 1\n"),
            17,
            "apply[0].frobnicate",
            "unknown field",
        ),
        (
            ("    connector: netmiko", "    connector: telnet"),
            15,
            "apply[0].connector",
            "'telnet' is not one of",
        ),
        (
            ("description: A demo runbook.\n", ""),
            1,
            "description",
            "missing required field 'description'",
        ),
        (("version: 1.0.0", "version: one"), 2, "version", "does not match"),
    ],
)
def test_schema_errors_name_file_line_and_field(
    root: Path, mutation: tuple[str, str], line: int, field: str, message: str
) -> None:
    text = MINIMAL.format(version="1.0.0").replace(*mutation)
    path = write_runbook(root, text)
    with pytest.raises(RunbookError) as info:
        load_runbook(path, root)
    error = info.value
    assert error.file == str(path)
    assert error.line == line
    assert error.field == field
    assert message in str(error)
    assert str(error).startswith(f"{path}:{line} [{field}]")


def test_rules_beyond_the_schema(root: Path) -> None:
    base = MINIMAL.format(version="1.0.0")
    cases = {
        "unknown action": (
            base.replace("action: config", "action: reboot"),
            "apply[0].action",
            "connector netmiko has no action 'reboot'",
        ),
        "missing template": (
            base.replace("demo/vlan.j2", "demo/missing.j2"),
            "apply[0].params.template",
            "referenced file templates/demo/missing.j2 does not exist",
        ),
        "template syntax": (
            base.replace("    params:\n", "    params:\n      lines: ['vlan {{ params.vlan_id']\n"),
            "apply[0].params.lines[0]",
            "template syntax error",
        ),
        "two kinds in one expectation": (
            base + "verify:\n  - name: v\n    connector: netmiko\n    action: commands\n"
            "    params: {commands: [show vlan brief]}\n"
            "    expect:\n      - {contains: a, regex: b}\n",
            "verify[0].expect[0]",
            "exactly one of",
        ),
        "bad selection": (
            base.replace("targets:\n", "targets:\n  select: 'platform:cisco_ios and ('\n"),
            "targets.select",
            "invalid selection",
        ),
        "parameters not a JSON Schema": (
            base.replace("minimum: 2,", "minimum: two,"),
            "parameters.properties.vlan_id.minimum",
            "not a valid JSON Schema: 'two' is not of type 'number'",
        ),
        "a secret parameter with a literal default": (
            base.replace(
                "  properties:\n",
                "  properties:\n    token: {type: string, secret: true, default: hunter2}\n",
            ),
            "parameters.properties.token.default",
            "the default must be a secret reference",
        ),
        "a templated file name (its content would escape the digest)": (
            base.replace("template: demo/vlan.j2", "template: 'demo/{{ params.vlan_id }}.j2'"),
            "apply[0].params.template",
            "a referenced file is a literal path inside templates/",
        ),
        "an empty rollback": (
            base + "rollback: []\n",
            "rollback",
            "rollback: no steps given; list them, or say auto or none",
        ),
        "auto rollback without backup": (
            base + "backup: false\n",
            "rollback",
            "rollback: auto needs the backup phase",
        ),
    }
    for name, (text, field, message) in cases.items():
        path = write_runbook(root, text)
        with pytest.raises(RunbookError) as info:
            load_runbook(path, root)
        assert info.value.field == field, name
        assert message in str(info.value), name
        assert info.value.line is not None, name


def test_file_name_must_match_version(root: Path) -> None:
    path = write_runbook(root, MINIMAL.format(version="1.0.0"), version="1.0.1")
    with pytest.raises(RunbookError, match=r"does not match version '1\.0\.0'"):
        load_runbook(path, root)


def test_parameters_are_validated_and_errors_name_the_parameter() -> None:
    book = RunbookCatalog(REPO).get("vlan-interface@1.0.0")
    good = book.validate_params(
        {"vlan_id": 30, "vlan_name": "users", "interface": "FastEthernet0/3"}
    )
    assert good["description"] == "managed by opskit"  # the schema default
    bad = [
        ({"vlan_id": 5000, "vlan_name": "u", "interface": "FastEthernet0/3"}, "vlan_id", "maximum"),
        ({"vlan_name": "u", "interface": "FastEthernet0/3"}, "vlan_id", "required"),
        ({"vlan_id": 30, "vlan_name": "bad name!", "interface": "Fa0/3"}, "vlan_name", "match"),
        (
            {"vlan_id": 30, "vlan_name": "u", "interface": "FastEthernet0/3", "x": 1},
            "parameters",
            "Additional",
        ),
    ]
    for params, name, message in bad:
        with pytest.raises(RunbookError) as info:
            book.validate_params(params)
        assert f"parameter '{name}'" in str(info.value)
        assert message in str(info.value)


def test_secret_parameters_must_be_references() -> None:
    book = RunbookCatalog(REPO).get("user-rotation")
    params = book.validate_params({"username": "ops", "new_password": {"env": "NEW_PW"}})
    assert params["new_password"] == {"env": "NEW_PW"}  # kept as a reference
    with pytest.raises(RunbookError, match="parameter 'new_password' must be a secret reference"):
        book.validate_params({"username": "ops", "new_password": "hunter2-plain"})


def test_templating_is_strict_and_names_the_step(root: Path) -> None:
    text = MINIMAL.format(version="1.0.0").replace(
        "      template: demo/vlan.j2\n",
        "      lines:\n        - 'vlan {{ params.vlan_id }}'\n"
        "        - ' name {{ ci.site }}-{{ ci.rack }}'\n",
    )
    book = load_runbook(write_runbook(root, text), root)
    ci = CI(
        name="sw1", type=CIType.SWITCH, platform="cisco_ios", site="dc1", attributes={"rack": "r7"}
    )
    rendered = render_params(book.apply[0], {"vlan_id": 30}, ci, root / "templates")
    assert rendered["lines"] == ["vlan 30", " name dc1-r7"]
    with pytest.raises(
        RunbookError, match=r"step apply\[0\] 'add the vlan': template line 1: undefined variable"
    ):
        render_params(book.apply[0], {}, ci, root / "templates")
    bare = CI(name="sw2", type=CIType.SWITCH, platform="cisco_ios", site="dc1")
    with pytest.raises(RunbookError, match=r"'add the vlan'.*rack"):
        render_params(book.apply[0], {"vlan_id": 30}, bare, root / "templates")


def test_template_files_render_into_lines(root: Path) -> None:
    book = load_runbook(write_runbook(root, MINIMAL.format(version="1.0.0")), root)
    ci = CI(name="sw1", type=CIType.SWITCH, platform="cisco_ios")
    assert render_params(book.apply[0], {"vlan_id": 42}, ci, root / "templates") == {
        "lines": ["vlan 42"]
    }


def test_digest_is_stable_and_covers_referenced_files(tmp_path: Path) -> None:
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    path = tmp_path / "runbooks" / "linux-change" / "1.0.0.yaml"
    first = load_runbook(path, tmp_path).digest
    assert load_runbook(path, tmp_path).digest == first
    # Reformatting the YAML (key order, comments, flow style) keeps the digest.
    text = path.read_text()
    path.write_text(
        "# a comment\n"
        + text.replace("owner: platform-team\nrisk: medium", "risk: medium\nowner: platform-team")
    )
    assert load_runbook(path, tmp_path).digest == first
    # A referenced playbook, or a file that playbook copies, changes it.
    playbook = tmp_path / "playbooks" / "linux_rollback.yml"
    playbook.write_text(playbook.read_text() + "\n# edited\n")
    second = load_runbook(path, tmp_path).digest
    assert second != first
    service = tmp_path / "playbooks" / "files" / "opskit-demo-service"
    service.write_text(service.read_text() + "\n# edited\n")
    assert load_runbook(path, tmp_path).digest not in (first, second)
    # A template changes the digest of the runbook that renders it.
    vlan = tmp_path / "runbooks" / "vlan-interface" / "1.0.0.yaml"
    before = load_runbook(vlan, tmp_path).digest
    template = tmp_path / "templates" / "vlan-interface" / "vlan.j2"
    template.write_text(template.read_text().replace("switchport mode access\n", ""))
    assert load_runbook(vlan, tmp_path).digest != before
    # A change of content does too.
    path.write_text(text.replace("default: 5", "default: 6"))
    assert load_runbook(path, tmp_path).digest not in (first, second)


def test_digest_follows_files_a_playbook_includes(tmp_path: Path) -> None:
    """Task files, imported playbooks and variable files a playbook pulls in are
    part of what an approval binds to, however deep (cycles stop)."""
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, tmp_path / sub)
    books = tmp_path / "playbooks"
    playbook = books / "linux_rollback.yml"
    playbook.write_text(
        playbook.read_text() + "\n- hosts: all\n  vars_files: [vars/extra.yml]\n"
        "  tasks:\n    - ansible.builtin.include_tasks: {file: tasks/outer.yml}\n"
    )
    (books / "vars").mkdir()
    (books / "vars" / "extra.yml").write_text("a: 1\n")
    (books / "tasks").mkdir()
    (books / "tasks" / "outer.yml").write_text("- import_tasks: inner.yml\n")
    (books / "tasks" / "inner.yml").write_text("- import_tasks: outer.yml\n- debug: {msg: 1}\n")
    path = tmp_path / "runbooks" / "linux-change" / "1.0.0.yaml"
    book = load_runbook(path, tmp_path)
    assert {
        "playbooks/vars/extra.yml",
        "playbooks/tasks/outer.yml",
        "playbooks/tasks/inner.yml",
    } <= set(book.files)
    digests = {book.digest}
    for name in ("vars/extra.yml", "tasks/inner.yml"):
        (books / name).write_text((books / name).read_text() + "# edited\n")
        digests.add(load_runbook(path, tmp_path).digest)
    assert len(digests) == 3


def test_catalog_keeps_versions_side_by_side(root: Path) -> None:
    for version in ("1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"):
        write_runbook(root, MINIMAL.format(version=version), version=version)
    catalog = RunbookCatalog(root)
    assert catalog.versions("demo") == ["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]
    assert catalog.get("demo").version == "2.0.0-rc.1"
    assert catalog.get("demo@1.2.0").version == "1.2.0"
    assert catalog.get("demo@1.2.0").digest != catalog.get("demo@1.10.0").digest
    with pytest.raises(
        RunbookError, match=r"no version '9.9.9' \(versions: 1.0.0, 1.2.0, 1.10.0, 2.0.0-rc.1\)"
    ):
        catalog.get("demo@9.9.9")
    with pytest.raises(RunbookError, match=r"unknown runbook 'nope' \(known: demo\)"):
        catalog.get("nope")


def test_plans_and_strategy() -> None:
    book = RunbookCatalog(REPO).get("vlan-interface")
    plan = book.implementation_plan()
    assert plan[0].startswith("Precheck: the device runs Cisco IOS")
    assert any(line.startswith("Backup: snapshot the running configuration") for line in plan)
    assert any("Verify:" in line and "TextFSM 'show vlan brief'" in line for line in plan)
    assert "hier_config" in " ".join(book.rollback_plan())
    concrete = book.implementation_plan(
        book.validate_params({"vlan_id": 30, "vlan_name": "u", "interface": "FastEthernet0/3"})
    )
    assert "vlan 30 | name u | exit | interface FastEthernet0/3" in concrete[2]
    rotation = RunbookCatalog(REPO).get("user-rotation")
    shown = rotation.implementation_plan(
        rotation.validate_params({"username": "ops", "new_password": {"env": "NEW_PW"}})
    )
    assert "username ops privilege 15 secret <secret>" in " ".join(shown)
    assert book.strategy.batch_size(10) == 5  # "50%"
    assert book.strategy.budget_spent(1, 10) and not book.strategy.budget_spent(0, 10)
    napalm = RunbookCatalog(REPO).get("napalm-merge")
    assert napalm.strategy.on_failure == "rollback_all"
    assert not napalm.strategy.budget_spent(1, 10) and napalm.strategy.budget_spent(2, 10)
    linux = RunbookCatalog(REPO).get("linux-change")
    assert linux.rollback_plan()[0].startswith("Rollback: stop the service")


def test_doc_renders_the_procedure() -> None:
    book = RunbookCatalog(REPO).get("vlan-interface@1.0.0")
    text = render_markdown(book)
    for expected in (
        "# Runbook vlan-interface 1.0.0",
        "## Purpose",
        "| `vlan_id` | integer | yes |",
        "### Prechecks",
        "1. **the device runs Cisco IOS**",
        " switchport access vlan {{ params.vlan_id }}",  # the template, rendered as written
        "Expect: TextFSM 'show vlan brief'",
        "## Rollback plan",
        "## Rollout strategy",
        "| 1.0.0 | 2026-11-23 | network-team |",
        book.digest,
    ):
        assert expected in text, expected


def _workspace_with_runbooks(tmp_path: Path) -> Workspace:
    from opskit.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    return ws


def test_cli_list_show_validate_doc(tmp_path: Path) -> None:
    ws = _workspace_with_runbooks(tmp_path)
    runner = CliRunner()
    base = ["--workspace", str(ws.root), "runbook"]
    listed = runner.invoke(app, [*base, "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["name"] for r in json.loads(listed.output)["runbooks"]) == SHIPPED
    assert json.loads(listed.output)["errors"] == []
    shown = runner.invoke(app, [*base, "show", "napalm-merge@1.1.0", "--json"])
    data = json.loads(shown.output)
    assert data["ref"] == "napalm-merge@1.1.0" and data["versions"] == ["1.1.0"]
    assert data["rollback_plan"] and data["implementation_plan"]
    assert runner.invoke(app, [*base, "validate"]).exit_code == 0
    out = tmp_path / "manual.md"
    assert runner.invoke(app, [*base, "doc", "inspection", "--out", str(out)]).exit_code == 0
    assert out.read_text().startswith("# Runbook inspection 1.0.0")
    # An invalid file: exit 1, one line naming file, line and field.
    broken = ws.root / "runbooks" / "inspection" / "1.0.1.yaml"
    broken.write_text(
        (ws.root / "runbooks/inspection/1.0.0.yaml")
        .read_text()
        .replace("version: 1.0.0", "version: 1.0.1")
        .replace("risk: low", "risk: none")
    )
    result = runner.invoke(app, [*base, "validate", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    errors = [r["error"] for r in report["runbooks"] if not r["valid"]]
    assert errors == [f"{broken}:12 [risk]: 'none' is not one of ['low', 'medium', 'high']"]
    assert runner.invoke(app, [*base, "validate", str(broken)]).exit_code == 1
    # The human form shows the same line: "[risk]" is text, not a rich markup tag.
    shown = runner.invoke(app, [*base, "validate"], env={"COLUMNS": "300"})
    assert f"invalid {broken}:12 [risk]: 'none' is not one of" in shown.output
    unknown = runner.invoke(app, [*base, "show", "vlan-interface@7.0.0"])
    assert unknown.exit_code == 1


def test_list_shows_every_valid_runbook_and_each_invalid_file_with_its_error(
    tmp_path: Path,
) -> None:
    ws = _workspace_with_runbooks(tmp_path)
    broken = ws.root / "runbooks" / "inspection" / "1.0.1.yaml"
    broken.write_text(
        (ws.root / "runbooks/inspection/1.0.0.yaml")
        .read_text()
        .replace("version: 1.0.0", "version: 1.0.1")
        .replace("risk: low", "risk: none")
    )
    not_yaml = ws.root / "runbooks" / "aaa-draft" / "0.1.0.yaml"
    not_yaml.parent.mkdir()
    not_yaml.write_text("name: aaa-draft\nversion: 0.1.0\n  oops: [\n")
    runner = CliRunner()
    base = ["--workspace", str(ws.root), "runbook", "list"]

    listed = runner.invoke(app, [*base, "--json"])
    assert listed.exit_code == 1  # CI notices
    report = json.loads(listed.stdout)
    assert sorted(r["name"] for r in report["runbooks"]) == SHIPPED
    assert [(e["name"], e["version"], e["line"], e["field"]) for e in report["errors"]] == [
        ("aaa-draft", "0.1.0", 3, None),
        ("inspection", "1.0.1", 12, "risk"),
    ]
    assert report["errors"][1]["error"] == (
        f"{broken}:12 [risk]: 'none' is not one of ['low', 'medium', 'high']"
    )

    # The table as a user sees it (a real process: rich sizes it from COLUMNS).
    shown = subprocess.run(
        [sys.executable, "-m", "opskit", *base],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert shown.returncode == 1
    lines = shown.stdout.splitlines()
    for name in SHIPPED:
        assert any(f"│ {name} " in line and "sha256:" in line for line in lines), name
    row = next(line for line in lines if "1.0.1" in line)
    assert "invalid" in row and f"{broken}:12 [risk]: 'none' is not one of" in row
    assert shown.stderr.strip() == "error: 2 invalid runbook file(s) (listed with their errors)"

    # Every other caller still gets the error: the whole list, and the broken version pinned.
    catalog = RunbookCatalog(ws)
    with pytest.raises(ValidationError, match=r"aaa-draft/0\.1\.0\.yaml:3: invalid YAML"):
        catalog.list()
    assert catalog.get("inspection@1.0.0").version == "1.0.0"
    create = ["--workspace", str(ws.root), "--as", "alice", "change", "create", "--title", "t"]
    created = runner.invoke(app, [*create, "--runbook", "inspection@1.0.1", "--select", "name:x"])
    assert created.exit_code == 1
    assert isinstance(created.exception, RunbookError) and "[risk]" in str(created.exception)
