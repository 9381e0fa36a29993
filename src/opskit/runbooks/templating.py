"""Jinja2 rendering of step parameters.

``render_params(step, params, ci, templates_dir=None) -> dict`` renders every
string inside ``step.params`` with the variables ``params`` (the change's
parameters, secrets already resolved by the caller) and ``ci`` (the CI's
fields, with its free attributes both under ``ci.attributes`` and directly on
``ci`` where no field has the name). A ``template: FILE`` parameter renders
``templates/FILE`` into ``lines`` (one configuration line per line).
Undefined variables are errors (StrictUndefined) naming the step.

Secret parameters: ``{{ params.x }}`` is the resolved value (registered for
redaction, so it is masked in every record); a string that is exactly
``{{ secrets.x }}`` becomes the secret's reference (``{env: VAR}``), for
connectors that resolve it themselves at the last moment (Ansible's
``secret_vars``). Any other string that is one whole ``{{ expression }}``
keeps the expression's type (``lines: "{{ params.lines }}"`` is a list).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import StrictUndefined, Template, TemplateError, Undefined, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from opskit.errors import RunbookError

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.runbooks.model import Step

ENV = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)


# A rollout renders the same strings for every host: compile each once.
@lru_cache(maxsize=4096)
def _compiled(text: str) -> Template:
    return ENV.from_string(text)


@lru_cache(maxsize=4096)
def _expression(text: str) -> Callable[..., Any]:
    return ENV.compile_expression(text, undefined_to_none=False)


def ci_context(ci: CI) -> dict[str, Any]:
    """The ``ci`` template variable: fields (never credentials) and attributes."""
    data: dict[str, Any] = {}
    for f in dataclasses.fields(ci):
        if f.name in ("credentials", "connection_options"):
            continue
        value = getattr(ci, f.name)
        if isinstance(value, Enum):
            value = value.value
        elif f.name == "relationships":
            value = [{"kind": str(r.kind), "target": r.target} for r in value]
        elif isinstance(value, tuple):
            value = list(value)
        data[f.name] = value
    for key, value in (ci.attributes or {}).items():
        data.setdefault(key, value)
    return data


_SECRET_REF = re.compile(r"^\{\{\s*secrets\.(\w+)\s*\}\}$")
_WHOLE_EXPRESSION = re.compile(r"^\{\{((?:(?!\}\}|\{\{).)*)\}\}$", re.DOTALL)


def render_value(value: Any, context: Mapping[str, Any], where: str) -> Any:
    if isinstance(value, str):
        if "{" not in value:
            return value
        ref = _SECRET_REF.match(value)
        if ref is not None:
            # The secret's reference itself (a mapping), for connectors that
            # resolve it at the last moment (Ansible's secret_vars).
            refs = context.get("secrets", {})
            if ref.group(1) not in refs:
                raise RunbookError(
                    f"step {where}: undefined variable: no secret parameter {ref.group(1)!r}"
                )
            return dict(refs[ref.group(1)])
        whole = _WHOLE_EXPRESSION.match(value)
        if whole is not None:
            # "{{ params.lines }}" alone keeps its type (a list, a number, a mapping).
            try:
                result = _expression(whole.group(1))(context)
                if isinstance(result, Undefined):
                    str(result)  # raises the UndefinedError that names the variable
            except UndefinedError as exc:
                raise RunbookError(f"step {where}: undefined variable: {exc.message}") from None
            except TemplateError as exc:
                raise RunbookError(f"step {where}: template error: {exc}") from None
            return result
        try:
            return _compiled(value).render(context)
        except UndefinedError as exc:
            raise RunbookError(f"step {where}: undefined variable: {exc.message}") from None
        except TemplateError as exc:
            raise RunbookError(f"step {where}: template error: {exc}") from None
    if isinstance(value, Mapping):
        return {k: render_value(v, context, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context, where) for v in value]
    return value


def render_template_file(path: Path, context: Mapping[str, Any], where: str) -> str:
    try:
        template = _compiled(path.read_text(encoding="utf-8"))
        return template.render(context)
    except OSError as exc:
        raise RunbookError(f"step {where}: cannot read template {path}: {exc.strerror}") from None
    except UndefinedError as exc:
        raise RunbookError(
            f"step {where}: template {path.name}: undefined variable: {exc.message}"
        ) from None
    except TemplateError as exc:
        raise RunbookError(f"step {where}: template {path.name}: {exc}") from None


def render_params(
    step: Step,
    params: Mapping[str, Any],
    ci: CI,
    templates_dir: Path | None = None,
    secrets: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    context = {"params": params, "ci": ci_context(ci), "secrets": dict(secrets or {})}
    rendered: dict[str, Any] = render_value(dict(step.params), context, step.where)
    template = rendered.pop("template", None) if step.action == "config" else None
    if template is not None:
        if templates_dir is None:
            raise RunbookError(f"step {step.where}: no templates folder to find {template}")
        text = render_template_file(templates_dir / template, context, step.where)
        rendered["lines"] = [*rendered.get("lines", []), *text.splitlines()]
    if "lines" in rendered:
        rendered["lines"] = _split_lines(rendered["lines"])
    if "commands" in rendered:
        rendered["commands"] = _split_lines(rendered["commands"])
    return rendered


def _split_lines(value: Any) -> list[str]:
    """A rendered list may hold multi-line strings (a loop in one item): split them."""
    items = [value] if isinstance(value, str) else list(value)
    lines: list[str] = []
    for item in items:
        lines.extend(line for line in str(item).splitlines() if line.strip())
    return lines


class _HostPlaceholder:
    """Stands for the CI in a host-independent rendering: ``{{ ci.name }}``."""

    def __init__(self, path: str = "ci") -> None:
        self._path = path

    def __getattr__(self, name: str) -> _HostPlaceholder:
        return _HostPlaceholder(f"{self._path}.{name}")

    def __getitem__(self, name: str) -> _HostPlaceholder:
        return _HostPlaceholder(f"{self._path}.{name}")

    def __str__(self) -> str:
        return "{{ " + self._path + " }}"


def render_static(step: Step, params: Mapping[str, Any], templates_dir: Path | None) -> list[str]:
    """A step's configuration lines or commands rendered with the parameters,
    CI-dependent parts left as ``{{ ci.x }}`` (for plans and documentation)."""
    context = {"params": params, "ci": _HostPlaceholder(), "secrets": {}}
    raw = dict(step.params)
    lines: list[str] = []
    template = raw.get("template") if step.action == "config" else None
    if template is not None and templates_dir is not None:
        lines += render_template_file(templates_dir / template, context, step.where).splitlines()
    for key in ("lines", "commands", "command"):
        if key in raw:
            value = render_value(raw[key], context, step.where)
            lines += _split_lines(value)
    return [line for line in lines if line.strip()]
