"""A configuration as top-level sections, read the way hier_config reads it, fast.

Compliance compares thousands of configurations of thousands of lines; a
full hier_config tree costs about 30 µs a line, which is most of the time
when almost every feature is compliant. So the evaluator reads each
configuration once into `Section` s (a top-level line and the lines under
it), with hier_config's own reading rules for the platform: the same
normalisation (`opskit.configdiff.normalize`), the driver's per-line
substitutions (IOS drops ``version``, ``!`` comments ...), whitespace folded
inside a line, banners as one section up to their delimiter, and a line's
parent decided by indentation exactly as hier_config's loader decides it.
Only the features whose lines differ are handed to hier_config itself
(`opskit.configdiff`) for missing / extra lines and the remediation; equal
texts give equal hier_config trees, so the fast path never changes a
verdict. Platforms whose configuration is not indentation-based (Junos
braces, FortiOS ``config``/``edit``) are read by hier_config directly.
``tests/compliance/test_sections.py`` checks on the real corpus and with
generated configurations that the top-level lines are hier_config's.

Example::

    >>> [s.header for s in split_sections("hostname a\\ninterface Gi1\\n ip address dhcp\\n",
    ...                                    "cisco_ios")]
    ['hostname a', 'interface Gi1']
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opskit.configdiff import LINE_BY_LINE_PLATFORMS, hier_platform, normalize, parse
from opskit.configdiff.model import driver

#: Platforms read here (indentation-based, no indentation rules in their driver).
FAST_PLATFORMS = LINE_BY_LINE_PLATFORMS - {"cisco_xr"}
INDENT = "  "  # hier_config's text form: two spaces per level
Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """A top-level line (``header``) and its lines, the header first, each
    child indented as printed (whitespace inside a line folded)."""

    header: str
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@functools.cache
def _substitutions(
    platform: str | None,
) -> tuple[re.Pattern[str] | None, tuple[tuple[str, str], ...]]:
    rules = driver(hier_platform(platform)).rules.per_line_sub
    pairs = tuple((rule.search, rule.replace) for rule in rules)
    if not pairs:
        return None, ()
    return re.compile("|".join(f"(?:{search})" for search, _ in pairs)), pairs


def _substitute(line: str, quick: re.Pattern[str] | None, pairs: Sequence[tuple[str, str]]) -> str:
    if quick is None or quick.search(line) is None:
        return line
    for search, replace in pairs:
        line = re.sub(search, replace, line)
    return line


class _BannerState:
    """hier_config's banner reading, with its memory of delimiters seen."""

    def __init__(self) -> None:
        self.end_lines = {"EOF", "%", "!"}
        self.end_contains: list[str] = []

    def opens(self, line: str) -> bool:
        return line.startswith("banner ") and line != "banner motd ##"

    def start(self, line: str) -> None:
        words = line.split()
        if len(words) > 2:
            self.end_contains.append(words[2])
            if words[2].startswith('"'):
                self.end_contains.append('"')
            self.end_lines.add(words[2][:1])
            self.end_lines.add(words[2][:2])

    def closes(self, line: str) -> bool:
        if line.startswith("^") or line in self.end_lines:
            return True
        return any(c in line for c in self.end_contains)


def split_sections(config: str, platform: str | None, *, host: str | None = None) -> list[Section]:
    """The configuration's top-level sections, in order (duplicates kept)."""
    if (platform or "") not in FAST_PLATFORMS:
        return _from_hier_config(config, platform, host)
    quick, pairs = _substitutions(platform)
    sections: list[Section] = []
    current: list[str] = []
    stack: list[int] = []  # indentation of the open sections (the root not included)
    previous = -1
    banner = _BannerState()
    in_banner = False
    for raw in normalize(config, platform).splitlines():
        if in_banner:
            if raw != "!":
                current.append(raw)
            if banner.closes(raw):
                in_banner = False
                previous, stack = 0, []
            continue
        if banner.opens(raw):
            _close(current, sections)
            current = [raw]
            banner.start(raw)
            in_banner = True
            continue
        indent = len(raw) - len(raw.lstrip())
        line = _substitute(" " * indent + " ".join(raw.split()), quick, pairs).rstrip()
        if not line:
            continue
        indent = len(line) - len(line.lstrip())
        while stack and indent <= stack[-1]:
            stack.pop()
        if indent > previous and previous >= 0 and current:
            stack.append(previous)
        previous = indent
        if not stack:
            _close(current, sections)
            current = [line.lstrip()]
        else:
            current.append(line)
    _close(current, sections)
    return sections


def _close(lines: list[str], sections: list[Section]) -> None:
    if lines:
        sections.append(Section(lines[0], tuple(lines)))


def _from_hier_config(config: str, platform: str | None, host: str | None) -> list[Section]:
    tree = parse(config, platform, host=host)
    out = []
    for child in tree.children:
        lines = [line for text in child.lines() for line in text.splitlines()]
        out.append(Section(child.text.splitlines()[0], tuple(lines)))
    return out


def section_paths(sections: Iterable[Section]) -> list[Path]:
    """Every line as its path (parent lines, then the line), in order; a
    banner is one path; repeated lines repeat."""
    paths: list[Path] = []
    for section in sections:
        if section.header.startswith("banner "):
            paths.append(("\n".join(section.lines),))
            continue
        paths.extend(line_paths(section.lines))
    return paths


def line_paths(lines: Iterable[str]) -> list[Path]:
    """Paths of indented lines (a child is more indented than its parent)."""
    paths: list[Path] = []
    stack: list[tuple[int, str]] = []
    for line in lines:
        text = line.lstrip()
        if not text:
            continue
        indent = len(line) - len(text)
        while stack and indent <= stack[-1][0]:
            stack.pop()
        stack.append((indent, " ".join(text.split())))
        paths.append(tuple(t for _, t in stack))
    return paths


def indented(paths: Iterable[Path]) -> list[str]:
    """Paths as configuration lines, each parent written once before its
    children (``INDENT`` per level), in the order given."""
    out: list[str] = []
    written: Path = ()
    for path in paths:
        common = 0
        while common < min(len(written), len(path) - 1) and written[common] == path[common]:
            common += 1
        for depth in range(common, len(path)):
            out.extend(INDENT * depth + part for part in path[depth].splitlines())
        written = path
    return out
