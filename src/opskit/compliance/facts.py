"""Collecting the facts structured features read, through a connector (read-only).

``gather_facts(connector, ci_rules) -> dict`` runs each show command the
CI's structured features name (``Connector.send_commands``) and each NAPALM
getter (a connector with ``get(getter, **kwargs)``, i.e. the napalm one,
with the document's ``_kwargs``); a source the connector cannot provide, or
that fails, is a `FactUnavailable` naming why, which makes that feature
``unknown`` with that reason. Nothing is configured.

Example::

    >>> with NetmikoConnector(ci) as conn:
    ...     facts = gather_facts(conn, ci_rules)
    >>> facts
    {'show vlan': 'VLAN Name  Status  Ports\\n...'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opskit.compliance.model import CiRules
from opskit.errors import OpskitError


@dataclass(frozen=True)
class FactUnavailable:
    """A fact that could not be collected, and why (one line)."""

    reason: str


def gather_facts(connector: Any, ci_rules: CiRules) -> dict[str, Any]:
    """The facts of ``ci_rules.facts_needed``, by source (see the module docstring)."""
    facts: dict[str, Any] = {}
    for check in ci_rules.facts_needed:
        if check.source in facts:
            continue
        try:
            facts[check.source] = _collect(connector, check.getter, check.command,
                                           check.getter_kwargs)  # fmt: skip
        except OpskitError as exc:
            facts[check.source] = FactUnavailable(f"{check.source}: {exc}")
    return facts


def _collect(
    connector: Any, getter: str | None, command: str | None, kwargs: Mapping[str, Any]
) -> Any:
    if command is not None:
        (result,) = connector.send_commands([command])
        return result.output
    get = getattr(connector, "get", None)
    if get is None:
        return FactUnavailable(f"{getter}: the {connector.name} connector has no NAPALM getters")
    return get(getter, **dict(kwargs))
