"""A normal change that pushes given configuration lines, host by host.

A restore (`opskit backup restore`) and a compliance remediation
(`opskit compliance remediate`) both end as the same kind of change: the
shipped runbook ``config-lines`` (`RUNBOOK`) with, per target, the lines to
push (``lines``), the lines that must be present afterwards (``present``)
and those that must be gone (``absent``, its verification). It is an
ordinary change request, created through `opskit.changes.ChangeService`:
assessed (the predicted diff is the diff these lines make), approved as the
policy requires (the requester may not approve it), applied with a
pre-change snapshot, verified, and rolled back with proof when the
verification fails.

Example:
    >>> plan = plan_towards("lab-sw01", current, backup_config, "cisco_ios")
    >>> plan.lines
    ['no vlan 300', 'interface FastEthernet0/3', '  no description']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit import configdiff
from opskit.errors import ChangeError

if TYPE_CHECKING:
    from opskit.changes import ChangeRequest, ChangeService

#: The shipped runbook that pushes per-host lines (runbooks/config-lines/).
RUNBOOK = "config-lines@1.0.0"
#: The same, declared high risk (runbooks/config-lines-high/).
HIGH_RISK_RUNBOOK = "config-lines-high@1.0.0"


@dataclass
class HostLines:
    """What one host's part of the change pushes and checks afterwards."""

    ci: str
    lines: list[str]
    present: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ci": self.ci, "lines": self.lines, "present": self.present, "absent": self.absent}


def paths_to_lines(paths: Iterable[Sequence[str]], indent: str = " ") -> list[str]:
    """Hierarchical paths as indented configuration lines, each parent once
    per run of paths under it: [("interface A", "description x")] ->
    ["interface A", " description x"]."""
    lines: list[str] = []
    open_path: tuple[str, ...] = ()
    for path in paths:
        path = tuple(path)
        common = 0
        while common < min(len(open_path), len(path) - 1) and open_path[common] == path[common]:
            common += 1
        for depth in range(common, len(path)):
            lines.append(indent * depth + path[depth])
        open_path = path
    return lines


def leaf_paths(config: str | Sequence[str], platform: str | None) -> list[tuple[str, ...]]:
    """Every leaf of a configuration's tree, as its path from the top."""
    return _leaves(configdiff.parse(config, platform))


def plan_towards(ci: str, current: str, target: str, platform: str | None) -> HostLines:
    """The lines that turn `current` into `target` (hier_config's
    remediation), with what must be present and absent afterwards."""
    lines = configdiff.remediation(current, target, platform, host=ci)
    now, wanted = configdiff.parse(current, platform), configdiff.parse(target, platform)
    # A leaf on one side may be a section on the other: compared with every
    # path (parents too), it is neither missing nor extra.
    present = [p for p in _leaves(wanted) if p not in _paths(now)]
    absent = [p for p in _leaves(now) if p not in _paths(wanted)]
    return HostLines(ci, lines, paths_to_lines(present), paths_to_lines(absent))


def _leaves(tree: Any) -> list[tuple[str, ...]]:
    return [tuple(child.path()) for child in tree.all_children() if not child.children]


def _paths(tree: Any) -> set[tuple[str, ...]]:
    return {tuple(child.path()) for child in tree.all_children()}


def selection_of(names: Iterable[str]) -> str:
    """A selection expression naming exactly these CIs."""
    quoted = [f'name:"{name}"' for name in sorted(names)]
    if not quoted:
        raise ChangeError("no host has anything to push")
    return " or ".join(quoted)


def create_line_change(
    svc: ChangeService,
    *,
    requester: str,
    title: str,
    plans: Sequence[HostLines],
    inventory: str | None = None,
    description: str = "",
    purpose: Mapping[str, Any] | None = None,
    change_type: str = "normal",
    tickets: Sequence[str] = (),
    runbook: str = RUNBOOK,
) -> ChangeRequest:
    """Creates (draft) the change pushing each plan's lines to its host.
    `purpose` is recorded with the parameters (what the lines come from:
    a backup, a compliance result)."""
    plans = [p for p in plans if p.lines]
    if not plans:
        raise ChangeError("nothing to push: every selected host already has its target lines")
    params = {
        "lines": {p.ci: p.lines for p in plans},
        "present": {p.ci: p.present for p in plans},
        "absent": {p.ci: p.absent for p in plans},
        "purpose": dict(purpose or {}),
    }
    return svc.create(
        runbook=runbook,
        select_expr=selection_of(p.ci for p in plans),
        requester=requester,
        title=title,
        params=params,
        type=change_type,
        description=description,
        tickets=tickets,
        inventory=inventory,
    )


__all__ = [
    "HIGH_RISK_RUNBOOK",
    "RUNBOOK",
    "HostLines",
    "create_line_change",
    "leaf_paths",
    "paths_to_lines",
    "plan_towards",
    "selection_of",
]
