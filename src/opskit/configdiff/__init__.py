"""Configuration comparison: normalisation, hashes, diffs and remediation.

Public API (used by the runbook executor, the change engine and drift checks):

- ``normalize(config, platform) -> str``: the configuration without volatile
  lines (timestamps, "Building configuration...", "Current configuration : N
  bytes", ``ntp clock-period`` ...; see ``VOLATILE``), trailing blanks and
  comment-only separators, so that two fetches of an unchanged device compare
  equal.
- ``config_hash(config, platform) -> "sha256:<hex>"`` over the normalised text.
- ``diff(before, after, platform=None) -> str``: a unified diff (empty when
  equal), linear in practice (``textdiff``).
- ``equal(a, b, platform) -> (bool, residual_diff)``.
- ``parse(config, platform, host=, duplicates="merge"|"keep")``: the
  hier_config tree of any configuration a device prints (repeated lines are
  tolerated; see ``model``); a configuration it cannot read is a
  `ConfigParseError` naming the host and the line; what hier_config cannot
  compute from two readable configurations is a `ConfigComputeError`.
- ``remediation(current, target, platform) -> list[str]``: the configuration
  lines that turn ``current`` into ``target``, computed by hier_config (``no``
  negations, sections entered by their parent line, children indented).
- ``line_difference(current, target, platform) -> (missing, extra)``: the
  lines each side lacks, hierarchically (hier_config's difference).
- ``line_restoration(current, target, platform)``: the same by counting every
  copy of every line (the last resort of a rollback).
- ``hier_diff(before, after, platform)``: the hierarchical diff of two
  configurations ("+"/"-" lines under their parents).
- ``predict(current, lines, platform) -> str``: the hierarchical diff that
  merging ``lines`` into ``current`` would produce (for dry runs on devices
  whose connector cannot compute one).
- ``contains_lines(config, lines, platform)`` / ``missing_lines`` /
  ``present_lines``: hierarchical membership ("interface Fa0/1" then
  " description x" means that description under that interface);
  ``wanted_paths(lines, platform)``: those lines as the paths looked up.
"""

from __future__ import annotations

from opskit.configdiff.model import HIER_PLATFORMS, ConfigParseError, hier_platform, parse
from opskit.configdiff.normal import VOLATILE, config_hash, is_volatile, normalize
from opskit.configdiff.remediate import (
    LINE_BY_LINE_PLATFORMS,
    ConfigComputeError,
    contains_lines,
    hier_diff,
    line_difference,
    line_restoration,
    missing_lines,
    predict,
    present_lines,
    remediation,
    wanted_paths,
)
from opskit.configdiff.textdiff import diff, equal

__all__ = [
    "HIER_PLATFORMS",
    "LINE_BY_LINE_PLATFORMS",
    "VOLATILE",
    "ConfigComputeError",
    "ConfigParseError",
    "config_hash",
    "contains_lines",
    "diff",
    "equal",
    "hier_diff",
    "hier_platform",
    "is_volatile",
    "line_difference",
    "line_restoration",
    "missing_lines",
    "normalize",
    "parse",
    "predict",
    "present_lines",
    "remediation",
    "wanted_paths",
]
