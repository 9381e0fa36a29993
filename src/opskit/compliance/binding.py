"""The CMDB context of a CI, and rule features rendered with it.

``cmdb_context(ci, inventory=None)`` is what intended templates and rule
values see (the runbooks' sandboxed, StrictUndefined Jinja2 environment,
`opskit.runbooks.templating`):

- ``ci``: the CI's fields and attributes after inheritance (as ``ci`` in a
  runbook: ``ci.name``, ``ci.site``, ``ci.groups``, ``ci.ntp_server`` ...;
  never its credentials);
- ``groups``: each of the CI's groups' own variables, by group name;
- ``related``: each CI it has a relationship with (``ci`` form), by name;
- ``relationships``: ``[{"kind": "depends_on", "target": "fw1"}, ...]``.

Example: ``cmdb_context(core_sw1, inv)["related"]["fw1"]["platform"] == "cisco_asa"``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Template, TemplateError, TemplateSyntaxError

from opskit.compliance.model import BoundFeature, Feature, RuleError
from opskit.compliance.results import Mode
from opskit.runbooks.templating import ENV, ci_context
from opskit.yamlfile import Locator, field_path

if TYPE_CHECKING:
    from opskit.inventory import CI, Inventory

# What a template expression can raise on wrong data: a rule error, not a crash.
_EXPRESSION_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def cmdb_context(ci: CI, inventory: Inventory | None = None) -> dict[str, Any]:
    """The template variables of ``ci`` (see the module docstring)."""
    groups: dict[str, Any] = {}
    related: dict[str, Any] = {}
    if inventory is not None:
        groups = {g: dict(inventory.groups[g].vars) for g in ci.groups if g in inventory.groups}
        related = {t: ci_context(inventory.cis[t]) for t in ci.targets() if t in inventory.cis}
    return {
        "ci": ci_context(ci),
        "groups": groups,
        "related": related,
        "relationships": [{"kind": str(r.kind), "target": r.target} for r in ci.relationships],
    }


rule_context = cmdb_context


def _strings(value: Any, loc: list[str | int]) -> list[tuple[list[str | int], str]]:
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, Mapping):
        return [item for k, v in value.items() for item in _strings(v, [*loc, str(k)])]
    if isinstance(value, list):
        return [item for i, v in enumerate(value) for item in _strings(v, [*loc, i])]
    return []


def check_templates(features: Sequence[Feature], path: Path, locator: Locator) -> None:
    """Jinja2 syntax of every ``lines``, ``when`` and check string, at load."""
    for index, feature in enumerate(features):
        where: list[str | int] = ["features", index]
        texts = [([*where, "lines"], feature.lines)] if feature.lines else []
        if feature.check is not None:
            texts += _strings(feature.check.validate, [*where, "check", "validate"])
        if feature.when is not None:
            texts.append(([*where, "when"], "{{ " + feature.when + " }}"))
        for loc, text in texts:
            try:
                ENV.parse(text)
            except TemplateSyntaxError as exc:
                raise RuleError(
                    f"template syntax error: {exc.message}",
                    file=path,
                    line=locator.line(loc),
                    field=field_path(loc),
                ) from None


def _render_error(feature: Feature, key: str, ci: str, exc: Exception) -> RuleError:
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return RuleError(
        f"{ci}: cannot render {key} of feature '{feature.name}': {message}",
        file=feature.file,
        line=feature.line,
        field=key,
    )


@functools.lru_cache(maxsize=1024)
def _compiled(text: str) -> Template:
    # A fleet renders the same rule strings for every CI: compiled once.
    return ENV.from_string(text)


@functools.lru_cache(maxsize=256)
def _condition(text: str) -> Any:
    return ENV.compile_expression(text, undefined_to_none=False)


def _render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _compiled(value).render(context) if "{" in value else value
    if isinstance(value, Mapping):
        return {_render_value(k, context): _render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context) for v in value]
    return value


def bind_feature(feature: Feature, context: Mapping[str, Any], ci: str) -> BoundFeature:
    """``feature`` with its ``when``, ``lines`` and check rendered for one CI."""
    applies = True
    if feature.when is not None:
        try:
            applies = bool(_condition(feature.when)(context))
        except _EXPRESSION_ERRORS as exc:
            raise _render_error(feature, "when", ci, exc) from None
    if not applies:
        return BoundFeature(feature=feature, applies=False)
    lines: tuple[str, ...] = ()
    if feature.mode in (Mode.MUST_CONTAIN, Mode.MUST_NOT_CONTAIN):
        try:
            text = _render_value(feature.lines, context)
        except _EXPRESSION_ERRORS as exc:
            raise _render_error(feature, "lines", ci, exc) from None
        lines = tuple(line.rstrip() for line in text.splitlines() if line.strip())
    validate = None
    if feature.check is not None:
        try:
            validate = _render_value(feature.check.validate, context)
        except _EXPRESSION_ERRORS as exc:
            raise _render_error(feature, "check.validate", ci, exc) from None
    return BoundFeature(feature=feature, applies=True, lines=lines, validate=validate)
