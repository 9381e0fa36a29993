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

A configuration that cannot be read is a `ConfigParseError`; rules that
cannot be applied are a `RuleError`; both name the CI.

Example::

    >>> result = evaluate(ci, running, intended, rules_for(ci, ruleset))
    >>> result.state, result.feature("vlans").missing
    (<State.NON_COMPLIANT: 'non-compliant'>, ('vlan 10', ' name users'))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opskit.compliance.intended import Intended
from opskit.compliance.model import CiRules, RuleSet
from opskit.compliance.results import CiCompliance

if TYPE_CHECKING:
    from opskit.inventory import CI


def evaluate(
    ci: CI,
    running_config: str,
    intended: Intended | str | None,
    rules: CiRules | RuleSet,
    *,
    facts: Mapping[str, Any] | None = None,
) -> CiCompliance:
    """The compliance of one CI (see the module docstring)."""
    raise NotImplementedError
