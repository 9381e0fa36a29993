"""Ansible inventories the import refuses in one line naming the source file
and line (never a temporary file), before any YAML is written: bytes that
are not UTF-8 (Ansible reads them as lone surrogates), values of the wrong type."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import InventoryError
from opskit.inventory.ansible_import import import_ansible_inventory

CASES = [
    (b"[all]\nsw1 ansible_host=10.0.0.1\na\xed\xa0\x80 ansible_host=10.0.0.2\n", 3,
     r"host name 'a\xed\xa0\x80': not UTF-8 text"),
    (b"[all]\nsw1\n[core\xff]\nsw1\n", 3, r"group name 'core\xff': not UTF-8 text"),
    (b"[all]\nsw1 ansible_host=10.0.0.1 site=dc\xff\n", 2,
     "host sw1: variable 'site': holds text that is not UTF-8"),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "line", "message"), CASES)
def test_undecodable_text_is_refused_naming_the_source_line(
    tmp_path: Path, raw: bytes, line: int, message: str
) -> None:
    source = tmp_path / "hosts.ini"
    source.write_bytes(raw)
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    text = str(caught.value)
    assert text.endswith(message), text
    assert f"hosts.ini:{line}:" in text and "\n" not in text
    assert "opskit-import-" not in text


@pytest.mark.parametrize(
    "extra", ["", "      ansible_connection: ssh\n", "      ansible_network_os: cisco.ios.ios\n"]
)
def test_a_platform_that_is_not_text_names_the_variable_that_set_it(
    tmp_path: Path, extra: str
) -> None:
    source = tmp_path / "hosts.yaml"
    source.write_text(f"all:\n  hosts:\n    a:\n{extra}      opskit_platform: [1]\n")
    line = 5 if extra else 4
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    text = str(caught.value)
    assert text.endswith(f"hosts.yaml:{line}: host a opskit_platform: must be text (got a list)")


@pytest.mark.parametrize("variable", ["ansible_host", "ansible_user"])
@pytest.mark.parametrize("value", ["[1]", "{a: 1}"])
def test_a_host_or_user_that_is_not_text_is_refused(
    tmp_path: Path, variable: str, value: str
) -> None:
    """A list or mapping as the address or user is refused, naming the source
    line and the variable, instead of being imported as its Python text."""
    source = tmp_path / "hosts.yaml"
    source.write_text(f"all:\n  hosts:\n    a:\n      {variable}: {value}\n")
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    text = str(caught.value)
    assert "\n" not in text
    assert f"hosts.yaml:4: host a {variable}:" in text, text
