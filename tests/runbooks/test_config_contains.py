"""A runbook's ``config_contains`` reads only the sections its lines are in
(`opskit.runbooks.expectations.missing_config_lines`): on the real corpus and
on generated configurations its verdict, and its report of what is missing,
are `configdiff.missing_lines`' on the whole configuration."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit import configdiff
from opskit.compliance.sections import FAST_PLATFORMS
from opskit.runbooks.expectations import missing_config_lines
from tests.compliance.support import CONFIGS
from tests.compliance.test_sections import LINES

CORPUS = sorted(p for p in CONFIGS.glob("*/*") if p.parent.name in FAST_PLATFORMS | {"cisco_xr"})


@dataclass(frozen=True)
class FakeCI:
    """What the check reads of a CI: its name (for errors) and platform."""

    name: str
    platform: str


def _expected(config: str, lines: list[str], platform: str) -> list[str] | type[Exception]:
    try:
        return configdiff.missing_lines(config, lines, platform, host="sw1")
    except configdiff.ConfigParseError:
        return configdiff.ConfigParseError


def _actual(config: str, lines: list[str], platform: str) -> list[str] | type[Exception]:
    try:
        return missing_config_lines(config, lines, FakeCI("sw1", platform))
    except configdiff.ConfigParseError as exc:
        assert "sw1" in str(exc)
        return configdiff.ConfigParseError


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_sections_of_real_configurations_give_the_whole_texts_verdict(path: Path) -> None:
    config, platform = path.read_text(), path.parent.name
    rng = random.Random(path.name)
    lines = config.splitlines()
    for _ in range(5):  # a few lines of the configuration, in place, and one it lacks
        start = rng.randrange(len(lines))
        wanted = lines[start : start + rng.randint(1, 6)]
        assert _actual(config, wanted, platform) == _expected(config, wanted, platform)
        absent = [*wanted, " description not-in-this-configuration"]
        assert _actual(config, absent, platform) == _expected(config, absent, platform)


@settings(max_examples=200)
@given(
    config=st.lists(LINES, max_size=40),
    wanted=st.lists(LINES, min_size=1, max_size=6),
    platform=st.sampled_from(sorted(FAST_PLATFORMS | {"cisco_xr", "juniper_junos"})),
)
def test_generated_configurations_give_the_whole_texts_verdict(
    config: list[str], wanted: list[str], platform: str
) -> None:
    text = "\n".join(config)
    expected = _expected(text, wanted, platform)
    assert _actual(text, wanted, platform) == expected
    # Twice: the second answer is the remembered one.
    assert _actual(text, wanted, platform) == expected


@pytest.mark.parametrize(
    ("config", "wanted"),
    [
        # hier_config's IOS rule "^ no ip address" -> "" leaves " no ip address x"
        # of this line; read a second time it would become " x".
        ("interface Gi1\n no ip address no ip address x\n", ["interface Gi1", " x"]),
        # A repeated section: hier_config merges both.
        ("interface Gi1\n a\nhostname h\ninterface Gi1\n b\n", ["interface Gi1", " b", " a"]),
    ],
)
def test_lines_read_differently_alone_are_read_in_the_whole(config: str, wanted: list[str]) -> None:
    assert _actual(config, wanted, "cisco_ios") == _expected(config, wanted, "cisco_ios")
