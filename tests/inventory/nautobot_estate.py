"""A realistic estate created in a real Nautobot through its REST API
(pynautobot): two locations, platforms with and without network drivers,
roles, tenants in groups, devices with primary IPs, a virtual chassis, a
cluster with VMs, interfaces and cables, custom fields and tags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEVICE = "dcim.device"
VM = "virtualization.virtualmachine"


@dataclass
class Estate:
    """Ids of what was created, by name, so tests can change the estate."""

    api: Any
    ids: dict[str, str] = field(default_factory=dict)

    def create(self, endpoint: Any, key: str, **data: Any) -> str:
        record = endpoint.create(**data)
        self.ids[key] = str(record.id)
        return self.ids[key]

    def status(self, name: str) -> str:
        return str(self.api.extras.statuses.get(name=name).id)


def build_estate(api: Any) -> Estate:
    estate = Estate(api)
    active = estate.status("Active")
    _content_types(api, active)
    _catalogue(estate)
    _locations_and_tenants(estate, active)
    _devices(estate, active)
    _virtualization(estate, active)
    return estate


def _content_types(api: Any, active: str) -> None:
    """Nautobot's default statuses apply to devices and VMs already; the
    estate's custom fields and tags must be allowed on both."""
    api.extras.custom_fields.create(
        label="OS version", key="os_version", type="text", content_types=[DEVICE, VM]
    )
    api.extras.custom_fields.create(
        label="Rack unit", key="rack_unit", type="integer", content_types=[DEVICE]
    )
    for name in ("pci", "managed"):
        api.extras.tags.create(name=name, content_types=[DEVICE, VM])


def _catalogue(estate: Estate) -> None:
    api = estate.api
    cisco = estate.create(api.dcim.manufacturers, "Cisco", name="Cisco")
    arista = estate.create(api.dcim.manufacturers, "Arista", name="Arista")
    estate.create(api.dcim.device_types, "C9300", manufacturer=cisco, model="C9300-48P")
    estate.create(api.dcim.device_types, "7050", manufacturer=arista, model="DCS-7050SX3")
    estate.create(api.dcim.device_types, "R650", manufacturer=cisco, model="UCS-C220")
    estate.create(api.dcim.platforms, "IOS", name="Cisco IOS", network_driver="cisco_ios")
    estate.create(api.dcim.platforms, "EOS", name="Arista EOS", network_driver="arista_eos")
    estate.create(api.dcim.platforms, "NXOS", name="Cisco NX-OS", network_driver="cisco_nxos")
    # A platform whose network driver Nautobot knows no netmiko name for.
    estate.create(api.dcim.platforms, "Legacy", name="Legacy OS", network_driver="")
    estate.create(api.dcim.platforms, "Linux", name="Ubuntu", network_driver="linux")
    for role in ("Switch", "Router", "Hypervisor", "Database", "Application"):
        estate.create(api.extras.roles, role, name=role, content_types=[DEVICE, VM])


def _locations_and_tenants(estate: Estate, active: str) -> None:
    api = estate.api
    site_type = estate.create(
        api.dcim.location_types,
        "Site",
        name="Site",
        content_types=[DEVICE, "virtualization.cluster", "ipam.prefix"],
    )
    for name in ("dc1", "dc2"):
        estate.create(api.dcim.locations, name, name=name, location_type=site_type, status=active)
    group = estate.create(api.tenancy.tenant_groups, "network", name="network")
    estate.create(api.tenancy.tenants, "netops", name="netops", tenant_group=group)
    estate.create(api.tenancy.tenants, "platform", name="platform")
    namespace = str(api.ipam.namespaces.get(name="Global").id)
    estate.ids["Global"] = namespace
    api.ipam.prefixes.create(
        prefix="10.0.0.0/16", namespace=namespace, status=active, type="network"
    )


