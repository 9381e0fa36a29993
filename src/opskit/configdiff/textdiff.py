"""Equality and unified diffs of normalised configurations, linear in practice.

``difflib`` alone is super-linear on long, repetitive configurations (seconds
at 25,000 lines, tens of seconds at 50,000). Here:

- equality is a comparison of the normalised texts (no diff is computed when
  they are equal);
- the diff trims the common head and tail, then matches the middle with a
  patience diff (lines unique on both sides anchor the match, recursively)
  and uses difflib's matcher only on small stretches between anchors.

The output is a standard unified diff (``--- before`` / ``+++ after`` /
``@@ -a,b +c,d @@``) with three lines of context.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Iterator, Sequence

from opskit.configdiff.normal import normalize

# A stretch between anchors is handed to difflib when its quadratic cost is small.
_DIFFLIB_UP_TO = 250_000
_CONTEXT = 3

Match = difflib.Match


def diff(
    before: str,
    after: str,
    platform: str | None = None,
    *,
    before_name: str = "before",
    after_name: str = "after",
) -> str:
    """Unified diff of the two normalised configurations ("" when equal)."""
    a_text = normalize(before, platform)
    b_text = normalize(after, platform)
    if a_text == b_text:
        return ""
    a = a_text.splitlines(keepends=True)
    b = b_text.splitlines(keepends=True)
    return "".join(unified_diff(a, b, before_name, after_name))


def equal(a: str, b: str, platform: str | None = None) -> tuple[bool, str]:
    """(True, "") when both configurations are equal once normalised, else the diff."""
    residual = diff(a, b, platform)
    return residual == "", residual


def unified_diff(a: Sequence[str], b: Sequence[str], fromfile: str, tofile: str) -> Iterator[str]:
    """``difflib.unified_diff`` over ``matching_blocks(a, b)`` (lines keep their ends)."""
    groups = _grouped_opcodes(_opcodes(matching_blocks(a, b)))
    first = True
    for group in groups:
        if first:
            yield f"--- {fromfile}\n"
            yield f"+++ {tofile}\n"
            first = False
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        yield f"@@ -{_range(i1, i2)} +{_range(j1, j2)} @@\n"
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                yield from (" " + line for line in a[a1:a2])
                continue
            if tag in ("replace", "delete"):
                yield from ("-" + line for line in a[a1:a2])
            if tag in ("replace", "insert"):
                yield from ("+" + line for line in b[b1:b2])


def _range(start: int, stop: int) -> str:
    # As difflib's _format_range_unified.
    beginning = start + 1
    length = stop - start
    if length == 1:
        return str(beginning)
    if not length:
        beginning -= 1
    return f"{beginning},{length}"


def matching_blocks(a: Sequence[str], b: Sequence[str]) -> list[Match]:
    """Matching blocks as ``SequenceMatcher.get_matching_blocks`` returns them."""
    pairs: list[tuple[int, int]] = []
    # An explicit stack instead of recursion: configurations are long.
    stack = [(0, len(a), 0, len(b))]
    while stack:
        alo, ahi, blo, bhi = stack.pop()
        head: list[tuple[int, int]] = []
        while alo < ahi and blo < bhi and a[alo] == b[blo]:
            head.append((alo, blo))
            alo, blo = alo + 1, blo + 1
        tail: list[tuple[int, int]] = []
        while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
            ahi, bhi = ahi - 1, bhi - 1
            tail.append((ahi, bhi))
        pairs += head + tail
        if alo == ahi or blo == bhi:
            continue
        anchors = _unique_anchors(a, b, alo, ahi, blo, bhi)
        if not anchors:
            pairs += _small_matches(a, b, alo, ahi, blo, bhi)
            continue
        prev_a, prev_b = alo, blo
        for i, j in anchors:
            stack.append((prev_a, i, prev_b, j))
            pairs.append((i, j))
            prev_a, prev_b = i + 1, j + 1
        stack.append((prev_a, ahi, prev_b, bhi))
    pairs.sort()
    return _blocks(pairs, len(a), len(b))


def _unique_anchors(
    a: Sequence[str], b: Sequence[str], alo: int, ahi: int, blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Lines that occur once in each range, longest increasing in both (patience)."""
    count_a: dict[str, int] = {}
    for i in range(alo, ahi):
        count_a[a[i]] = count_a.get(a[i], 0) + 1
    in_b: dict[str, int] = {}
    count_b: dict[str, int] = {}
    for j in range(blo, bhi):
        line = b[j]
        if count_a.get(line) == 1:
            count_b[line] = count_b.get(line, 0) + 1
            in_b[line] = j
    candidates = [
        (i, in_b[a[i]]) for i in range(alo, ahi) if count_a[a[i]] == 1 and count_b.get(a[i]) == 1
    ]
    return _longest_increasing(candidates)


def _longest_increasing(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The longest subsequence of ``pairs`` (sorted by a) increasing in b."""
    tails: list[int] = []  # b value ending the best run of each length
    tail_index: list[int] = []
    previous: list[int] = [-1] * len(pairs)
    for k, (_, j) in enumerate(pairs):
        pos = bisect.bisect_left(tails, j)
        if pos == len(tails):
            tails.append(j)
            tail_index.append(k)
        else:
            tails[pos] = j
            tail_index[pos] = k
        previous[k] = tail_index[pos - 1] if pos else -1
    result: list[tuple[int, int]] = []
    k = tail_index[-1] if tail_index else -1
    while k >= 0:
        result.append(pairs[k])
        k = previous[k]
    return result[::-1]


def _small_matches(
    a: Sequence[str], b: Sequence[str], alo: int, ahi: int, blo: int, bhi: int
) -> list[tuple[int, int]]:
    """No unique line to anchor on: difflib when cheap, else nothing matches."""
    if (ahi - alo) * (bhi - blo) > _DIFFLIB_UP_TO:
        return []
    matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
    return [
        (alo + block.a + k, blo + block.b + k)
        for block in matcher.get_matching_blocks()
        for k in range(block.size)
    ]


def _blocks(pairs: list[tuple[int, int]], len_a: int, len_b: int) -> list[Match]:
    blocks: list[Match] = []
    for i, j in pairs:
        last = blocks[-1] if blocks else None
        if last is not None and last.a + last.size == i and last.b + last.size == j:
            blocks[-1] = Match(last.a, last.b, last.size + 1)
        else:
            blocks.append(Match(i, j, 1))
    blocks.append(Match(len_a, len_b, 0))
    return blocks


def _opcodes(blocks: list[Match]) -> list[tuple[str, int, int, int, int]]:
    # As SequenceMatcher.get_opcodes.
    i = j = 0
    codes: list[tuple[str, int, int, int, int]] = []
    for ai, bj, size in blocks:
        tag = ""
        if i < ai and j < bj:
            tag = "replace"
        elif i < ai:
            tag = "delete"
        elif j < bj:
            tag = "insert"
        if tag:
            codes.append((tag, i, ai, j, bj))
        i, j = ai + size, bj + size
        if size:
            codes.append(("equal", ai, i, bj, j))
    return codes


def _grouped_opcodes(
    codes: list[tuple[str, int, int, int, int]],
) -> Iterator[list[tuple[str, int, int, int, int]]]:
    # As SequenceMatcher.get_grouped_opcodes(3).
    if not codes:
        return
    n = _CONTEXT
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    nn = n + n
    group: list[tuple[str, int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > nn:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            yield group
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        yield group
