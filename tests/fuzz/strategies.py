"""Hypothesis strategies for opskit's inputs, valid and broken.

Valid inputs follow the README's formats (inventory "File format", runbook
"The format, by example", the policy). Broken ones start from a valid input
and apply one mutation, as a person editing a file by hand would: a deleted
or duplicated key, a wrong type, a control character, unicode, a huge
integer, NaN, bad YAML, a truncated file.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from hypothesis import strategies as st

from opskit.yamlfile import dump_yaml

# -- building blocks ---------------------------------------------------------------
CI_NAME = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
GROUP_NAME = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
PERSON = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
PLATFORM = st.sampled_from(["cisco_ios", "arista_eos", "juniper_junos", "linux"])
CI_TYPE = st.sampled_from(["router", "switch", "firewall", "server", "database", "application"])
LIFECYCLE = st.sampled_from(["planned", "operational", "maintenance", "decommissioned"])
CRITICALITY = st.sampled_from(["low", "medium", "high", "critical"])
# Printable text in any script (no control characters, no lone surrogates).
TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=16)
# Text a person would type into a YAML file, in a few scripts, with the
# spellings YAML 1.1 and 1.2 read differently ("yes", "0o17", "1_000", ".inf").
TRICKY_TEXT = st.sampled_from(
    [
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
        "~",
        "null",
        "0o17",
        "0x1F",
        "1_000",
        "1:20",
        ".inf",
        "-.inf",
        ".nan",
        "2026-12-01",
        "017",
        "+1",
        "1e3",
        "příbor",
        "Zürich",
        "東京",
        "a: b",
        "#x",
    ]
)
HOST = st.one_of(
    st.from_regex(r"10\.[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True),
    st.from_regex(r"[a-z][a-z0-9-]{0,8}\.example\.net", fullmatch=True),
)
ENV_VAR = st.from_regex(r"[A-Z][A-Z_]{0,8}", fullmatch=True)
SAFE_INT = st.integers(min_value=-(2**53), max_value=2**53)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
SCALAR = st.one_of(st.none(), st.booleans(), SAFE_INT, FINITE, TEXT, TRICKY_TEXT)
JSON_VALUE = st.recursive(
    SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(TEXT, TRICKY_TEXT), inner, max_size=3),
    ),
    max_leaves=6,
)
ATTRIBUTES = st.dictionaries(st.one_of(TEXT, TRICKY_TEXT), JSON_VALUE, max_size=4)

# Values nobody should get past a validator unnoticed.
HUGE_INT = st.one_of(
    st.integers(min_value=2**53 + 1, max_value=2**200),
    st.integers(min_value=-(2**200), max_value=-(2**53) - 1),
)
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])
CONTROL_TEXT = st.builds(
    lambda a, c, b: a + c + b,
    st.text(max_size=4),
    st.sampled_from(["\n", "\r", "\x00", "\x01", "\x1b[2J", "\x7f", "\u202e", "\u2028", "\t"]),
    st.text(max_size=4),
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    HUGE_INT,
    NON_FINITE,
    CONTROL_TEXT,
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


# -- inventories -------------------------------------------------------------------
@st.composite
def inventories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid inventory as a list of file contents (each a mapping of
    `defaults`, `groups` and `cis`), in the README's format."""
    group_names = draw(st.lists(GROUP_NAME, max_size=4, unique=True))
    groups: dict[str, Any] = {}
    for index, name in enumerate(group_names):
        group: dict[str, Any] = {}
        parents = draw(st.lists(st.sampled_from(group_names[:index]), unique=True)) if index else []
        if parents:
            group["groups"] = parents
        if draw(st.booleans()):
            group["description"] = draw(TEXT)
        group_vars = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "site": TEXT,
                    "owner": TEXT,
                    "criticality": CRITICALITY,
                    "port": st.integers(1, 65535),
                    "attributes": ATTRIBUTES,
                    "connection_options": st.fixed_dictionaries(
                        {}, optional={"netmiko": st.fixed_dictionaries({"fast_cli": st.booleans()})}
                    ),
                },
            )
        )
        if group_vars:
            group["vars"] = group_vars
        groups[name] = group
    names = draw(st.lists(CI_NAME, min_size=1, max_size=6, unique=True))
    cis = []
    for index, name in enumerate(names):
        ci: dict[str, Any] = {"name": name, "type": draw(CI_TYPE), "platform": draw(PLATFORM)}
        optional = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "host": HOST,
                    "port": st.integers(1, 65535),
                    "owner": TEXT,
                    "department": TEXT,
                    "site": TEXT,
                    "lifecycle": LIFECYCLE,
                    "criticality": CRITICALITY,
                    "description": TEXT,
                    "attributes": ATTRIBUTES,
                    "credentials": st.fixed_dictionaries(
                        {
                            "username": TEXT,
                            "password": st.builds(dict, env=ENV_VAR),
                        }
                    ),
                },
            )
        )
        ci.update(optional)
        if group_names and draw(st.booleans()):
            ci["groups"] = draw(st.lists(st.sampled_from(group_names), min_size=1, unique=True))
        if index and draw(st.booleans()):
            # Dependencies point at earlier CIs only: never a cycle.
            kind = draw(st.sampled_from(["depends_on", "runs_on", "connected_to"]))
            ci["relationships"] = [{kind: draw(st.sampled_from(names[:index]))}]
        cis.append(ci)
    files = draw(st.integers(1, 3))
    contents: list[dict[str, Any]] = [{} for _ in range(files)]
    if groups:
        contents[0]["groups"] = groups
    if draw(st.booleans()):
        contents[-1]["defaults"] = {"owner": draw(TEXT), "lifecycle": draw(LIFECYCLE)}
    for index, ci in enumerate(cis):
        contents[index % files].setdefault("cis", []).append(ci)
    return contents


