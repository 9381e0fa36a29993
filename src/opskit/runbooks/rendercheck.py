"""Templates checked before they can reach a device.

Two checks, with the sandboxed StrictUndefined environment rendering uses:

- `check_document(data, templates_dir)`: static, when a runbook is loaded
  (``runbook validate``). Every Jinja string of every step (names, params,
  expectations, rollback steps) and of the backup, and every template file a
  config step renders with what it includes and imports, is parsed and
  compiled. Also refused: a file that includes or imports itself, directly
  or through others (even behind an ``{% if %}``: rendering would recurse),
  a variable other than ``params``/``ci``/``secrets``, ``params.x`` for a
  parameter the schema does not declare (when it allows no others),
  ``secrets.x`` for a non-secret parameter, and any attribute the sandbox
  refuses (``__class__``, ``mro``...). Yields
  `TemplateProblem` (where in the document, and a message naming the step
  and the template line); `TemplateFiles.reached` lists the files included.
- `render_check(book, cis, params) -> list[RenderProblem]`: at assessment,
  every step, expectation and backup path rendered for every target with the
  change's parameters and the CI's data (secret parameters stand as a
  placeholder: nothing is resolved). `check_renders` raises the first
  problem as one line naming the host, the step and the template line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import TemplateNotFound, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_FUNCTION_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    UNSAFE_METHOD_ATTRIBUTES,
)

from opskit.errors import OpskitError, RunbookError
from opskit.runbooks.parameters import mark_multiline
from opskit.runbooks.templating import (
    ENV,
    ci_context,
    render_params,
    render_value,
    template_environment,
)

if TYPE_CHECKING:
    from jinja2 import Environment

    from opskit.inventory.model import CI
    from opskit.runbooks.model import Runbook

VARIABLES = frozenset({"params", "ci", "secrets"})
# Expectations and backup paths are rendered with the parameters and the CI only.
_NO_SECRETS = frozenset({"params", "ci"})
# What the sandbox refuses (plus any "_" name); str.format it makes safe itself.
_UNSAFE = frozenset(
    {"mro"}
    | UNSAFE_FUNCTION_ATTRIBUTES
    | UNSAFE_METHOD_ATTRIBUTES
    | UNSAFE_GENERATOR_ATTRIBUTES
    | UNSAFE_COROUTINE_ATTRIBUTES
    | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES
)
_PHASES = ("precheck", "apply", "verify", "rollback")
SECRET_PLACEHOLDER = "<secret>"

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class TemplateProblem:
    """A template that cannot render, at `loc` in the runbook document, e.g.
        `TemplateProblem(("apply", 0, "params", "commands", 1), "step 'configure vlan': ...")`
    (the message names the step and what is wrong with the template).
    """

    loc: Loc
    message: str


@dataclass
class _Names:
    declared: frozenset[str]
    closed: bool  # the schema allows no undeclared parameter
    secrets: frozenset[str]

    @classmethod
    def of(cls, parameters: Mapping[str, Any]) -> _Names:
        props = parameters.get("properties", {}) if isinstance(parameters, Mapping) else {}
        props = props if isinstance(props, Mapping) else {}
        return cls(
            declared=frozenset(props),
            closed=parameters.get("additionalProperties") is False,
            secrets=frozenset(
                k for k, v in props.items() if isinstance(v, Mapping) and v.get("secret")
            ),
        )


@dataclass
class TemplateFiles:
    """Template files already checked, and those reached only by include/import."""

    checked: set[str] = field(default_factory=set)
    reached: set[str] = field(default_factory=set)


def _walk_strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk_strings(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_strings(item, (*loc, index))


def _ast_problems(
    ast: nodes.Template, names: _Names, variables: frozenset[str] | None = VARIABLES
) -> Iterator[tuple[int, str]]:
    """(template line, message) for what rendering would refuse, found without
    rendering; ``variables`` None: names are not checked (an included file)."""
    if variables is not None:
        unknown = meta.find_undeclared_variables(ast) - variables - set(ENV.globals)
        seen = " and ".join(sorted(variables))
        for node in ast.find_all(nodes.Name):
            if node.name in unknown:
                unknown.discard(node.name)
                yield node.lineno, f"undefined variable '{node.name}' (this text sees {seen})"
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr):
            attr = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            attr = node.arg.value
        else:
            continue
        if attr.startswith("_") or attr in _UNSAFE:
            yield node.lineno, f"the sandbox refuses attribute '{attr}'"
            continue
        owner = node.node.name if isinstance(node.node, nodes.Name) else None
        if owner == "params" and names.closed and attr not in names.declared:
            known = ", ".join(sorted(names.declared)) or "none"
            yield node.lineno, f"params has no attribute '{attr}' (parameters: {known})"
        elif owner == "secrets" and attr not in names.secrets:
            known = ", ".join(sorted(names.secrets)) or "none"
            yield node.lineno, f"secrets has no attribute '{attr}' (secret parameters: {known})"


def _check_string(text: str, names: _Names, variables: frozenset[str] = VARIABLES) -> str | None:
    """The first problem of one Jinja string of the runbook, or None."""
    try:
        ast = ENV.parse(text)
        ENV.compile(ast)  # unknown filters and tests are compile-time errors
    except TemplateSyntaxError as exc:
        return f"template line {exc.lineno}: syntax error: {exc.message}"
    if next(meta.find_referenced_templates(ast), False) is not False:
        return "template line 1: include/import/extends work in template files only"
    for lineno, message in _ast_problems(ast, names, variables):
        return f"template line {lineno}: {message}"
    return None


def _check_file(
    env: Environment,
    name: str,
    names: _Names,
    files: TemplateFiles,
    *,
    chain: tuple[str, ...] = (),
) -> str | None:
    """The first problem of a template file or of anything it includes/imports
    (`chain`: the files including this one, for cycles)."""
    if name in files.checked:
        return None
    files.checked.add(name)
    shown = f"templates/{name}"
    try:
        source, filename, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
        ast = env.parse(source, name, filename)
        env.compile(ast, name, filename)
    except TemplateSyntaxError as exc:
        return f"{shown} line {exc.lineno}: syntax error: {exc.message}"
    except TemplateNotFound:
        return f"{shown} does not exist"
    except (OSError, UnicodeDecodeError) as exc:
        return f"{shown}: cannot read it ({type(exc).__name__})"
    # Included files see the includer's loop and set variables: names are
    # checked in the file a step renders, attributes everywhere.
    for lineno, message in _ast_problems(ast, names, None if chain else VARIABLES):
        return f"{shown} line {lineno}: {message}"
    path = (*chain, name)
    for lineno, target in _references(ast):
        if target is None:
            return f"{shown} line {lineno}: an included or imported name must be a literal"
        if target in path:  # rendering would recurse until Python gives up
            cycle = " -> ".join((*path[path.index(target) :], target))
            return f"{shown} line {lineno}: includes itself ({cycle})"
        files.reached.add(target)
        problem = _check_file(env, target, names, files, chain=path)
        if problem is not None:
            return f"{shown} line {lineno}: {problem}"
    return None


def _references(ast: nodes.Template) -> Iterator[tuple[int, str | None]]:
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        target = node.template
        literal = isinstance(target, nodes.Const) and isinstance(target.value, str)
        yield node.lineno, (target.value if literal else None)


def check_document(
    data: Mapping[str, Any], templates_dir: Path, files: TemplateFiles | None = None
) -> Iterator[TemplateProblem]:
    """Static problems of a runbook document (see the module docstring)."""
    names = _Names.of(data.get("parameters", {}) or {})
    files = files if files is not None else TemplateFiles()
    for phase in _PHASES:
        steps = data.get(phase)
        if not isinstance(steps, list):
            continue
        for index, step in enumerate(steps):
            if not isinstance(step, Mapping):
                continue
            label = f"step '{step.get('name', index)}'"
            for loc, text in _walk_strings(step, (phase, index)):
                if "{" in text:
                    seen = _NO_SECRETS if loc[2] == "expect" else VARIABLES
                    problem = _check_string(text, names, seen)
                    if problem is not None:
                        yield TemplateProblem(loc, f"{label}: {problem}")
            params = step.get("params")
            template = params.get("template") if isinstance(params, Mapping) else None
            if step.get("action") == "config" and isinstance(template, str):
                env = template_environment(templates_dir.resolve())
                problem = _check_file(env, template, names, files)
                if problem is not None:
                    yield TemplateProblem(
                        (phase, index, "params", "template"), f"{label}: {problem}"
                    )
    backup = data.get("backup")
    if isinstance(backup, Mapping):
        for loc, text in _walk_strings(backup, ("backup",)):
            if "{" in text:
                problem = _check_string(text, names, _NO_SECRETS)
                if problem is not None:
                    yield TemplateProblem(loc, f"backup: {problem}")


# -- at assessment: render everything for every target ------------------------


@dataclass(frozen=True)
class RenderProblem:
    """A step (`step`, e.g. `"apply[0] 'configure vlan'"`, or `"backup"`) that
    does not render for one host; `message` says why and where in the
    template, and `str()` puts the host first: `"host sw1: ..."`."""

    host: str
    step: str
    message: str  # names the step and the template line

    def __str__(self) -> str:
        return f"host {self.host}: {self.message}"


def render_check(
    book: Runbook,
    cis: Iterable[CI],
    params: Mapping[str, Any],
    templates_dir: Path | None = None,
) -> list[RenderProblem]:
    """Every step, expectation and backup path of ``book`` rendered for every
    CI with these (validated) parameters; the problems found, host by host."""
    if templates_dir is None and book.path is not None:
        templates_dir = book.path.resolve().parents[2] / "templates"
    values = {
        k: (SECRET_PLACEHOLDER if k in book.secret_parameters else v) for k, v in params.items()
    }
    values = mark_multiline(book.parameters, values)
    refs = {k: v for k, v in params.items() if k in book.secret_parameters and v is not None}
    problems: list[RenderProblem] = []
    for ci in cis:
        problems += _render_host(book, ci, values, refs, templates_dir)
    return problems


def _render_host(
    book: Runbook,
    ci: CI,
    values: Mapping[str, Any],
    refs: Mapping[str, Any],
    templates_dir: Path | None,
) -> list[RenderProblem]:
    problems = []
    context = {"params": values, "ci": ci_context(ci)}
    for phase in _PHASES:
        for step in book.steps_for(phase, ci.platform):
            try:
                render_params(step, values, ci, templates_dir, secrets=refs)
                for expectation in step.expect:
                    render_value(expectation.spec, context, step.where)
            except OpskitError as exc:
                problems.append(RenderProblem(ci.name, step.where, str(exc)))
    for path in book.backup.for_platform(ci.platform).files:
        try:
            render_value(path, context, "backup")
        except OpskitError as exc:
            problems.append(RenderProblem(ci.name, "backup", str(exc)))
    return problems


def check_renders(
    book: Runbook, cis: Sequence[CI], params: Mapping[str, Any], templates_dir: Path | None = None
) -> None:
    """Raises `RunbookError` naming the first host, step and template line
    that cannot render (and how many more there are)."""
    problems = render_check(book, cis, params, templates_dir)
    if problems:
        raise RunbookError(render_refusal(problems))


def render_refusal(problems: Sequence[RenderProblem]) -> str:
    more = f" (and {len(problems) - 1} more render problem(s))" if len(problems) > 1 else ""
    return f"cannot render: {problems[0]}{more}"
