"""Evaluating one CI's configuration against its rules and intended configuration.

``evaluate(ci, running_config, intended, rules, *, facts=None) -> CiCompliance``

- ``ci``: the `CI` (its name and platform; rule values were rendered with
  its CMDB data by `rules_for`);
- ``running_config``: the configuration text as the device prints it (live
  or from a backup); normalised first (`opskit.configdiff.normalize`);
- ``intended``: an `Intended`, a plain text, or None (then every
  ``intended``-mode feature is ``unknown``: "no intended configuration");
- ``rules``: the CI's `CiRules` (from `rules_for`), or a `RuleSet` (then
  ``rules_for(ci, rules)`` is taken);
- ``facts``: what structured features read, by source: a NAPALM getter's
  result by getter name (``{"get_vlans": {...}}``) or a show command's raw
  output by command (``{"show vlan brief": "VLAN Name ..."}``); a missing
  source makes that feature ``unknown``.

Every top-level line of the configuration belongs to at most one feature
(its children with it); lines no feature claims are ``unmanaged``. Per
feature, by mode:

- ``intended``: the device's lines of the feature against the intended
  configuration's (as sets of lines under their parents, or also in order
  with ``ordered: true``); ``missing`` / ``extra`` / ``remediation`` from
  hier_config (`opskit.configdiff`); neither side having a line of it:
  ``not-applicable``;
- ``must-contain``: each line (a child indented under its parent) must be
  present in the feature's lines (or anywhere, without ``match``);
  ``regex: true``: each line is a regular expression matching a whole line
  at its level; missing ones are listed; remediation adds them (not for
  regular expressions, which name no line to send);
- ``must-not-contain``: present ones are ``extra``; remediation removes them;
- ``structured``: napalm_validate's comparison of the check's document
  with the parsed facts; its report is in ``details``.

A configuration hier_config cannot read (an unclosed banner) makes the CI
``unknown`` with hier_config's one-line reason (host and line); rules
that cannot be rendered for the CI are a `RuleError` (file, line, field);
rules or an intended configuration of another CI are a `UsageError`.

Example::

    >>> result = evaluate(ci, running, intended, rules_for(ci, ruleset))
    >>> result.state, result.feature("vlans").missing
    (<State.NON_COMPLIANT: 'non-compliant'>, ('vlan 10', '  name users'))
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opskit.compliance.intended import Intended
from opskit.compliance.model import BoundFeature, CiRules, RuleSet
from opskit.compliance.modes import intended_mode, must_contain, must_not_contain
from opskit.compliance.results import CiCompliance, FeatureResult, Mode, State
from opskit.compliance.rules import rules_for
from opskit.compliance.sections import Section, split_sections
from opskit.compliance.structured import structured
from opskit.configdiff import ConfigComputeError, ConfigParseError, config_hash
from opskit.errors import UsageError

if TYPE_CHECKING:
    from opskit.inventory import CI


class Claims:
    """Which feature a top-level line belongs to: one regular expression for
    all features (the rules guarantee no line matches two)."""

    def __init__(self, features: Sequence[BoundFeature]) -> None:
        self.names: dict[str, str] = {}
        parts = []
        for index, bound in enumerate(features):
            if bound.feature.match:
                group = f"f{index}"
                self.names[group] = bound.name
                alternatives = "|".join(f"(?:{p})" for p in bound.feature.match)
                parts.append(f"(?P<{group}>{alternatives})")
        self.claimed = {bound.name for bound in features if bound.feature.match}
        self.each = [
            (re.compile("|".join(f"(?:{p})" for p in b.feature.match)), b.name)
            for b in features
            if b.feature.match
        ]
        try:
            self.pattern: re.Pattern[str] | None = re.compile("|".join(parts)) if parts else None
        except re.error:  # the rules' own group names repeat: one pattern at a time
            self.pattern = None

    def feature_of(self, header: str) -> str | None:
        if self.pattern is None:
            return next((name for p, name in self.each if p.match(header)), None)
        found = self.pattern.match(header)
        return self.names.get(found.lastgroup or "") if found is not None else None

    def group(self, sections: Sequence[Section]) -> tuple[dict[str, list[Section]], list[str]]:
        """Sections by feature, and the top-level lines no feature claims."""
        out: dict[str, list[Section]] = {name: [] for name in self.claimed}
        unmanaged: dict[str, None] = {}
        for section in sections:
            name = self.feature_of(section.header)
            if name is None:
                unmanaged[section.header] = None
            else:
                out[name].append(section)
        return out, list(unmanaged)


def _intended_text(intended: Intended | str | None) -> str | None:
    return intended.text if isinstance(intended, Intended) else intended


def evaluate(
    ci: CI,
    running_config: str,
    intended: Intended | str | None,
    rules: CiRules | RuleSet,
    *,
    facts: Mapping[str, Any] | None = None,
) -> CiCompliance:
    """The compliance of one CI (see the module docstring)."""
    ci_rules = rules if isinstance(rules, CiRules) else rules_for(ci, rules)
    for name, what in ((ci_rules.ci, "rules"), (getattr(intended, "ci", ci.name), "intended")):
        if name != ci.name:
            raise UsageError(f"evaluate {ci.name}: the {what} given are {name}'s")
    template = intended.template_digest if isinstance(intended, Intended) else None
    inventory = intended.inventory_digest if isinstance(intended, Intended) else None
    digests = {
        "rules_digest": ci_rules.digest,
        "template_digest": template,
        "inventory_digest": inventory,
    }
    try:
        results, unmanaged = _features(
            ci, running_config, _intended_text(intended), ci_rules, facts or {}
        )
    except (ConfigParseError, ConfigComputeError) as exc:
        features = [(f.name, f.mode) for f in ci_rules.features]
        return CiCompliance.unknown(ci.name, ci.platform, str(exc), features=features, **digests)
    return CiCompliance(
        ci=ci.name,
        platform=ci.platform,
        features=tuple(results),
        unmanaged=tuple(unmanaged),
        config_digest=config_hash(running_config, ci.platform),
        **digests,
    )


def _features(
    ci: CI, running: str, intended: str | None, ci_rules: CiRules, facts: Mapping[str, Any]
) -> tuple[list[FeatureResult], list[str]]:
    claims = Claims(ci_rules.features)
    sections = split_sections(running, ci.platform, host=ci.name)
    have, unmanaged = claims.group(sections)
    want: dict[str, list[Section]] | None = None
    if intended is not None and any(f.mode is Mode.INTENDED for f in ci_rules.features):
        wanted = split_sections(intended, ci.platform, host=f"{ci.name} (intended)")
        want, _ = claims.group(wanted)
    results = []
    for bound in ci_rules.features:
        scope = have[bound.name] if bound.feature.match else sections
        results.append(_feature(bound, scope, want, ci, facts))
    return results, unmanaged


def _feature(
    bound: BoundFeature,
    scope: list[Section],
    want: dict[str, list[Section]] | None,
    ci: CI,
    facts: Mapping[str, Any],
) -> FeatureResult:
    if not bound.applies:
        return FeatureResult(
            feature=bound.name,
            mode=bound.mode,
            state=State.NOT_APPLICABLE,
            reason="its condition (when) is false for this CI",
        )
    if bound.mode is Mode.INTENDED:
        if want is None:
            return FeatureResult(
                feature=bound.name,
                mode=bound.mode,
                state=State.UNKNOWN,
                reason="no intended configuration",
            )
        return intended_mode(bound, scope, want[bound.name], ci.platform, ci.name)
    if bound.mode is Mode.MUST_CONTAIN:
        return must_contain(bound, scope, ci.platform, ci.name)
    if bound.mode is Mode.MUST_NOT_CONTAIN:
        return must_not_contain(bound, scope, ci.platform, ci.name)
    return structured(bound, facts, ci.platform)
