"""Compliance rule files: loading, validation, digests, and a CI's rules.

- ``load_rules(path) -> RuleSet``: one rule file, or every ``*.yaml`` /
  ``*.yml`` under a folder (the workspace's ``compliance/``). Each file is
  validated against ``opskit/schemas/compliance.json`` (jsonschema with a
  FormatChecker: every ``match`` is a valid regular expression) and the rules
  a schema cannot say: fields a mode does not use, Jinja2 syntax, and **no
  two features that could claim the same line** (see `overlap`). Every error
  is one `RuleError` line naming the file, the line and the field.
- ``RuleSet.digest``: ``sha256:`` over the canonical JSON of every file's
  document by its relative path (reformatting or reordering keys changes
  nothing; any rule change changes it). Each `RuleFile` has its own
  ``version`` and ``digest``.
- ``rules_for(ci, ruleset, inventory=None) -> CiRules``: the features of
  the files whose ``platform`` is the CI's and whose ``groups`` (if any)
  meet the CI's groups, with their ``lines``, ``when`` and ``check``
  rendered for this CI (the runbooks' sandboxed StrictUndefined Jinja2).
  Two applicable files defining one feature name, or features of two files
  that could claim one line, are a `RuleError` naming both.

Example::

    >>> rules = load_rules(ws.root / "compliance")
    >>> rules.digest
    'sha256:3c0e...'
    >>> ci_rules = rules_for(inventory.get("lab-sw01"), rules)
    >>> [f.name for f in ci_rules.features]
    ['system', 'vlans', 'interfaces', 'routing', 'vlan-state']
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator, FormatChecker

from opskit.compliance.binding import bind_feature, check_templates, rule_context
from opskit.compliance.model import (
    CiRules,
    Feature,
    RuleError,
    RuleFile,
    RuleSet,
    StructuredCheck,
)
from opskit.compliance.overlap import overlapping
from opskit.compliance.results import Mode
from opskit.yamlfile import Locator, field_path, json_document, load_yaml, schema_error

if TYPE_CHECKING:
    from opskit.inventory import CI, Inventory
    from opskit.workspace import Workspace

RULE_SUFFIXES = (".yaml", ".yml")
# Fields each mode uses besides name, mode, description, when.
_MODE_FIELDS = {
    Mode.INTENDED: {"match", "ordered"},
    Mode.MUST_CONTAIN: {"match", "lines", "regex"},
    Mode.MUST_NOT_CONTAIN: {"match", "lines", "regex"},
    Mode.STRUCTURED: {"check"},
}
_COMMON_FIELDS = {"name", "mode", "description", "when"}


@cache
def rules_schema() -> dict[str, Any]:
    """The shipped JSON Schema of one rule file."""
    text = resources.files("opskit").joinpath("schemas/compliance.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(rules_schema(), format_checker=FormatChecker())


def _relpath(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def load_rule_file(path: str | Path, root: Path | None = None) -> RuleFile:
    """Loads and validates one rule file (see the module docstring)."""
    path = Path(path)
    data, locator = load_yaml(path)
    if not isinstance(data, Mapping):
        raise RuleError("a rule file is a YAML mapping", file=path, line=1)
    data = json_document(data)
    error = schema_error(_validator().iter_errors(data), path, locator, RuleError)
    if error is not None:
        raise error
    features = tuple(
        _feature(item, path, locator, index) for index, item in enumerate(data["features"])
    )
    check_templates(features, path, locator)
    rule_file = RuleFile(
        path=path,
        relpath=_relpath(path, root),
        version=data["version"],
        platform=data["platform"],
        groups=tuple(data.get("groups", ())),
        features=features,
        document=data,
        locator=locator,
    )
    _check_combined([rule_file], None)
    return rule_file


def _feature(item: Mapping[str, Any], path: Path, locator: Locator, index: int) -> Feature:
    mode = Mode(item["mode"])
    where = ["features", index]
    for key in item:
        if key not in _COMMON_FIELDS and key not in _MODE_FIELDS[mode]:
            loc = [*where, key]
            raise RuleError(
                f"field '{key}' is not used by mode {mode}",
                file=path,
                line=locator.line(loc),
                field=field_path(loc),
            )
    lines = item.get("lines", "")
    check = item.get("check")
    return Feature(
        name=item["name"],
        mode=mode,
        match=tuple(item.get("match", ())),
        ordered=bool(item.get("ordered", False)),
        lines="\n".join(lines) if isinstance(lines, list) else lines,
        regex=bool(item.get("regex", False)),
        when=item.get("when"),
        check=StructuredCheck(
            validate=check["validate"], getter=check.get("getter"), command=check.get("command")
        )
        if check
        else None,
        description=item.get("description"),
        file=str(path),
        line=locator.line(where),
    )


def load_rules(path: str | Path) -> RuleSet:
    """A rule file, or every rule file under a folder, as one `RuleSet`.

    Files whose features could claim the same line for one CI (same
    platform; groups that meet, or none) are refused here.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in RULE_SUFFIXES and p.is_file())
        loaded = tuple(load_rule_file(p, path) for p in files)
        ruleset = RuleSet(files=loaded, root=path)
    elif path.is_file():
        ruleset = RuleSet(files=(load_rule_file(path, path.parent),), root=path.parent)
    else:
        raise RuleError("no such rule file or folder", file=path)
    for first, second in _pairs(ruleset.files):
        if first.platform == second.platform and _groups_meet(first.groups, second.groups):
            _check_combined([first, second], None)
    return ruleset


