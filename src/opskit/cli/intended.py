"""`opskit intended`: intended configurations rendered from the CMDB (opskit.compliance)."""

from __future__ import annotations

from typing import Annotated

import typer

from opskit.cli.common import print_json, safe_text, workspace
from opskit.errors import UsageError

app = typer.Typer(
    help="Intended (golden) configurations: templates rendered with the CMDB's data.",
    no_args_is_help=True,
)


@app.command("render")
def render(
    ci: Annotated[str | None, typer.Argument(help="The CI to render.")] = None,
    select: Annotated[
        str | None,
        typer.Option(
            "--select", "-s", help="Render every CI of this selection (group:access ...)."
        ),
    ] = None,
    inventory: Annotated[
        str | None,
        typer.Option(
            "--inventory", "-i", help="Inventory name under inventories/ (default: the policy's)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Text and digests as JSON.")] = False,
) -> None:
    """Print the intended configuration of a CI (or of every selected CI)."""
    from opskit.compliance.intended import TemplateCache, render_intended
    from opskit.inventory import load_workspace_inventory

    if (ci is None) == (select is None):
        raise UsageError("give one CI or --select EXPR")
    ws = workspace()
    inv = load_workspace_inventory(ws, inventory)
    cis = [inv.get(ci)] if ci is not None else inv.select(select)
    templates = TemplateCache()
    rendered = [render_intended(item, inv, ws.templates_dir, templates) for item in cis]
    if as_json:
        print_json([{**r.to_dict(), "text": r.text} for r in rendered])
        return
    for intended in rendered:
        if len(rendered) > 1:
            typer.echo(f"! {intended.ci}: templates/{intended.template} {intended.template_digest}")
        typer.echo(safe_text(intended.text), nl=False)
