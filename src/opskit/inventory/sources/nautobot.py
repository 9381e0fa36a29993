"""Reads devices and virtual machines from Nautobot's REST API (pynautobot).

`fetch_nautobot(url, token, filters)` returns a `Snapshot`: the source-neutral
`SourceObject`s plus the API version Nautobot reports. Each failure is one
`SyncError` line: an unreachable server, a refused token, a token without
permission to read an endpoint.

Example: ``fetch_nautobot("http://127.0.0.1:8080", token, {"location": ["dc1"]})``
-> ``Snapshot(url="http://127.0.0.1:8080", api_version="3.2", objects=[...])``.

How Nautobot's objects map (see docs/source-of-truth.md):
device/VM name -> name; platform + its ``network_driver_mappings["netmiko"]``
-> platform; primary IP (without prefix length) -> host; location -> site;
role -> role (and type); tenant -> owner, tenant group -> department; status
-> lifecycle; custom fields and tags -> attributes; virtual-chassis members
-> ``member_of`` their master; a VM -> ``runs_on`` the devices of its cluster;
a cable between two devices' interfaces -> ``connected_to`` both ways;
an association of a Nautobot *relationship* whose key the workspace maps
(``relationships: {uplink_of: depends_on}``) -> that kind, from its source
object to its destination object (a symmetric relationship, whose peers have
no direction, only as ``connected_to``, both ways).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from opskit.inventory.sources.records import SourceObject, SyncError

SOURCE = "nautobot"


@dataclass(frozen=True)
class Snapshot:
    """What one read of a source of truth returned."""

    source: str
    url: str
    api_version: str
    objects: list[SourceObject]


def fetch_nautobot(
    url: str,
    token: str,
    filters: Mapping[str, list[str]] | None = None,
    *,
    relationships: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Snapshot:
    """Reads the devices and VMs matching `filters` (Nautobot filter
    parameters, e.g. ``{"location": ["dc1"], "tag": ["managed"]}``), and the
    associations of the relationships `relationships` maps (key -> kind)."""
    import pynautobot

    api = pynautobot.api(url, token=token)
    api.http_session.request = _with_timeout(api.http_session.request, timeout)
    reader = _Reader(api, url)
    version = reader.call("status", lambda: api.version)
    params = dict(filters or {})
    devices = reader.list("dcim.devices", api.dcim.devices, params)
    vms = reader.list(
        "virtualization.virtual-machines", api.virtualization.virtual_machines, params
    )
    platforms = _by_id(reader.list("dcim.platforms", api.dcim.platforms, {}))
    tenants = _by_id(reader.list("tenancy.tenants", api.tenancy.tenants, {}))
    chassis = _by_id(reader.list("dcim.virtual-chassis", api.dcim.virtual_chassis, {}))
    clusters = _by_id(reader.list("virtualization.clusters", api.virtualization.clusters, {}))
    assignments = reader.list(
        "dcim.device-cluster-assignments", api.dcim.device_cluster_assignments, {}
    )
    cabled = reader.list("dcim.interfaces", api.dcim.interfaces, {"has_cable": ["true"]})
    context = _Context(
        platforms, tenants, chassis, clusters, _cable_peers(cabled), _cluster_hosts(assignments)
    )
    objects = [context.device(d) for d in devices] + [context.vm(v) for v in vms]
    if relationships:
        rows = reader.list(
            "extras.relationship-associations",
            api.extras.relationship_associations,
            {"relationship": sorted(relationships)},
        )
        objects = _with_relationships(objects, rows, relationships)
    return Snapshot(SOURCE, url, str(version), objects)


def _with_relationships(
    objects: list[SourceObject], rows: Iterable[Mapping[str, Any]], kinds: Mapping[str, str]
) -> list[SourceObject]:
    """`objects` with the mapped relationship associations added: the source
    object `kind` the destination (named by id when it was not read, so the
    mapping leaves it out with a note). A symmetric relationship (Nautobot's
    peers: no source, no destination) can only mean `connected_to`, both
    ways; mapped to a kind with a direction it is refused (`SyncError`)."""
    names = {obj.source_id: obj.name for obj in objects}
    added: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for row in rows:
        relationship = row.get("relationship")
        key = relationship.get("key") if isinstance(relationship, Mapping) else None
        kind = kinds.get(str(key))
        if not kind:
            continue
        ends = [(str(row.get("source_id")), str(row.get("destination_id")))]
        if _symmetric(relationship):
            if kind != "connected_to":
                raise SyncError(
                    f"nautobot relationship {key!r} is symmetric (peers, no source or "
                    f"destination): it cannot mean {kind}; map it to connected_to"
                )
            ends.append(ends[0][::-1])
        for source, target in ends:
            if source in names:
                added[names[source]][kind].add(names.get(target, target))
    out = []
    for obj in objects:
        extra = added.get(obj.name)
        if extra:
            relations = {k: tuple(v) for k, v in obj.relations.items()}
            for kind, targets in extra.items():
                relations[kind] = tuple(sorted({*relations.get(kind, ()), *targets}))
            obj = replace(obj, relations=relations)
        out.append(obj)
    return out


def _symmetric(relationship: Any) -> bool:
    """Whether a relationship (as an association row nests it) is one of
    Nautobot's symmetric types; its `type` is a choice, a value or a
    {"value": ..., "label": ...}."""
    kind = relationship.get("type") if isinstance(relationship, Mapping) else None
    if isinstance(kind, Mapping):
        kind = kind.get("value")
    return str(kind or "").startswith("symmetric")


def _with_timeout(request: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)

    return call


class _Reader:
    """Lists endpoints as plain dictionaries; turns failures into one line."""

    def __init__(self, api: Any, url: str) -> None:
        self.api = api
        self.url = url

    def list(self, name: str, endpoint: Any, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return self.call(name, lambda: [dict(r) for r in endpoint.filter(depth=1, **params)])

    def call(self, name: str, read: Callable[[], Any]) -> Any:
        import pynautobot
        import requests

        try:
            return read()
        except pynautobot.RequestError as exc:
            status = exc.req.status_code
            detail = _detail(exc.req)
            if status in (401, 403):
                raise SyncError(
                    f"nautobot {self.url}: {name}: access refused ({status}: {detail}); "
                    "check the token and its permissions"
                ) from None
            raise SyncError(f"nautobot {self.url}: {name}: HTTP {status}: {detail}") from None
        except requests.RequestException as exc:
            raise SyncError(f"nautobot {self.url}: unreachable ({type(exc).__name__})") from None
        except ValueError as exc:
            raise SyncError(f"nautobot {self.url}: {name}: not a Nautobot answer ({exc})") from None


def _detail(response: Any) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or "no detail"
    if isinstance(body, Mapping) and "detail" in body:
        return str(body["detail"])
    return str(body)[:200]


def _by_id(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(row["id"]): row for row in rows}


def _ref_id(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("id"):
        return str(value["id"])
    return None


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        found = value.get("name") or value.get("display") or value.get("label")
        return str(found) if found else None
    return None


def _cable_peers(interfaces: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Device name -> the device names at the other end of its cables."""
    ends: dict[str, set[str]] = defaultdict(set)
    for interface in interfaces:
        cable, device = _ref_id(interface.get("cable")), _name(interface.get("device"))
        if cable and device:
            ends[cable].add(device)
    peers: dict[str, set[str]] = defaultdict(set)
    for devices in ends.values():
        for device in devices:
            peers[device] |= devices - {device}
    return peers


