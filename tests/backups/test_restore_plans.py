"""A restore's plan on real public configurations (tests/data/configs): the
lines pushed, applied in hier_config's model, reach the backup's
configuration, and what the change then verifies (present / absent lines)
holds there and not before; and properties over configurations made from
the corpus by dropping and borrowing sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit import configdiff
from opskit.backups.linechange import leaf_paths, paths_to_lines, plan_towards

DATA = Path(__file__).parents[1] / "data" / "configs" / "cisco_ios"
IOS = sorted(p for p in DATA.glob("*") if p.suffix in (".cfg", ".conf", ".txt"))
PAIRS = [
    (DATA / "batfish-example-as1border1.cfg", DATA / "batfish-example-as1border2.cfg"),
    (DATA / "batfish-example-as2core1.cfg", DATA / "batfish-example-as2dist1.cfg"),
    (DATA / "hier_config-ios_running.conf", DATA / "hier_config-ios_generated.conf"),
    (DATA / "napalm-ios-show_startup_config.txt", DATA / "napalm-ios-show_running_config.txt"),
]


def _after(current: str, lines: list[str]) -> str:
    """`current` with `lines` applied, as hier_config models a device."""
    tree = configdiff.parse(current, "cisco_ios")
    future = tree.future(configdiff.parse(lines, "cisco_ios"))
    return "\n".join(child.cisco_style_text() for child in future.all_children_sorted())


def _check(current: str, target: str) -> None:
    plan = plan_towards("sw", current, target, "cisco_ios")
    after = _after(current, plan.lines)
    assert set(leaf_paths(after, "cisco_ios")) == set(leaf_paths(target, "cisco_ios"))
    # What the change verifies holds after the push, and did not before it.
    assert configdiff.missing_lines(after, plan.present, "cisco_ios") == []
    assert configdiff.present_lines(after, plan.absent, "cisco_ios") == []
    if plan.present:
        assert configdiff.missing_lines(current, plan.present, "cisco_ios")
    if plan.absent:
        assert configdiff.present_lines(current, plan.absent, "cisco_ios")
    assert bool(plan.lines) == bool(plan.present or plan.absent)


@pytest.mark.parametrize("pair", PAIRS, ids=lambda pair: f"{pair[0].stem}->{pair[1].stem}")
def test_a_restore_reaches_the_backup_on_real_configurations(pair: tuple[Path, Path]) -> None:
    current, target = (p.read_text() for p in pair)
    _check(current, target)
    _check(target, current)


@pytest.mark.parametrize("path", IOS, ids=lambda p: p.stem)
def test_leaf_paths_written_as_lines_read_back_the_same(path: Path) -> None:
    paths = leaf_paths(path.read_text(), "cisco_ios")
    assert leaf_paths(paths_to_lines(paths), "cisco_ios") == paths
    assert plan_towards("sw", path.read_text(), path.read_text(), "cisco_ios").lines == []


def _sections(text: str) -> list[str]:
    """The top-level sections of a configuration, each with its children."""
    blocks: list[list[str]] = []
    for line in configdiff.normalize(text, "cisco_ios").splitlines():
        if line.startswith(" ") and blocks:
            blocks[-1].append(line)
        elif line.strip() and not line.startswith("!"):
            blocks.append([line])
    return ["\n".join(block) for block in blocks]


SECTIONS = {p.stem: _sections(p.read_text()) for p in IOS}
# Banners and certificates keep their own framing: borrowed whole they are not sections.
# A configuration line that is itself a negation ("no aaa new-model", which IOS prints)
# is, in hier_config's model of a push, a removal: the model cannot show it arriving.
_SKIP = ("banner", "crypto pki certificate", "crypto ca certificate", "no ")
_PLAIN = {
    name: [s for s in sections if not s.startswith(_SKIP)] for name, sections in SECTIONS.items()
}


MAX_SECTIONS = 30  # keeps an example fast: the corpus's largest files have hundreds


@st.composite
def config_pairs(draw: st.DrawFn) -> tuple[str, str]:
    names = sorted(_PLAIN)
    base = _PLAIN[draw(st.sampled_from(names))][:MAX_SECTIONS]
    other = _PLAIN[draw(st.sampled_from(names))][:MAX_SECTIONS]
    kept = [s for s in base if draw(st.booleans()) or len(base) < 3]
    borrowed = draw(st.lists(st.sampled_from(other), max_size=8)) if other else []
    # One section per header line: a device prints an interface once.
    target = list({s.splitlines()[0]: s for s in reversed(kept + borrowed)}.values())[::-1]
    return "\n".join(base) + "\n", "\n".join(target) + "\n"


@settings(max_examples=20)
@given(config_pairs())
def test_a_restore_plan_reaches_any_target_made_from_the_corpus(pair: tuple[str, str]) -> None:
    current, target = pair
    _check(current, target)


def test_a_leaf_that_is_a_section_on_the_other_side_is_neither_missing_nor_extra() -> None:
    # Found by the property above on batfish's crypto configuration.
    current = "crypto ca trustpool policy\n auto-import\n"
    plan = plan_towards("sw", current, "crypto ca trustpool policy\n", "cisco_ios")
    assert plan.present == [] and plan.absent == ["crypto ca trustpool policy", " auto-import"]


def test_the_corpus_has_sections_to_draw_from() -> None:
    assert len(IOS) >= 15
    assert sum(len(s) for s in _PLAIN.values()) > 500
    assert all(a.is_file() and b.is_file() for a, b in PAIRS)
