"""Fixtures every fuzz module shares: one workspace and one scratch folder per
module (Hypothesis runs many examples against them; each example works in a
fresh sub-folder or leaves them unchanged)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.workspace import Workspace
from tests.fuzz.support import make_workspace


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-scratch")


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = make_workspace(tmp_path_factory.mktemp("fuzz-ws") / "ws")
    yield workspace
    workspace.close()
