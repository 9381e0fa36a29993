"""`opskit inventory`: the CMDB from the terminal (a thin layer over opskit.inventory)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from opskit.cli.common import (
    choice,
    console,
    err_console,
    plain,
    print_json,
    safe_text,
    to_json,
    workspace,
    write_text,
)
from opskit.errors import UsageError

# The inventory (pydantic, jsonschema, YAML) is imported by the commands that
# use it: `opskit --help` must not pay for it.
if TYPE_CHECKING:
    from rich.tree import Tree

    from opskit.inventory import CI, Inventory, RelationKind

app = typer.Typer(
    help="The inventory (CMDB): validate, list, show, impact, graph, export, import, drift.",
    no_args_is_help=True,
)

InventoryOption = Annotated[
    str | None,
    typer.Option(
        "--inventory", "-i", help="Inventory name under inventories/ (default: the policy's)."
    ),
]
SelectOption = Annotated[
    str | None,
    typer.Option(
        "--select", "-s", help="Selection: name:core-* group:core type:switch attr.model=X ..."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
DecommissionedOption = Annotated[
    bool, typer.Option("--include-decommissioned", help="Also decommissioned CIs.")
]

CRITICALITY_STYLE = {"low": "dim", "medium": "", "high": "yellow", "critical": "bold red"}


def _load(name: str | None) -> Inventory:
    from opskit.inventory import load_workspace_inventory

    return load_workspace_inventory(workspace(), name)


@app.command()
def validate(
    name: Annotated[str | None, typer.Argument(help="Inventory name.")] = None,
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate an inventory: schema, references, cycles. Exit 1 when invalid."""
    if name and inventory and name != inventory:
        raise UsageError("give the inventory name once (argument or --inventory)")
    inv = _load(name or inventory)
    summary = {
        "inventory": inv.path.name,
        "valid": True,
        "cis": len(inv),
        "groups": len(inv.groups),
        "files": len(inv.files),
        "digest": inv.digest,
    }
    if as_json:
        print_json(summary)
        return
    console.print(
        f"[green]valid[/green] inventory [bold]{plain(inv.path.name)}[/bold]: {len(inv)} CIs, "
        f"{len(inv.groups)} groups, {len(inv.files)} files, digest {inv.digest}",
        highlight=False,
        soft_wrap=True,
    )


def ci_summary(ci: CI) -> dict[str, Any]:
    return {
        "name": ci.name,
        "type": str(ci.type),
        "platform": ci.platform,
        "host": ci.host,
        "port": ci.port,
        "site": ci.site,
        "owner": ci.owner,
        "department": ci.department,
        "lifecycle": str(ci.lifecycle),
        "criticality": str(ci.criticality),
        "groups": list(ci.groups),
    }


@app.command("list")
def list_cis(
    select: SelectOption = None,
    inventory: InventoryOption = None,
    include_decommissioned: DecommissionedOption = False,
    as_json: JsonOption = False,
) -> None:
    """List the CIs (decommissioned ones only when asked for)."""
    inv = _load(inventory)
    cis = inv.select(select, include_decommissioned=include_decommissioned)
    if as_json:
        print_json([ci_summary(ci) for ci in cis])
        return
    table = Table(title=f"inventory {plain(inv.path.name)}: {len(cis)} of {len(inv)} CIs")
    table.add_column("name", no_wrap=True)
    for column in ("type", "platform", "host", "site", "owner", "lifecycle", "criticality"):
        table.add_column(column)
    table.add_column("groups", overflow="fold")
    for ci in cis:
        table.add_row(
            plain(ci.name),
            str(ci.type),
            plain(ci.platform),
            plain(f"{ci.host}:{ci.port}" if ci.host and ci.port else (ci.host or "")),
            plain(ci.site or ""),
            plain(ci.owner or ""),
            str(ci.lifecycle),
            f"[{CRITICALITY_STYLE[str(ci.criticality)]}]{ci.criticality}[/]"
            if CRITICALITY_STYLE[str(ci.criticality)]
            else str(ci.criticality),
            plain(", ".join(ci.groups)),
        )
    console.print(table)


