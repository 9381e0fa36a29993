"""Property-based tests (Hypothesis) of the configuration model.

- any text a device could print (random indentation, repeated lines, control
  characters, unclosed banners) is read or refused with a one-line
  `ConfigParseError`, never another exception; it equals itself and needs no
  remediation towards itself;
- a diff rebuilds the target, and equality agrees with the normalised texts;
- the line-by-line restoration, applied to a device that keeps every copy of
  a line, turns any configuration into any other (duplicates included).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit import configdiff
from opskit.errors import OpskitError
from tests.config_diff_support import apply_unified

PLATFORMS = ["cisco_ios", "cisco_nxos", "cisco_xr", "arista_eos", "juniper_junos", None]
WORDS = ["interface Fa0/1", "description x", "ip route 10.0.0.0 255.0.0.0 Null0", "shutdown",
         "hostname r1", "!", "end", "banner motd ^C", "^C", "router bgp 1", "address-family ipv4",
         "certificate 01", "ABCD 0123", "}", "{", "set system host-name r1",
         "## Last commit: x"]  # fmt: skip
CONTROL = st.sampled_from(["\x00", "\x01", "\x07", "\x0b", "\x0c", "\x1b", "\x1c", "\x7f", "\x85",
                           "\u2028", "\u202e", "\t", "\r"])  # fmt: skip

line = st.builds(
    lambda indent, text, junk: indent + text + junk,
    st.sampled_from(["", " ", "  ", "   ", "    ", "\t", " \t "]),
    st.one_of(st.sampled_from(WORDS), st.text(min_size=1, max_size=12)),
    st.one_of(st.just(""), CONTROL, st.text(max_size=3)),
)
device_text = st.lists(line, max_size=30).map("\n".join)
# The number of examples comes from the active Hypothesis profile (make test / make fuzz).
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(text=device_text, platform=st.sampled_from(PLATFORMS))
def test_any_text_is_read_or_refused_in_one_line(text: str, platform: str | None) -> None:
    assert configdiff.equal(text, text, platform) == (True, "")
    try:
        configdiff.parse(text, platform)
        configdiff.parse(text, platform, duplicates="keep")
        remediation = configdiff.remediation(text, text, platform)
        restoration = (
            configdiff.line_restoration(text, text, platform)
            if platform in configdiff.LINE_BY_LINE_PLATFORMS
            else []
        )
    except configdiff.ConfigParseError as exc:
        message = str(exc)
        assert "\n" not in message
        assert "cannot read the configuration" in message
        return
    assert remediation == []
    assert restoration == []


@FAST
@given(a=device_text, b=device_text, platform=st.sampled_from(PLATFORMS))
def test_remediation_and_prediction_between_any_texts_never_crash(
    a: str, b: str, platform: str | None
) -> None:
    operations = [
        lambda: configdiff.remediation(a, b, platform, host="sw1"),
        lambda: configdiff.predict(a, b.splitlines(), platform, host="sw1"),
        lambda: configdiff.hier_diff(a, b, platform, host="sw1"),
        lambda: configdiff.missing_lines(a, b.splitlines(), platform, host="sw1"),
        lambda: configdiff.line_difference(a, b, platform, host="sw1"),
    ]
    if platform in configdiff.LINE_BY_LINE_PLATFORMS:
        operations.append(lambda: configdiff.line_restoration(a, b, platform, host="sw1"))
    for operation in operations:
        try:
            operation()
        except OpskitError as exc:
            assert str(exc).startswith("sw1: cannot ") and "\n" not in str(exc)


def _tree_lines(tree: Any) -> tuple[str, ...]:
    return tuple(part for line in tree.lines() for part in line.splitlines())


@FAST
@given(a=device_text, b=device_text, platform=st.sampled_from(PLATFORMS))
def test_remembered_comparisons_are_fresh_ones_and_errors_name_each_host(
    a: str, b: str, platform: str | None
) -> None:
    # Small texts are remembered by content (a fleet's sections repeat): the
    # answer is the one computed afresh, and an error still names its own host.
    from opskit.configdiff import remediate

    for host in ("sw1", "sw2"):
        try:
            fix = configdiff.remediation(a, b, platform, host=host)
            missing, extra = configdiff.line_difference(a, b, platform, host=host)
        except OpskitError as exc:
            assert str(exc).startswith(f"{host}: cannot ") and "\n" not in str(exc)
            continue
        have, want = configdiff.parse(a, platform), configdiff.parse(b, platform)
        assert missing == _tree_lines(want.difference(have))
        assert extra == _tree_lines(have.difference(want))
        remediate._remembered_remediation.cache_clear()
        assert fix == configdiff.remediation(a, b, platform, host=host)


@FAST
@given(text=device_text)
def test_a_parse_error_names_the_host_and_a_line(text: str) -> None:
    broken = text + "\nbanner motd ^C\nnever closed"
    try:
        configdiff.parse(broken, "cisco_ios", host="sw1")
    except configdiff.ConfigParseError as exc:
        assert str(exc).startswith("sw1: cannot read the configuration at ")
        assert "\n" not in str(exc)
        if exc.line is not None:
            assert 1 <= exc.line <= len(broken.splitlines())


lines_of = st.lists(st.sampled_from(["a", "b", "c", " x", " y", "!", "d", " a"]), max_size=40)


@FAST
@given(a=lines_of, b=lines_of)
def test_a_diff_rebuilds_the_target(a: list[str], b: list[str]) -> None:
    before, after = "\n".join(a), "\n".join(b)
    norm_a = configdiff.normalize(before, "cisco_ios")
    norm_b = configdiff.normalize(after, "cisco_ios")
    equal, residual = configdiff.equal(before, after, "cisco_ios")
    assert equal == (norm_a == norm_b) and (residual == "") == equal
    assert apply_unified(norm_a.splitlines(), residual) == norm_b.splitlines()


# -- line-by-line restoration on a device that keeps every copy of a line ---
LEAVES = ["ip route 10.0.0.0 255.0.0.0 Null0", "logging host 10.1.1.1", "hostname r1",
          "snmp-server community ro RO"]  # fmt: skip
SECTIONS = ["interface FastEthernet0/1", "interface FastEthernet0/2", "vlan 10", "line vty 0 4"]
CHILDREN = ["description uplink", "shutdown", "switchport access vlan 10", "transport input ssh"]

Tree = list[tuple[str, "Tree"]]
section = st.tuples(st.sampled_from(SECTIONS), st.lists(st.sampled_from(CHILDREN), max_size=4))
item = st.one_of(st.sampled_from(LEAVES).map(lambda t: (t, [])), section)
config_tree = st.lists(item, max_size=8)


def render(tree: list[tuple[str, list[str]]]) -> str:
    out: list[str] = []
    for text, children in tree:
        out.append(text)
        out += [f" {child}" for child in children]
        out.append("!")
    return "\n".join(out) + "\nend\n"


def canonical(tree: list[tuple[str, list[str]]]) -> tuple[Counter[str], dict[str, Counter[str]]]:
    """What the device holds: leaves with their copies; a section once, its
    children with their copies (a repeated header enters the same section)."""
    leaves: Counter[str] = Counter()
    sections: dict[str, Counter[str]] = {}
    for text, children in tree:
        if text in SECTIONS:
            sections.setdefault(text, Counter()).update(children)
        else:
            leaves[text] += 1
    return leaves, sections


def simulate(device: Any, commands: list[str]) -> None:
    """A device that keeps every copy: `no X` removes one copy (or the section)."""
    leaves, sections = device
    current: str | None = None
    for command in commands:
        text = command.strip()
        nested = command[:1] == " "
        if text == "exit":
            current = None
            continue
        if not nested:
            current = None
        target = sections[current] if nested and current is not None else None
        negated = text.startswith("no ")
        body = text[3:] if negated else text
        if target is not None:
            if negated:
                assert target[body] > 0, (command, commands)
                target[body] -= 1
            else:
                target[body] += 1
            continue
        if body in SECTIONS:
            if negated:
                sections.pop(body, None)
            else:
                sections.setdefault(body, Counter())
                current = body
        elif negated:
            assert leaves[body] > 0, (command, commands)
            leaves[body] -= 1
        else:
            leaves[body] += 1


def _clean(device: Any) -> Any:
    leaves, sections = device
    return (+leaves, {name: +children for name, children in sections.items()})


@FAST
@given(a=config_tree, b=config_tree)
def test_the_line_by_line_restoration_turns_any_configuration_into_any_other(
    a: list[tuple[str, list[str]]], b: list[tuple[str, list[str]]]
) -> None:
    commands = configdiff.line_restoration(render(a), render(b), "cisco_ios")
    device = canonical(a)
    simulate(device, commands)
    assert _clean(device) == _clean(canonical(b)), commands
    # Nothing to do once there.
    assert configdiff.line_restoration(render(b), render(b), "cisco_ios") == []
