"""`opskit audit export` and `opskit audit verify-bundle`: complete change bundles.

`export --change ID` writes the change's bundle (`opskit.ledger.changebundle`:
every event with an inclusion proof against one cosigned checkpoint;
`--withhold SEQ` gives an event by digest only). `verify-bundle FILE --trust
POLICY` checks it offline (`opskit.ledger.bundlecheck`); bundles of the older
format (`opskit.ledger.bundle/1`) are still checked by `opskit.ledger.bundle`.
Exit 0 verified, 1 failed, 3 intact but checked against no trusted key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from opskit.cli.common import GLOBALS, console, err_console, plain, print_json, workspace

# verify-bundle's exit code when the bundle is intact but no trusted key was
# given to check its signer against (documented in docs/ledger.md).
UNTRUSTED_EXIT = 3


def _actor() -> str:
    from opskit.ledger.core import default_actor

    return GLOBALS.user or default_actor()


def export(
    change: Annotated[str, typer.Option("--change", help="The change to export.")],
    out: Annotated[Path, typer.Option("--out", help="The bundle file to write.")],
    withhold: Annotated[
        list[int] | None,
        typer.Option("--withhold", help="Give this event (seq) by digest only (repeatable)."),
    ] = None,
) -> None:
    """Write a complete change bundle: every event of the change with its
    inclusion proof against one (witness-cosigned) checkpoint, and its blobs."""
    from opskit.ledger import Ledger

    ledger = Ledger.open(workspace())
    path = ledger.export_bundle(change, out, actor=_actor(), withhold=withhold or ())
    data = json.loads(path.read_text(encoding="utf-8"))
    withheld = sum(1 for e in data["events"] if e.get("withheld"))
    console.print(
        f"bundle for change {plain(change)} written to {plain(str(path))}: "
        f"{len(data['events'])} events ({withheld} withheld) against the checkpoint of "
        f"tree size {data['checkpoint'].splitlines()[1]}",
        highlight=False,
        soft_wrap=True,
    )
    witness_warnings(ledger)


def witness_warnings(ledger: Any) -> None:
    """One line a warning of the witnesses on the ledger's last checkpoint."""
    outcome = ledger.last_witnessing
    for warning in getattr(outcome, "warnings", ()):
        err_console.print(f"[yellow]warning[/yellow]: {plain(warning)}", highlight=False)


def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="The bundle file.")],
    pubkey_file: Annotated[
        Path | None,
        typer.Option("--pubkey", help="Require the checkpoint to be signed by this PEM key."),
    ] = None,
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            "--trust", help="The trust policy (C2SP tlog-policy: log and witness keys, quorum)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Check a change bundle offline (no workspace needed) against a trust
    policy: --trust, else --pubkey, else the current workspace's keys. Exit 0
    verified, 1 failed, 3 intact but no trusted key to check it against."""
    from opskit.ledger.bundle import BUNDLE_FORMAT, anchors_for
    from opskit.ledger.model import read_json

    anchors = anchors_for(pubkey_file, trust or ())
    if anchors is not None and anchors.deprecated:
        from opskit.ledger.keys import DEPRECATED_TRUST_FILE

        err_console.print(f"[yellow]warning[/yellow]: {DEPRECATED_TRUST_FILE}", highlight=False)
    if anchors is None:
        anchors = _workspace_anchors()
    data = read_json(bundle, "a JSON bundle")
    if isinstance(data, dict) and data.get("format") == BUNDLE_FORMAT:
        _verify_v1(bundle, anchors, as_json)
        return
    from opskit.ledger.bundlecheck import (
        load_change_bundle,
        policy_from_anchors,
        verify_change_bundle,
    )

    note = load_change_bundle(bundle)["checkpoint"]
    report = verify_change_bundle(bundle, policy_from_anchors(anchors, note))
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        _print_ok(bundle, report)
    else:
        more = len(report.problems) - 1
        label = "NOT TRUSTED" if _untrusted_only(report) else "FAILED"
        err_console.print(
            f"[red]bundle {plain(bundle.name)} {label}[/red]: {plain(report.problem or '')}"
            + (f" (and {more} more problem(s): --json lists them)" if more > 0 else "")
            + f"; {plain(report.summary())}",
            highlight=False,
            soft_wrap=True,
        )
    if _untrusted_only(report):
        raise typer.Exit(UNTRUSTED_EXIT)
    if not report.ok:
        raise typer.Exit(1)


def _print_ok(bundle: Path, report: Any) -> None:
    console.print(
        f"[green]bundle {plain(bundle.name)} OK[/green]: {plain(report.summary())}",
        highlight=False,
        soft_wrap=True,
    )


def _untrusted_only(report: Any) -> bool:
    return len(report.problems) == 1 and report.problems[0].startswith("no trust policy")


def _verify_v1(bundle: Path, anchors: Any, as_json: bool) -> None:
    """A bundle of the older format (hash chain to a JSON checkpoint)."""
    from opskit.ledger.bundle import verify_bundle as verify_v1

    report = verify_v1(bundle, trust=anchors)
    if as_json:
        print_json(report.to_dict())
    elif report.ok:
        _print_ok(bundle, report)
    elif report.untrusted_only:
        err_console.print(
            f"[yellow]bundle {plain(bundle.name)} NOT TRUSTED[/yellow]: "
            f"{plain(report.problem or '')}; {plain(report.summary())}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        more = len(report.problems) - 1
        err_console.print(
            f"[red]bundle {plain(bundle.name)} FAILED[/red] at seq {report.first_bad_seq}: "
            f"{plain(report.problem or '')}"
            + (f" (and {more} more problem(s): --json lists them)" if more > 0 else "")
            + f"; checkpoint signed by key {report.key_id or 'unknown'}",
            highlight=False,
            soft_wrap=True,
        )
    if report.untrusted_only:
        raise typer.Exit(UNTRUSTED_EXIT)
    if not report.ok:
        raise typer.Exit(1)


def _workspace_anchors() -> Any:
    """The current workspace's keys when verify-bundle runs inside one, else None."""
    from opskit.errors import WorkspaceError
    from opskit.ledger.keys import workspace_anchors

    try:
        ws = workspace()
    except WorkspaceError:
        return None
    return workspace_anchors(ws.keys_dir)


def checkpoint_trust(ledger: Any, checkpoint: Path | None, trust: Path | None) -> str | None:
    """`audit verify --checkpoint/--trust`: one line saying what is trusted
    (a note checked against the tree), or None to let verify check a JSON
    checkpoint with the workspace's keys. A note without --trust is not
    verified: its signers' fingerprints are printed and the exit is 3."""
    from opskit.ledger.trustcheck import (
        found_fingerprints,
        read_checkpoint_file,
        trusted_checkpoint,
    )

    if checkpoint is None:
        if trust is not None:
            from opskit.errors import UsageError

            raise UsageError("--trust: give the --checkpoint FILE it must trust")
        return None
    if trust is not None:
        line = trusted_checkpoint(ledger, checkpoint, trust)
        return line if not read_checkpoint_file(checkpoint).lstrip().startswith("{") else None
    if read_checkpoint_file(checkpoint).lstrip().startswith("{"):
        return None
    err_console.print(
        f"[yellow]checkpoint {plain(str(checkpoint))} NOT VERIFIED[/yellow]: no --trust policy; "
        f"it is signed by {plain(found_fingerprints(checkpoint))}",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(UNTRUSTED_EXIT)


def register(app: typer.Typer) -> None:
    """Adds `export` and `verify-bundle` to the `audit` command group."""
    app.command("export")(export)
    app.command("verify-bundle")(verify_bundle)