def ci_details(inv: Inventory, ci: CI) -> dict[str, Any]:
    from opskit.secrets import SecretRef

    data = ci.to_data(base_dir=inv.path.resolve())
    data["credentials"] = {
        key: value.describe() if isinstance(value, SecretRef) else value
        for key, value in ci.credentials.items()
    }
    data["source"] = f"{ci.source}:{ci.line}" if ci.line else ci.source
    data["dependents"] = [
        {"name": name, "kind": str(kind)} for name, kind in inv.dependents(ci.name)
    ]
    return data


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="CI name.")],
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one CI with everything it inherits (secrets as references only), its
    latest observed facts and the last change applied to it."""
    from opskit.inventory import load_workspace_inventory
    from opskit.inventory.observed import ObservedStore

    ws = workspace()
    inv = load_workspace_inventory(ws, inventory)
    ci = inv.get(name)
    details = ci_details(inv, ci)
    store = ObservedStore(ws.engine)
    details["observed"] = {
        fact: {"value": f.value, "source": f.source, "at": f.at.isoformat()}
        for fact, f in sorted(store.latest_facts(ci.name).items())
    }
    last = store.last_change(ci.name)
    details["last_change"] = last.to_dict() if last else None
    if as_json:
        print_json(details)
        return
    table = Table(show_header=False, title=plain(ci.name), title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in details.items():
        if value in (None, [], {}):
            continue
        if isinstance(value, dict | list):
            value = json.dumps(value, ensure_ascii=False)
        table.add_row(plain(key), plain(value))
    console.print(table)


@app.command()
def impact(
    names: Annotated[list[str], typer.Argument(help="CIs to change.")],
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every CI that depends on NAMES, directly or transitively, with owners."""
    inv = _load(inventory)
    report = inv.impact(names)
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"impact of {plain(', '.join(report.targets))}: {len(report.impacted)} CIs")
    for column in ("depth", "name", "type", "relationship", "owner", "site", "criticality"):
        table.add_column(column)
    for item in report.impacted:
        style = CRITICALITY_STYLE[str(item.criticality)]
        table.add_row(
            str(item.depth),
            plain(item.name),
            plain(item.type),
            plain(f"{item.kind} {item.via}"),
            plain(item.owner or ""),
            plain(item.site or ""),
            f"[{style}]{item.criticality}[/]" if style else str(item.criticality),
        )
    console.print(table)
    console.print(
        f"owners to inform: {plain(', '.join(report.owners)) or 'none'}; "
        f"highest criticality: {report.highest_criticality}",
        highlight=False,
        soft_wrap=True,
    )


def _dot_text(text: str) -> str:
    """Text inside a DOT double-quoted label: quotes and backslashes escaped,
    unsafe characters shown as escapes (safe_text)."""
    return safe_text(text).replace("\\", "\\\\").replace('"', '\\"')


