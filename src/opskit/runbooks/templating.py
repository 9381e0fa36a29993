"""Jinja2 rendering of step parameters.

``render_params(step, params, ci, templates_dir=None) -> dict`` renders every
string inside ``step.params`` with the variables ``params`` (the change's
parameters, secrets already resolved by the caller) and ``ci`` (the CI's
fields, with its free attributes both under ``ci.attributes`` and directly on
``ci`` where no field has the name). A ``template: FILE`` parameter renders
``templates/FILE`` into ``lines`` (one configuration line per line); a
template file may include or import other files of ``templates/``.
Undefined variables are errors (StrictUndefined) naming the step and the
template line; the environment is sandboxed.

One line stays one line: a value a ``{{ }}`` inserts, or a whole-expression
value, that holds a line break is refused (it would become an extra device
command), unless it is a parameter the runbook declares
``x-opskit-multiline: true`` (`opskit.runbooks.parameters.MultilineText`);
line breaks the template text itself writes (a loop) are kept.

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
import traceback
from collections.abc import Callable, Mapping
from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import (
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    TemplateRuntimeError,
    Undefined,
    UndefinedError,
)
from jinja2.sandbox import SandboxedEnvironment

from opskit.errors import RunbookError
from opskit.runbooks.parameters import MultilineText

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.runbooks.model import Step

# Every character str.splitlines() breaks a line at.
_LINE_BREAKS = re.compile("[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


class LineBreakError(TemplateRuntimeError):
    """A value inserted into one line holds a line break."""


def has_line_break(value: str) -> bool:
    return _LINE_BREAKS.search(value) is not None


def _one_line(value: Any) -> Any:
    # Jinja's finalize: called on every value a {{ }} writes out.
    if isinstance(value, str) and not isinstance(value, MultilineText) and has_line_break(value):
        raise LineBreakError(
            "an inserted value contains a line break (one line would become several "
            "device commands; declare the parameter x-opskit-multiline: true to allow it)"
        )
    return value


def _environment(loader: FileSystemLoader | None = None) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
        finalize=_one_line,
        loader=loader,
    )


ENV = _environment()


@lru_cache(maxsize=64)
def template_environment(templates_dir: Path) -> SandboxedEnvironment:
    """The environment template files render in: ENV's rules, with
    ``{% include %}``/``{% import %}`` resolved inside ``templates_dir``."""
    return _environment(FileSystemLoader(str(templates_dir)))


# A rollout renders the same strings for every host: compile each once.
@lru_cache(maxsize=4096)
def _compiled(text: str) -> Template:
    return ENV.from_string(text)


@lru_cache(maxsize=4096)
def _expression(text: str) -> Callable[..., Any]:
    return ENV.compile_expression(text, undefined_to_none=False)


def template_line(exc: BaseException, templates_dir: Path | None = None) -> str:
    """Where in a template an error happened: "template line 2" for a string
    of the runbook, "templates/x.j2 line 3" for a file (the innermost one)."""
    found = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == "<template>":
            found = f"template line {frame.lineno}"
        elif not frame.filename.endswith(".py") and not frame.filename.startswith("<"):
            found = f"{_shown_path(Path(frame.filename), templates_dir)} line {frame.lineno}"
    lineno = getattr(exc, "lineno", None)
    if not found and isinstance(lineno, int):
        found = f"template line {lineno}"
    return found


def _shown_path(path: Path, templates_dir: Path | None) -> str:
    if templates_dir is not None:
        try:
            return "templates/" + path.resolve().relative_to(templates_dir.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


# What an expression can raise on wrong data ("{{ params.name + 1 }}"): a
# template error like any other, not a crash.
_EXPRESSION_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, AttributeError)


def _template_error(
    where: str, exc: Exception, templates_dir: Path | None = None, at: str | None = None
) -> str:
    at = at or template_line(exc, templates_dir)
    prefix = f"step {where}: " + (f"{at}: " if at else "")
    if isinstance(exc, UndefinedError):
        return prefix + f"undefined variable: {exc.message}"
    if isinstance(exc, LineBreakError):
        return prefix + str(exc.message)
    if isinstance(exc, TemplateError):
        return prefix + f"template error: {exc.message or exc}"
    return prefix + f"template error: {type(exc).__name__}: {str(exc)[:200]}"


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
                _check_whole(result)
            except (TemplateError, *_EXPRESSION_ERRORS) as exc:
                # One expression: its frames do not map to lines of the string.
                raise RunbookError(_template_error(where, exc, at="template line 1")) from None
            return result
        try:
            return _compiled(value).render(context)
        except (TemplateError, *_EXPRESSION_ERRORS) as exc:
            raise RunbookError(_template_error(where, exc)) from None
    if isinstance(value, Mapping):
        return {k: render_value(v, context, where) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, context, where) for v in value]
    return value


def _check_whole(value: Any) -> None:
    """A whole-expression value keeps its type, so no finalize sees it: its
    strings (in a list too) follow the same one-line rule."""
    if isinstance(value, str):
        _one_line(value)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str):
                _one_line(item)


def render_template_file(
    path: Path, context: Mapping[str, Any], where: str, templates_dir: Path | None = None
) -> str:
    """Renders a template file (includes resolved inside ``templates_dir``,
    by default the file's own folder)."""
    base = templates_dir if templates_dir is not None else path.parent
    try:
        name = path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        raise RunbookError(f"step {where}: template {path} is outside {base}") from None
    try:
        return template_environment(base.resolve()).get_template(name).render(context)
    except OSError as exc:
        raise RunbookError(f"step {where}: cannot read template {path}: {exc.strerror}") from None
    except RecursionError:  # `runbook validate` refuses include cycles; a file edited since
        shown = _shown_path(path, base)
        raise RunbookError(
            f"step {where}: template {shown} includes itself (directly or through another file)"
        ) from None
    except TemplateNotFound as exc:
        if exc.message == name:
            raise RunbookError(f"step {where}: template {name} does not exist") from None
        raise RunbookError(_template_error(where, exc, base)) from None
    except (TemplateError, *_EXPRESSION_ERRORS) as exc:
        raise RunbookError(_template_error(where, exc, base)) from None


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
        text = render_template_file(templates_dir / template, context, step.where, templates_dir)
        rendered["lines"] = [*rendered.get("lines", []), *text.splitlines()]
    if "lines" in rendered:
        rendered["lines"] = _split_lines(rendered["lines"])
    if "commands" in rendered:
        rendered["commands"] = _split_lines(rendered["commands"])
    return rendered


def _split_lines(value: Any) -> list[str]:
    """A rendered list may hold multi-line strings (a loop in one item, a
    multi-line parameter): one line each."""
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
        text = render_template_file(templates_dir / template, context, step.where, templates_dir)
        lines += text.splitlines()
    for key in ("lines", "commands", "command"):
        if key in raw:
            value = render_value(raw[key], context, step.where)
            lines += _split_lines(value)
    return [line for line in lines if line.strip()]