def add_device(
    estate: Estate, name: str, *, platform: str = "IOS", role: str = "Switch",
    device_type: str = "C9300", location: str = "dc1", status: str = "Active",
    address: str | None = None, tenant: str | None = "netops", **extra: Any,
) -> str:  # fmt: skip
    """Creates a device (and, with `address`, an interface holding its primary IP)."""
    api = estate.api
    device_id = estate.create(
        api.dcim.devices, name, name=name, device_type=estate.ids[device_type],
        role=estate.ids[role], location=estate.ids[location], status=estate.status(status),
        platform=estate.ids[platform], tenant=estate.ids[tenant] if tenant else None, **extra,
    )  # fmt: skip
    if address:
        interface = add_interface(estate, name, "mgmt0")
        ip = api.ipam.ip_addresses.create(
            address=address, namespace=estate.ids["Global"], status=estate.status("Active"),
            type="host",
        )  # fmt: skip
        api.ipam.ip_address_to_interface.create(ip_address=ip.id, interface=interface)
        api.dcim.devices.update([{"id": device_id, "primary_ip4": str(ip.id)}])
    return device_id


def add_interface(estate: Estate, device: str, name: str) -> str:
    return estate.create(
        estate.api.dcim.interfaces, f"{device}:{name}", device=estate.ids[device], name=name,
        type="1000base-t", status=estate.status("Active"),
    )  # fmt: skip


def cable(estate: Estate, a: str, b: str) -> None:
    estate.api.dcim.cables.create(
        termination_a_type="dcim.interface", termination_a_id=estate.ids[a],
        termination_b_type="dcim.interface", termination_b_id=estate.ids[b],
        status=estate.status("Connected"),
    )  # fmt: skip


def _devices(estate: Estate, active: str) -> None:
    api = estate.api
    add_device(
        estate, "core-sw1", address="10.0.1.1/24", serial="FOC1001",
        custom_fields={"os_version": "17.9.4", "rack_unit": 12}, tags=[estate_tag(api, "pci")],
    )  # fmt: skip
    add_device(estate, "core-sw2", address="10.0.1.2/24", serial="FOC1002")
    add_device(
        estate, "edge-rtr1", platform="EOS", role="Router", device_type="7050",
        address="10.0.2.1/24", tenant="platform",
    )  # fmt: skip
    add_device(estate, "spare-sw9", status="Planned", location="dc2")
    for device in ("core-sw1", "core-sw2", "edge-rtr1"):
        add_interface(estate, device, "Gi1/0/1")
        add_interface(estate, device, "Gi1/0/2")
    cable(estate, "core-sw1:Gi1/0/1", "core-sw2:Gi1/0/1")
    cable(estate, "core-sw1:Gi1/0/2", "edge-rtr1:Gi1/0/1")
    # core-sw1 and core-sw2 form a virtual chassis whose master is core-sw1.
    chassis = estate.create(api.dcim.virtual_chassis, "vc1", name="vc1")
    api.dcim.devices.update(
        [
            {"id": estate.ids["core-sw1"], "virtual_chassis": chassis, "vc_position": 1},
            {"id": estate.ids["core-sw2"], "virtual_chassis": chassis, "vc_position": 2},
        ]
    )
    api.dcim.virtual_chassis.update([{"id": chassis, "master": estate.ids["core-sw1"]}])


def estate_tag(api: Any, name: str) -> str:
    return str(api.extras.tags.get(name=name).id)


def _virtualization(estate: Estate, active: str) -> None:
    api = estate.api
    kind = estate.create(api.virtualization.cluster_types, "VMware", name="VMware")
    cluster = estate.create(
        api.virtualization.clusters, "prod", name="prod", cluster_type=kind,
        location=estate.ids["dc1"],
    )  # fmt: skip
    for name, address in (("esx1", "10.0.3.1/24"), ("esx2", "10.0.3.2/24")):
        add_device(
            estate, name, platform="Linux", role="Hypervisor", device_type="R650",
            address=address, tenant="platform",
        )  # fmt: skip
        api.dcim.device_cluster_assignments.create(device=estate.ids[name], cluster=cluster)
    for name in ("db-vm1", "app-vm1"):
        estate.create(
            api.virtualization.virtual_machines, name, name=name, cluster=cluster, status=active,
            role=estate.ids["Database" if name.startswith("db") else "Application"],
            platform=estate.ids["Linux"], tenant=estate.ids["platform"],
            custom_fields={"os_version": "22.04"}, tags=[estate_tag(api, "managed")],
        )  # fmt: skip