def _cluster_hosts(assignments: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Cluster id -> the names of the devices (hosts) assigned to it."""
    hosts: dict[str, set[str]] = defaultdict(set)
    for assignment in assignments:
        cluster, device = _ref_id(assignment.get("cluster")), _name(assignment.get("device"))
        if cluster and device:
            hosts[cluster].add(device)
    return hosts


@dataclass
class _Context:
    platforms: Mapping[str, Mapping[str, Any]]
    tenants: Mapping[str, Mapping[str, Any]]
    chassis: Mapping[str, Mapping[str, Any]]
    clusters: Mapping[str, Mapping[str, Any]]
    cable_peers: Mapping[str, set[str]]
    cluster_hosts: Mapping[str, set[str]]

    def common(self, row: Mapping[str, Any], kind: str) -> dict[str, Any]:
        platform = self.platforms.get(_ref_id(row.get("platform")) or "", {})
        tenant = self.tenants.get(_ref_id(row.get("tenant")) or "", {})
        primary = row.get("primary_ip4") or row.get("primary_ip6") or {}
        address = primary.get("address") if isinstance(primary, Mapping) else None
        return {
            "kind": kind,
            "source_id": str(row["id"]),
            "name": str(row.get("name") or ""),
            "platform": platform.get("name"),
            "drivers": dict(platform.get("network_driver_mappings") or {}),
            "host": address.split("/")[0] if address else None,
            "role": _name(row.get("role")),
            "tenant": tenant.get("name"),
            "tenant_group": _name(tenant.get("tenant_group")),
            "status": _name(row.get("status")),
            "custom_fields": dict(row.get("custom_fields") or {}),
            "tags": tuple(sorted(filter(None, (_name(t) for t in row.get("tags") or ())))),
        }

    def device(self, row: Mapping[str, Any]) -> SourceObject:
        fields = self.common(row, "device")
        relations: dict[str, tuple[str, ...]] = {
            "connected_to": tuple(sorted(self.cable_peers.get(fields["name"], ())))
        }
        chassis = self.chassis.get(_ref_id(row.get("virtual_chassis")) or "")
        master = _name(chassis.get("master")) if chassis else None
        if master and master != fields["name"]:
            relations["member_of"] = (master,)
        return SourceObject(
            **fields,
            site=_name(row.get("location")),
            model=(row.get("device_type") or {}).get("model") or None,
            serial=row.get("serial") or None,
            relations=relations,
        )

    def vm(self, row: Mapping[str, Any]) -> SourceObject:
        fields = self.common(row, "virtual_machine")
        cluster_id = _ref_id(row.get("cluster")) or ""
        cluster = self.clusters.get(cluster_id, {})
        return SourceObject(
            **fields,
            site=_name(cluster.get("location")),
            relations={"runs_on": tuple(sorted(self.cluster_hosts.get(cluster_id, ())))},
        )