def dot_graph(inv: Inventory) -> str:
    """Graphviz DOT: dependency edges point from the dependent to what it needs."""
    from opskit.inventory import RelationKind

    lines = ["digraph inventory {", "  rankdir=BT;", "  node [shape=box, fontsize=10];"]
    for ci in sorted(inv, key=lambda c: c.name):
        label = _dot_text(ci.name) + f"\\n{ci.type} {_dot_text(ci.platform)}"
        style = ', style="dashed"' if ci.decommissioned else ""
        lines.append(f'  {json.dumps(ci.name)} [label="{label}"{style}];')
    for edge in inv.graph():
        attributes = f'label="{edge.kind}"'
        if edge.kind is RelationKind.CONNECTED_TO:
            attributes += ", dir=none, style=dashed"
        lines.append(f"  {json.dumps(edge.source)} -> {json.dumps(edge.target)} [{attributes}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def dependency_tree(inv: Inventory) -> Tree:
    """Foundations (CIs that need nothing) at the top, what depends on them below."""
    from rich.tree import Tree

    from opskit.inventory import DEPENDENCY_KINDS, RelationKind

    tree = Tree(f"inventory {plain(inv.path.name)}")
    shown: set[str] = set()

    def label(ci: CI, kind: RelationKind | None) -> str:
        text = f"[bold]{plain(ci.name)}[/bold] ({ci.type}, {ci.criticality})"
        if kind is not None:
            text = f"{text} [dim]{kind}[/dim]"
        return f"[dim]{text} decommissioned[/dim]" if ci.decommissioned else text

    def add(node: Tree, ci: CI, kind: RelationKind | None) -> None:
        if ci.name in shown:
            node.add(label(ci, kind) + " [dim](see above)[/dim]")
            return
        shown.add(ci.name)
        branch = node.add(label(ci, kind))
        for dependent, dependent_kind in inv.dependents(ci.name):
            add(branch, inv.cis[dependent], dependent_kind)

    roots = [ci for ci in inv if not any(r.kind in DEPENDENCY_KINDS for r in ci.relationships)]
    for ci in sorted(roots, key=lambda c: c.name):
        add(tree, ci, None)
    links = [edge for edge in inv.graph() if edge.kind is RelationKind.CONNECTED_TO]
    if links:
        branch = tree.add("[italic]links (connected_to)[/italic]")
        for edge in links:
            branch.add(f"{plain(edge.source)} — {plain(edge.target)}")
    return tree


@app.command()
def graph(
    inventory: InventoryOption = None,
    dot: Annotated[bool, typer.Option("--dot", help="Graphviz DOT instead of a tree.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The relationships: a dependency tree, DOT (--dot) or JSON edges (--json)."""
    if dot and as_json:
        raise UsageError("choose one of --dot and --json")
    inv = _load(inventory)
    if as_json:
        print_json([edge.to_dict() for edge in inv.graph()])
    elif dot:
        typer.echo(dot_graph(inv), nl=False)
    else:
        console.print(dependency_tree(inv))


EXPORT_FORMATS = ("yaml", "json")


@app.command()
def export(
    inventory: InventoryOption = None,
    select: SelectOption = None,
    include_decommissioned: DecommissionedOption = False,
    output_format: Annotated[str, typer.Option("--format", "-f", help="yaml or json.")] = "yaml",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to FILE.")] = None,
) -> None:
    """Export as an Ansible inventory (never with secret values)."""
    choice("--format", output_format, EXPORT_FORMATS)
    from opskit.inventory.ansible import to_ansible_inventory
    from opskit.yamlfile import dump_yaml

    inv = _load(inventory)
    cis = inv.select(select, include_decommissioned=include_decommissioned)
    data = to_ansible_inventory(cis, groups=inv.groups, base_dir=inv.path.resolve())
    text = to_json(data) + "\n" if output_format == "json" else dump_yaml(data)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text(out, text)
    err_console.print(f"wrote {len(cis)} hosts to {plain(out)}", highlight=False)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="Ansible inventory file (YAML or INI).")],
    name: Annotated[str, typer.Option("--name", "-n", help="New inventory name.")],
    force: Annotated[bool, typer.Option(help="Replace an existing inventory.")] = False,
) -> None:
    """Import an Ansible inventory (read by Ansible's parser) as inventories/NAME."""

    from opskit.inventory.ansible import write_inventory_folder
    from opskit.inventory.ansible_import import import_ansible_inventory
    from opskit.policy_check import INVENTORY_NAME

    # The names `--inventory` and the policy accept, so the import can be used.
    if not INVENTORY_NAME.match(name):
        raise UsageError(
            f"--name {name!r}: up to 100 letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    ws = workspace()
    notes: list[str] = []
    data = import_ansible_inventory(source, warnings=notes)
    folder = write_inventory_folder(data, ws.inventories_dir / name, force=force)
    for note in notes:
        err_console.print(f"[yellow]warning:[/yellow] {plain(note)}", highlight=False)
    console.print(
        f"imported {len(data['cis'])} CIs and {len(data.get('groups', {}))} groups "
        f"into {plain(folder)}",
        highlight=False,
        soft_wrap=True,
    )


def _shown(value: Any) -> str:
    """A declared or observed value as a table cell: JSON, empty when absent."""
    return "" if value is None else plain(json.dumps(value, ensure_ascii=False))


@app.command()
def drift(
    select: SelectOption = None,
    inventory: InventoryOption = None,
    as_json: JsonOption = False,
    against: Annotated[
        str | None, typer.Option("--against", help="A source of truth: nautobot.")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="With --against: its URL.")] = None,
    token_ref: Annotated[
        str | None, typer.Option("--token-ref", help="With --against: '{env: NAUTOBOT_TOKEN}'.")
    ] = None,
) -> None:
    """Compare declared attributes with the latest observed facts, or with a source
    of truth (--against nautobot). Exit 1 on drift."""
    from opskit.inventory import load_workspace_inventory
    from opskit.inventory.observed import ObservedStore, drift_report

    if against or url or token_ref:
        from opskit.cli.sync import drift_against

        drift_against(against, url, token_ref, inventory, select, as_json)
        return
    ws = workspace()
    inv = load_workspace_inventory(ws, inventory)
    report = drift_report(inv, ObservedStore(ws.engine), select)
    items = report.items
    if as_json:
        print_json([item.to_dict() for item in items])
    elif not items:
        console.print(report.summary(), highlight=False, soft_wrap=True)
    else:
        table = Table(title=f"drift: {len(items)} differences")
        for column in ("ci", "field", "kind", "declared", "observed", "source", "observed at"):
            table.add_column(column)
        for item in items:
            table.add_row(
                plain(item.ci),
                plain(item.field),
                str(item.kind),
                _shown(item.declared),
                _shown(item.observed),
                plain(item.source or ""),
                item.observed_at.isoformat(timespec="seconds") if item.observed_at else "",
            )
        console.print(table)
    if items:
        raise typer.Exit(1)


def _register_sync() -> None:
    from opskit.cli.sync import app as sync_app

    app.add_typer(sync_app, name="sync")


_register_sync()
