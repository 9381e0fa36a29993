"""`opskit witness` (also the `opskit-witness` program): run a C2SP tlog witness.

A witness is a folder holding its key (``witness.key``) and its state
(``witness.db``); it never reads a workspace. Commands:

- ``init DIR --name NAME``: create the key, print the witness's vkey;
- ``add-log DIR --origin ORIGIN --vkey VKEY [--vkey ...]``: pin a log's key(s);
- ``vkey DIR``, ``logs DIR``: show the vkey, the logs and their cosigned sizes;
- ``serve DIR [--listen HOST:PORT]``: answer ``POST /add-checkpoint``.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from opskit.errors import OpskitError, UsageError

app = typer.Typer(
    help="Run a transparency-log witness (C2SP tlog-witness) with its own key and state.",
    no_args_is_help=True,
)

FolderArg = Annotated[Path, typer.Argument(help="The witness folder (its key and state).")]


@app.command("init")
def init(
    folder: FolderArg,
    name: Annotated[str, typer.Option("--name", help="Key name, e.g. witness.example/w1.")],
) -> None:
    """Create the witness key in FOLDER and print its vkey (for trust files)."""
    from opskit.witness.keys import create_key
    from opskit.witness.state import WitnessState

    signer = create_key(folder, name)
    WitnessState.open(folder).close()
    typer.echo(signer.verifier.vkey)


@app.command("add-log")
def add_log(
    folder: FolderArg,
    origin: Annotated[str, typer.Option("--origin", help="The log's checkpoint origin line.")],
    vkeys: Annotated[list[str], typer.Option("--vkey", help="A log verifier key (repeatable).")],
) -> None:
    """Pin the key(s) of a log: only checkpoints they sign are cosigned."""
    from opskit.witness.state import WitnessState

    state = WitnessState.open(folder)
    try:
        for verifier in state.add_log(origin, vkeys):
            typer.echo(f"{origin}: {verifier.fingerprint}")
    finally:
        state.close()


@app.command("vkey")
def vkey(folder: FolderArg) -> None:
    """Print the witness's verifier key."""
    from opskit.witness.keys import load_signer

    typer.echo(load_signer(folder).verifier.vkey)


@app.command("logs")
def logs(folder: FolderArg) -> None:
    """List the pinned logs with the size the witness last cosigned."""
    from opskit.witness.state import WitnessState

    state = WitnessState.open(folder)
    try:
        for origin in state.origins():
            typer.echo(f"{origin}\t{state.head(origin).size}")
    finally:
        state.close()


@app.command("serve")
def serve(
    folder: FolderArg,
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to listen on (port 0: any free port).")
    ] = "127.0.0.1:7380",
) -> None:
    """Serve POST /add-checkpoint until SIGTERM or Ctrl-C."""
    from opskit.witness.server import make_server

    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT")
    try:
        server = make_server(folder, host.strip("[]"), int(port_text))
    except OSError as exc:
        raise OpskitError(f"--listen {listen}: {exc.strerror or exc}") from None
    signal.signal(signal.SIGTERM, _interrupt)
    bound_host, bound_port = server.server_address[:2]
    # Tests and scripts read this line to learn the port.
    print(f"opskit-witness listening on http://{bound_host}:{bound_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.witness.state.close()


def _interrupt(signum: int, frame: object) -> None:
    # shutdown() from the serving thread would deadlock: leave serve_forever instead.
    raise KeyboardInterrupt


def main() -> None:
    """The `opskit-witness` entry point: errors are one line, exit 1."""
    try:
        app()
    except OpskitError as exc:
        sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