# -- runbooks ----------------------------------------------------------------------
PARAM_SPECS = st.sampled_from(
    [
        {"type": "string", "maxLength": 40},
        {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"},
        {"type": "string", "format": "ipv4"},
        {"type": "integer", "minimum": 2, "maximum": 4094},
        {"type": "integer"},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "string", "enum": ["up", "down"]},
        {"type": "string", "default": "managed by opskit"},
    ]
)
# Runbook text outside templates: no Jinja delimiters.
RB_TEXT = TEXT.filter(lambda t: "{" not in t and "}" not in t and "#" not in t)
PARAM_NAME = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
COMMAND = st.from_regex(r"show [a-z]{2,8}( [a-z0-9/]{1,6})?", fullmatch=True)


@st.composite
def runbooks(draw: st.DrawFn) -> dict[str, Any]:
    """A valid runbook document (netmiko, Cisco IOS) using its parameters in
    step params and expectations."""
    param_names = draw(st.lists(PARAM_NAME, min_size=1, max_size=4, unique=True))
    properties = {name: draw(PARAM_SPECS) for name in param_names}
    required = [n for n in param_names if "default" not in properties[n] and draw(st.booleans())]
    lines = [f"interface {{{{ params.{param_names[0]} }}}}"]
    lines += [f" description {{{{ params.{name} }}}}" for name in param_names[1:]]
    doc: dict[str, Any] = {
        "name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)),
        "version": "{}.{}.{}".format(*draw(st.tuples(*[st.integers(0, 30)] * 3))),
        "description": draw(RB_TEXT),
        "owner": draw(RB_TEXT),
        "risk": draw(st.sampled_from(["low", "medium", "high"])),
        "change_types": draw(
            st.lists(st.sampled_from(["normal", "emergency"]), min_size=1, unique=True)
        ),
        "targets": {"select": "platform:cisco_ios", "platforms": ["cisco_ios"]},
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "required": required,
            "properties": properties,
        },
        "requires": ["get_config", "config_lines", "commands"],
        "precheck": [
            {
                "name": draw(RB_TEXT),
                "connector": "netmiko",
                "action": "commands",
                "params": {"commands": draw(st.lists(COMMAND, min_size=1, max_size=2))},
                "expect": [{"contains": draw(RB_TEXT)}],
            }
        ],
        "backup": True,
        "apply": [
            {
                "name": draw(RB_TEXT),
                "connector": "netmiko",
                "action": "config",
                "params": {"lines": lines},
            }
        ],
        "verify": [
            {
                "name": draw(RB_TEXT),
                "connector": "netmiko",
                "action": "get_config",
                "expect": [{"config_contains": lines}],
            }
        ],
        "rollback": "auto",
        "strategy": {
            "canary": draw(st.integers(0, 3)),
            "batch": draw(st.one_of(st.integers(1, 10), st.sampled_from(["50%", "100%"]))),
            "concurrency": draw(st.integers(1, 20)),
            "error_budget": {"max_failed": draw(st.integers(0, 3))},
            "on_failure": draw(st.sampled_from(["rollback_host", "rollback_all", "stop"])),
        },
    }
    if draw(st.booleans()):
        facts = ["interfaces", "vlans", "routes", "neighbors", "bgp", "ospf"]
        doc["state_snapshot"] = {
            "facts": draw(st.lists(st.sampled_from(facts), min_size=1, unique=True)),
            "allow": [f"interfaces.{{{{ params.{param_names[0]} }}}}.description"],
        }
    return doc