def workspace_rules(root: Workspace | str | Path) -> RuleSet:
    """The rule set of a workspace (or its root folder): ``compliance/``,
    empty when the workspace has none."""
    base = root if isinstance(root, str | Path) else root.root
    folder = Path(base) / "compliance"
    return load_rules(folder) if folder.is_dir() else RuleSet(root=folder)


def _pairs(items: Sequence[RuleFile]) -> Iterable[tuple[RuleFile, RuleFile]]:
    for i, first in enumerate(items):
        for second in items[i + 1 :]:
            yield first, second


def _groups_meet(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    return not a or not b or bool(set(a) & set(b))


def _check_combined(files: Sequence[RuleFile], ci: str | None) -> None:
    """One feature name and one claim per line across the files a CI gets."""
    seen: dict[str, Feature] = {}
    for rule_file in files:
        for feature in rule_file.features:
            earlier = seen.get(feature.name)
            if earlier is not None:
                raise _conflict(f"feature '{feature.name}' is also defined", earlier, feature, ci)
            for other in seen.values():
                clash = overlapping(other.match, feature.match)
                if clash is not None:
                    raise _conflict(
                        f"feature '{feature.name}' may claim lines of feature '{other.name}'"
                        f" ({clash})",
                        other,
                        feature,
                        ci,
                    )
            seen[feature.name] = feature


def _conflict(message: str, earlier: Feature, later: Feature, ci: str | None) -> RuleError:
    applies = f" (both apply to {ci})" if ci else ""
    return RuleError(
        f"{message} at {earlier.where}{applies}",
        file=later.file,
        line=later.line,
        field="features",
    )


def rules_for(ci: CI, ruleset: RuleSet, inventory: Inventory | None = None) -> CiRules:
    """The rules of ``ci`` rendered with its CMDB data (see the module docstring)."""
    files = [f for f in ruleset.files if f.applies_to(ci)]
    if len(files) > 1:
        _check_combined(files, ci.name)
    context = rule_context(ci, inventory)
    features = tuple(bind_feature(f, context, ci.name) for rf in files for f in rf.features)
    return CiRules(
        ci=ci.name,
        platform=ci.platform,
        features=features,
        digest=ruleset.digest,
        files=tuple(f.relpath for f in files),
    )
