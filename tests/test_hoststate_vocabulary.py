"""One vocabulary for a host's state: `opskit.hoststate.HostState`.

The source is read with `ast`: outside `opskit/hoststate.py` no module spells
a host state as a string literal where a state is meant (compared with, or
assigned to, a ``status``; a set of states; a constant naming one), and no
other enum lists host states.
"""

from __future__ import annotations

import ast
from pathlib import Path

import opskit
from opskit.hoststate import HostState

SRC = Path(opskit.__file__).parent
STATES = frozenset(state.value for state in HostState)

# Literals that are another vocabulary's, and why.
ALLOWED = {
    # ansible-runner's own status of a run ("timeout" when it timed out), not ours.
    ("connectors/ansible_run.py", "run.status == 'timeout'"),
}
# Enums whose values overlap the host states but name something else.
OTHER_ENUMS = {
    ("changes/model.py", "State"),  # a change's state (completed, failed, rolled_back...)
    ("compliance/results.py", "State"),  # a feature's compliance state (unknown: not evaluated)
    ("distributed/schedule.py", "RunStatus"),  # a scheduled run: done, skipped or failed
}


def _literals(node: ast.AST) -> list[str] | None:
    """The strings of a str constant or of a collection of them (None elsewhere)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("frozenset", "set", "tuple")
        and len(node.args) == 1
    ):
        return _literals(node.args[0])
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
        strings = [v for v in values if isinstance(v, str)]
        if len(values) == len(node.elts) and len(strings) >= 2:
            return strings
    return None


def _is_state_set(node: ast.AST) -> bool:
    """Two or more literals, every one a host state (None aside): a set of states."""
    strings = _literals(node)
    return strings is not None and len(strings) >= 2 and set(strings) <= STATES


def _about_status(node: ast.AST) -> bool:
    return "status" in ast.unparse(node).lower()


def violations(path: Path, tree: ast.AST) -> list[str]:
    """Where `tree` spells a host state as a string (see the module docstring)."""
    where = path.relative_to(SRC).as_posix()
    found: list[str] = []

    def report(node: ast.AST, why: str) -> None:
        text = ast.unparse(node)
        if (where, text) not in ALLOWED:
            found.append(f"{where}:{getattr(node, 'lineno', '?')}: {why}: {text}")

    other_enums = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and (where, node.name) in OTHER_ENUMS
    ]
    skipped = {id(inner) for enum in other_enums for inner in ast.walk(enum)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            for side in sides:
                strings = _literals(side)
                others = [s for s in sides if s is not side]
                if strings and set(strings) & STATES and any(map(_about_status, others)):
                    report(node, "a status compared with a literal")
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if value is None:
                continue
            if any(_about_status(t) for t in targets) and (_literals(value) or [""])[0] in STATES:
                report(node, "a status set to a literal")
            names = [t for t in targets if isinstance(t, ast.Name | ast.Tuple)]
            upper = [t for t in names if ast.unparse(t).replace(",", "").replace(" ", "").isupper()]
            strings = _literals(value) or []
            if upper and strings and set(strings) <= STATES:
                report(node, "a constant naming a host state")
        elif isinstance(node, ast.keyword) and node.arg == "status":
            if (_literals(node.value) or [""])[0] in STATES:
                report(node, "status= a literal")
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                is_status = isinstance(key, ast.Constant) and key.value == "status"
                if is_status and (_literals(value) or [""])[0] in STATES:
                    report(node, 'a "status" key set to a literal')
            items = [*node.keys, *node.values]
            strings = [_literals(item) if item is not None else None for item in items]
            flat = {s for found_strings in strings for s in (found_strings or [""])}
            if len(node.keys) >= 2 and flat <= STATES:
                report(node, "a mapping of host states")
        if isinstance(node, ast.Tuple | ast.List | ast.Set | ast.Call) and _is_state_set(node):
            report(node, "a set of host states")
        if isinstance(node, ast.ClassDef) and (where, node.name) not in OTHER_ENUMS:
            values = {
                stmt.value.value
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Constant)
                and isinstance(stmt.value.value, str)
            }
            bases = {ast.unparse(b) for b in node.bases}
            if bases & {"StrEnum", "Enum", "str, Enum"} and len(values & STATES) >= 2:
                report(node.body[0], f"enum {node.name} lists host states")
    return sorted(set(found))


def source_violations() -> list[str]:
    found: list[str] = []
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "hoststate.py" and path.parent == SRC:
            continue
        found += violations(path, ast.parse(path.read_text(encoding="utf-8")))
    return found


def test_no_module_spells_a_host_state_outside_the_enum() -> None:
    assert source_violations() == []


def test_the_check_finds_each_form_it_forbids() -> None:
    # The forms the five vocabularies had before there was one.
    before = """
PENDING, OK = "pending", "ok"
_BROKEN = {"unreachable", "timeout", "auth_failed", "failed"}
class HostOutcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
def f(run, step_run, host):
    if run.status == "rolled_back":
        step_run.status = "warn"
    if host["status"] in ("ok", "failed"):
        return Outcome(ci, status="skipped")
    return {"status": "pending", "previous": previous in ("ok", "rolled_back")}
_RUN_STATUS = {"completed": "ok", "failed": "failed"}
"""
    found = violations(SRC / "example.py", ast.parse(before))
    kinds = [line.split(": ")[1] for line in found]
    assert kinds.count("a constant naming a host state") >= 2  # PENDING, OK, _BROKEN
    assert "a status compared with a literal" in kinds
    assert "a status set to a literal" in kinds
    assert "status= a literal" in kinds
    assert 'a "status" key set to a literal' in kinds
    assert "enum HostOutcome lists host states" in kinds
    assert "a mapping of host states" in kinds
    assert kinds.count("a set of host states") >= 3  # _BROKEN, ("ok", "failed"), previous in
    # Other vocabularies that share a word are left alone.
    other = """
if source == "running" and step.on_fail == "warn":
    pass
if summary["state"] != "completed":
    pass
"""
    assert violations(SRC / "example.py", ast.parse(other)) == []


def test_every_stored_string_is_a_member() -> None:
    # The strings the ledger and the database already hold (change_hosts.status,
    # StepRun/HostRun/TranscriptEntry status, the rollback's outcome): unchanged.
    stored = {
        "ok", "changed", "warn", "skipped", "failed", "unreachable", "auth_failed",
        "timeout", "rejected", "capability_missing", "completed", "dry_run",
        "rolled_back", "rollback_failed", "pending", "running", "unknown",
        "not_restored", "restored",
    }  # fmt: skip
    assert stored == STATES
    assert all(HostState(value) == value for value in stored)
