"""The trust policy (C2SP tlog-policy): what it accepts, how a bad file is
named, and that nothing is verified on a key the checked file brought along."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.tlog.note import COSIGNATURE_V1, Signer, VerificationError, format_note
from opskit.tlog.proof import parse_inclusion_proof
from opskit.tlog.trust import (
    TrustFileError,
    UntrustedError,
    load_policy,
    parse_policy,
    verify_checkpoint,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from tests.tlog.tlog_support import MemoryLog

W1 = Signer.generate("w1.example/witness", COSIGNATURE_V1)
W2 = Signer.generate("w2.example/witness", COSIGNATURE_V1)


@pytest.fixture(scope="module")
def log() -> MemoryLog:
    log = MemoryLog("ops.example.com/ledger")
    log.extend(13)
    return log


def policy_text(log: MemoryLog, quorum: str = "both") -> str:
    return (
        "# auditor's policy\n"
        f"log {log.signer.verifier.vkey}\n\n"
        f"witness w1 {W1.verifier.vkey} http://127.0.0.1:7380\n"
        f"\twitness  w2\t{W2.verifier.vkey}   \n"
        "group both all w1 w2\n"
        "group one any w1 w2\n"
        f"quorum {quorum}\n"
    )


def cosigned(log: MemoryLog, *witnesses: Signer) -> str:
    text = log.checkpoint().text()
    lines = [w.sign(text, timestamp=1_765_000_000).line() for w in witnesses]
    return format_note(log.note()) + "".join(line + "\n" for line in lines)


def test_a_checkpoint_with_the_quorum_is_trusted(log: MemoryLog) -> None:
    policy = parse_policy(policy_text(log))
    assert policy.origins == ("ops.example.com/ledger",)
    trusted = verify_checkpoint(cosigned(log, W1, W2), policy)
    assert trusted.witnesses == ("w1", "w2")
    assert trusted.log_key == log.signer.verifier.fingerprint
    assert trusted.checkpoint.size == 13


def test_without_the_quorum_the_error_names_who_cosigned(log: MemoryLog) -> None:
    with pytest.raises(UntrustedError, match=r"quorum 'both' not met .*from: w1\)$"):
        verify_checkpoint(cosigned(log, W1), parse_policy(policy_text(log)), source="cp")
    assert verify_checkpoint(cosigned(log, W2), parse_policy(policy_text(log, "one")))


def test_an_untrusted_log_is_reported_with_the_fingerprints_found(log: MemoryLog) -> None:
    impostor = MemoryLog(log.origin)  # same origin, its own key: a re-signed copy
    impostor.extend(13)
    with pytest.raises(UntrustedError) as error:
        verify_checkpoint(format_note(impostor.note()), parse_policy(policy_text(log, "none")))
    assert impostor.signer.verifier.fingerprint in str(error.value)
    assert error.value.found == (impostor.signer.verifier.fingerprint,)
    assert "no signature by a log key" in str(error.value)


def test_a_key_inside_the_checked_file_is_never_trusted(log: MemoryLog, tmp_path: Path) -> None:
    # A forged proof carries its own vkey in its extra line: still untrusted.
    forger = MemoryLog(log.origin)
    forger.append(f"vkey {forger.signer.verifier.vkey}".encode())
    proof = forger.inclusion(0)
    path = tmp_path / "forged.tlog-proof"
    path.write_text(proof.text())
    with pytest.raises(UntrustedError, match=r"forged\.tlog-proof"):
        verify_inclusion_proof(
            parse_inclusion_proof(path.read_bytes(), source=str(path)),
            parse_policy(policy_text(log, "none")),
            source=str(path),
        )


def test_a_bad_cosignature_by_a_trusted_witness_refuses_the_note(log: MemoryLog) -> None:
    text = cosigned(log, W1, W2)
    line = next(ln for ln in text.splitlines() if ln.startswith("— w1.example"))
    bad = text.replace(line, line[:-6] + ("AAAA" if line[-6:-2] != "AAAA" else "BBBB") + line[-2:])
    with pytest.raises(VerificationError, match=r"invalid signature by w1.example/witness"):
        verify_checkpoint(bad, parse_policy(policy_text(log, "one")))


def test_inclusion_and_consistency_proofs_verify_under_the_policy(log: MemoryLog) -> None:
    policy = parse_policy(policy_text(log, "none"))
    for index in (0, 5, 12):
        verified = verify_inclusion_proof(
            parse_inclusion_proof(log.inclusion(index).text()), policy
        )
        assert verified.record == log.records[index]
    other = log.inclusion(5)
    with pytest.raises(VerificationError, match="invalid inclusion proof"):
        verify_inclusion_proof(other, policy, record=b"record 6")
    old = log.checkpoint(7)
    assert verify_consistency_proof(log.consistency(7), old, policy).checkpoint.size == 13
    fork = log.fork(7)
    fork.extend(6, prefix="rewritten")
    with pytest.raises(VerificationError, match="consistency"):
        verify_consistency_proof(fork.consistency(7), log.checkpoint(9), policy)


@pytest.mark.parametrize(
    "text, line, field, message",
    [
        ("quorum none\n", None, "log", "no log line"),
        ("log {log}\n", None, "quorum", "no quorum line"),
        ("log {log}\nquorum w9\n", 2, "quorum", "not defined on an earlier line"),
        ("log {log}\nquorum none\nquorum none\n", 3, "quorum", "a second quorum line"),
        ("log {log}\nwitness w1 {w1}\nwitness w1 {w2}\nquorum none\n", 3, "witness", "already"),
        ("log {log}\nwitness w1 {w1}\nwitness w2 {w1}\nquorum none\n", 3, "witness", "duplicate"),
        ("log {log}\nwitness w1 {log}\nquorum none\n", 2, "witness", "not a cosigner key"),
        ("log {w1}\nquorum none\n", 1, "log", "not a log key"),
        ("log {log}\nwitness w1 {w1}\ngroup g 2 w1\nquorum g\n", 3, "group", "threshold"),
        ("log {log}\nwitness w1 {w1}\ngroup g any w1 w1\nquorum g\n", 3, "group", "twice"),
        ("log {log}\ngroup g any w1\nquorum g\n", 2, "group", "not defined"),
        ("log {log}\nlogs x\nquorum none\n", 2, "keyword", "unknown keyword"),
        ("log {log}\r\nquorum none\n", 1, "text", "control character"),
        ("log {log}\nquorum none\n# caf\xe9\n", 3, "text", "UTF-8"),
        ("log example.com/x+00000000+AAAA\nquorum none\n", 1, "log", "vkey"),
    ],
)
def test_a_bad_trust_file_is_one_line_with_file_line_and_field(
    log: MemoryLog, tmp_path: Path, text: str, line: int | None, field: str, message: str
) -> None:
    path = tmp_path / "auditor.policy"
    body = text.format(log=log.signer.verifier.vkey, w1=W1.verifier.vkey, w2=W2.verifier.vkey)
    path.write_bytes(body.encode("latin-1") if "\xe9" in body else body.encode())
    with pytest.raises(TrustFileError) as error:
        load_policy(path)
    where = f"{path}:{line}" if line else str(path)
    assert str(error.value).startswith(f"{where} [{field}]: "), str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_trust_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TrustFileError, match=r"nothing.policy: cannot read"):
        load_policy(tmp_path / "nothing.policy")
