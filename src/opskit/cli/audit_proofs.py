"""`opskit audit prove` and `opskit audit verify-proof`: Merkle proofs of the ledger.

`prove SEQ` prints (or `--out` writes) a C2SP tlog-proof of one record against
the latest checkpoint; `prove --from-size N` prints the consistency proof from
tree size N in the tlog-witness request body format. `verify-proof FILE
--trust POLICY` checks a .tlog-proof offline against a trust policy (C2SP
tlog-policy, `opskit.tlog.trust`); without `--trust` nothing is verified: it
prints the signers' fingerprints and exits 3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from opskit.cli.common import GLOBALS, console, err_console, plain, workspace
from opskit.errors import UsageError

# verify-proof's exit code when no trust policy was given (as verify-bundle's).
UNTRUSTED_EXIT = 3


def _actor() -> str:
    from opskit.ledger.core import default_actor

    return GLOBALS.user or default_actor()


def prove(
    seq: Annotated[int | None, typer.Argument(help="The record's sequence number.")] = None,
    from_size: Annotated[
        int | None,
        typer.Option("--from-size", help="A consistency proof from this tree size instead."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Write the proof to this file.")] = None,
) -> None:
    """Print an inclusion proof of record SEQ (C2SP tlog-proof), or with
    --from-size N a consistency proof from tree size N to the latest checkpoint."""
    from opskit.ledger import Ledger
    from opskit.ledger.output import OutputFile
    from opskit.ledger.proofs import prove_consistency, prove_record

    if (seq is None) == (from_size is None):
        raise UsageError("prove: give a SEQ or --from-size N (one of them)")
    ledger = Ledger.open(workspace())
    if out is None:
        proof = (
            prove_record(ledger, seq, actor=_actor())
            if seq is not None
            else prove_consistency(ledger, from_size, actor=_actor())  # type: ignore[arg-type]
        )
        typer.echo(proof.text(), nl=False)
        return
    with OutputFile(out) as target:
        proof = (
            prove_record(ledger, seq, actor=_actor())
            if seq is not None
            else prove_consistency(ledger, from_size, actor=_actor())  # type: ignore[arg-type]
        )
        target.stage(proof.text())
        target.commit()
    err_console.print(f"proof written to {plain(str(out))}", highlight=False, soft_wrap=True)


def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="The .tlog-proof file.")],
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="The trust policy (C2SP tlog-policy: log and witness keys)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable result.")] = False,
) -> None:
    """Check a .tlog-proof offline: a checkpoint signed by a trusted log key
    (and the witness quorum), and the record under its root. Exit 0 verified,
    1 failed, 3 not verified for want of a trust policy."""
    from opskit.errors import LedgerError
    from opskit.ledger.keys import load_trust_policy
    from opskit.tlog.proof import parse_inclusion_proof
    from opskit.tlog.trust import verify_inclusion_proof

    try:
        data = proof_file.read_bytes()
    except OSError as exc:
        raise LedgerError(f"{proof_file}: {exc.strerror}") from None
    proof = parse_inclusion_proof(data, source=str(proof_file))
    seq = _record_seq(proof.extra)
    if seq is not None and seq != proof.index + 1:
        raise LedgerError(
            f"{proof_file}: the record in the extra line is seq {seq}, "
            f"but leaf {proof.index} holds seq {proof.index + 1}"
        )
    found = ", ".join(s.fingerprint for s in proof.note.signatures)
    if trust is None:
        err_console.print(
            f"[yellow]proof {plain(proof_file.name)} NOT VERIFIED[/yellow]: no --trust policy; "
            f"the checkpoint is signed by {plain(found)} (pin a key in a trust policy)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(UNTRUSTED_EXIT)
    verified = verify_inclusion_proof(proof, load_trust_policy(trust), source=str(proof_file))
    checkpoint = verified.trusted.checkpoint
    result = {
        "ok": True,
        "seq": proof.index + 1,
        "index": proof.index,
        "origin": checkpoint.origin,
        "tree_size": checkpoint.size,
        "log_key": verified.trusted.log_key,
        "witnesses": list(verified.trusted.witnesses),
    }
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    witnesses = ", ".join(verified.trusted.witnesses) or "none"
    console.print(
        f"[green]proof {plain(proof_file.name)} OK[/green]: record seq {proof.index + 1} is in "
        f"the tree of size {checkpoint.size} of {plain(checkpoint.origin)}, signed by "
        f"{plain(verified.trusted.log_key)}; witnesses: {plain(witnesses)}",
        highlight=False,
        soft_wrap=True,
    )


def _record_seq(extra: bytes | None) -> int | None:
    """The seq an opskit record states (its last key), if the extra is one."""
    if extra is None:
        return None
    try:
        seq = json.loads(extra).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if type(seq) is int else None


def register(app: typer.Typer) -> None:
    """Adds `prove` and `verify-proof` to the `audit` command group."""
    app.command("prove")(prove)
    app.command("verify-proof")(verify_proof)
