"""The physical inventory: hosts, their interfaces, networks, appliances and boot actions.

Each public function is one use-case and one transaction. Checks that can give a precise message
(unknown membership, duplicate MAC, IP outside its network) run first; the schema's constraints
catch whatever races past them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import check_plain_name, resolve_host, resolve_hosts
from flightdeck.db.models import (
    VM,
    Appliance,
    Cluster,
    Host,
    HostBoot,
    Interface,
    Network,
)
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.planner.addresses import check_ip_in_network, network_of, next_free_ip
from flightdeck.planner.macs import normalize_mac
from flightdeck.planner.names import validate_dns_zone, validate_host_name
from flightdeck.planner.network import check_module, check_module_options
from flightdeck.services.base import writing

# The read-only listings live on Core in services.listings (no ORM import for `rocks list ...`);
# re-exported here, where callers and tests have always found them.
from flightdeck.services.listings import HostRow as HostRow
from flightdeck.services.listings import InterfaceRow as InterfaceRow
from flightdeck.services.listings import NetworkRow as NetworkRow
from flightdeck.services.listings import list_appliances as list_appliances
from flightdeck.services.listings import list_boot as list_boot
from flightdeck.services.listings import list_boot_actions as list_boot_actions
from flightdeck.services.listings import list_hosts as list_hosts
from flightdeck.services.listings import list_interfaces as list_interfaces
from flightdeck.services.listings import list_networks as list_networks

IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


# Lookups shared by the services ---------------------------------------------------------------


def find_appliance(s: Session, name: str) -> Appliance:
    """An appliance by its name (`compute`) or membership (`Compute`), case-insensitively."""
    key = name.strip().lower()
    app = s.scalar(
        select(Appliance).where(
            (func.lower(Appliance.name) == key) | (func.lower(Appliance.membership) == key)
        )
    )
    if app is None:
        known = ", ".join(repr(a) for a in s.scalars(select(Appliance.membership)))
        raise NotFound(f"membership {name!r} is not valid: use one of {known}")
    return app


def find_network(s: Session, name: str) -> Network:
    net = s.scalar(select(Network).where(Network.name == name))
    if net is None:
        known = ", ".join(s.scalars(select(Network.name).order_by(Network.name)))
        raise NotFound(f"unknown network (subnet) {name!r}: use one of {known or 'none yet'}")
    return net


def ipv4_network(net: Network) -> ipaddress.IPv4Network:
    return network_of(net.subnet, net.netmask)


def network_for_ip(s: Session, ip: str) -> Network:
    """The network that contains `ip`, for an interface given an IP but no subnet."""
    addr = ipaddress.ip_address(check_ip(ip))
    for net in s.scalars(select(Network).order_by(Network.id)):
        if addr in ipv4_network(net):
            return net
    raise UserError(f"IP {ip} is in none of the known networks: give subnet=<network> as well")


def check_ip(ip: str) -> str:
    try:
        return str(ipaddress.IPv4Address(ip.strip()))
    except ValueError:
        raise UserError(
            f"invalid IP address {ip!r}: expected dotted IPv4 like 10.1.255.254"
        ) from None


def used_ips(s: Session, net: Network) -> list[str]:
    return [
        ip for ip in s.scalars(select(Interface.ip).where(Interface.network_id == net.id)) if ip
    ]


def check_mac_free(s: Session, mac: str, *, exclude_iface: int | None = None) -> None:
    row = s.execute(
        select(Host.name, Interface.device, Interface.id)
        .join(Host, Host.id == Interface.host_id)
        .where(Interface.mac == mac)
    ).first()
    if row is not None and row[2] != exclude_iface:
        raise Conflict(f"MAC {mac} is already used by {row[0]} {row[1]}: each MAC must be unique")


def check_ip_free(s: Session, net: Network, ip: str, *, exclude_iface: int | None = None) -> None:
    row = s.execute(
        select(Host.name, Interface.device, Interface.id)
        .join(Host, Host.id == Interface.host_id)
        .where(Interface.network_id == net.id, Interface.ip == ip)
    ).first()
    if row is not None and row[2] != exclude_iface:
        raise Conflict(f"IP {ip} on network {net.name} is already used by {row[0]} {row[1]}")


def next_rank(s: Session, appliance_id: int, rack: int) -> int:
    current = s.scalar(
        select(func.max(Host.rank)).where(Host.appliance_id == appliance_id, Host.rack == rack)
    )
    return 0 if current is None else current + 1


# Hosts ----------------------------------------------------------------------------------------


def add_host(
    db: Database,
    name: str,
    membership: str,
    *,
    rack: int | None = None,
    rank: int | None = None,
    cpus: int = 1,
    os_name: str = "linux",
    comment: str | None = None,
) -> str:
    validate_host_name(name)
    with writing(db) as s:
        check_plain_name(s, name)
        app = find_appliance(s, membership)
        if s.scalar(select(Host.id).where(Host.name == name)) is not None:
            raise Conflict(f"host {name} is already in the database")
        rack = 0 if rack is None else rack
        rank = next_rank(s, app.id, rack) if rank is None else rank
        host = Host(
            name=name,
            appliance_id=app.id,
            rack=rack,
            rank=rank,
            cpus=cpus,
            os=os_name,
            comment=comment,
        )
        s.add(host)
        s.flush()
        s.add(HostBoot(host_id=host.id, action="os"))
        return host.name


def remove_hosts(db: Database, exprs: Sequence[str]) -> list[str]:
    """Remove physical hosts; VMs go with `remove host vm`, clusters with `remove cluster`."""
    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        for h in hosts:
            if s.scalar(select(Cluster.id).where(Cluster.frontend_id == h.id)) is not None:
                raise Conflict(
                    f"{h.name} is a virtual frontend: use 'rocks remove cluster {h.name}'"
                )
            guests = list(
                s.scalars(
                    select(Host.name)
                    .join(VM, VM.host_id == Host.id)
                    .where(VM.container_id == h.id)
                    .order_by(Host.name)
                )
            )
            if guests:
                more = ", ".join(guests[:5]) + (" ..." if len(guests) > 5 else "")
                raise Conflict(
                    f"{h.name} hosts {len(guests)} VM(s) ({more}): move or remove them first"
                )
        for h in hosts:
            s.delete(h)
        return [h.name for h in hosts]


def set_hosts(db: Database, exprs: Sequence[str], changes: dict[str, Any]) -> list[str]:
    """Change host fields: membership, rack, rank, cpus, os, comment (and name, one host only)."""
    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        if "name" in changes and len(hosts) != 1:
            raise UserError("name= renames one host: name exactly one")
        for h in hosts:
            for key, value in changes.items():
                if key == "membership":
                    h.appliance_id = find_appliance(s, value).id
                elif key == "name":
                    check_plain_name(s, validate_host_name(value))
                    if s.scalar(select(Host.id).where(Host.name == value)) not in (None, h.id):
                        raise Conflict(f"host {value} is already in the database")
                    for iface in h.interfaces:
                        if iface.name == h.name:
                            iface.name = value
                    h.name = value
                elif key == "os":
                    h.os = value
                else:
                    setattr(h, key, value)
        return [h.name for h in hosts]


# Interfaces -----------------------------------------------------------------------------------


def _check_iface(device: str) -> str:
    if not IFACE_RE.match(device):
        raise UserError(
            f"invalid interface name {device!r}: 1-15 letters, digits, '.', ':', '_' or '-' "
            "(e.g. eth0)"
        )
    return device


def _resolve_ip(
    s: Session, host: Host, ip: str | None, subnet: str | None, exclude_iface: int | None
) -> tuple[str | None, Network | None]:
    net = find_network(s, subnet) if subnet else None
    if ip is None:
        return None, net
    if ip.lower() == "auto":
        if net is None:
            raise UserError("ip=auto needs subnet=<network> to allocate from")
        return next_free_ip(ipv4_network(net), used_ips(s, net)), net
    ip = check_ip(ip)
    if net is None:
        net = network_for_ip(s, ip)
    check_ip_in_network(ip, ipv4_network(net), net.name)
    check_ip_free(s, net, ip, exclude_iface=exclude_iface)
    return ip, net


def _vlan(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= 4094:
        raise UserError(f"invalid VLAN id {value}: expected 0 (untagged) to 4094")
    return value


def add_interface(
    db: Database,
    host_expr: str,
    device: str,
    *,
    mac: str | None = None,
    ip: str | None = None,
    subnet: str | None = None,
    vlan: int | None = None,
    module: str | None = None,
    name: str | None = None,
    options: str | None = None,
    channel: str | None = None,
) -> InterfaceRow:
    _check_iface(device)
    if module is not None:
        check_module(module)
    if options is not None:
        check_module_options(options)
    with writing(db) as s:
        host = resolve_host(s, host_expr)
        if any(i.device == device for i in host.interfaces):
            raise Conflict(
                f"{host.name} already has an interface {device}: "
                f"use 'rocks set host interface {host.name} {device} ...'"
            )
        if mac is not None:
            mac = normalize_mac(mac)
            check_mac_free(s, mac)
        ip, net = _resolve_ip(s, host, ip, subnet, None)
        if name is None:
            name = host.name if net is None or net.name == "private" else f"{host.name}-{net.name}"
        iface = Interface(
            host_id=host.id,
            device=device,
            mac=mac,
            ip=ip,
            network_id=net.id if net else None,
            vlan=_vlan(vlan),
            module=module,
            name=name,
            options=options,
            channel=channel,
        )
        s.add(iface)
        s.flush()
        return _iface_row(host.name, iface, net)


def _iface_row(host: str, i: Interface, net: Network | None) -> InterfaceRow:
    return InterfaceRow(
        host,
        net.name if net else None,
        i.device,
        i.mac,
        i.ip,
        net.netmask if net else None,
        i.module,
        i.name,
        i.vlan,
        i.options,
        i.channel,
    )


def _find_iface(host: Host, device: str) -> Interface:
    for i in host.interfaces:
        if i.device == device:
            return i
    have = ", ".join(i.device for i in host.interfaces) or "none"
    raise NotFound(f"{host.name} has no interface {device!r} (it has: {have})")


def remove_interface(db: Database, host_expr: str, devices: Sequence[str]) -> None:
    with writing(db) as s:
        host = resolve_host(s, host_expr)
        for device in devices:
            s.delete(_find_iface(host, device))


def set_interface(db: Database, host_expr: str, device: str, changes: dict[str, Any]) -> None:
    with writing(db) as s:
        host = resolve_host(s, host_expr)
        iface = _find_iface(host, device)
        if "mac" in changes:
            mac = changes["mac"]
            if mac is not None and mac.lower() != "none":
                mac = normalize_mac(mac)
                check_mac_free(s, mac, exclude_iface=iface.id)
                iface.mac = mac
            else:
                iface.mac = None
        if "ip" in changes or "subnet" in changes:
            ip = changes.get("ip", iface.ip)
            subnet = changes.get("subnet") or (iface.network.name if iface.network else None)
            if ip is not None and ip.lower() == "none":
                ip = None
            new_ip, net = _resolve_ip(s, host, ip, subnet, iface.id)
            iface.ip, iface.network_id = new_ip, net.id if net else None
        if "vlan" in changes:
            iface.vlan = _vlan(changes["vlan"])
        if "iface" in changes:
            iface.device = _check_iface(changes["iface"])
        for key in ("module", "name", "options", "channel"):
            if key in changes:
                value = changes[key]
                value = None if value is None or value.lower() == "none" else value
                if value is not None and key == "module":
                    check_module(value)
                elif value is not None and key == "options":
                    check_module_options(value)
                setattr(iface, key, value)
        if "disable_kvm" in changes:
            iface.disable_kvm = bool(changes["disable_kvm"])


# Networks, appliances, boot -------------------------------------------------------------------


def add_network(
    db: Database,
    name: str,
    subnet: str,
    netmask: str,
    *,
    mtu: int = 1500,
    dnszone: str | None = None,
) -> NetworkRow:
    if not re.match(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", name):
        raise UserError(f"invalid network name {name!r}: letters, digits, '_' and '-'")
    if dnszone is not None:
        validate_dns_zone(dnszone)
    net = network_of(subnet, netmask)
    if str(net.network_address) != check_ip(subnet):
        raise UserError(
            f"subnet {subnet} has host bits set under {netmask}: "
            f"did you mean {net.network_address}?"
        )
    with writing(db) as s:
        if s.scalar(select(Network.id).where(Network.name == name)) is not None:
            raise Conflict(f"network {name} already exists")
        row = Network(
            name=name,
            subnet=str(net.network_address),
            netmask=str(net.netmask),
            mtu=mtu,
            dnszone=dnszone or name,
        )
        s.add(row)
        return NetworkRow(row.name, row.subnet, row.netmask, row.mtu, row.dnszone)
