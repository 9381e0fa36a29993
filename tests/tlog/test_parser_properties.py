"""Hypothesis properties of every tlog parser: notes, checkpoints, proof files,
witness request bodies and trust policies.

Valid input round-trips byte for byte; broken input (truncated, a line
duplicated, a token or control byte inserted, invalid UTF-8, random bytes) is
either still well-formed or one `ValidationError` line naming the file and a
line inside it; and a note that still verifies after a mutation has the
original text: a signature binds every byte of what it signs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.errors import ValidationError
from opskit.tlog.checkpoint import Checkpoint, parse_checkpoint, parse_signed_checkpoint
from opskit.tlog.note import (
    COSIGNATURE_V1,
    Signer,
    VerificationError,
    format_note,
    parse_note,
    sign_note,
    verify_note,
)
from opskit.tlog.proof import (
    ConsistencyProof,
    InclusionProof,
    parse_consistency_proof,
    parse_inclusion_proof,
)
from opskit.tlog.trust import TrustFileError, UntrustedError, parse_policy, verify_checkpoint
from tests.fuzz.strategies import mutated_text
from tests.fuzz.support import assert_api_error

LOG = Signer.generate("ops.example.com/ledger")
WITNESSES = [Signer.generate(f"w{i}.example/witness", COSIGNATURE_V1) for i in range(3)]

# Note text: any characters but controls; key names: no space, no "+".
line_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\n"), max_size=40
)
key_names = st.text(
    st.characters(
        blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="+\x85"
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: not any(c.isspace() for c in s))
hashes = st.binary(min_size=32, max_size=32)
checkpoints = st.builds(
    Checkpoint,
    origin=line_text.filter(bool),
    size=st.integers(1, 2**63 - 1),
    root_hash=hashes,
    extensions=st.lists(line_text.filter(bool), max_size=2).map(tuple),
)


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def _parses_or_one_line(parse: Callable[..., Any], path: Path) -> Any:
    try:
        return parse(path.read_bytes(), source=str(path))
    except ValidationError as exc:
        assert_api_error(exc, [path])
        return None


@given(st.lists(line_text, min_size=1, max_size=5), key_names)
def test_notes_round_trip_and_verify(lines: list[str], name: str) -> None:
    signer = Signer.generate(name)
    text = "\n".join(lines) + "\n"
    note = sign_note(text, signer, LOG)
    parsed = parse_note(format_note(note).encode())
    assert parsed == note
    assert len(verify_note(parsed, [signer.verifier, LOG.verifier]).verified) == 2
    assert parse_note(format_note(note)).signatures[0].fingerprint == signer.verifier.fingerprint


@given(checkpoints)
def test_checkpoints_round_trip(checkpoint: Checkpoint) -> None:
    assert parse_checkpoint(checkpoint.text()) == checkpoint
    signed = parse_signed_checkpoint(format_note(sign_note(checkpoint.text(), LOG)))
    assert signed.checkpoint == checkpoint


@given(checkpoints, st.data())
def test_proof_files_round_trip(checkpoint: Checkpoint, data: st.DataObject) -> None:
    note = sign_note(checkpoint.text(), LOG)
    index = data.draw(st.integers(0, checkpoint.size - 1))
    path = tuple(data.draw(st.lists(hashes, max_size=63)))
    extra = data.draw(st.none() | st.binary(max_size=200))
    proof = InclusionProof(index, path, note, checkpoint, extra)
    assert parse_inclusion_proof(proof.text()) == proof
    old = data.draw(st.integers(0, checkpoint.size))
    body = ConsistencyProof(old, path, note, checkpoint)
    assert parse_consistency_proof(body.text().encode()) == body


@given(checkpoints, st.data())
def test_a_mutated_note_is_refused_or_still_says_the_same(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: Checkpoint, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("note")
    text = format_note(sign_note(checkpoint.text(), LOG))
    path = _write(tmp, "checkpoint.note", data.draw(mutated_text(text)))
    signed = _parses_or_one_line(parse_signed_checkpoint, path)
    if signed is None:
        return
    try:
        verify_note(signed.note, [LOG.verifier], source=str(path))
    except VerificationError as exc:
        assert_api_error(exc, [path])
        return
    assert signed.checkpoint == checkpoint


@given(checkpoints, st.data())
def test_mutated_proof_files_are_one_line_errors(
    tmp_path_factory: pytest.TempPathFactory, checkpoint: Checkpoint, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("proof")
    note = sign_note(checkpoint.text(), LOG)
    proof = InclusionProof(0, (bytes(32),) * 3, note, checkpoint, b"record")
    _parses_or_one_line(
        parse_inclusion_proof, _write(tmp, "x.tlog-proof", data.draw(mutated_text(proof.text())))
    )
    body = ConsistencyProof(min(3, checkpoint.size), (bytes(32),) * 2, note, checkpoint)
    _parses_or_one_line(
        parse_consistency_proof, _write(tmp, "request", data.draw(mutated_text(body.text())))
    )


@given(st.binary(max_size=400))
def test_random_bytes_never_escape_as_another_error(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes
) -> None:
    tmp = tmp_path_factory.mktemp("random")
    for name, parse in (
        ("n", parse_note),
        ("c", parse_signed_checkpoint),
        ("p", parse_inclusion_proof),
        ("r", parse_consistency_proof),
        ("t", parse_policy),
    ):
        _parses_or_one_line(parse, _write(tmp, name, raw))


def _policy_text(threshold: int, members: int) -> str:
    lines = ["# generated", f"log {LOG.verifier.vkey}"]
    lines += [
        f"witness w{i} {w.verifier.vkey} http://127.0.0.1:{7380 + i}"
        for i, w in enumerate(WITNESSES[:members])
    ]
    lines += [f"group g {threshold} " + " ".join(f"w{i}" for i in range(members)), "quorum g"]
    return "\n".join(lines) + "\n"


@given(st.integers(1, 3), st.data())
def test_a_quorum_is_met_exactly_when_enough_witnesses_cosigned(
    threshold: int, data: st.DataObject
) -> None:
    policy = parse_policy(_policy_text(threshold, 3))
    checkpoint = dataclasses.replace(data.draw(checkpoints), origin=LOG.name)
    cosigners = data.draw(st.lists(st.sampled_from(WITNESSES), unique_by=id, max_size=3))
    note = sign_note(checkpoint.text(), LOG)
    cosigs = [w.sign(checkpoint.text(), timestamp=1_700_000_000) for w in cosigners]
    text = format_note(note)[:-1] + "".join("\n" + c.line() for c in cosigs) + "\n"
    if len(cosigners) >= threshold:
        trusted = verify_checkpoint(text, policy)
        assert len(trusted.witnesses) == len(cosigners)
    else:
        try:
            verify_checkpoint(text, policy)
        except UntrustedError as exc:
            assert "quorum" in str(exc)
        else:
            raise AssertionError("accepted without the quorum")


@given(st.integers(1, 3), st.data())
def test_mutated_trust_files_are_one_line_errors(
    tmp_path_factory: pytest.TempPathFactory, members: int, data: st.DataObject
) -> None:
    tmp = tmp_path_factory.mktemp("trust")
    text = _policy_text(data.draw(st.integers(1, members)), members)
    path = _write(tmp, "auditor.policy", data.draw(mutated_text(text)))
    try:
        parse_policy(path.read_bytes(), source=str(path))
    except TrustFileError as exc:
        assert_api_error(exc, [path])
        assert exc.field, f"no field named: {exc}"
