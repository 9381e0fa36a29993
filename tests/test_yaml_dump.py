"""What opskit writes as YAML (`opskit.yamlfile.dump_yaml`: imported
inventories, `inventory export`) reads back as written, by the inventory's
YAML 1.2 parser (yaml-rs) and by PyYAML alike."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
import yaml_rs
from hypothesis import given
from hypothesis import strategies as st

from opskit.yamlfile import dump_yaml

# Found by the fuzz suite: PyYAML writes these unquoted (not numbers in
# YAML 1.1) and yaml-rs reads them as numbers (YAML 1.2).
NUMBER_LOOKALIKES = ["0o17", "0O0", "-0o7", "1e3", "2E10", "-1e-5", "0x1F", "1_000", ".inf"]


@pytest.mark.parametrize("text", NUMBER_LOOKALIKES)
def test_a_string_that_looks_like_a_yaml12_number_stays_a_string(text: str) -> None:
    written = dump_yaml({"attributes": {"os_version": text, text: "key"}})
    for parsed in (yaml_rs.loads(written), yaml.safe_load(written)):
        assert parsed == {"attributes": {"os_version": text, text: "key"}}


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_categories=("Cs",))),
    st.from_regex(r"[-+]?(0[oOxXbB])?[0-9a-fA-F_.]{1,6}([eE][-+]?[0-9]{1,3})?", fullmatch=True),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(value=VALUES)
def test_dump_yaml_round_trips_through_both_parsers(value: Any) -> None:
    written = dump_yaml({"v": value})
    assert yaml_rs.loads(written, parse_datetime=False) == {"v": value}
    assert yaml.safe_load(written) == {"v": value}
