"""Shared by the parameter, parameter-property and rendering tests: a demo
runbook written where a workspace keeps it (``runbooks/demo/1.0.0.yaml``,
its template files under ``templates/``), loaded, and the one-line refusals
that loading it or validating its parameters give."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import RunbookError
from opskit.runbooks import Runbook, load_runbook

# What every demo runbook starts with (its parameters allow no undeclared one);
# each test module adds the parameters' properties and the steps.
HEADER = """\
name: demo
version: 1.0.0
description: A demo runbook.
owner: ops
risk: low
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  additionalProperties: false
"""


def write_book(root: Path, text: str, templates: Mapping[str, str] | None = None) -> Path:
    """The runbook `text` (and `templates`, by path under templates/) under `root`."""
    path = root / "runbooks" / "demo" / "1.0.0.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    for name, template in (templates or {}).items():
        (root / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "templates" / name).write_text(template)
    return path


def load_book(root: Path, text: str) -> Runbook:
    return load_runbook(write_book(root, text), root)


def load_refusal(path: Path) -> str:
    """The one-line error loading the runbook at `path` gives (it names the file)."""
    with pytest.raises(RunbookError) as info:
        load_runbook(path, path.parents[2])
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(str(path))
    return message


def params_refusal(book: Runbook, params: dict[str, Any]) -> str:
    """The one-line error validating `params` gives."""
    with pytest.raises(RunbookError) as info:
        book.validate_params(params)
    message = str(info.value)
    assert "\n" not in message
    return message
