"""Normalisation: the configuration without what changes by itself.

Two fetches of an unchanged device must compare equal, so lines that a device
rewrites on its own (timestamps, byte counts, the command echo, clock drift)
are dropped per platform (``VOLATILE``), with blank lines, trailing blanks,
``!`` separators and the final ``end``. Each pattern was checked against real
captures (see tests/data/configs/README.md).
"""

from __future__ import annotations

import functools
import re

from opskit.digests import sha256_text

_IOS_LIKE = (
    r"^Building configuration",
    r"^Current configuration\s*:",
    r"^! Last configuration change",
    r"^! NVRAM config last updated",
    r"^! No configuration change since last restart",
    r"^Using \d+ out of \d+ bytes",  # show startup-config
    r"^Uncompressed configuration from \d+ bytes",  # show startup-config, compressed NVRAM
    r"^!Time:",
    r"^ntp clock-period",
    r"^Load for five secs",
    r"^Time source is",
)

_NXOS = (
    *_IOS_LIKE,
    r"^!Command:",  # !Command: show running-config / show startup-config / Checkpoint cmd
    r"^!Running configuration last done at",
    r"^!Startup config saved at",
    r"^!No configuration change since last restart",
)

_XR = (
    *_IOS_LIKE,
    r"^!! Last configuration change",
    r"^!! IOS XR Configuration",  # "!! IOS XR Configuration version = 6.2.1" / "7.3.2"
    # The clock line XR prints before every show command: "Thu Nov 23 10:12:01.123 UTC".
    r"^\w{3} \w{3} +\d+ [\d:.]+ \w+$",
)

_EOS = (
    r"^! Command:",
    r"^! device:",
    r"^! boot system",
    r"^! Time:",
    r"^! Startup-config last modified at",
)

_JUNOS = (
    r"^## Last commit:",
    r"^## Last changed:",
    r"^version ",
)

#: Lines that change without any configuration change, per platform.
VOLATILE: dict[str, tuple[str, ...]] = {
    "cisco_ios": _IOS_LIKE,
    "cisco_xe": _IOS_LIKE,
    "cisco_nxos": _NXOS,
    "cisco_xr": _XR,
    "arista_eos": _EOS,
    "juniper_junos": _JUNOS,
    "linux": (),
}

# IOS-style configurations use "!" as a separator and end with "end".
_BANG_COMMENT_PLATFORMS = frozenset(
    {"cisco_ios", "cisco_xe", "cisco_nxos", "cisco_xr", "arista_eos"}
)
_compiled: dict[str, re.Pattern[str] | None] = {}

# A change normalises the same texts several times per host (the snapshot's
# hash, the comparison after apply, the check of the lines, the hash again):
# the results for the texts of the hosts in flight are kept.
_CACHED_UP_TO = 256 * 1024


def _volatile_pattern(platform: str) -> re.Pattern[str] | None:
    if platform not in _compiled:
        patterns = VOLATILE.get(platform, ())
        _compiled[platform] = (
            re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
        )
    return _compiled[platform]


def is_volatile(line: str, platform: str | None) -> bool:
    """True when ``line`` is one the device rewrites by itself on ``platform``."""
    pattern = _volatile_pattern(platform or "")
    return pattern is not None and pattern.search(line.strip()) is not None


def normalize(config: str, platform: str | None = None) -> str:
    """The configuration without volatile lines, blank lines and separators."""
    if len(config) > _CACHED_UP_TO:
        return _normalize(config, platform or "")
    return _normalized(config, platform or "")


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
    return sha256_text(normalize(config, platform))
