"""Values in inventory files: NaN and infinities are refused with one line
naming file, line and field; mappings with integer keys load and digest."""

from __future__ import annotations

import math
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.errors import InventoryError
from opskit.inventory import load_inventory

CI = "cis:\n  - name: a\n    type: server\n    platform: linux\n"


@pytest.mark.parametrize("spelling", [".nan", ".NaN", ".inf", "-.Inf", "+.INF", "1e999"])
def test_non_finite_numbers_are_refused(tmp_path: Path, spelling: str) -> None:
    (tmp_path / "cis.yaml").write_text(CI + f"    attributes:\n      speed: [1, {spelling}]\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'cis.yaml'}:6 [cis[0].attributes.speed[1]]: ")
    assert "NaN and infinities are not allowed" in message and "\n" not in message


def test_non_finite_in_group_vars_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "cis.yaml").write_text(CI + "    groups: [g]\n")
    (tmp_path / "groups.yaml").write_text(
        "defaults:\n  attributes: {ok: 1.5}\n"
        "groups:\n  g:\n    vars:\n      connection_options:\n        netmiko: {delay: .nan}\n"
    )
    with pytest.raises(InventoryError, match=r"groups\.yaml:7 \[groups\.g\.vars\."):
        load_inventory(tmp_path)


def test_text_that_mentions_nan_or_inf_is_fine(tmp_path: Path) -> None:
    (tmp_path / "cis.yaml").write_text(
        CI + "    attributes: {note: 'see .info and .nan files', big: '1e999', n: 1e3}\n"
    )
    ci = load_inventory(tmp_path).get("a")
    assert ci.attributes == {"note": "see .info and .nan files", "big": "1e999", "n": 1000.0}


def test_integer_mapping_keys_load_and_digest(tmp_path: Path) -> None:
    (tmp_path / "cis.yaml").write_text(CI + "    attributes:\n      vlans: {10: users, x: 1}\n")
    inventory = load_inventory(tmp_path)
    assert inventory.get("a").attributes["vlans"] == {10: "users", "x": 1}
    first = inventory.digest
    (tmp_path / "cis.yaml").write_text(CI + "    attributes:\n      vlans: {'10': users, x: 1}\n")
    assert load_inventory(tmp_path).digest != first  # 10 and "10" are different keys


number = st.one_of(st.integers(), st.floats(allow_nan=True, allow_infinity=True))
nested = st.recursive(
    number | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("xyz", min_size=1), inner),
    max_leaves=8,
)


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


@settings(max_examples=60, deadline=None, derandomize=True)
@given(attributes=st.dictionaries(st.text("abc", min_size=1), nested, max_size=4))
def test_random_attributes_load_or_are_refused_naming_the_field(attributes: dict) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        document = {"cis": [{"name": "a", "type": "server", "platform": "linux"}]}
        document["cis"][0]["attributes"] = attributes
        (root / "cis.yaml").write_text(yaml.safe_dump(document))
        if not _has_non_finite(attributes):
            assert load_inventory(root).get("a").attributes == attributes
            return
        with pytest.raises(InventoryError) as caught:
            load_inventory(root)
        assert re.match(
            rf"{re.escape(str(root / 'cis.yaml'))}:\d+ \[cis\[0\]\.attributes\.", str(caught.value)
        )
