"""Reads the add-checkpoint requests of a hurl script (litewitness's conformance tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HurlRequest:
    """One request: its body, the expected status and the asserted body text."""

    body: bytes
    status: int
    asserts: tuple[str, ...]


def read_hurl(path: Path) -> list[HurlRequest]:
    """The POST requests of `path`, in order (bodies between ``` fences)."""
    requests = []
    for block in path.read_text(encoding="utf-8").split("POST ")[1:]:
        _, body, rest = block.split("```\n", 2)
        status_line, _, after = rest.partition("\n")
        asserts = tuple(ln for ln in after.splitlines() if ln.startswith("body "))
        requests.append(HurlRequest(body.encode(), int(status_line.split()[1]), asserts))
    return requests
