"""Ansible host and group names as CMDB names, and back.

Ansible accepts almost any host name (`příbor`, `web server`) and any group
name (`image-builder`, with a warning). The CMDB's names appear unquoted in
selections and DOT output, so they are stricter (see `schema.NAME_PATTERN`
and `GROUP_PATTERN`). A name that does not fit is mapped to a close ASCII
form (accents dropped, other characters replaced by `_`, a number appended
when two names would meet) and the original is kept in the CI's or group's
`ansible_name`, which export gives back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

from opskit.inventory.schema import GROUP_PATTERN, NAME_PATTERN

# A value Ansible does not set (told apart from None, which it may set).
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()
# Old spellings Ansible still reads -> the variable export writes.
ALIASES = {
    "ansible_ssh_host": "ansible_host",
    "ansible_ssh_port": "ansible_port",
    "ansible_ssh_user": "ansible_user",
}

_HOST_OK = re.compile(NAME_PATTERN)
_GROUP_OK = re.compile(GROUP_PATTERN)
_HOST_BAD_CHAR = re.compile(r"[^A-Za-z0-9_.@-]")
_GROUP_BAD_CHAR = re.compile(r"[^A-Za-z0-9_]")


def host_names(originals: Iterable[str]) -> dict[str, str]:
    """Ansible host name -> CI name, for every host."""
    return _map(originals, _HOST_OK, _host_form)


def group_names(originals: Iterable[str]) -> dict[str, str]:
    """Ansible group name -> CMDB group name, for every group."""
    return _map(originals, _GROUP_OK, _group_form)


def _map(originals: Iterable[str], valid: re.Pattern[str], form: object) -> dict[str, str]:
    names = list(dict.fromkeys(originals))
    # Names that already fit keep theirs; the others take what is left.
    out = {name: name for name in names if valid.match(name)}
    taken = set(out)
    for name in sorted(n for n in names if n not in out):
        base = form(name)  # type: ignore[operator]
        candidate, number = base, 2
        while candidate in taken:
            candidate, number = f"{base}_{number}", number + 1
        taken.add(candidate)
        out[name] = candidate
    return {name: out[name] for name in names}


def _ascii(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _host_form(name: str) -> str:
    text = _HOST_BAD_CHAR.sub("_", _ascii(name))
    return text if text[:1].isalnum() or text[:1] == "_" else f"_{text}"


def _group_form(name: str) -> str:
    text = _GROUP_BAD_CHAR.sub("_", _ascii(name))
    return text if text[:1].isalpha() or text[:1] == "_" else f"_{text}"
