"""No import circle inside `src/opskit`.

The graph is built from the source with `ast`: every `import` and `from ...
import` counts, at module level and inside functions alike (a function-level
import still ties the two modules together, only later). Imports under `if
TYPE_CHECKING:` do not count: they never run, they only name types. An edge
goes to the module named; `from package import name` goes to
`package.name` when that is a module, else to the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import opskit

SRC = Path(opskit.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["opskit", *path.relative_to(SRC).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import under `node`, except in the body of `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for other in child.orelse:
                yield from _imports_in(other)
            continue
        yield from _imports_in(child)


def _imports_in(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
    yield from _imports(node)


def imported(name: str, path: Path, known: set[str]) -> set[str]:
    """The opskit modules that module `name` (file `path`) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in known}
            continue
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            target = f"{base}.{alias.name}"
            if target in known:
                found.add(target)
            elif base in known:
                found.add(base)
    found.discard(name)
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    names = set(known)
    return {name: imported(name, path, names) for name, path in known.items()}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = [f"{a} -> {b}" for a in sorted(component) for b in sorted(graph[a] & component)]
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_the_graph_sees_function_level_imports_and_skips_type_checking_ones() -> None:
    graph = import_graph()
    # `cli.change_common` imports the change engine only inside its functions.
    assert "opskit.changes" in graph["opskit.cli.change_common"]
    # `changes.cancel` names the context's type under TYPE_CHECKING only.
    assert "opskit.changes.context" not in graph["opskit.changes.cancel"]


def test_a_circle_is_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [frozenset({"a", "b", "c"})]


def test_there_is_no_import_circle_in_opskit() -> None:
    graph = import_graph()
    found = circles(graph)
    assert not found, "import circles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_change_engine_imports_upwards_never() -> None:
    """Data flows CLI -> service -> rollout -> journal/store/rules, never back up."""
    graph = import_graph()
    below_the_service = [
        "opskit.changes.rollout",
        "opskit.changes.rollback",
        "opskit.changes.recovery",
        "opskit.changes.preflight",
        "opskit.changes.journal",
        "opskit.changes.changestore",
        "opskit.changes.rules",
        "opskit.changes.context",
        "opskit.changes.prediction",
        "opskit.changes.cancel",
        "opskit.changes.approving",
        "opskit.changes.assessment",
        "opskit.changes.hostrun",
        "opskit.changes.summary",
        "opskit.changes.heartbeat",
        "opskit.changes.runners",
    ]
    for name in below_the_service:
        assert "opskit.changes.service" not in graph[name], name
        assert "opskit.changes" not in graph[name], name
    for name in ("opskit.changes.journal", "opskit.changes.changestore", "opskit.changes.rules"):
        assert "opskit.changes.rollout" not in graph[name], name
