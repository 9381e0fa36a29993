"""Configuration compliance: rules, intended configurations, evaluation.

The engine half of compliance (recording runs in the ledger, history and
remediation changes build on it). Public API:

- ``load_rules(path) -> RuleSet``: a rule file or a folder of them
  (``compliance/`` in a workspace: `workspace_rules`), validated against
  ``opskit/schemas/compliance.json``; versioned (each file's ``version``)
  and digested (``RuleSet.digest``). Errors: `RuleError` (file, line, field).
- ``rules_for(ci, ruleset, inventory=None) -> CiRules``: the features of the
  files for the CI's platform and groups, rendered with its CMDB data.
- ``render_intended(ci, inventory, templates_dir) -> Intended``: the CI's
  intended configuration (text, template digest, inventory digest).
  Errors: `IntendedError` (CI, template, line).
- ``evaluate(ci, running_config, intended, rules, *, facts=None) -> CiCompliance``:
  per feature a `FeatureResult` (state, missing, extra, remediation), the
  unmanaged lines, and the digests it was computed from.
- ``gather_facts(connector, ci_rules) -> dict``: what the CI's structured
  features read (show commands, NAPALM getters), through an open connector.
- ``CiCompliance.unknown(ci, platform, reason, features=...)``: a CI that
  could not be evaluated; ``FleetCompliance(results)``: counts and rates.

Example::

    from opskit.compliance import evaluate, load_rules, render_intended, rules_for

    rules = load_rules(ws.root / "compliance")
    ci = inventory.get("lab-sw01")
    intended = render_intended(ci, inventory, ws.templates_dir)
    result = evaluate(ci, running_config, intended, rules_for(ci, rules, inventory))
    result.state                     # State.NON_COMPLIANT
    result.feature("vlans").remediation
    result.to_dict()                 # JSON for the ledger
"""

from __future__ import annotations

from opskit.compliance.binding import cmdb_context
from opskit.compliance.evaluate import evaluate
from opskit.compliance.facts import FactUnavailable, gather_facts
from opskit.compliance.intended import Intended, IntendedError, render_intended, template_name
from opskit.compliance.model import (
    BoundFeature,
    CiRules,
    Feature,
    RuleError,
    RuleFile,
    RuleSet,
    StructuredCheck,
)
from opskit.compliance.results import CiCompliance, FeatureResult, FleetCompliance, Mode, State
from opskit.compliance.rules import load_rule_file, load_rules, rules_for, workspace_rules

__all__ = [
    "BoundFeature",
    "CiCompliance",
    "CiRules",
    "FactUnavailable",
    "Feature",
    "FeatureResult",
    "FleetCompliance",
    "Intended",
    "IntendedError",
    "Mode",
    "RuleError",
    "RuleFile",
    "RuleSet",
    "State",
    "StructuredCheck",
    "cmdb_context",
    "evaluate",
    "gather_facts",
    "load_rule_file",
    "load_rules",
    "render_intended",
    "rules_for",
    "template_name",
    "workspace_rules",
]
