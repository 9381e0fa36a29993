"""Which ledger events a webhook is told of, and what a webhook URL may be.

A webhook's `events:` names event kinds or groups of them:

| name | the ledger events |
| --- | --- |
| `change` | every kind in `CHANGE_KINDS` |
| `compliance` | `compliance.changed` (a CI's compliance state differs from its last result) |
| `all` | both groups |
| a kind, e.g. `change.approved` | that kind only |

A kind may also be written without its `change.` prefix (`approved`).

>>> expand(["approved", "compliance"])
frozenset({'change.approved', 'compliance.changed'})
>>> url_problem("https://user:pw@example.org/hook")
'a webhook URL must not hold credentials (use the secret reference)'
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

CHANGE_KINDS = (
    "change.created",
    "change.approved",
    "change.rejected",
    "change.started",
    "change.completed",
    "change.failed",
    "change.rolled_back",
    "change.partially_rolled_back",
    "change.cancelled",
    "change.closed",
)
# A compliance state change: derived from `compliance.result` events (a
# result whose state differs from the CI's previous one), or recorded as is.
COMPLIANCE_CHANGED = "compliance.changed"
COMPLIANCE_RESULT = "compliance.result"
GROUPS: dict[str, tuple[str, ...]] = {
    "change": CHANGE_KINDS,
    "compliance": (COMPLIANCE_CHANGED,),
    "all": (*CHANGE_KINDS, COMPLIANCE_CHANGED),
}
KINDS = frozenset(GROUPS["all"])
MAX_URL = 2048


def _kind(name: str) -> str:
    return name if "." in name else f"change.{name}"


def event_problem(name: object) -> str | None:
    """Why `name` is not an event kind or group (None: it is one)."""
    if not isinstance(name, str):
        return "an event is a kind or a group name (text)"
    if name in GROUPS or _kind(name) in KINDS:
        return None
    known = ", ".join([*GROUPS, *(k.removeprefix("change.") for k in CHANGE_KINDS)])
    return f"unknown event {name!r}; known: {known}, {COMPLIANCE_CHANGED}"


def expand(names: Iterable[str]) -> frozenset[str]:
    """The event kinds that `names` (kinds and groups, checked) stand for."""
    kinds: set[str] = set()
    for name in names:
        kinds.update(GROUPS.get(name, (_kind(name),)))
    return frozenset(kinds)


def url_problem(url: object, what: str = "a webhook URL") -> str | None:
    """Why `url` is not a webhook URL (None: it is one): http or https, a
    host, a valid port, no credentials, no fragment, no blank or control
    character, at most `MAX_URL` characters. `what` names the URL in the
    answer (e.g. "a write-back URL")."""
    if not isinstance(url, str) or not url:
        return f"{what} is text such as https://host/path"
    if len(url) > MAX_URL:
        return f"{what} has at most {MAX_URL} characters"
    if any(char.isspace() or not char.isprintable() for char in url):
        return f"{what} must not hold blanks or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"not a valid URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"{what} starts with http:// or https://"
    if not parts.hostname:
        return f"{what} names a host"
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        return f"{what} must not hold credentials (use the secret reference)"
    if port == 0:
        return f"{what}'s port is 1 to 65535"
    if parts.fragment or url.endswith("#"):
        return f"{what} has no #fragment"
    return None
