"""Shared helpers of the compliance tests: rule files written to a folder,
CIs built in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opskit.compliance import CiRules, RuleSet, load_rules, rules_for
from opskit.inventory import CI, CIType
from opskit.yamlfile import dump_yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "tests" / "data" / "configs"
NETUTILS = REPO / "tests" / "data" / "compliance" / "netutils"


def make_ci(name: str = "sw1", platform: str = "cisco_ios", **attributes: Any) -> CI:
    groups = tuple(attributes.pop("groups", ()))
    return CI(name=name, type=CIType.SWITCH, platform=platform, groups=groups,
              attributes=attributes)  # fmt: skip


def write_rules(folder: Path, features: list[dict[str, Any]], **top: Any) -> Path:
    """One rule file holding ``features`` (platform cisco_ios unless given)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = top.pop("file", "rules.yaml")
    document = {"version": "1.0.0", "platform": "cisco_ios", **top, "features": features}
    path = folder / name
    path.write_text(dump_yaml(document))
    return path


def ci_rules(folder: Path, features: list[dict[str, Any]], ci: CI | None = None) -> CiRules:
    path = write_rules(folder, features, platform=(ci or make_ci()).platform)
    ruleset: RuleSet = load_rules(path)
    return rules_for(ci or make_ci(), ruleset)
