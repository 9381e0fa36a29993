"""`opskit runbook list|show|validate|doc`: a thin layer over `opskit.runbooks`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from opskit.cli.common import (
    console,
    err_console,
    plain,
    print_json,
    safe_text,
    workspace,
    write_text,
)
from opskit.errors import OpskitError

# The runbook loader (jsonschema, Jinja2) is imported by the commands that use
# it: `opskit --help` must not pay for it.
if TYPE_CHECKING:
    from opskit.runbooks import InvalidRunbook, Runbook, RunbookCatalog

app = typer.Typer(help="Versioned runbooks: list, show, validate, document.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _summary(book: Runbook) -> dict[str, Any]:
    return {
        "name": book.name,
        "version": book.version,
        "ref": book.ref,
        "digest": book.digest,
        "risk": book.risk,
        "standard": book.standard,
        "change_types": list(book.change_types),
        "platforms": list(book.targets.platforms),
        "owner": book.owner,
        "description": book.description,
        "path": str(book.path) if book.path else None,
    }


def _catalog() -> RunbookCatalog:
    from opskit.runbooks.loader import RunbookCatalog

    return RunbookCatalog(workspace())


@app.command("list")
def list_runbooks(json_output: JsonOpt = False) -> None:
    """Every runbook version in the workspace; an invalid file is listed with its
    error (exit 1 when any is invalid)."""
    from opskit.runbooks.loader import InvalidRunbook, semver_key

    books, invalid = _catalog().scan()
    if not books and not invalid and not json_output:
        from opskit.workspace import empty_listing_hint

        hint = empty_listing_hint("runbooks", workspace().runbooks_dir)
        console.print(hint, highlight=False, soft_wrap=True)
        return
    if json_output:
        print_json(
            {
                "runbooks": [_summary(b) for b in books],
                "errors": [_invalid(i) for i in invalid],
            }
        )
    else:
        table = Table("name", "version", "risk", "standard", "platforms", "digest")
        if invalid:
            table.add_column("error", overflow="fold")
        rows = [(b.name, semver_key(b.version), b) for b in books]
        rows += [(i.name, semver_key(i.version), i) for i in invalid]
        for _, _, item in sorted(rows, key=lambda row: row[:2]):
            if isinstance(item, InvalidRunbook):
                table.add_row(
                    plain(item.name), plain(item.version), "", "", "", "[red]invalid[/red]",
                    plain(item.error),
                )  # fmt: skip
                continue
            table.add_row(
                plain(item.name),
                plain(item.version),
                item.risk,
                "yes" if item.standard else "",
                plain(", ".join(item.targets.platforms)),
                item.digest[:19] + "…",
            )
        console.print(table)
    if invalid:
        err_console.print(
            f"[red]error:[/red] {len(invalid)} invalid runbook file(s) (listed with their errors)",
            highlight=False,
        )
        raise typer.Exit(1)


def _invalid(item: InvalidRunbook) -> dict[str, Any]:
    return {
        "name": item.name,
        "version": item.version,
        "path": str(item.path),
        "line": getattr(item.error, "line", None),
        "field": getattr(item.error, "field", None),
        "error": str(item.error),
    }


@app.command("show")
def show(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    json_output: JsonOpt = False,
) -> None:
    """One runbook: summary, plans, files and the whole document (--json)."""
    book = _catalog().get(ref)
    data = {
        **_summary(book),
        "requires": sorted(c.value for c in book.requires),
        "parameters": book.parameters,
        "implementation_plan": book.implementation_plan(),
        "rollback_plan": book.rollback_plan(),
        "strategy": book.raw.get("strategy", {}),
        "files": dict(book.files),
        "versions": _catalog().versions(book.name),
        "document": book.raw,
    }
    if json_output:
        print_json(data)
        return
    console.print(
        f"[bold]{plain(book.ref)}[/bold]  risk {book.risk}  digest {book.digest}", soft_wrap=True
    )
    console.print(plain(book.description), highlight=False, soft_wrap=True)
    console.print(f"versions: {plain(', '.join(data['versions']))}", highlight=False)
    console.print("\n[bold]Implementation plan[/bold]")
    for index, line in enumerate(data["implementation_plan"], 1):
        console.print(f"  {index}. {line}", highlight=False, markup=False, soft_wrap=True)
    console.print("\n[bold]Rollback plan[/bold]")
    for line in data["rollback_plan"]:
        console.print(f"  - {line.strip()}", highlight=False, markup=False, soft_wrap=True)
    if book.files:
        console.print("\n[bold]Referenced files[/bold]")
        for path, digest in book.files.items():
            console.print(f"  {plain(path)}  {digest}", highlight=False, soft_wrap=True)


@app.command("validate")
def validate(
    target: Annotated[
        str | None, typer.Argument(help="A runbook file, NAME, NAME@VERSION; default: all.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Validates runbooks; exit 1 when any is invalid (each error on one line)."""
    from opskit.runbooks.loader import RUNBOOK_SUFFIXES, load_runbook

    results: list[dict[str, Any]] = []
    candidate = Path(target) if target else None
    if candidate is not None and candidate.suffix in RUNBOOK_SUFFIXES and candidate.exists():
        paths = [candidate]
        root = None
    else:
        catalog = _catalog()
        root = catalog.root
        if target is None:
            paths = catalog.paths()
        else:
            book = catalog.get(target)  # unknown name/version: one clear error line
            paths = [book.path] if book.path else []
    for path in paths:
        try:
            book = load_runbook(path, root)
        except OpskitError as exc:
            results.append({"path": str(path), "valid": False, "error": str(exc)})
        else:
            results.append(
                {"path": str(path), "valid": True, "ref": book.ref, "digest": book.digest}
            )
    invalid = [r for r in results if not r["valid"]]
    if json_output:
        print_json({"valid": not invalid, "runbooks": results})
    else:
        for result in results:
            if result["valid"]:
                console.print(
                    f"[green]ok[/green] {plain(result['ref'])}  {result['digest']}",
                    highlight=False,
                    soft_wrap=True,
                )
            else:
                console.print(
                    f"[red]invalid[/red] {plain(result['error'])}", highlight=False, soft_wrap=True
                )
    if invalid:
        raise typer.Exit(1)


@app.command("doc")
def doc(
    ref: Annotated[str, typer.Argument(help="NAME or NAME@VERSION")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the Markdown here.")] = None,
) -> None:
    """The runbook as a Markdown procedure for the operations manual."""
    from opskit.runbooks.doc import render_markdown

    catalog = _catalog()
    book = catalog.get(ref)
    text = render_markdown(book, catalog.root / "templates")
    if out is None:  # to a terminal, perhaps: nothing it would act on (the file keeps all)
        typer.echo(safe_text(text))
    else:
        write_text(out, text + "\n")
        console.print(f"wrote {plain(out)}", highlight=False)
