"""Signed notes, keys and checkpoints written by other implementations verify
here exactly as there: Go's note tests, the C2SP example, a real
sum.golang.org checkpoint, a sigsum log's checkpoint from litewitness."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from opskit.tlog.checkpoint import parse_signed_checkpoint
from opskit.tlog.note import (
    ED25519,
    NoteError,
    Signer,
    VerificationError,
    Verifier,
    format_note,
    parse_note,
    sign_note,
    verify_note,
)
from opskit.tlog.proof import parse_consistency_proof
from tests.tlog.hurl import read_hurl

DATA = Path(__file__).parent.parent / "data" / "tlog"
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
LITEWITNESS_LOG_KEY = "ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f"


def go_keys() -> tuple[Signer, Verifier, Verifier]:
    skey, peter, enoch = (DATA / "go-note-keys.txt").read_text().split()
    return Signer.from_skey(skey), Verifier.from_vkey(peter), Verifier.from_vkey(enoch)


def test_go_signer_key_signs_exactly_what_go_signs() -> None:
    signer, peter, _ = go_keys()
    assert signer.verifier == peter
    note = parse_note((DATA / "go-note-peterneumann.note").read_bytes())
    # Ed25519 is deterministic: our signature line is Go's, byte for byte.
    assert sign_note(note.text, signer).signatures[0] == note.signatures[0]


def test_go_note_opens_with_one_known_key_and_lists_the_other() -> None:
    _, peter, enoch = go_keys()
    note = parse_note((DATA / "go-note-peterneumann.note").read_bytes())
    result = verify_note(note, [peter])
    assert [s.fingerprint for s in result.verified] == ["PeterNeumann+c74f20a3"]
    assert [s.fingerprint for s in result.unknown] == ["EnochRoot+af0cfe78"]
    both = verify_note(note, [peter, enoch])
    assert len(both.verified) == 2
    assert format_note(note) == (DATA / "go-note-peterneumann.note").read_text()


def test_a_flipped_signature_byte_refuses_the_whole_note() -> None:
    _, peter, _ = go_keys()
    text = (DATA / "go-note-peterneumann.note").read_text()
    # Go's TestOpen: "ABCD" spliced into Peter's signature -> invalid signature.
    line = next(ln for ln in text.splitlines() if ln.startswith("— PeterNeumann"))
    bad = text.replace(line, line[:60] + "ABCD" + line[60:])
    with pytest.raises(VerificationError, match=r"invalid signature by PeterNeumann\+c74f20a3"):
        verify_note(parse_note(bad), [peter])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.split("\n\n")[0] + "\n",  # no signatures
        lambda t: t.split("\n\n")[0] + "\n\n",  # blank line, no signature
        lambda t: t[:-1],  # last signature without newline
        lambda t: "\x01" + t,  # control character
        lambda t: t.replace("— PeterNeumann", "— Bad Name"),  # space in the key name
        lambda t: t + "Unexpected line.\n",  # not a signature line
    ],
)
def test_go_malformed_notes_are_malformed_here(mangle: Callable[[str], str]) -> None:
    text = (DATA / "go-note-peterneumann.note").read_text()
    with pytest.raises(NoteError):
        parse_note(mangle(text), source="note.txt")


def test_invalid_utf8_is_malformed_with_its_line() -> None:
    data = (DATA / "go-note-peterneumann.note").read_bytes()
    with pytest.raises(NoteError, match=r"^note.txt:2: not valid UTF-8$"):
        parse_note(data.replace(b"then", b"\xffhen"), source="note.txt")


def test_mangled_go_vkeys_are_refused() -> None:
    vkey = (DATA / "go-note-keys.txt").read_text().split()[1]
    for i in range(len(vkey)):
        mangled = vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :]
        with pytest.raises(NoteError):
            Verifier.from_vkey(mangled)
    # Go's two crafted keys: wrong key length, unknown algorithm (hashes adjusted).
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            Verifier.from_vkey(bad)


def test_the_c2sp_example_note_verifies() -> None:
    verifier = Verifier.from_vkey((DATA / "c2sp-signed-note-example.vkey").read_text().strip())
    note = parse_note((DATA / "c2sp-signed-note-example.note").read_bytes())
    assert verify_note(note, [verifier]).verified[0].fingerprint == "example.com/foo+530d903a"
    assert verifier.vkey == (DATA / "c2sp-signed-note-example.vkey").read_text().strip()


def test_a_real_sum_golang_org_checkpoint_verifies_with_its_published_key() -> None:
    request = read_hurl(DATA / "litewitness-sumdb-add-checkpoint.hurl")[0]
    body = parse_consistency_proof(request.body)
    assert body.checkpoint.origin == "go.sum database tree"
    assert body.checkpoint.size == 35225469
    result = verify_note(body.note, [Verifier.from_vkey(SUMDB_VKEY)])
    assert result.verified[0].fingerprint == "sum.golang.org+033de0ae"
    tampered = body.note.text.replace("35225469", "35225470")
    signed = parse_signed_checkpoint(tampered + "\n" + body.note.signatures[0].line() + "\n")
    with pytest.raises(VerificationError):
        verify_note(signed.note, [Verifier.from_vkey(SUMDB_VKEY)])


def test_a_sigsum_log_checkpoint_verifies_with_the_vkey_built_from_its_key() -> None:
    public = bytes.fromhex(LITEWITNESS_LOG_KEY)
    origin = "sigsum.org/v1/tree/" + hashlib.sha256(public).hexdigest()
    verifier = Verifier(origin, ED25519, public)
    first = parse_consistency_proof(read_hurl(DATA / "litewitness-add-checkpoint.hurl")[0].body)
    assert first.checkpoint.origin == origin
    assert verify_note(first.note, [verifier]).verified


@pytest.mark.parametrize(
    "origin, size, root, extensions",
    [
        ("evil\n999", 1, bytes(32), ()),  # would frame a checkpoint of size 999
        ("", 1, bytes(32), ()),
        ("log", -1, bytes(32), ()),
        ("log", 2**63, bytes(32), ()),
        ("log", 1, bytes(31), ()),
        ("log", 1, bytes(32), ("",)),
        ("log", 1, bytes(32), ("a\nb",)),
    ],
)
def test_a_checkpoint_that_cannot_be_written_is_refused(
    origin: str, size: int, root: bytes, extensions: tuple[str, ...]
) -> None:
    from opskit.tlog.checkpoint import Checkpoint

    with pytest.raises(NoteError):
        Checkpoint(origin, size, root, extensions)
