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
from collections.abc import Collection, Iterable, Sequence
from typing import NamedTuple

from opskit.compliance.overlap import alternatives, literal_prefix
from opskit.configdiff import LINE_BY_LINE_PLATFORMS, hier_platform, normalize, parse
from opskit.configdiff.model import driver

#: Platforms read here (indentation-based, no indentation rules in their driver).
FAST_PLATFORMS = LINE_BY_LINE_PLATFORMS - {"cisco_xr"}
INDENT = "  "  # hier_config's text form: two spaces per level
LinePath = tuple[str, ...]


class Section(NamedTuple):
    """A top-level line (``header``) and its text: the header line first,
    each child indented as printed (whitespace inside a line folded). A
    named tuple: a configuration has thousands and they are built fast."""

    header: str
    text: str
    #: a banner's own lines (hier_config's one line for it); "" for other sections
    banner: str = ""

    @property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @property
    def key(self) -> str:
        """What compliance compares: the text, except that a banner is its
        kind and body whatever its delimiter (IOS prints ``^C`` for the
        ``^`` or any other character it was configured with)."""
        return banner_key(self.banner.split("\n")) if self.banner else self.text


def banner_key(lines: Sequence[str]) -> str:
    """``banner <kind>`` and the banner's body, without its delimiters."""
    words = lines[0].split(maxsplit=2)
    kind = words[1] if len(words) > 1 else ""
    delimiter = words[2] if len(words) > 2 else ""
    marks = sorted({delimiter[:2], delimiter[:1], "^C", "^", "\x03"} - {""}, key=len, reverse=True)
    head = delimiter
    for mark in marks:
        if head.startswith(mark):
            head = head[len(mark) :]
            break
    body = [head, *lines[1:]] if head else list(lines[1:])
    if body:
        last = body[-1]
        for mark in marks:
            if last.endswith(mark):
                body[-1] = last[: -len(mark)]
                break
        if not body[-1].strip():
            body.pop()
    return "\n".join([f"banner {kind}", *body])


