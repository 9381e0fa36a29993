"""The witness's decisions against its real SQLite state, in-process: garbage
never changes it (Hypothesis), concurrent requests never roll it back, the
client's retry after a 409, and the key never shows in anything it prints."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.tlog.note import parse_note, verify_note
from opskit.tlog.proof import parse_consistency_proof
from opskit.tlog.witnessclient import Conflict, Cosigned, cosign
from opskit.witness.core import Witness
from opskit.witness.keys import KEY_NAME, create_key, load_signer
from opskit.witness.state import WitnessState
from tests.fuzz.strategies import mutated_text
from tests.tlog.tlog_support import MemoryLog
from tests.tlog.witness_support import WitnessProcess, witness_cli


def make_witness(folder: Path, log: MemoryLog) -> Witness:
    witness = Witness(WitnessState.open(folder), create_key(folder, "w.example/witness"))
    witness.state.add_log(log.origin, [log.signer.verifier.vkey])
    return witness


def rows(witness: Witness) -> list[tuple[object, ...]]:
    db = witness.state._db  # the test reads the same connection the witness writes
    return db.execute("SELECT origin, size, root_hash, note FROM heads ORDER BY origin").fetchall()


@given(st.data())
def test_a_broken_request_is_refused_and_changes_nothing(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    folder = tmp_path_factory.mktemp("w")
    log = MemoryLog("ops.example.com/ledger")
    log.extend(9)
    witness = make_witness(folder, log)
    assert witness.add_checkpoint(log.consistency(0).text().encode()).status == 200
    before = rows(witness)
    log.extend(data.draw(st.integers(1, 40)))
    good = log.consistency(9).text()
    body = data.draw(mutated_text(good) | st.binary(max_size=300))
    answer = witness.add_checkpoint(body)
    if answer.status == 200:
        # Only a mutation that left a valid request (same checkpoint, valid proof) passes.
        assert parse_consistency_proof(body).checkpoint == log.checkpoint()
        assert rows(witness)[0][1] == log.size
        return
    assert answer.status in (400, 403, 404, 409, 422), answer
    text = answer.body.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    assert rows(witness) == before


def test_concurrent_requests_from_one_size_cosign_exactly_one(tmp_path: Path) -> None:
    log = MemoryLog("ops.example.com/ledger")
    log.extend(10)
    witness = make_witness(tmp_path / "w", log)
    assert witness.add_checkpoint(log.consistency(0).text().encode()).status == 200
    bodies = []
    for _ in range(20):
        log.extend(1)
        bodies.append(log.consistency(10).text().encode())
    answers: list[int] = [0] * len(bodies)

    def send(i: int) -> None:
        answers[i] = witness.add_checkpoint(bodies[i]).status

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200] + [409] * 19, answers
    winner = answers.index(200)
    assert rows(witness)[0][1] == 11 + winner  # the one it answered 200 for


def test_the_client_retries_once_from_the_size_a_409_names(tmp_path: Path) -> None:
    log = MemoryLog("ops.example.com/ledger")
    process = WitnessProcess(tmp_path / "w", "retry.example/witness")
    process.add_log(log.origin, log.signer.verifier.vkey)
    process.start()
    try:
        log.extend(5)
        assert isinstance(cosign(process.url, process.verifier, log.note(), log.prove), Cosigned)
        log.extend(5)
        # The log lost track of what the witness holds: it claims 0, then 7.
        for wrong, held in ((0, 5), (7, 10)):
            result = cosign(process.url, process.verifier, log.note(), log.prove, known_size=wrong)
            assert isinstance(result, Cosigned) and result.old_size == held, result
        # A witness ahead of the checkpoint is reported, not retried into a refusal.
        old = MemoryLog(log.origin, log.signer)
        old.append(*log.records[:3])
        result = cosign(process.url, process.verifier, old.note(), old.prove, known_size=3)
        assert result == Conflict(process.verifier.fingerprint, 10)
    finally:
        process.stop()


def test_the_witness_key_never_shows(tmp_path: Path) -> None:
    process = WitnessProcess(tmp_path / "w", "canary.example/witness")
    secret = (process.folder / KEY_NAME).read_text().strip()
    seed = secret.rsplit("+", 1)[1]
    assert (process.folder / KEY_NAME).stat().st_mode & 0o077 == 0
    outputs = [witness_cli(verb, process.folder) for verb in ("vkey", "logs")]
    outputs.append(witness_cli("init", process.folder, "--name", "again.example/w"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / KEY_NAME).write_text(secret.replace("PRIVATE+KEY", "PRIVATE+KEZ"))
    outputs.append(witness_cli("serve", tmp_path / "bad", "--listen", "127.0.0.1:0"))
    for result in outputs:
        assert seed not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert outputs[2].returncode == 1 and "exists already" in outputs[2].stderr
    assert outputs[3].returncode == 1 and "not a witness signer key" in outputs[3].stderr
    assert seed not in repr(load_signer(process.folder))
    log = MemoryLog("ops.example.com/ledger")
    log.extend(3)
    witness = make_witness(tmp_path / "w2", log)
    answer = witness.add_checkpoint(log.consistency(0).text().encode())
    stored = rows(witness)[0][3]
    key_seed = (tmp_path / "w2" / KEY_NAME).read_text().strip().rsplit("+", 1)[1]
    assert key_seed not in answer.body.decode() + str(stored)
    verify_note(parse_note(str(stored)), [log.signer.verifier, witness.signer.verifier])
