"""Configuration comparison: normalisation, hashes, diffs and remediation.

Public API (used by the runbook executor, the change engine and drift checks):

- ``normalize(config, platform) -> str``: the configuration without volatile
  lines (timestamps, "Building configuration...", "Current configuration : N
  bytes", ``ntp clock-period`` ...; see ``VOLATILE``), trailing blanks and
  comment-only separators, so that two fetches of an unchanged device compare
  equal.
- ``config_hash(config, platform) -> "sha256:<hex>"`` over the normalised text.
- ``diff(before, after, platform=None) -> str``: a unified diff (empty when equal).
- ``remediation(current, target, platform) -> list[str]``: the configuration
  lines that turn ``current`` into ``target``, computed by hier_config (``no``
  negations, sections entered by their parent line, children indented).
- ``predict(current, lines, platform) -> str``: the hierarchical diff that
  merging ``lines`` into ``current`` would produce (for dry runs on devices
  whose connector cannot compute one).
- ``equal(a, b, platform) -> (bool, residual_diff)``.
- ``contains_lines(config, lines, platform)`` / ``missing_lines`` /
  ``present_lines``: hierarchical membership ("interface Fa0/1" then
  " description x" means that description under that interface).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence

from hier_config import HConfig, Platform, WorkflowRemediation, get_hconfig, get_hconfig_driver
from hier_config.platforms.driver_base import HConfigDriverBase

#: hier_config's platform for each netmiko device_type opskit knows.
HIER_PLATFORMS: dict[str, Platform] = {
    "cisco_ios": Platform.CISCO_IOS,
    "cisco_xe": Platform.CISCO_IOS,
    "cisco_nxos": Platform.CISCO_NXOS,
    "cisco_xr": Platform.CISCO_XR,
    "arista_eos": Platform.ARISTA_EOS,
    "juniper_junos": Platform.JUNIPER_JUNOS,
    "huawei": Platform.HUAWEI_VRP,
    "huawei_vrp": Platform.HUAWEI_VRP,
    "vyos": Platform.VYOS,
    "fortinet": Platform.FORTINET_FORTIOS,
    "hp_comware": Platform.HP_COMWARE5,
    "hp_procurve": Platform.HP_PROCURVE,
    "aruba_aoscx": Platform.ARUBA_AOSCX,
}

_IOS_LIKE = (
    r"^Building configuration",
    r"^Current configuration\s*:",
    r"^! Last configuration change",
    r"^! NVRAM config last updated",
    r"^! No configuration change since last restart",
    r"^!Time:",
    r"^ntp clock-period",
    r"^Load for five secs",
    r"^Time source is",
)

#: Lines that change without any configuration change, per platform.
VOLATILE: dict[str, tuple[str, ...]] = {
    "cisco_ios": _IOS_LIKE,
    "cisco_xe": _IOS_LIKE,
    "cisco_nxos": (*_IOS_LIKE, r"^!Command:", r"^!Running configuration last done at"),
    "cisco_xr": (*_IOS_LIKE, r"^!! Last configuration change", r"^\w{3} \w{3} +\d+ [\d:.]+ \w+$"),
    "arista_eos": (r"^! Command:", r"^! device:", r"^! boot system", r"^! Time:"),
    "juniper_junos": (r"^## Last commit:", r"^## Last changed:", r"^version "),
    "linux": (),
}

# IOS-style configurations use "!" as a separator and end with "end".
_BANG_COMMENT_PLATFORMS = frozenset(
    {"cisco_ios", "cisco_xe", "cisco_nxos", "cisco_xr", "arista_eos"}
)
_compiled: dict[str, re.Pattern[str] | None] = {}


def _volatile_pattern(platform: str) -> re.Pattern[str] | None:
    if platform not in _compiled:
        patterns = VOLATILE.get(platform, ())
        _compiled[platform] = (
            re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        )
    return _compiled[platform]


def hier_platform(platform: str | None) -> Platform:
    return HIER_PLATFORMS.get(platform or "", Platform.GENERIC)


def normalize(config: str, platform: str | None = None) -> str:
    """The configuration without volatile lines, blank lines and separators."""
    if len(config) > _CACHED_UP_TO:
        return _normalize(config, platform or "")
    return _normalized(config, platform or "")


# A change normalises the same texts several times per host (the snapshot's
# hash, the comparison after apply, the check of the lines, the hash again):
# the results for the texts of the hosts in flight are kept.
_CACHED_UP_TO = 256 * 1024


@functools.lru_cache(maxsize=64)
def _normalized(config: str, platform: str) -> str:
    return _normalize(config, platform)


def _normalize(config: str, platform: str) -> str:
    volatile = _volatile_pattern(platform)
    bang = platform in _BANG_COMMENT_PLATFORMS
    lines: list[str] = []
    for raw in config.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped:
            continue
        if volatile is not None and volatile.search(stripped):
            continue
        if bang and stripped == "!":
            continue
        lines.append(line)
    if bang and lines and lines[-1].strip() == "end":
        lines.pop()
    return "\n".join(lines) + ("\n" if lines else "")


def config_hash(config: str, platform: str | None = None) -> str:
    return "sha256:" + hashlib.sha256(normalize(config, platform).encode()).hexdigest()


def diff(
    before: str,
    after: str,
    platform: str | None = None,
    *,
    before_name: str = "before",
    after_name: str = "after",
) -> str:
    """Unified diff of the two normalised configurations ("" when equal)."""
    a = normalize(before, platform).splitlines(keepends=True)
    b = normalize(after, platform).splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, fromfile=before_name, tofile=after_name))


def equal(a: str, b: str, platform: str | None = None) -> tuple[bool, str]:
    """(True, "") when both configurations are equal once normalised, else the diff."""
    residual = diff(a, b, platform)
    return residual == "", residual


@functools.cache
def _driver(platform: Platform) -> HConfigDriverBase:
    """One hier_config driver per platform: building one (its pydantic rules)
    costs more than parsing a small configuration, and it is only read."""
    return get_hconfig_driver(platform)


def _hconfig(config: str | Iterable[str], platform: str | None) -> HConfig:
    text = config if isinstance(config, str) else "\n".join(config)
    return get_hconfig(_driver(hier_platform(platform)), normalize(text, platform))


def remediation(current: str, target: str, platform: str | None = None) -> list[str]:
    """Configuration lines that turn ``current`` into ``target`` (hier_config)."""
    workflow = WorkflowRemediation(_hconfig(current, platform), _hconfig(target, platform))
    # The text form closes each section with "exit", so that a following
    # top-level line is not sent inside the previous sub-mode.
    text = str(workflow.remediation_config)
    return [line.rstrip() for line in text.splitlines() if line.strip()]


def predict(current: str, lines: Sequence[str], platform: str | None = None) -> str:
    """Hierarchical diff ("+"/"-" lines) of merging ``lines`` into ``current``."""
    running = _hconfig(current, platform)
    future = running.future(_hconfig(lines, platform))
    return "\n".join(running.unified_diff(future))


def _leaf_paths(config: HConfig) -> list[tuple[str, ...]]:
    return [tuple(child.path()) for child in config.all_children() if not child.children]


def _all_paths(config: HConfig) -> set[tuple[str, ...]]:
    return {tuple(child.path()) for child in config.all_children()}


@functools.lru_cache(maxsize=256)
def _wanted_paths(lines: tuple[str, ...], platform: str | None) -> tuple[tuple[str, ...], ...]:
    # A rollout checks the same lines on every host: parsed once.
    return tuple(_leaf_paths(_hconfig(lines, platform)))


def missing_lines(config: str, lines: Sequence[str], platform: str | None = None) -> list[str]:
    """The (hierarchical) lines of ``lines`` that ``config`` lacks, as "parent > child"."""
    have = _all_paths(_hconfig(config, platform))
    return [" > ".join(p) for p in _wanted_paths(tuple(lines), platform) if p not in have]


def present_lines(config: str, lines: Sequence[str], platform: str | None = None) -> list[str]:
    """The (hierarchical) lines of ``lines`` that ``config`` has, as "parent > child"."""
    have = _all_paths(_hconfig(config, platform))
    return [" > ".join(p) for p in _wanted_paths(tuple(lines), platform) if p in have]


def contains_lines(config: str, lines: Sequence[str], platform: str | None = None) -> bool:
    return not missing_lines(config, lines, platform)


__all__ = [
    "HIER_PLATFORMS",
    "VOLATILE",
    "config_hash",
    "contains_lines",
    "diff",
    "equal",
    "hier_platform",
    "missing_lines",
    "normalize",
    "predict",
    "present_lines",
    "remediation",
]
