"""Trust files for `audit verify-bundle --trust`: every documented anchor
form is accepted, anything else is one line naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.errors import LedgerError
from opskit.ledger import keys as keymod


def test_every_anchor_form_names_the_same_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    other = Ed25519PrivateKey.generate().public_key()
    forms = {
        "key id": keymod.key_id(key),
        "fingerprint": keymod.fingerprint(key).upper(),
        "prefixed": "sha256:" + keymod.fingerprint(key),
        "base64": keymod.public_key_b64(key),
        "pem": keymod.public_key_pem(key).decode(),
    }
    for name, text in forms.items():
        path = tmp_path / f"{name}.trust"
        path.write_text(f"# {name}\n\n{text}  # the production workspace\n")
        anchors = keymod.load_trust_file(path)
        assert anchors.key_for(key) is not None, name
        assert anchors.key_for(other) is None, name


@pytest.mark.parametrize(
    "text, line",
    [
        ("abc\n", 1),
        ("# fine\n" + "0" * 15 + "\n", 2),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n", 2),
        ("\n\n# only comments\n", None),
    ],
)
def test_a_bad_trust_file_is_one_line_naming_the_place(
    tmp_path: Path, text: str, line: int | None
) -> None:
    path = tmp_path / "trusted_keys"
    path.write_text(text)
    with pytest.raises(LedgerError) as info:
        keymod.load_trust_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}:" if line else f"{path}:")


def test_a_missing_trust_file(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="No such file"):
        keymod.load_trust_file(tmp_path / "nope")


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_any_text_is_anchors_or_one_line_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzzed"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        anchors = keymod.load_trust_file(path)
    except LedgerError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(path))
    else:
        assert anchors