def param_values(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for one declared parameter: mostly of its type, sometimes not."""
    kind = spec.get("type")
    typed: st.SearchStrategy[Any]
    if kind == "integer":
        typed = st.one_of(st.integers(-10, 5000), HUGE_INT)
    elif kind == "number":
        typed = st.one_of(FINITE, NON_FINITE, HUGE_INT)
    elif kind == "boolean":
        typed = st.booleans()
    elif spec.get("format") == "ipv4":
        typed = st.one_of(
            st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
            st.ip_addresses(v=4).map(str),
        )
    elif "enum" in spec:
        typed = st.one_of(st.sampled_from(spec["enum"]), TEXT)
    else:
        typed = st.one_of(TEXT, CONTROL_TEXT, st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True))
    return st.one_of(typed, typed, JUNK)


# -- policies ----------------------------------------------------------------------
ROLES = ["requester", "change_manager", "cab", "governance", "implementer", "auditor"]
TIMEZONES = st.sampled_from(["UTC", "Europe/Berlin", "Asia/Shanghai", "America/New_York"])
CLOCK = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


def quorum_bound(people: dict[str, Any], roles: list[str]) -> int:
    """The largest count a rule over `roles` may ask: the people holding one
    of them, less one when a requester is among them (never their own approver)."""
    holders = [p for p in people.values() if set(p["roles"]) & set(roles)]
    return len(holders) - any("requester" in p["roles"] for p in holders)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid policy whose every approval rule can be met by its people."""
    names = draw(st.lists(PERSON, min_size=1, max_size=6, unique=True))
    people = {
        name: {
            "roles": draw(st.lists(st.sampled_from(ROLES), min_size=1, max_size=3, unique=True)),
            **draw(st.fixed_dictionaries({}, optional={"name": TEXT})),
        }
        for name in names
    }

    def rule() -> dict[str, Any]:
        role = draw(st.sampled_from(ROLES))
        # Met without any one requester (four-eyes), or the policy is refused: add approvers.
        while (bound := quorum_bound(people, [role])) == 0:
            people[f"approver.{len(people)}"] = {"roles": [role]}
        return {"roles": [role], "count": draw(st.integers(1, bound))}

    policy: dict[str, Any] = {
        "version": 1,
        "inventory": "example",
        "people": people,
        # Every rule, the emergency one and its retrospective too, must be reachable.
        "approvals": {
            "low": rule(),
            "medium": rule(),
            "high": rule(),
            "emergency": {**rule(), "retrospective": rule()},
        },
        "require_signed_approvals": False,
        "windows": [
            {
                "name": draw(TEXT),
                "timezone": draw(TIMEZONES),
                "days": draw(
                    st.lists(
                        st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                        min_size=1,
                        unique=True,
                    )
                ),
                "start": draw(CLOCK),
                "end": draw(CLOCK),
            }
            for _ in range(draw(st.integers(0, 2)))
        ],
        "concurrency": [
            {"group": draw(GROUP_NAME), "max_changing": draw(st.integers(1, 10))}
            for _ in range(draw(st.integers(0, 2)))
        ],
    }
    if draw(st.booleans()):
        policy["retention_days"] = draw(st.integers(1, 3650))
    names = draw(st.lists(SCHEDULE_NAME, max_size=2, unique=True))
    if names:
        policy["schedules"] = [draw(schedules(name)) for name in names]
    return policy


SCHEDULE_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
CRONS = st.sampled_from(
    ["0 2 * * *", "*/5 * * * *", "30 6 * * mon-fri", "0 0 1 1 *", "5 4 * * sun"]
)
SELECTIONS = st.sampled_from(["group:core", "site:dc1 and platform:cisco_ios", "name:core-*"])


@st.composite
def schedules(draw: st.DrawFn, name: str) -> dict[str, Any]:
    """A valid `schedules:` entry (opskit.distributed.schedule)."""
    entry: dict[str, Any] = {
        "name": name,
        "job": draw(st.sampled_from(["backup", "compliance", "inspect"])),
    }
    if draw(st.booleans()):
        entry["cron"] = draw(CRONS)
    else:
        entry["every"] = draw(st.integers(1, 86400))
    if draw(st.booleans()):
        entry["select"] = draw(SELECTIONS)
    if entry["job"] == "compliance" and draw(st.booleans()):
        entry["source"] = draw(st.sampled_from(["live", "backup"]))
    return entry


# -- mutations ---------------------------------------------------------------------
def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside nested mappings and lists."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    node = data
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_data(draw: st.DrawFn, data: Any) -> Any:
    """`data` with one structural mutation: a key deleted, duplicated under a
    typo, or a value replaced by junk (wrong type, huge int, NaN, control
    characters, unicode)."""
    data = copy.deepcopy(data)
    paths = _paths(data)
    if not paths:
        return draw(JUNK)
    path = draw(st.sampled_from(paths))
    parent = _parent(data, path)
    key = path[-1]
    how = draw(st.sampled_from(["delete", "junk", "junk", "typo", "unicode_key"]))
    if how == "delete":
        del parent[key]
    elif how == "junk":
        parent[key] = draw(JUNK)
    elif isinstance(parent, dict):
        new_key = str(key) + draw(st.sampled_from(["x", "_", "é", "\u202e", " "]))
        if how == "unicode_key":
            new_key = draw(st.sampled_from(["名前", "ﬁeld", "\u200bname", "na\x00me"]))
        parent[new_key] = parent[key]
    else:
        parent.append(copy.deepcopy(parent[key]))
    return data


TOKENS = [
    ":",
    "{",
    "[",
    "]",
    "}",
    "\t",
    "- ",
    "&a ",
    "*b",
    "!!python/object:os.system ",
    "<<: *x",
    "%YAML 1.1\n",
    "---\n",
    "'",
    '"',
    "|",
    ">",
    "\x00",
    "\x07",
    "\ufeff",
    "? ",
]


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> bytes:
    """`text` broken as a file can be: truncated, a line duplicated (often a
    duplicate key), a YAML token or control byte inserted, invalid UTF-8."""
    how = draw(st.sampled_from(["truncate", "duplicate_line", "insert", "bytes"]))
    raw = text.encode("utf-8")
    if how == "truncate":
        return raw[: draw(st.integers(0, max(len(raw) - 1, 0)))]
    if how == "duplicate_line":
        lines = text.splitlines(keepends=True) or [""]
        index = draw(st.integers(0, len(lines) - 1))
        lines.insert(index, lines[index])
        return "".join(lines).encode("utf-8")
    position = draw(st.integers(0, len(text)))
    if how == "insert":
        token = draw(st.sampled_from(TOKENS))
        return (text[:position] + token + text[position:]).encode("utf-8")
    junk = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]))
    cut = len(text[:position].encode("utf-8"))
    return raw[:cut] + junk + raw[cut:]


def yaml_text(data: Any) -> str:
    """The YAML a person (or opskit itself) would write for `data`."""
    return dump_yaml(data)
