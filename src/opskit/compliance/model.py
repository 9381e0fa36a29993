"""The rule model: rule files, features, a CI's rendered rules.

Produced by `opskit.compliance.rules` (loading) and
`opskit.compliance.binding` (rendering for one CI); read by the evaluator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.compliance.results import Mode
from opskit.digests import canonical_digest
from opskit.errors import ValidationError
from opskit.yamlfile import Locator

if TYPE_CHECKING:
    from opskit.inventory import CI


class RuleError(ValidationError):
    """A malformed rule file or a rule that cannot be applied to a CI; one
    line naming the file, the line and the field."""


@dataclass(frozen=True)
class StructuredCheck:
    """A structured feature's check: a napalm_validate document against a
    NAPALM getter's result (``getter``) or a TextFSM-parsed show command
    (``command``, parsed with ntc-templates)."""

    validate: Any
    getter: str | None = None
    command: str | None = None

    @property
    def source(self) -> str:
        """The facts key the check reads: the getter name or the command."""
        return self.getter or self.command or ""

    @property
    def getter_kwargs(self) -> dict[str, Any]:
        """The getter's arguments (NAPALM's ``_kwargs`` in the document)."""
        kwargs = self.validate.get("_kwargs") if isinstance(self.validate, dict) else None
        return dict(kwargs) if isinstance(kwargs, dict) else {}


@dataclass(frozen=True)
class Feature:
    """One feature as written in a rule file (before rendering for a CI)."""

    name: str
    mode: Mode
    match: tuple[str, ...] = ()
    ordered: bool = False
    lines: str = ""
    regex: bool = False
    when: str | None = None
    check: StructuredCheck | None = None
    description: str | None = None
    file: str = ""
    line: int | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class RuleFile:
    """One validated rule file."""

    path: Path
    relpath: str
    version: str
    platform: str
    groups: tuple[str, ...]
    features: tuple[Feature, ...]
    document: Mapping[str, Any] = field(repr=False, default_factory=dict)
    locator: Locator | None = field(repr=False, default=None, compare=False)

    @property
    def digest(self) -> str:
        return canonical_digest(self.document)

    def applies_to(self, ci: CI) -> bool:
        if ci.platform != self.platform:
            return False
        return not self.groups or any(g in ci.groups for g in self.groups)


@dataclass(frozen=True)
class RuleSet:
    """Every rule file of a workspace (or one file), with one digest."""

    files: tuple[RuleFile, ...] = ()
    root: Path | None = None

    @cached_property
    def digest(self) -> str:
        return canonical_digest({"rules": {f.relpath: f.document for f in self.files}})

    @property
    def versions(self) -> dict[str, str]:
        """Each file's version, by relative path."""
        return {f.relpath: f.version for f in self.files}


@dataclass(frozen=True)
class BoundFeature:
    """A feature rendered for one CI: its lines with the CMDB's values, its
    ``when`` decided, its check's document rendered."""

    feature: Feature
    applies: bool = True
    lines: tuple[str, ...] = ()
    validate: Any = None

    @property
    def name(self) -> str:
        return self.feature.name

    @property
    def mode(self) -> Mode:
        return self.feature.mode


@dataclass(frozen=True)
class CiRules:
    """The rules of one CI: what `evaluate` takes.

    ``digest`` is the whole rule set's (what a result names); ``files`` the
    relative paths of the files that apply; ``facts_needed`` the getters and
    commands its structured features read (what a live run collects).
    """

    ci: str
    platform: str
    features: tuple[BoundFeature, ...]
    digest: str
    files: tuple[str, ...] = ()

    @property
    def facts_needed(self) -> list[StructuredCheck]:
        return [f.feature.check for f in self.features if f.feature.check is not None and f.applies]

    def feature(self, name: str) -> BoundFeature:
        for bound in self.features:
            if bound.name == name:
                return bound
        raise KeyError(name)