# Whitespace other than a space or "\n" (str.isspace()): hier_config folds it
# inside a line, and str.splitlines() breaks lines at some of it.
_OTHER_SPACE = re.compile(
    "[\t\r\x0b\x0c\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)

_ASCII_OTHER_SPACE = ("\t", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")


def _unfolded(text: str) -> bool:
    """True when hier_config would fold whitespace in some line: another
    blank than a space, or two spaces after a line's first character."""
    if text.isascii():
        if any(blank in text for blank in _ASCII_OTHER_SPACE):  # each a fast C scan
            return True
    elif _OTHER_SPACE.search(text):
        return True
    at = text.find("  ")
    while at >= 0:
        if at > 0 and text[at - 1] not in " \n":
            return True
        at = text.find("  ", at + 2)
    return False


_TOP_LEVEL = re.compile(r"\n(?=\S)")


@functools.cache
def _substitutions(
    platform: str | None,
) -> tuple[re.Pattern[str] | None, tuple[tuple[str, str], ...]]:
    """The driver's per-line substitutions: one pattern to test a line, and
    the (search, replace) pairs."""
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
    text = normalize(config, platform)
    fast = _whole_text(text, platform)
    if fast is not None:
        return fast
    sections, unclosed = _line_by_line(text, platform)
    if unclosed:
        parse(config, platform, host=host)  # hier_config's one-line error, host and line
    return sections


def sections_text(
    config: str, platform: str | None, headers: Collection[str], *, host: str | None = None
) -> str | None:
    """The sections of `config` whose header (hier_config's top-level line)
    is one of `headers`, as one text that hier_config reads into exactly
    those sections' subtrees: the part of a configuration to parse when only
    some sections matter (a runbook's ``config_contains``). None when that
    cannot be promised: a platform not read here, a banner among `headers`,
    or a line that hier_config's per-line substitutions would change again.

    Example: ``sections_text("hostname a\\nvlan 9\\n name x\\n", "cisco_ios",
    {"vlan 9"})`` is ``"vlan 9\\n name x\\n"``.
    """
    if (platform or "") not in FAST_PLATFORMS or any(h.startswith("banner ") for h in headers):
        return None
    lines = [
        line
        for section in split_sections(config, platform, host=host)
        if not section.banner and section.header in headers
        for line in section.lines
    ]
    quick, pairs = _substitutions(platform)
    if any(_substitute(line, quick, pairs) != line for line in lines):
        return None  # read twice, a substitution could change it (hier_config: once)
    return "".join(f"{line}\n" for line in lines)


def _whole_text(text: str, platform: str | None) -> list[Section] | None:
    """The common case read with whole-text operations: outside banners,
    whitespace already folded, only "\\n" line breaks, and no indented line
    at the start or right after a banner. Then a line is top-level exactly
    when it is not indented (hier_config makes every indented line after a
    top-level one its descendant). Banners are read as hier_config reads
    them. None when the text is not such a case."""
    sections: list[Section] = []
    banner = _BannerState()
    pos = 0
    while pos < len(text):
        found = _banner_start(text, pos)
        stop = found if found is not None else len(text)
        chunk = _chunk(text[pos:stop].strip("\n"), platform)
        if chunk is None:
            return None
        sections += chunk
        if found is None:
            break
        read = _banner_at(text, stop, banner)
        if read is None:
            return None
        sections.append(read[0])
        pos = read[1]
    return sections


def _banner_start(text: str, pos: int) -> int | None:
    """Where the next line opening a banner starts (hier_config: a line
    starting "banner ", except the empty NX-OS "banner motd ##")."""
    at = text.find("banner ", pos)
    while at >= 0:
        if at == 0 or text[at - 1] == "\n":
            end = text.find("\n", at)
            if text[at : len(text) if end < 0 else end] != "banner motd ##":
                return at
        at = text.find("banner ", at + 1)
    return None


def _banner_at(text: str, start: int, banner: _BannerState) -> tuple[Section, int] | None:
    """The banner starting at ``start`` and where the text after it starts;
    None when it is never closed."""
    lines: list[str] = []
    pos = start
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end]
        pos = end + 1
        if not lines:
            banner.start(line)
            lines.append(line)
            continue
        if line != "!":
            lines.append(line)
        if banner.closes(line):
            text = "\n".join(lines)
            return Section(lines[0], text, text), pos
    return None


def _chunk(text: str, platform: str | None) -> list[Section] | None:
    if not text:
        return []
    if text[0].isspace() or _unfolded(text):
        return None
    changed = _substituted(text, platform)
    if changed is None or (changed and changed[0].isspace()):
        return None
    if not changed:
        return []
    # Whole-text operations: the top-level lines, and the text cut before each.
    chunks = _TOP_LEVEL.split(changed)
    return [Section(chunk.partition("\n")[0], chunk) for chunk in chunks]


@functools.cache
def _needles(platform: str | None) -> tuple[str, ...] | None:
    """Texts one of which every line a per-line substitution applies to
    contains (``^\\s*[#!].*`` -> ``#``, ``!``); None when a pattern has none."""
    needles: list[str] = []
    for search, _ in _substitutions(platform)[1]:
        for alternative in alternatives(search):
            found = _needle(alternative)
            if not found:
                return None
            needles.extend(found)
    return tuple(needles)


def _needle(alternative: str) -> list[str]:
    body = alternative[1:] if alternative.startswith("^") else alternative
    body = body[3:] if body.startswith("\\s*") else body
    if body.startswith("["):
        chars = body[1 : body.find("]")]
        if not chars or any(c in chars for c in "\\^-]["):
            return []
        return list(chars)
    prefix = literal_prefix(body)
    return [prefix] if prefix else []


def _substituted(text: str, platform: str | None) -> str | None:
    """The per-line substitutions applied to the lines that hold a needle
    (hier_config applies them to every line: the others cannot match)."""
    quick, pairs = _substitutions(platform)
    if not pairs:
        return text
    needles = _needles(platform)
    if needles is None:
        return None  # read line by line
    starts: set[int] = set()
    for needle in needles:
        at = text.find(needle)
        while at >= 0:
            start = text.rfind("\n", 0, at) + 1
            starts.add(start)
            end = text.find("\n", at)
            at = -1 if end < 0 else text.find(needle, end)
    if not starts:
        return text
    pieces: list[str] = []
    done = 0
    for start in sorted(starts):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        if quick is not None and quick.search(line) is None:
            continue  # a needle, but no pattern matches the line
        for search, replace in pairs:
            line = re.sub(search, replace, line)
        pieces.append(text[done:start])
        line = line.rstrip()
        if line:
            pieces.append(line)
            done = end
        else:
            done = end + 1  # the line and its line break go
    pieces.append(text[done:])
    return "".join(pieces).strip("\n")


def _line_by_line(text: str, platform: str | None) -> tuple[list[Section], bool]:
    """hier_config's reading loop (banners, indentation), kept to what decides
    the top-level lines."""
    quick, pairs = _substitutions(platform)
    sections: list[Section] = []
    current: list[str] = []
    stack: list[int] = []  # indentation of the open sections (the root not included)
    previous = -1
    banner = _BannerState()
    in_banner = False
    banner_lines = 0  # of the current section, when it is a banner
    for raw in text.splitlines():
        if in_banner:
            if raw != "!":
                current.append(raw)
            if banner.closes(raw):
                in_banner = False
                previous, stack = 0, []
                banner_lines = len(current)
            continue
        if banner.opens(raw):
            _close(current, sections, banner_lines)
            current, banner_lines = [raw], 0
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
            _close(current, sections, banner_lines)
            current, banner_lines = [line.lstrip()], 0
        else:
            current.append(line)
    _close(current, sections, banner_lines)
    return sections, in_banner


def _close(lines: list[str], sections: list[Section], banner_lines: int = 0) -> None:
    """``lines`` as a section; a banner's own lines are its first ``banner_lines``."""
    if lines:
        banner = "\n".join(lines[:banner_lines]) if banner_lines else ""
        sections.append(Section(lines[0], "\n".join(lines), banner))


def _from_hier_config(config: str, platform: str | None, host: str | None) -> list[Section]:
    tree = parse(config, platform, host=host)
    out = []
    for child in tree.children:
        lines = [line for text in child.lines() for line in text.splitlines()]
        banner = child.text if child.text.startswith("banner ") else ""
        out.append(Section(child.text.splitlines()[0], "\n".join(lines), banner))
    return out


def section_paths(sections: Iterable[Section]) -> list[LinePath]:
    """Every line as its path (parent lines, then the line), in order; a
    banner is one path; repeated lines repeat."""
    paths: list[LinePath] = []
    for section in sections:
        if section.banner:
            paths.append((section.key,))
            continue
        paths.extend(line_paths(section.lines))
    return paths


def line_paths(lines: Iterable[str]) -> list[LinePath]:
    """Paths of indented lines (a child is more indented than its parent)."""
    paths: list[LinePath] = []
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


def indented(paths: Iterable[LinePath]) -> list[str]:
    """Paths as configuration lines, each parent written once before its
    children (``INDENT`` per level), in the order given."""
    out: list[str] = []
    written: LinePath = ()
    for path in paths:
        common = 0
        while common < min(len(written), len(path) - 1) and written[common] == path[common]:
            common += 1
        for depth in range(common, len(path)):
            out.extend(INDENT * depth + part for part in path[depth].splitlines())
        written = path
    return out
