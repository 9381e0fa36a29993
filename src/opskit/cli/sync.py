"""`opskit inventory sync`: an inventory folder from a source of truth (a thin
layer over opskit.inventory.sources)."""

from __future__ import annotations

from typing import Annotated

import typer

from opskit.cli.common import console, err_console, plain, print_json, workspace
from opskit.errors import UsageError

app = typer.Typer(
    help="Sync an inventory from a source of truth: shows the plan, then writes.",
    no_args_is_help=True,
)


def parse_filters(items: list[str]) -> dict[str, list[str]]:
    """["location=dc1", "tag=a", "tag=b"] -> {"location": ["dc1"], "tag": ["a", "b"]}."""
    filters: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise UsageError(f"--filter {item!r}: expected KEY=VALUE, e.g. location=dc1")
        filters.setdefault(key.strip(), []).append(value.strip())
    return filters


def parse_token_ref(text: str) -> object:
    """`{env: NAUTOBOT_TOKEN}` or its JSON form, as a secret reference."""
    import yaml

    from opskit.secrets import SecretRef

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise UsageError(
            "--token-ref: a secret reference such as '{env: NAUTOBOT_TOKEN}' "
            "or '{file: secrets/nautobot}' (never the token itself)"
        )
    return SecretRef.parse(data, where="--token-ref")


@app.command()
def nautobot(
    url: Annotated[str, typer.Option("--url", help="Nautobot's base URL.")],
    token_ref: Annotated[
        str, typer.Option("--token-ref", help="Secret reference: '{env: NAUTOBOT_TOKEN}'.")
    ],
    inventory: Annotated[
        str, typer.Option("--inventory", "-i", help="Inventory folder to write.")
    ] = "nautobot",
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Nautobot filter KEY=VALUE (repeatable): location=dc1."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan, write nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The plan as JSON.")] = False,
) -> None:
    """Sync devices and VMs from Nautobot into inventories/INVENTORY (all or nothing)."""
    from opskit.inventory.sources import sync_inventory
    from opskit.policy_check import INVENTORY_NAME
    from opskit.secrets import SecretRef

    if not INVENTORY_NAME.match(inventory):
        raise UsageError(f"--inventory {inventory!r}: letters, digits, '_', '.', '-'")
    ref = parse_token_ref(token_ref)
    assert isinstance(ref, SecretRef)
    result = sync_inventory(
        workspace(), "nautobot", url=url, token_ref=ref, inventory=inventory,
        filters=parse_filters(filters or []), dry_run=dry_run,
    )  # fmt: skip
    if as_json:
        print_json({**result.plan.to_dict(), "written": result.written})
        return
    for line in result.plan.lines():
        console.print(plain(line), highlight=False, soft_wrap=True)
    for note in result.plan.notes:
        err_console.print(f"[yellow]note:[/yellow] {plain(note)}", highlight=False)
    verb = "wrote" if result.written else ("would write" if dry_run else "unchanged:")
    console.print(
        f"{result.plan.summary()}; {verb} {plain(result.folder)}", highlight=False, soft_wrap=True
    )


def drift_against(
    source: str | None,
    url: str | None,
    token_ref: str | None,
    inventory: str | None,
    select: str | None,
    as_json: bool,
) -> None:
    """`opskit inventory drift --against SOURCE`: the inventory against the source
    of truth. Exit 1 on drift."""
    from opskit.inventory.sources.drift import drift_against_source
    from opskit.secrets import SecretRef

    if not (source and url and token_ref):
        raise UsageError("--against, --url and --token-ref go together")
    ref = parse_token_ref(token_ref)
    assert isinstance(ref, SecretRef)
    plan = drift_against_source(
        workspace(), source, url=url, token_ref=ref, inventory=inventory, select=select
    )
    if as_json:
        print_json(plan.to_dict())
    else:
        for line in plan.lines():
            console.print(plain(line), highlight=False, soft_wrap=True)
        console.print(
            f"against {plain(source)}: {len(plan.added)} only in {plain(source)}, "
            f"{len(plan.removed)} only in the inventory, {len(plan.changed)} differ",
            highlight=False,
            soft_wrap=True,
        )
    if not plan.empty:
        raise typer.Exit(1)
