"""`opskit.yamlfile.load_yaml` refuses a mapping or list used as a key in one
line with its line (it raised TypeError: unhashable type; found by fuzzing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import ValidationError
from opskit.yamlfile import load_yaml


@pytest.mark.parametrize("text", ["name: a\n? {x: 1}\n: 2\n", "name: a\n? [x]\n: 2\n"])
def test_a_mapping_or_list_key_is_refused_with_its_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError, match=r"book\.yaml:2: invalid YAML: a mapping or list"):
        load_yaml(path)
