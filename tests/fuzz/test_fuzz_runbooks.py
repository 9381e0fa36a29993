"""Fuzzing runbook files: the loader, the digest and `opskit runbook validate`."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from opskit.runbooks import load_runbook
from opskit.workspace import Workspace
from tests.fuzz import strategies as gen
from tests.fuzz.support import (
    REPO,
    assert_api_error,
    assert_no_traceback,
    run_cli,
)

SHIPPED = sorted((REPO / "runbooks").glob("*/*.yaml"))
_counter = itertools.count()


def write_runbook(ws: Workspace, doc: dict[str, Any], content: str | bytes | None = None) -> Path:
    """Writes `doc` (or `content` in its place) as runbooks/<name>/<version>.yaml,
    in a folder of its own for this example."""
    name = f"{doc.get('name', 'x')}"
    folder = ws.runbooks_dir / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / f"{doc.get('version', '0.0.0')}.yaml"
    if content is None:
        content = gen.yaml_text(doc)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def reordered(value: Any) -> Any:
    """The same data with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


# -- valid runbooks: load, digest stable --------------------------------------------
@given(doc=gen.runbooks(), flow=st.booleans())
def test_valid_runbook_loads_and_its_digest_ignores_key_order_and_layout(
    ws: Workspace, doc: dict[str, Any], flow: bool
) -> None:
    path = write_runbook(ws, doc)
    first = load_runbook(path, ws.root)
    assert (first.name, first.version) == (doc["name"], doc["version"])
    assert load_runbook(path, ws.root).digest == first.digest
    path.write_text(
        yaml.safe_dump(reordered(doc), allow_unicode=True, default_flow_style=flow, width=10**6),
        encoding="utf-8",
    )
    assert load_runbook(path, ws.root).digest == first.digest


@given(doc=gen.runbooks())
def test_valid_runbook_passes_runbook_validate(ws: Workspace, doc: dict[str, Any]) -> None:
    path = write_runbook(ws, doc)
    result = run_cli("runbook", "validate", str(path), "--json", workspace=ws.root)
    assert_no_traceback(result)
    report = json.loads(result.stdout)
    assert result.code == 0 and report["valid"], str(result)
    assert report["runbooks"][0]["digest"] == load_runbook(path, ws.root).digest


# -- broken runbooks: one line naming the file, never a traceback -----------------------
@st.composite
def broken_runbooks(draw: st.DrawFn) -> tuple[dict[str, Any], str | bytes]:
    """A generated or shipped runbook with one mutation, and its file content."""
    if draw(st.booleans()):
        doc = draw(gen.runbooks())
        text = gen.yaml_text(doc)
    else:
        shipped = draw(st.sampled_from(SHIPPED))
        text = shipped.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
    if draw(st.booleans()):
        return doc, draw(gen.mutated_text(text))
    mutated = draw(gen.mutated_data(doc))
    return doc, gen.yaml_text(mutated)


@given(case=broken_runbooks())
def test_broken_runbook_is_refused_with_one_line_naming_the_file(
    ws: Workspace, case: tuple[dict[str, Any], str | bytes]
) -> None:
    doc, content = case
    path = write_runbook(ws, doc, content)
    try:
        load_runbook(path, ws.root)
    except Exception as exc:
        assert_api_error(exc, [path])


@given(case=broken_runbooks(), as_json=st.booleans())
def test_runbook_validate_reports_a_broken_file_on_one_line(
    ws: Workspace, case: tuple[dict[str, Any], str | bytes], as_json: bool
) -> None:
    doc, content = case
    path = write_runbook(ws, doc, content)
    result = run_cli(
        "runbook", "validate", str(path), *(["--json"] if as_json else []), workspace=ws.root
    )
    assert_no_traceback(result)
    if as_json:
        report = json.loads(result.stdout)
        assert report["valid"] is (result.code == 0)
        for entry in report["runbooks"]:
            if not entry["valid"]:
                assert "\n" not in entry["error"] and entry["error"].startswith(str(path))
    elif result.code:
        # The one invalid file is one line (on stdout as a listing, or stderr).
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        assert len(lines) == 1 and str(path) in lines[0], str(result)


@given(doc=gen.runbooks())
def test_runbook_doc_renders_every_valid_runbook(ws: Workspace, doc: dict[str, Any]) -> None:
    path = write_runbook(ws, doc)
    result = run_cli("runbook", "doc", f"{doc['name']}@{doc['version']}", workspace=ws.root)
    assert_no_traceback(result)
    assert result.code == 0, str(result)
    assert result.stdout.startswith(f"# Runbook {doc['name']} {doc['version']}"), result.stdout
    assert path.is_file()


BROKEN_JINJA = st.sampled_from(["{{ params.x ", "{{ x }", "{% if %}", "{{ ) }}", "{% for %}"])


@given(doc=gen.runbooks(), broken=BROKEN_JINJA, data=st.data())
def test_a_jinja_error_anywhere_in_a_runbook_is_refused_naming_the_field(
    ws: Workspace, doc: dict[str, Any], broken: str, data: st.DataObject
) -> None:
    where = data.draw(st.sampled_from(["expect", "config_contains", "apply_lines"]), label="where")
    if where == "expect":
        doc["precheck"][0]["expect"][0]["contains"] = broken
        field = "precheck[0].expect[0].contains"
    elif where == "config_contains":
        doc["verify"][0]["expect"][0]["config_contains"] = [broken]
        field = "verify[0].expect[0].config_contains[0]"
    else:
        doc["apply"][0]["params"]["lines"] = [broken]
        field = "apply[0].params.lines[0]"
    path = write_runbook(ws, doc)
    with pytest.raises(Exception) as caught:
        load_runbook(path, ws.root)
    assert_api_error(caught.value, [path])
    assert getattr(caught.value, "field", None) == field, str(caught.value)
