"""Intended ("golden") configurations: Jinja2 templates rendered with the CMDB.

``render_intended(ci, inventory, templates_dir) -> Intended`` renders the
CI's template in the runbooks' sandboxed, StrictUndefined environment
(`opskit.runbooks.templating`: ``{% include %}`` / ``{% import %}`` resolved
inside ``templates_dir``, one inserted value stays one line) with the
variables of `opskit.compliance.binding.cmdb_context` (``ci``, ``groups``,
``related``, ``relationships``).

The template of a CI is its attribute ``intended_template`` (a path under
``templates/``; groups can set it, inheritance applies) or else
``intended/<platform>.j2``. ``Intended.template_digest`` covers the template
and every template it includes or imports (by relative path and content);
``inventory_digest`` is the inventory's. A render error is one
`IntendedError` line naming the CI, the template and the line.

Example::

    >>> intended = render_intended(inv.get("lab-sw01"), inv, ws.templates_dir)
    >>> intended.template, intended.text.splitlines()[:2]
    ('intended/cisco_ios.j2', ['hostname lab-sw01', 'vlan 1'])
    >>> intended.template_digest, intended.inventory_digest
    ('sha256:5e1f...', 'sha256:0e3d...')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import Environment, TemplateError, TemplateNotFound, meta

from opskit.compliance.binding import cmdb_context
from opskit.digests import ascii_canonical_json, sha256_bytes, sha256_text
from opskit.errors import OpskitError
from opskit.runbooks.templating import template_environment, template_line

if TYPE_CHECKING:
    from opskit.inventory import CI, Inventory

TEMPLATE_ATTRIBUTE = "intended_template"
INTENDED_FOLDER = "intended"
_RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


class IntendedError(OpskitError):
    """An intended configuration that cannot be rendered (one line: CI, template, line)."""


@dataclass(frozen=True)
class Intended:
    """A CI's intended configuration and what it was computed from."""

    ci: str
    text: str
    template: str
    template_digest: str
    inventory_digest: str | None = None
    #: every template file used, by path under templates/, with its sha256
    files: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """sha256 of the rendered text."""
        return sha256_text(self.text)

    def to_dict(self) -> dict[str, object]:
        return {
            "ci": self.ci,
            "template": self.template,
            "template_digest": self.template_digest,
            "inventory_digest": self.inventory_digest,
            "digest": self.digest,
            "files": dict(self.files),
        }


def template_name(ci: CI) -> str:
    """The CI's intended template, relative to the templates folder."""
    chosen = (ci.attributes or {}).get(TEMPLATE_ATTRIBUTE)
    if isinstance(chosen, str) and chosen.strip():
        return chosen.strip()
    return f"{INTENDED_FOLDER}/{ci.platform}.j2"


def template_files(templates_dir: Path, name: str) -> dict[str, str]:
    """``name`` and every template it includes or imports, recursively, with
    their sha256; a dynamic include (a name computed at render time) brings
    every file of the entry template's folder."""
    env = template_environment(templates_dir.resolve())
    files: dict[str, str] = {}
    pending = [name]
    while pending:
        current = pending.pop()
        if current in files:
            continue
        path = templates_dir / current
        try:
            data = path.read_bytes()
        except OSError:
            continue  # the render names what is missing
        files[current] = sha256_bytes(data)
        try:
            refs = list(_references(env, data.decode("utf-8", "replace")))
        except TemplateError:
            continue  # the render reports the syntax error with its line
        if any(ref is None for ref in refs):
            folder = (templates_dir / name).parent
            found = (p for p in folder.rglob("*") if p.is_file())
            refs += [p.relative_to(templates_dir).as_posix() for p in found]
        pending += [ref for ref in refs if ref]
    return dict(sorted(files.items()))


@lru_cache(maxsize=256)
def _references(env: Environment, text: str) -> tuple[str | None, ...]:
    # A run renders one template for every CI: parse each content once.
    return tuple(meta.find_referenced_templates(env.parse(text)))


def _digest(files: dict[str, str]) -> str:
    return sha256_text(ascii_canonical_json({"templates": files}))


def render_intended(ci: CI, inventory: Inventory | None, templates_dir: str | Path) -> Intended:
    """The intended configuration of ``ci`` (see the module docstring)."""
    base = Path(templates_dir).resolve()
    name = template_name(ci)
    shown = f"templates/{name}"
    if not (base / name).is_file():
        raise IntendedError(
            f"CI {ci.name}: intended template {shown} does not exist (set the CI's or a group's"
            f" attribute {TEMPLATE_ATTRIBUTE}, or add {shown})"
        )
    context = cmdb_context(ci, inventory)
    try:
        text = template_environment(base).get_template(name).render(context)
    except TemplateNotFound as exc:
        raise IntendedError(
            f"CI {ci.name}: template {shown}: included template {exc.name} does not exist"
        ) from None
    except RecursionError:
        raise IntendedError(
            f"CI {ci.name}: template {shown}: it includes, imports or extends itself"
            " (endless recursion)"
        ) from None
    except _RENDER_ERRORS as exc:
        at = template_line(exc, base) or shown
        detail = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        raise IntendedError(f"CI {ci.name}: {at}: {detail}") from None
    files = template_files(base, name)
    return Intended(
        ci=ci.name,
        text=text.strip("\n") + "\n",
        template=name,
        template_digest=_digest(files),
        inventory_digest=inventory.digest if inventory is not None else None,
        files=files,
    )
