"""The line-based modes: intended, must-contain, must-not-contain.

Each function takes one feature's sections (the device's; for ``intended``
the intended configuration's too) and returns its `FeatureResult`. Equal
texts are decided here; anything that differs is handed to hier_config
through `opskit.configdiff` (missing and extra lines as hier_config's
difference, remediation as `opskit.configdiff.remediation`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from opskit import configdiff
from opskit.compliance.model import BoundFeature
from opskit.compliance.results import FeatureResult, State
from opskit.compliance.sections import LinePath, Section, indented, line_paths, section_paths


def _text(sections: Sequence[Section]) -> str:
    return "\n".join(s.text for s in sections)


def _keys(sections: Sequence[Section]) -> list[str]:
    return [s.key for s in sections]


def _by_header(sections: Sequence[Section]) -> dict[str, list[Section]]:
    out: dict[str, list[Section]] = {}
    for section in sections:
        out.setdefault(_header(section), []).append(section)
    return out


def _header(section: Section) -> str:
    # A banner is known by its kind: its delimiter may be printed otherwise.
    return section.key.split("\n", 1)[0] if section.banner else section.header


def _differing(
    have: Sequence[Section], want: Sequence[Section]
) -> tuple[list[Section], list[Section]]:
    """The sections (by top-level line) whose lines differ between the two sides."""
    mine, theirs = _by_header(have), _by_header(want)
    changed = [
        header
        for header in {**mine, **theirs}
        if _keys(mine.get(header, ())) != _keys(theirs.get(header, ()))
        and set(section_paths(mine.get(header, ()))) != set(section_paths(theirs.get(header, ())))
    ]
    pick = set(changed)
    return [s for s in have if _header(s) in pick], [s for s in want if _header(s) in pick]


def _result(bound: BoundFeature, state: State, **fields: object) -> FeatureResult:
    return FeatureResult(feature=bound.name, mode=bound.mode, state=state, **fields)  # type: ignore[arg-type]


def intended_mode(
    bound: BoundFeature,
    have: Sequence[Section],
    want: Sequence[Section],
    platform: str | None,
    host: str | None,
) -> FeatureResult:
    actual, wanted = _text(have), _text(want)
    shown = {"actual": actual, "intended": wanted}
    if not have and not want:
        reason = "neither the device nor the intended configuration has a line of it"
        return _result(bound, State.NOT_APPLICABLE, reason=reason, **shown)
    if actual == wanted or _keys(have) == _keys(want):
        return _result(bound, State.COMPLIANT, **shown)
    ordered = bound.feature.ordered
    if ordered:
        have_part, want_part = list(have), list(want)
    else:
        have_part, want_part = _differing(have, want)
        if not have_part and not want_part:
            return _result(bound, State.COMPLIANT, **shown)
    missing, extra = configdiff.line_difference(
        _text(have_part), _text(want_part), platform, host=host
    )
    if not missing and not extra:
        if not ordered:
            return _result(bound, State.COMPLIANT, **shown)
        reason = "the same lines in another order (the feature is ordered)"
        return _result(bound, State.NON_COMPLIANT, reason=reason, **shown)
    fix = configdiff.remediation(_text(have_part), _text(want_part), platform, host=host)
    return _result(
        bound,
        State.NON_COMPLIANT,
        missing=missing,
        extra=extra,
        remediation=tuple(fix),
        **shown,
    )


@functools.lru_cache(maxsize=1024)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


def _matches(rule: LinePath, path: LinePath, regex: bool) -> bool:
    if len(rule) != len(path):
        return False
    if not regex:
        return rule == path
    return all(_pattern(r).fullmatch(p) is not None for r, p in zip(rule, path, strict=True))


def _found(
    rules: Sequence[LinePath], paths: Sequence[LinePath], regex: bool
) -> dict[LinePath, list[LinePath]]:
    """For each rule path, the device paths it matches."""
    if not regex:
        present = set(paths)
        return {rule: [rule] if rule in present else [] for rule in rules}
    return {rule: [p for p in paths if _matches(rule, p, regex)] for rule in rules}


def _leaf_rules(bound: BoundFeature) -> list[LinePath]:
    """The rule's lines as paths; only the deepest of each branch is checked
    (a parent line is there when its child is)."""
    paths = line_paths(bound.lines)
    return [p for i, p in enumerate(paths) if i + 1 == len(paths) or paths[i + 1][:-1] != p]


def must_contain(
    bound: BoundFeature, scope: Sequence[Section], platform: str | None, host: str | None
) -> FeatureResult:
    rules = _leaf_rules(bound)
    regex = bound.feature.regex
    found = _found(rules, section_paths(scope), regex)
    missing = [rule for rule in rules if not found[rule]]
    shown = {"actual": _text(scope), "intended": "\n".join(bound.lines)}
    if not missing:
        return _result(bound, State.COMPLIANT, **shown)
    if regex:
        reason = "regular expressions name no line to add: no remediation"
        return _result(
            bound, State.NON_COMPLIANT, missing=tuple(indented(missing)), reason=reason, **shown
        )
    heads = {rule[0] for rule in missing}
    have = _text([s for s in scope if s.header in heads])
    want = "\n".join([have, *indented(missing)])
    fix = configdiff.remediation(have, want, platform, host=host)
    return _result(
        bound,
        State.NON_COMPLIANT,
        missing=tuple(indented(missing)),
        remediation=tuple(fix),
        **shown,
    )


def must_not_contain(
    bound: BoundFeature, scope: Sequence[Section], platform: str | None, host: str | None
) -> FeatureResult:
    rules = _leaf_rules(bound)  # a parent line names where; its child is what is forbidden
    found = _found(rules, section_paths(scope), bound.feature.regex)
    present = sorted({p for paths in found.values() for p in paths})
    shown = {"actual": _text(scope), "intended": "\n".join(bound.lines)}
    if not present:
        return _result(bound, State.COMPLIANT, **shown)
    heads = {path[0] for path in present}
    touched = [s for s in scope if s.header in heads]
    have = _text(touched)
    keep = [p for p in section_paths(touched) if not any(p[: len(q)] == q for q in present)]
    fix = configdiff.remediation(have, "\n".join(indented(keep)), platform, host=host)
    ordered_present = [p for p in section_paths(touched) if p in set(present)]
    return _result(
        bound,
        State.NON_COMPLIANT,
        extra=tuple(indented(ordered_present)),
        remediation=tuple(fix),
        **shown,
    )
