"""A second, independent Python verifier checks what the ledger writes:
`tlog-scales` (PyPI, Apache-2.0, by the author of the sigmon Sigsum
monitor; nothing to do with opskit) verifies the ledger's checkpoint note
with the log's vkey, an opskit witness's cosignature with the witness's
vkey, inclusion proofs of records (RFC 9162 §2.1.3.2) and a consistency
proof (§2.1.4.2); a flipped byte fails in it.

The proof files are read here with the standard library from their
documented text formats (C2SP tlog-proof, the tlog-witness request body), so
that nothing of opskit's parsing stands between the ledger and the
verifier."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from opskit.ledger import Ledger
from opskit.ledger.proofs import log_vkey, prove_consistency, prove_record
from opskit.tlog.note import format_note
from opskit.witness.core import Witness
from opskit.witness.keys import create_key
from opskit.witness.state import WitnessState
from tests.fixtures.postgres import open_ledger

try:
    import tlog_scales.signing as scales_signing
    import tlog_scales.tlog as scales_tlog
except ImportError:  # pragma: no cover - the dev extra installs it
    if os.environ.get("CI"):
        raise
    pytest.skip("tlog-scales is not installed (the dev extra)", allow_module_level=True)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A SQLite ledger of 500 records, checkpointed at 300 and 500, its
    checkpoint cosigned by an opskit witness, and what the ledger wrote."""
    folder = tmp_path_factory.mktemp("python-interop")
    ledger: Ledger = open_ledger(f"sqlite:///{folder / 'ledger.db'}", folder / "keys")
    witness = Witness(WitnessState.open(folder / "w"), create_key(folder / "w", "w.example/w1"))
    witness.state.add_log(ledger.origin, [log_vkey(ledger)])
    for n in range(300):
        ledger.append("change.noted", actor="alice", payload={"n": n}, change_id=f"C{n % 7}")
    ledger.checkpoint("alice")
    first = prove_consistency(ledger, 0)
    assert witness.add_checkpoint(first.text().encode()).status == 200
    old_note = format_note(first.note)
    for n in range(200):
        ledger.append("host.applied", actor="bob", payload={"n": n}, ci=f"sw{n % 5}")
    ledger.checkpoint("bob")
    consistency = prove_consistency(ledger, 300).text()
    answer = witness.add_checkpoint(consistency.encode())
    assert answer.status == 200, answer.body
    return {
        "ledger": ledger,
        "vkey": log_vkey(ledger),
        "witness_vkey": witness.signer.verifier.vkey,
        "old_note": old_note,
        "cosigned": format_note(prove_consistency(ledger, 500).note) + answer.body.decode(),
        "consistency": consistency,
        "proofs": {seq: prove_record(ledger, seq).text() for seq in (1, 2, 300, 301, 500)},
    }


def note_body_and_rest(text: str) -> tuple[list[str], str]:
    """A proof file's lines before the blank line, and the note after it."""
    head, _, note = text.partition("\n\n")
    return head.split("\n"), note


def verified_checkpoint(note: str, *vkeys: str) -> Any:
    """The note as tlog-scales reads it, after it verified each vkey's signature."""
    checkpoint = scales_tlog.Checkpoint.from_text(note)
    for vkey in vkeys:
        checkpoint.verify(scales_signing.Vkey.from_string(vkey))
    return checkpoint


def check_inclusion(text: str, vkey: str) -> int:
    """Verifies a .tlog-proof with tlog-scales; returns the leaf index."""
    lines, note = note_body_and_rest(text)
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    record = base64.b64decode(lines[1].removeprefix("extra "), validate=True)
    index = int(lines[2].removeprefix("index "))
    hashes = [base64.b64decode(line, validate=True) for line in lines[3:]]
    checkpoint = verified_checkpoint(note, vkey)
    leaf = hashlib.sha256(b"\x00" + record).digest()  # RFC 6962 leaf hash, by hand
    proof = scales_tlog.InclusionProof(index, checkpoint.size, hashes)
    proof.check(leaf, checkpoint.root_hash)
    return index


def test_tlog_scales_verifies_the_cosigned_checkpoint(written: dict[str, Any]) -> None:
    checkpoint = verified_checkpoint(written["cosigned"], written["vkey"], written["witness_vkey"])
    assert (checkpoint.origin, checkpoint.size) == (written["ledger"].origin, 500)
    assert len(checkpoint.signatures) == 2


def test_tlog_scales_checks_inclusion_of_records(written: dict[str, Any]) -> None:
    for seq, text in written["proofs"].items():
        assert check_inclusion(text, written["vkey"]) == seq - 1  # leaf i = record seq i+1


def test_tlog_scales_checks_consistency(written: dict[str, Any]) -> None:
    lines, note = note_body_and_rest(written["consistency"])
    old_size = int(lines[0].removeprefix("old "))
    hashes = [base64.b64decode(line, validate=True) for line in lines[1:]]
    old = verified_checkpoint(written["old_note"], written["vkey"])
    new = verified_checkpoint(note, written["vkey"])
    assert (old_size, old.size, new.size) == (300, 300, 500)
    scales_tlog.ConsistencyProof(old.size, new.size, hashes).check(old.root_hash, new.root_hash)


def flip(text: str, after: str, offset: int = 2) -> str:
    at = text.index(after) + len(after) + offset
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def test_a_flipped_byte_fails_in_tlog_scales(written: dict[str, Any]) -> None:
    from cryptography.exceptions import InvalidSignature

    vkey, proof = written["vkey"], written["proofs"][301]
    with pytest.raises(scales_tlog.InclusionProofInvalid):
        check_inclusion(flip(proof, "index 300\n"), vkey)  # a proof hash
    with pytest.raises(scales_tlog.InclusionProofInvalid):
        check_inclusion(flip(proof, "extra "), vkey)  # the record
    with pytest.raises(InvalidSignature):
        verified_checkpoint(written["cosigned"].replace("\n500\n", "\n501\n", 1), vkey)
    lines, note = note_body_and_rest(flip(written["consistency"], "old 300\n"))
    old = verified_checkpoint(written["old_note"], vkey)
    new = verified_checkpoint(note, vkey)
    hashes = [base64.b64decode(line) for line in lines[1:]]
    with pytest.raises(scales_tlog.ConsistencyProofInvalid):
        scales_tlog.ConsistencyProof(300, 500, hashes).check(old.root_hash, new.root_hash)


def test_a_key_the_note_does_not_carry_verifies_nothing(
    written: dict[str, Any], tmp_path: Path
) -> None:
    """tlog-scales refuses a note under a vkey that did not sign it: the
    checkpoint is verified by the pinned key, never by one it brings."""
    other = open_ledger(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "keys")
    with pytest.raises(RuntimeError, match="no signature matched"):
        verified_checkpoint(written["cosigned"], log_vkey(other))
