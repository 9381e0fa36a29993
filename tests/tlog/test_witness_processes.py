"""Real witness processes on loopback (C2SP tlog-witness): they cosign a log
that grows, refuse a rewritten history once they saw the original, keep their
state across a restart and a kill -9, answer garbage with 400 and keep their
state, and answer litewitness's own conformance requests as the spec says."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.tlog.checkpoint import parse_checkpoint
from opskit.tlog.note import ED25519, Verifier, format_note, parse_note, verify_note
from opskit.tlog.trust import parse_policy, verify_checkpoint
from opskit.tlog.witnessclient import Conflict, Cosigned, Refused, Unreachable, cosign, submit
from tests.tlog.hurl import read_hurl
from tests.tlog.tlog_support import MemoryLog
from tests.tlog.witness_support import WitnessProcess

DATA = Path(__file__).parent.parent / "data" / "tlog"
ORIGIN = "ops.example.com/ledger"
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"


@pytest.fixture(scope="module")
def witnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[WitnessProcess]]:
    root = tmp_path_factory.mktemp("witnesses")
    started = [WitnessProcess(root / f"w{i}", f"w{i}.example/witness") for i in range(3)]
    try:
        for witness in started:
            witness.start()
        yield started
    finally:
        for witness in started:
            witness.stop()


def new_log(witnesses: list[WitnessProcess], origin: str) -> MemoryLog:
    log = MemoryLog(origin)
    for witness in witnesses:
        witness.add_log(origin, log.signer.verifier.vkey)
    return log


def cosign_all(log: MemoryLog, witnesses: list[WitnessProcess], known: int) -> list[object]:
    note = log.note()
    return [cosign(w.url, w.verifier, note, log.prove, known_size=known) for w in witnesses]


def head_note(witness: WitnessProcess, origin: str) -> str:
    digest = hashlib.sha256(origin.encode()).hexdigest()
    with urllib.request.urlopen(f"{witness.url}/{digest}/checkpoint", timeout=10) as answer:
        return answer.read().decode()


def test_witnesses_cosign_a_growing_log_and_the_quorum_verifies(
    witnesses: list[WitnessProcess],
) -> None:
    log = new_log(witnesses, f"{ORIGIN}/grow")
    policy = parse_policy(
        f"log {log.signer.verifier.vkey}\n"
        + "".join(f"witness w{i} {w.verifier.vkey}\n" for i, w in enumerate(witnesses))
        + "group two 2 w0 w1 w2\nquorum two\n"
    )
    known = 0
    for grow in (1, 6, 1, 57):
        log.extend(grow)
        results = cosign_all(log, witnesses, known)
        assert all(isinstance(r, Cosigned) for r in results), results
        signatures = [s for r in results for s in r.signatures]  # type: ignore[attr-defined]
        note_text = format_note(log.note())[:-1] + "".join("\n" + s.line() for s in signatures)
        trusted = verify_checkpoint(note_text + "\n", policy)
        assert trusted.witnesses == ("w0", "w1", "w2")
        assert trusted.checkpoint.size == log.size
        known = log.size
    # The monitoring endpoint serves the head with the log's signature and the cosignature.
    served = parse_note(head_note(witnesses[0], log.origin))
    assert served.text == log.checkpoint().text()
    verify_note(served, [log.signer.verifier, witnesses[0].verifier])


def test_a_rewritten_history_is_refused_by_every_witness_that_saw_the_original(
    witnesses: list[WitnessProcess],
) -> None:
    log = new_log(witnesses, f"{ORIGIN}/fork")
    saw, fresh = witnesses[:2], witnesses[2]
    log.extend(10)
    assert all(isinstance(r, Cosigned) for r in cosign_all(log, saw, 0))
    original = {w.name: head_note(w, log.origin) for w in saw}

    # Tail deleted and re-appended: same size, another root, same log key.
    rewritten = log.fork(7)
    rewritten.extend(3, prefix="rewritten")
    # A forked copy that went on: larger size, its own consistency proof.
    forked = log.fork(4)
    forked.extend(12, prefix="forked")
    # A truncated copy: smaller than what the witnesses cosigned.
    truncated = log.fork(8)
    for copy in (rewritten, forked, truncated):
        for witness in saw:
            result = cosign(witness.url, witness.verifier, copy.note(), copy.prove, known_size=10)
            assert isinstance(result, Refused | Conflict), (witness.name, copy.size, result)
            assert not isinstance(result, Cosigned)
        # Claiming a fresh start is answered with the size the witness holds.
        result = submit(saw[0].url, saw[0].verifier, copy.consistency(0))
        assert result == Conflict(saw[0].verifier.fingerprint, 10)
    assert isinstance(submit(saw[0].url, saw[0].verifier, rewritten.consistency(10)), Refused)
    # Nothing changed at the witnesses that saw the original ...
    assert {w.name: head_note(w, log.origin) for w in saw} == original
    # ... and they kept the signed evidence of the rewrite.
    with sqlite3.connect(saw[0].folder / "witness.db") as db:
        reasons = [row[0] for row in db.execute("SELECT reason FROM evidence")]
    assert any("another root hash" in r for r in reasons), reasons
    assert any("consistency proof does not verify" in r for r in reasons), reasons
    # A witness that never saw the original cannot tell: why a quorum needs several.
    assert isinstance(cosign(fresh.url, fresh.verifier, forked.note(), forked.prove), Cosigned)


def test_a_restarted_witness_keeps_its_state(tmp_path: Path) -> None:
    witness = WitnessProcess(tmp_path / "w", "restart.example/witness")
    log = MemoryLog(f"{ORIGIN}/restart")
    witness.add_log(log.origin, log.signer.verifier.vkey)
    witness.start()
    try:
        log.extend(21)
        assert isinstance(cosign(witness.url, witness.verifier, log.note(), log.prove), Cosigned)
        before = head_note(witness, log.origin)
        witness.stop()
        witness.start()
        assert head_note(witness, log.origin) == before
        assert submit(witness.url, witness.verifier, log.consistency(0)) == Conflict(
            witness.verifier.fingerprint, 21
        )
        rewritten = log.fork(20)
        rewritten.extend(1, prefix="rewritten")
        assert isinstance(submit(witness.url, witness.verifier, rewritten.consistency(21)), Refused)
        log.extend(3)
        assert isinstance(
            cosign(witness.url, witness.verifier, log.note(), log.prove, known_size=21), Cosigned
        )
    finally:
        witness.stop()


def _hammer(
    witness: WitnessProcess, log: MemoryLog, acked: list[int], stop: threading.Event
) -> None:
    """Send ever larger checkpoints until the witness stops answering."""
    while not stop.is_set():
        old = acked[-1]
        log.extend(1)
        result = submit(witness.url, witness.verifier, log.consistency(old), timeout=5)
        if not isinstance(result, Cosigned):
            return
        acked.append(log.size)


def test_kill_9_mid_request_loses_nothing(tmp_path: Path) -> None:
    witness = WitnessProcess(tmp_path / "w", "kill.example/witness")
    log = MemoryLog(f"{ORIGIN}/kill")
    witness.add_log(log.origin, log.signer.verifier.vkey)
    rng = random.Random(12)
    size = 0
    for _ in range(3):
        witness.start()
        acked = [size]
        stop = threading.Event()
        sender = threading.Thread(target=_hammer, args=(witness, log, acked, stop))
        sender.start()
        threading.Event().wait(rng.uniform(0.3, 0.8))
        witness.kill9()
        stop.set()
        sender.join(timeout=30)
        assert len(acked) > 1, "no request was answered before the kill"
        with sqlite3.connect(witness.folder / "witness.db") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        witness.start()
        stored = parse_note(head_note(witness, log.origin))
        size = parse_checkpoint(stored.text).size
        # The last size it answered for, or the one it was handling when killed.
        assert size in (acked[-1], acked[-1] + 1), (size, acked[-3:])
        verify_note(stored, [log.signer.verifier, witness.verifier])
        assert stored.text == log.checkpoint(size).text()
        witness.stop()


GARBAGE = [
    b"",
    b"old 3\n",
    b"old x\n\nops\n1\nAAAA\n\n",
    b"\xff\xfe\x00garbage",
    b"old 1\n" + b"A" * 70_000,
    b"old 0\n\n" + "— ".encode() * 100,
]


def test_garbage_is_a_400_line_and_the_state_is_unchanged(
    witnesses: list[WitnessProcess],
) -> None:
    witness = witnesses[0]
    log = new_log([witness], f"{ORIGIN}/garbage")
    log.extend(5)
    assert isinstance(cosign(witness.url, witness.verifier, log.note(), log.prove), Cosigned)
    before = head_note(witness, log.origin)
    body = log.consistency(5).text().encode()
    for junk in [*GARBAGE, body.replace(b"old 5", b"old 9"), body[: len(body) // 2]]:
        request = urllib.request.Request(f"{witness.url}/add-checkpoint", data=junk, method="POST")
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as answer:
            text = answer.read().decode()
            assert answer.code == 400, (junk[:40], answer.code, text)
            assert text.endswith("\n") and text.count("\n") == 1 and text.strip(), text
        else:
            raise AssertionError(f"accepted garbage {junk[:40]!r}")
    assert head_note(witness, log.origin) == before


def test_unknown_logs_and_foreign_keys_are_refused(witnesses: list[WitnessProcess]) -> None:
    witness = witnesses[1]
    stranger = MemoryLog(f"{ORIGIN}/unknown")
    stranger.extend(2)
    assert submit(witness.url, witness.verifier, stranger.consistency(0)).status == 404  # type: ignore[union-attr]
    log = new_log([witness], f"{ORIGIN}/foreign")
    impostor = MemoryLog(log.origin)  # same origin, another key
    impostor.extend(2)
    result = submit(witness.url, witness.verifier, impostor.consistency(0))
    assert isinstance(result, Refused) and result.status == 403, result


def test_the_client_reports_an_unreachable_or_silent_witness(tmp_path: Path) -> None:
    log = MemoryLog(f"{ORIGIN}/client")
    log.extend(1)
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts, never answers
        host, port = silent.getsockname()
        result = submit(
            f"http://{host}:{port}",
            Verifier(log.origin, ED25519, bytes(32)),
            log.consistency(0),
            timeout=0.5,
        )
        assert isinstance(result, Unreachable), result
    result = submit(
        f"http://{host}:{port}",
        Verifier(log.origin, ED25519, bytes(32)),
        log.consistency(0),
        timeout=2,
    )
    assert isinstance(result, Unreachable) and "refused" in result.reason.lower(), result


def test_litewitness_conformance_requests(tmp_path: Path) -> None:
    """litewitness's add-checkpoint tests, replayed against opskit-witness.

    One deliberate difference: an unknown origin is 404, as tlog-witness says
    ("If the checkpoint origin is unknown, the witness MUST respond with a 404
    Not Found"); litewitness answers 403 there.
    """
    witness = WitnessProcess(tmp_path / "w", "example.com/witness")
    public = bytes.fromhex("ffdc2d4d98e4124d3feaf788c0c2f9abfd796083d1f0495437f302ec79cf100f")
    origin = "sigsum.org/v1/tree/" + hashlib.sha256(public).hexdigest()
    witness.add_log(origin, Verifier(origin, ED25519, public).vkey)
    witness.add_log(
        "go.sum database tree",
        "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8",
    )
    witness.start()
    try:
        requests = read_hurl(DATA / "litewitness-add-checkpoint.hurl")
        requests += read_hurl(DATA / "litewitness-sumdb-add-checkpoint.hurl")
        for number, request in enumerate(requests, start=1):
            expected = 404 if any("unknown log" in a for a in request.asserts) else request.status
            post = urllib.request.Request(
                f"{witness.url}/add-checkpoint", data=request.body, method="POST"
            )
            try:
                with urllib.request.urlopen(post, timeout=10) as answer:
                    status, kind, body = (
                        answer.status,
                        answer.headers["Content-Type"],
                        answer.read(),
                    )
            except urllib.error.HTTPError as error:
                status, kind, body = error.code, error.headers["Content-Type"], error.read()
            assert status == expected, (number, status, body)
            if status == 409:
                assert kind == "text/x.tlog.size"
                assert f'body == "{body.decode()[:-1]}\\n"' in request.asserts
            if status == 200:
                cosigned = parse_note(request.body.split(b"\n\n", 1)[1])
                line = parse_note(cosigned.text + "\n" + body.decode())
                assert verify_note(line, [witness.verifier]).verified
    finally:
        witness.stop()
