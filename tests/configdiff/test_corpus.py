"""opskit.configdiff on real public configurations (tests/data/configs/README.md).

Every configuration parses (repeated lines included), normalises, equals
itself and needs no remediation towards itself; every timestamp a device
prints in a configuration's comments is volatile, so that a saved device's
startup configuration equals its running one.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from opskit import configdiff
from tests.config_diff_support import apply_unified

DATA = Path(__file__).parents[1] / "data" / "configs"
CONFIGS = sorted(p for p in DATA.glob("*/*") if p.parent.name != "show_interfaces")


def platform_of(path: Path) -> str:
    return path.parent.name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_configuration_parses_and_equals_itself(path: Path) -> None:
    text = path.read_text()
    platform = platform_of(path)
    normal = configdiff.normalize(text, platform)
    assert normal.strip(), "nothing left after normalisation"
    assert configdiff.parse(text, platform).children
    assert configdiff.parse(text, platform, duplicates="keep").children
    assert configdiff.equal(text, text, platform) == (True, "")
    assert configdiff.equal(text, normal, platform) == (True, "")
    assert configdiff.remediation(text, text, platform) == []
    if platform in configdiff.LINE_BY_LINE_PLATFORMS:
        assert configdiff.line_restoration(text, text, platform) == []


def test_the_corpus_covers_every_platform_with_volatile_lines() -> None:
    platforms = {platform_of(p) for p in CONFIGS}
    assert {"cisco_ios", "cisco_nxos", "cisco_xr", "arista_eos", "juniper_junos"} <= platforms
    assert len(CONFIGS) >= 45


# A comment line that carries a clock time ("10:12:01") is written by the device.
_TIMESTAMPED_COMMENT = re.compile(r"^\s*(!|#).*\b\d{1,2}:\d{2}:\d{2}\b")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_timestamped_comment_of_a_real_capture_is_volatile(path: Path) -> None:
    platform = platform_of(path)
    for line in path.read_text().splitlines():
        if _TIMESTAMPED_COMMENT.match(line) or line.startswith(
            ("Building configuration", "Current configuration")
        ):
            assert configdiff.is_volatile(line, platform), f"{platform}: {line!r}"


def _with_header(capture: str, header: str) -> str:
    body = [line for line in capture.splitlines() if not line.startswith("!")]
    return header + "\n" + "\n".join(body) + "\n"


def test_a_saved_nxos_startup_configuration_equals_the_running_one() -> None:
    """NX-OS's real startup header (napalm's nxos_ssh capture) on the running body:
    the configuration saved by `copy running-config startup-config`."""
    running = (DATA / "cisco_nxos" / "napalm-nxos_ssh-show_running_config.txt").read_text()
    real_startup = (DATA / "cisco_nxos" / "napalm-nxos_ssh-show_startup_config.txt").read_text()
    header = "\n".join(line for line in real_startup.splitlines()[:5] if line.startswith("!"))
    assert "!Startup config saved at:" in header and "!Command: show startup-config" in header
    saved = _with_header(running, header)
    assert configdiff.equal(running, saved, "cisco_nxos") == (True, "")
    # The real running header (batfish's NX-OS 9.2 captures) is volatile too.
    leaf = (DATA / "cisco_nxos" / "batfish-evpn-nxos-symmetric-leaf1.cfg").read_text()
    assert "!Running configuration last done at:" in leaf
    restamped = leaf.replace("Tue Jun 25 17:", "Wed Jun 26 09:")
    assert restamped != leaf
    assert configdiff.equal(leaf, restamped, "cisco_nxos") == (True, "")


def test_real_running_and_startup_pairs_are_equal_once_normalised() -> None:
    pairs = [
        ("cisco_ios", "napalm-ios-show_running_config.txt", "napalm-ios-show_startup_config.txt"),
        ("arista_eos", "napalm-eos-show_running_config.txt", "napalm-eos-show_startup_config.txt"),
        (
            "cisco_nxos",
            "napalm-nxos-show_running-config.txt",
            "napalm-nxos-show_startup-config.txt",
        ),
    ]
    for platform, running, startup in pairs:
        a = (DATA / platform / running).read_text()
        b = (DATA / platform / startup).read_text()
        assert configdiff.equal(a, b, platform) == (True, ""), platform
    # A later save restamps EOS's startup header: still the same configuration.
    eos = (DATA / "arista_eos" / "napalm-eos-show_startup_config.txt").read_text()
    later = eos.replace("Sun Sep 11 18:35:01 2016", "Mon Sep 12 07:01:44 2016")
    assert later != eos and configdiff.equal(eos, later, "arista_eos")[0]
    # IOS: the NVRAM stamp and show startup-config's size line.
    ios = (DATA / "cisco_ios" / "batfish-testconfigs-interface-parsing.cfg").read_text()
    restamped = ios.replace("13:48:48 PST", "14:02:10 PST").replace("12345 bytes", "12400 bytes")
    sized = "Using 1614 out of 262136 bytes\n" + restamped
    assert configdiff.equal(ios, sized, "cisco_ios") == (True, "")


def test_repeated_certificate_lines_are_kept_and_read() -> None:
    text = (DATA / "cisco_ios" / "batfish-unit-cisco_crypto.cfg").read_text()
    config = configdiff.parse(text, "cisco_ios")
    chain = next(c for c in config.children if c.text == "crypto ca certificate chain blahblah")
    certificate = chain.children[0]
    raw = text.split("crypto ca certificate chain blahblah\n", 1)[1].split("\n  quit", 1)[0]
    hex_lines = [line for line in raw.splitlines()[1:] if line.strip()]
    assert len(hex_lines) > len(set(hex_lines))  # the capture repeats hex lines
    assert [c.text for c in certificate.children][: len(hex_lines)] == [
        line.strip() for line in hex_lines
    ]


@pytest.mark.parametrize("platform", ["cisco_ios", "cisco_nxos", "arista_eos", "juniper_junos"])
def test_diffs_between_real_configurations_rebuild_the_target(platform: str) -> None:
    texts = [
        configdiff.normalize(p.read_text(), platform) for p in CONFIGS if p.parent.name == platform
    ]
    for before, after in itertools.pairwise(texts):
        residual = configdiff.diff(before, after, platform)
        assert (residual == "") == (before == after)
        assert apply_unified(before.splitlines(), residual) == after.splitlines()
