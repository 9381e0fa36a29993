"""Operational state snapshots: normalise parsed state, diff two snapshots, explain differences.

A *state snapshot* is what a device reports about its operation (not its
configuration), per **fact**, as a plain JSON value::

    {"vlans": {"1": {"name": "default", "status": "active", "interfaces": ["Fa0/1"]}},
     "interfaces": {"FastEthernet0/1": {"link_status": "up", "protocol_status": "up", ...}},
     "routes": {"unavailable": "the device rejected 'show ip route': ..."}}

`normalise(fact, rows)` turns the rows a TextFSM template (ntc-templates) or a
NAPALM getter gave into that form, dropping the fields that change on their
own (`VOLATILE`: counters, rates, uptimes, timers); `diff(before, after)`
lists the structural differences (`Difference`: ``added`` / ``removed`` /
``changed`` at a dotted path such as ``vlans.351`` or
``interfaces.FastEthernet0/5.link_status``); `explain(differences, allow)`
splits them into those an allowed pattern covers and the unexplained rest.

    >>> before = {"vlans": {"1": {"name": "default"}}}
    >>> after = {"vlans": {"1": {"name": "default"}, "351": {"name": "web"}}}
    >>> [d.describe() for d in diff(before, after)]
    ['vlans.351: added {"name": "web"}']
    >>> explain(diff(before, after), ["vlans.351"])[1]
    []

A pattern is a shell-style glob (`fnmatch`, case-sensitive) over the dotted
path, where ``*`` matches any text (dots included); a pattern that matches a
path also allows everything below it (``vlans.351`` allows
``vlans.351.name``). Capturing a snapshot from a device is
`opskit.runbooks.opstate_capture`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

#: Every fact a runbook may ask for, in capture order.
FACTS = ("interfaces", "vlans", "routes", "neighbors", "bgp", "ospf")

#: The show commands (parsed by ntc-templates) behind each fact, per platform.
#: A fact with several commands merges their rows (neighbours: CDP and LLDP).
COMMANDS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "cisco_ios": {
        "interfaces": ("show interfaces",),
        "vlans": ("show vlan",),
        "routes": ("show ip route",),
        "neighbors": ("show cdp neighbors detail", "show lldp neighbors detail"),
        "bgp": ("show ip bgp summary",),
        "ospf": ("show ip ospf neighbor",),
    },
}

#: The NAPALM getters behind each fact (any NAPALM driver); OSPF has none.
GETTERS: Mapping[str, str] = {
    "interfaces": "get_interfaces",
    "vlans": "get_vlans",
    "neighbors": "get_lldp_neighbors_detail",
    "bgp": "get_bgp_neighbors",
}

#: Fields dropped before comparing, per fact: they change without any change
#: to the device (packet and error counters, rates, queues, uptimes, timers).
VOLATILE: Mapping[str, frozenset[str]] = {
    "interfaces": frozenset(
        [
            "input_packets",
            "output_packets",
            "input_rate",
            "output_rate",
            "input_pps",
            "output_pps",
            "input_errors",
            "output_errors",
            "crc",
            "frame",
            "overrun",
            "abort",
            "runts",
            "giants",
            "queue_size",
            "queue_drops",
            "queue_flushes",
            "queue_output_drops",
            "last_input",
            "last_output",
            "last_output_hang",
            "last_flapped",
            "counters",
            "load",
            "reliability",
        ]
    ),
    "vlans": frozenset(),
    "routes": frozenset(["uptime", "age", "last_active", "metric"]),
    "neighbors": frozenset(["holdtime", "ttl", "remote_system_description", "uptime"]),
    "bgp": frozenset(
        [
            "up_down",
            "uptime",
            "messages_received",
            "messages_sent",
            "table_version",
            "input_queue",
            "output_queue",
            "prefixes_received",
            "received_prefixes",
            "accepted_prefixes",
            "sent_prefixes",
            "address_family",
        ]
    ),
    "ospf": frozenset(["dead_time", "uptime"]),
}


@dataclass(frozen=True)
class Difference:
    """One structural difference between two snapshots: `kind` is ``added``,
    ``removed`` or ``changed``, `path` the dotted path (``vlans.351``),
    `before` / `after` the values (None where absent)."""

    kind: str
    path: str
    before: Any = None
    after: Any = None

    def describe(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added {_short(self.after)}"
        if self.kind == "removed":
            return f"{self.path}: removed {_short(self.before)}"
        return f"{self.path}: {_short(self.before)} -> {_short(self.after)}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "before": self.before, "after": self.after}


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


# -- normalisation ------------------------------------------------------------
def _text(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _keep(fact: str, row: Mapping[str, Any], drop: Iterable[str] = ()) -> dict[str, Any]:
    skip = VOLATILE[fact] | set(drop)
    kept: dict[str, Any] = {}
    for name, value in row.items():
        if name in skip:
            continue
        if isinstance(value, list):
            kept[name] = sorted(_text(v) for v in value)
        elif isinstance(value, Mapping):
            kept[name] = {str(k): v for k, v in value.items() if str(k) not in skip}
        else:
            kept[name] = value if isinstance(value, bool | int) else _text(value)
    return kept


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    """Adds an entry; a key the output repeats with another value keeps every
    value, sorted, under ``duplicate`` (the same whatever the rows' order)."""
    if key not in out or out[key] == value:
        out[key] = value
        return
    seen = out[key]["duplicate"] if set(out[key]) == {"duplicate"} else [out[key]]
    if value not in seen:
        seen = sorted([*seen, value], key=lambda v: json.dumps(v, sort_keys=True))
    out[key] = {"duplicate": seen}


def _interfaces(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        name = _text(row.get("interface") or row.get("intf"))
        if not name:
            continue
        kept = _keep("interfaces", row, ("interface", "intf"))
        # `show ip interface brief` calls them status / proto.
        if "status" in kept and "link_status" not in kept:
            kept["link_status"] = kept.pop("status")
        if "proto" in kept:
            kept["protocol_status"] = kept.pop("proto")
        _put(out, name, kept)
    return out


def _vlans(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        vlan_id = _text(row.get("vlan_id"))
        if vlan_id:
            entry = {
                "name": _text(row.get("vlan_name", row.get("name"))),
                "status": _text(row.get("status", "active")),
                "interfaces": sorted(_text(i) for i in row.get("interfaces") or []),
            }
            _put(out, vlan_id, entry)
    return out


def _routes(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The size of the routing table (prefixes, per protocol) and the default route."""
    prefixes: dict[str, set[str]] = {}
    default: list[str] = []
    for row in rows:
        prefix = f"{_text(row.get('network'))}/{_text(row.get('prefix_length'))}"
        vrf = _text(row.get("vrf"))
        key = f"{vrf}:{prefix}" if vrf else prefix
        protocol = _text(row.get("protocol"))
        prefixes.setdefault(key, set()).add(protocol)
        if prefix == "0.0.0.0/0" and not vrf:
            hop = _text(row.get("nexthop_ip")) or _text(row.get("nexthop_if"))
            default.append(f"{protocol} via {hop}".strip())
    by_protocol: dict[str, int] = {}
    for protocols in prefixes.values():
        # A prefix several protocols print (rarely) counts once, under the first by name.
        protocol = min(protocols)
        by_protocol[protocol] = by_protocol.get(protocol, 0) + 1
    return {
        "count": len(prefixes),
        "by_protocol": dict(sorted(by_protocol.items())),
        "default": sorted(set(default)) or None,
    }


def _neighbors(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        local = _text(row.get("local_interface") or row.get("local_port"))
        remote = _text(
            row.get("neighbor_name")
            or row.get("remote_system_name")
            or row.get("chassis_id")
            or row.get("remote_chassis_id")
        )
        port = _text(row.get("neighbor_interface") or row.get("remote_port"))
        if local or remote:
            _put(out, f"{local}>{remote}", {"neighbor": remote, "port": port})
    return out


def _bgp(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        peer = _text(row.get("bgp_neighbor") or row.get("bgp_neigh") or row.get("peer"))
        if not peer:
            continue
        state = _text(row.get("state_or_prefixes_received") or row.get("state"))
        # IOS prints the prefix count in place of the state once established.
        if state.isdigit():
            state = "Established"
        remote_as = _text(row.get("neighbor_as") or row.get("remote_as"))
        _put(out, peer, {"remote_as": remote_as, "state": state})
    return out


def _ospf(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in rows:
        neighbor = _text(row.get("neighbor_id"))
        if neighbor:
            key = f"{neighbor}@{_text(row.get('interface'))}"
            state = " ".join(_text(row.get("state")).split())
            _put(out, key, {"state": state, "address": _text(row.get("ip_address"))})
    return out


_NORMALISERS = {
    "interfaces": _interfaces,
    "vlans": _vlans,
    "routes": _routes,
    "neighbors": _neighbors,
    "bgp": _bgp,
    "ospf": _ospf,
}


def normalise(fact: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The comparable form of one fact from parsed rows (TextFSM rows, or rows
    made from a NAPALM getter by `napalm_rows`), volatile fields dropped, e.g.
    ``normalise("vlans", [{"vlan_id": "1", "vlan_name": "default", "status":
    "active", "interfaces": ["Fa0/2", "Fa0/1"]}])`` is ``{"1": {"name": "default",
    "status": "active", "interfaces": ["Fa0/1", "Fa0/2"]}}``."""
    if fact not in _NORMALISERS:
        raise ValueError(f"unknown state fact {fact!r} (known: {', '.join(FACTS)})")
    return _NORMALISERS[fact](rows)


def napalm_rows(fact: str, answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rows in the ntc-templates vocabulary from a NAPALM getter's answer."""
    if fact == "interfaces":
        return [
            {
                "interface": name,
                "link_status": "up" if data.get("is_up") else "down",
                "enabled": bool(data.get("is_enabled")),
                **{k: v for k, v in data.items() if k not in ("is_up", "is_enabled")},
            }
            for name, data in answer.items()
        ]
    if fact == "vlans":
        return [
            {"vlan_id": str(vid), "vlan_name": d.get("name", ""), "interfaces": d.get("interfaces")}
            for vid, d in answer.items()
        ]
    if fact == "neighbors":
        return [
            {
                "local_interface": local,
                "neighbor_name": n.get("remote_system_name") or n.get("remote_chassis_id", ""),
                "neighbor_interface": n.get("remote_port", ""),
            }
            for local, found in answer.items()
            for n in found
        ]
    if fact == "bgp":
        return [
            {
                "bgp_neighbor": peer if vrf in ("global", "default") else f"{vrf}:{peer}",
                "neighbor_as": str(d.get("remote_as", "")),
                "state": "Established" if d.get("is_up") else "Down",
            }
            for vrf, data in answer.items()
            for peer, d in (data.get("peers") or {}).items()
        ]
    raise ValueError(f"no NAPALM getter for state fact {fact!r}")


# -- diff -------------------------------------------------------------------
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _walk(before: Any, after: Any, path: str, out: list[Difference]) -> None:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in sorted(set(before) | set(after), key=str):
            where = _join(path, str(key))
            if key not in after:
                out.append(Difference("removed", where, before[key], None))
            elif key not in before:
                out.append(Difference("added", where, None, after[key]))
            else:
                _walk(before[key], after[key], where, out)
    elif before != after:
        out.append(Difference("changed", path, before, after))


def _without(value: Any, ignore: frozenset[str]) -> Any:
    if isinstance(value, Mapping):
        return {k: _without(v, ignore) for k, v in value.items() if str(k) not in ignore}
    return value


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[Difference]:
    """Every structural difference from `before` to `after`, sorted by path: a
    key only one side has is ``added`` / ``removed`` (with its whole value), a
    leaf (or list) that differs is ``changed``. A fact absent from either side
    or unavailable on either side (``{"unavailable": ...}``) is not compared, nor
    any field named in `ignore` (at any depth, like genie diff's ``--exclude``)."""
    skip = frozenset(ignore)
    if skip:
        before, after = _without(before, skip), _without(after, skip)
    out: list[Difference] = []
    for fact in sorted(set(before) & set(after)):
        mine, theirs = before[fact], after[fact]
        if _unavailable(mine) or _unavailable(theirs):
            continue
        _walk(mine, theirs, fact, out)
    return out


def _unavailable(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"unavailable"}


def allows(pattern: str, path: str) -> bool:
    """True when `pattern` covers `path`: it matches it or one of its parents."""
    return fnmatchcase(path, pattern) or fnmatchcase(path, pattern + ".*")


def explain(
    differences: Sequence[Difference], allow: Sequence[str]
) -> tuple[list[Difference], list[Difference]]:
    """(explained, unexplained): the differences some pattern of `allow` covers, and the rest."""
    explained: list[Difference] = []
    unexplained: list[Difference] = []
    for difference in differences:
        covered = any(allows(p, difference.path) for p in allow)
        (explained if covered else unexplained).append(difference)
    return explained, unexplained


def state_text(state: Mapping[str, Any]) -> str:
    """The snapshot as the canonical JSON text stored in the ledger (a blob)."""
    return json.dumps(state, sort_keys=True, ensure_ascii=False, indent=1) + "\n"


def summary(state: Mapping[str, Any]) -> dict[str, Any]:
    """Per fact, how many entries it holds, or ``"unavailable: reason"``."""
    out: dict[str, Any] = {}
    for fact, value in state.items():
        if _unavailable(value):
            out[fact] = f"unavailable: {value['unavailable']}"
        elif fact == "routes":
            out[fact] = value.get("count", 0)
        else:
            out[fact] = len(value)
    return out


__all__ = [
    "COMMANDS",
    "FACTS",
    "GETTERS",
    "VOLATILE",
    "Difference",
    "allows",
    "diff",
    "explain",
    "napalm_rows",
    "normalise",
    "state_text",
    "summary",
]
