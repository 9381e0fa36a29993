"""The hierarchical model (hier_config) of any configuration a device prints.

hier_config refuses a child line that repeats under the same parent
(``DuplicateChildError``), but real devices print such configurations: a
``show run all`` with ``description`` twice under an interface, NX-OS listing
an interface section twice, certificate chains with repeated hex lines, an
emulator keeping an ``ip route`` sent twice. Two readings are offered:

- ``merge`` (the default, for remediation, prediction and membership): a
  repeated line is the same line, and a repeated section's children are
  merged into the first one, except under parents where the platform allows
  duplicates (hier_config's ``parent_allows_duplicate_child`` rules, extended
  here with IOS certificate chains), which keep every copy;
- ``keep``: every line is kept, in order, duplicates included (the
  line-by-line restoration counts copies).

Anything hier_config cannot read is a `ConfigParseError` (an `OpskitError`)
naming the host and the line, never another exception.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Literal

from hier_config import HConfig, HConfigChild, Platform, get_hconfig_driver
from hier_config.constructors import _load_from_string_lines
from hier_config.models import MatchRule, ParentAllowsDuplicateChildRule
from hier_config.platforms.driver_base import HConfigDriverBase

from opskit.configdiff.normal import normalize
from opskit.errors import OpskitError

Duplicates = Literal["merge", "keep"]

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

# Sections whose identical lines are distinct content (a certificate's hex dump).
_EXTRA_DUPLICATE_PARENTS: dict[Platform, tuple[tuple[str, ...], ...]] = {
    Platform.CISCO_IOS: (
        ("crypto pki certificate chain ", "certificate "),
        ("crypto ca certificate chain ", "certificate "),
    ),
    Platform.CISCO_NXOS: (("crypto ca certificate ", "certificate "),),
}


#: Commands that open a configuration sub-mode (IOS family): a repeated one
#: enters the same section, even when it has no children.
SECTION_OPENERS = re.compile(
    r"^(?:interface|vlan \d+|router|line|ip(?:v6)? access-list|route-map|policy-map|class-map"
    r"|ip vrf|vrf definition|vrf context|key chain|ip dhcp pool|controller|redundancy"
    r"|spanning-tree mst configuration|track|aaa group|crypto|object-group|banner)\b"
)


class ConfigParseError(OpskitError):
    """A configuration the hierarchical model cannot read; names the host and line."""

    def __init__(self, reason: str, *, host: str | None = None, line: int | None = None,
                 text: str | None = None) -> None:  # fmt: skip
        self.host = host
        self.line = line
        where = f"line {line}" if line else "the configuration"
        if text is not None:
            where += f" ({text[:60]!r})"
        prefix = f"{host}: " if host else ""
        super().__init__(f"{prefix}cannot read the configuration at {where}: {reason}")


def hier_platform(platform: str | None) -> Platform:
    return HIER_PLATFORMS.get(platform or "", Platform.GENERIC)


@functools.cache
def driver(platform: Platform) -> HConfigDriverBase:
    """One hier_config driver per platform: building one (its pydantic rules)
    costs more than parsing a small configuration, and it is only read."""
    built = get_hconfig_driver(platform)
    for parents in _EXTRA_DUPLICATE_PARENTS.get(platform, ()):
        rule = ParentAllowsDuplicateChildRule(
            match_rules=tuple(MatchRule(startswith=p) for p in parents)
        )
        built.rules.parent_allows_duplicate_child.append(rule)
    return built


class _Child(HConfigChild):
    keep_duplicates = False

    def instantiate_child(self, text: str) -> HConfigChild:
        child = (_KeptChild if self.keep_duplicates else _Child)(self, text)
        return child

    def add_child(
        self, text: str, *, return_if_present: bool = False, check_if_present: bool = True
    ) -> HConfigChild:
        # A repeated line is the line already there (its children merge into it).
        return super().add_child(text, return_if_present=True, check_if_present=check_if_present)


class _KeptChild(_Child):
    keep_duplicates = True

    def _is_duplicate_child_allowed(self) -> bool:
        return True


class _Config(HConfig):
    def __init__(self, driver: HConfigDriverBase, duplicates: Duplicates) -> None:
        super().__init__(driver)
        self.keep_duplicates = duplicates == "keep"

    def instantiate_child(self, text: str) -> HConfigChild:
        return (_KeptChild if self.keep_duplicates else _Child)(self, text)

    def add_child(
        self, text: str, *, return_if_present: bool = False, check_if_present: bool = True
    ) -> HConfigChild:
        return super().add_child(text, return_if_present=True, check_if_present=check_if_present)

    def _is_duplicate_child_allowed(self) -> bool:
        return self.keep_duplicates


def parse(
    config: str | Iterable[str],
    platform: str | None,
    *,
    host: str | None = None,
    duplicates: Duplicates = "merge",
) -> HConfig:
    """The normalised configuration as a hier_config tree (see the module doc)."""
    text = config if isinstance(config, str) else "\n".join(config)
    normal = normalize(text, platform)
    try:
        return _load(normal, driver(hier_platform(platform)), duplicates)
    except OpskitError:
        raise
    except Exception as exc:  # hier_config signals unreadable input with bare exceptions
        line, line_text = _culprit(normal, text, platform, duplicates)
        raise ConfigParseError(_reason(exc), host=host, line=line, text=line_text) from exc


def _load(text: str, hdriver: HConfigDriverBase, duplicates: Duplicates) -> HConfig:
    # As hier_config's get_hconfig, with this module's tolerant root.
    config = _Config(hdriver, duplicates)
    for rule in hdriver.rules.full_text_sub:
        text = re.sub(rule.search, rule.replace, text)
    _load_from_string_lines(config, text)
    for child in tuple(config.all_children()):
        child.delete_sectional_exit()
    for callback in hdriver.rules.post_load_callbacks:
        callback(config)
    if duplicates == "keep":
        _merge_sections(config)
    return config


def _merge_sections(node: HConfig | HConfigChild) -> None:
    """A repeated section header enters the same section: one section, all its
    children (leaves keep every copy)."""
    first: dict[str, HConfigChild] = {}
    for child in list(node.children):
        earlier = first.get(child.text)
        if earlier is None:
            first[child.text] = child
        elif child.children or earlier.children or SECTION_OPENERS.match(child.text):
            for grandchild in list(child.children):
                earlier.add_deep_copy_of(grandchild)
            child.delete()
    for child in node.children:
        _merge_sections(child)


def _reason(exc: Exception) -> str:
    message = str(exc).strip() or type(exc).__name__
    if "still in a banner" in message:
        return "a banner is never closed"
    return message


def _culprit(
    normal: str, raw: str, platform: str | None, duplicates: Duplicates
) -> tuple[int | None, str | None]:
    """The first line at which the normalised text stops parsing, as a line of ``raw``."""
    lines = normal.splitlines()
    hdriver = driver(hier_platform(platform))
    lo, hi = 1, len(lines)
    # Bisect on prefixes: only on the error path.
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            _load("\n".join(lines[:mid]), hdriver, duplicates)
        except Exception:
            hi = mid
        else:
            lo = mid + 1
    if not lines:
        return None, None
    bad = lines[lo - 1]
    raw_lines = raw.splitlines()
    number = next((n for n, r in enumerate(raw_lines, 1) if r.rstrip() == bad), None)
    return number, bad.strip()
