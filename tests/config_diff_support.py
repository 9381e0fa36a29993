"""Applying a unified diff (to check `configdiff.diff` by reconstruction)."""

from __future__ import annotations

import re

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@$")


def apply_unified(before: list[str], diff: str) -> list[str]:
    """``before`` with every hunk of ``diff`` applied; context lines must match."""
    out: list[str] = []
    pos = 0
    lines = diff.splitlines()
    assert not lines or (lines[0].startswith("--- ") and lines[1].startswith("+++ "))
    for line in lines[2:]:
        hunk = _HUNK.match(line)
        if hunk:
            start = int(hunk.group(1)) - (0 if hunk.group(2) == "0" else 1)
            out += before[pos:start]
            pos = start
            continue
        tag, text = line[:1], line[1:]
        if tag == " ":
            assert before[pos] == text, (pos, before[pos], text)
            out.append(text)
            pos += 1
        elif tag == "-":
            assert before[pos] == text, (pos, before[pos], text)
            pos += 1
        elif tag == "+":
            out.append(text)
        else:
            raise AssertionError(f"not a diff line: {line!r}")
    return out + before[pos:]
