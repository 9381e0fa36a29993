"""A YAML syntax error names a line that exists in the file, also at the end
of a truncated file (PyYAML marks the line after the last one there)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.errors import ValidationError
from opskit.inventory import load_inventory
from opskit.yamlfile import load_yaml

REPO = Path(__file__).resolve().parents[1]
RUNBOOK = (REPO / "runbooks" / "config-backup" / "1.0.0.yaml").read_text(encoding="utf-8")
INVENTORY = (REPO / "inventories" / "example" / "network.yaml").read_text(encoding="utf-8")


def test_a_runbook_cut_inside_a_mapping_names_its_last_line(tmp_path: Path) -> None:
    # Found by the fuzz suite: cut after "  a", the error said line 21 of a 20-line file.
    text = RUNBOOK[: RUNBOOK.index("properties: {}") + 2]
    path = tmp_path / "1.0.0.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValidationError) as caught:
        load_yaml(path)
    assert caught.value.line == text.count("\n") + 1 == 20


@given(cut=st.integers(0, len(RUNBOOK)))
def test_every_truncation_of_a_runbook_names_a_line_inside_the_file(cut: int) -> None:
    text = RUNBOOK[:cut]
    try:
        load_yaml("runbook.yaml", text=text)
    except ValidationError as exc:
        assert exc.line is None or 1 <= exc.line <= text.count("\n") + 1, str(exc)


@given(cut=st.integers(0, len(INVENTORY)))
def test_every_truncation_of_an_inventory_file_names_a_line_inside_it(
    tmp_path_factory: pytest.TempPathFactory, cut: int
) -> None:
    folder = tmp_path_factory.mktemp("inv")
    text = INVENTORY[:cut]
    (folder / "network.yaml").write_text(text, encoding="utf-8")
    try:
        load_inventory(folder)
    except ValidationError as exc:
        assert exc.line is None or 1 <= exc.line <= text.count("\n") + 1, str(exc)
