"""Allocating identities inside one write transaction, and inserting new VMs in bulk.

The planner decides (names, MACs, VLANs, IPs, placement) from plain values; this module feeds
it what the database holds and remembers what this transaction has already handed out, so a
1000-VM cluster costs a handful of queries and a handful of multi-row INSERTs. The write
transaction is serialised (BEGIN IMMEDIATE / advisory lock), so nothing read here can change
underneath it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from flightdeck.attrsubject import Subject, subject
from flightdeck.db import attrs
from flightdeck.db.models import VM, Cluster, Host, HostBoot, Interface, Network, VMDisk
from flightdeck.errors import NotFound, UserError
from flightdeck.planner import defaults
from flightdeck.planner.addresses import next_free_ip
from flightdeck.planner.disks import DiskSpec
from flightdeck.planner.macs import next_macs, normalize_mac
from flightdeck.planner.names import next_vm_name
from flightdeck.planner.placement import ContainerCapacity
from flightdeck.planner.vlans import VLAN_MIN, check_vlan, next_free_vlan
from flightdeck.services.frontend import DEFAULT_DISK_DIR
from flightdeck.services.inventory import ipv4_network


def disk_dirs(s: Session, containers: Sequence[Host]) -> dict[int, str]:
    """Where each container keeps VM disks (attribute `kvm_disk_dir`), in three queries."""
    found = attrs.resolve_many(s, containers, "kvm_disk_dir")
    return {c.id: found.get(c.id) or DEFAULT_DISK_DIR for c in containers}


def disk_dir(s: Session, container: Host) -> str:
    return disk_dirs(s, [container])[container.id]


def kvm_hosts(s: Session, hosts: Iterable[Host]) -> list[Host]:
    """The hosts among `hosts` whose resolved attribute `kvm` is true."""
    hosts = list(hosts)
    values = attrs.resolve_many(s, hosts, "kvm")
    return [h for h in hosts if attrs.is_true(values.get(h.id))]


def require_kvm(s: Session, hosts: Sequence[Host]) -> None:
    capable = {h.id for h in kvm_hosts(s, hosts)}
    for h in hosts:
        if h.id not in capable:
            raise UserError(
                f"host {h.name} cannot host VMs: its attribute kvm is not true "
                f"(rocks set host attr {h.name} kvm true, on a machine with libvirt)"
            )


def check_mem_mb(value: str | None, who: str | Subject) -> int | None:
    """`kvm_mem_mb`: the memory a container gives VMs, in MB; None when unset."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isdigit() or int(text) < 1:
        raise UserError(
            f"{subject(who).attr('kvm_mem_mb')} is {value!r}: give the memory for VMs in MB, "
            f"a whole number, e.g. {subject(who).fix('kvm_mem_mb', '65536')}"
        )
    return int(text)


def check_overcommit(value: str | None, who: str | Subject) -> float:
    """`kvm_mem_overcommit`: how many times its memory a container may promise (default 1)."""
    if value is None or not value.strip():
        return 1.0
    try:
        ratio = float(value)
    except ValueError:
        ratio = float("nan")
    if not 0 < ratio < float("inf"):
        raise UserError(
            f"{subject(who).attr('kvm_mem_overcommit')} is {value!r}: give a ratio above 0, "
            "e.g. 1.5"
        )
    return ratio


def container_capacity(s: Session, containers: Sequence[Host]) -> list[ContainerCapacity]:
    """Memory of each container from the database: `kvm_mem_mb` and `kvm_mem_overcommit`."""
    total = attrs.resolve_many(s, containers, "kvm_mem_mb")
    ratio = attrs.resolve_many(s, containers, "kvm_mem_overcommit")
    used = dict(
        s.execute(
            select(VM.container_id, func.sum(VM.mem_mb))
            .where(VM.container_id.in_([c.id for c in containers]))
            .group_by(VM.container_id)
        )
        .tuples()
        .all()
    )
    out = []
    for c in containers:
        mem = check_mem_mb(total.get(c.id), c.name)
        over = check_overcommit(ratio.get(c.id), c.name)
        out.append(ContainerCapacity(c.name, mem, int(used.get(c.id) or 0), over))
    return out


@dataclass
class NewNic:
    device: str
    mac: str
    ip: str | None = None
    network_id: int | None = None
    vlan: int | None = None
    name: str | None = None


@dataclass
class NewVM:
    """A VM to insert: its host row, NICs, VM row, disks and boot action."""

    name: str
    appliance_id: int
    container: Host
    slice: int
    cpus: int = 1
    mem_mb: int = defaults.MEM_MB
    nics: list[NewNic] = field(default_factory=list)
    disks: list[DiskSpec] = field(default_factory=list)
    cluster_id: int | None = None
    boot: str = "install"
    install_action: str = "install"
    run_action: str = "os"


# What is in use: one query each, whatever the size of the site -------------------------------


def mac_space(s: Session) -> tuple[str, str]:
    """The VM MAC space: (vm_mac_base_addr, vm_mac_base_addr_mask)."""
    base = attrs.global_value(s, "vm_mac_base_addr")
    mask = attrs.global_value(s, "vm_mac_base_addr_mask")
    if not base or not mask:
        raise NotFound(
            "no VM MAC base address is defined (vm_mac_base_addr / vm_mac_base_addr_mask): "
            "run 'rocks init frontend' first"
        )
    return base, mask


def used_macs(s: Session) -> set[str]:
    return {m for m in s.scalars(select(Interface.mac)) if m}


def host_names(s: Session) -> set[str]:
    return set(s.scalars(select(Host.name)))


def max_slices(s: Session) -> dict[int, int]:
    """The highest slice of the VMs on each container, by container id."""
    return {
        cid: int(m)
        for cid, m in s.execute(
            select(VM.container_id, func.max(VM.slice)).group_by(VM.container_id)
        )
        .tuples()
        .all()
        if cid is not None and m is not None
    }


def used_ips(s: Session, net: Network) -> dict[str, str]:
    """The addresses in use on `net`, each with who uses it ("<host> <device>")."""
    return {
        ip: f"{host} {device}"
        for ip, host, device in s.execute(
            select(Interface.ip, Host.name, Interface.device)
            .join(Host, Host.id == Interface.host_id)
            .where(Interface.network_id == net.id, Interface.ip.is_not(None))
        ).tuples()
        if ip
    }


def used_vlans(s: Session) -> dict[int, str]:
    """Every VLAN id in use, with who uses it (for the conflict message)."""
    used: dict[int, str] = {}
    for vlan, name in s.execute(
        select(Interface.vlan, Host.name)
        .join(Host, Host.id == Interface.host_id)
        .where(Interface.vlan >= VLAN_MIN)
    ).tuples():
        if vlan is not None:
            used.setdefault(vlan, f"host {name}")
    for vlan, name in s.execute(
        select(Cluster.vlan, Host.name).join(Host, Host.id == Cluster.frontend_id)
    ).tuples():
        used[int(vlan)] = f"cluster {name}"
    return used


class Allocator:
    """Hands out names, slices, MACs, IPs and VLANs that are free in the DB and in this batch."""

    def __init__(self, s: Session) -> None:
        self.s = s
        self.mac_base, self.mac_mask = mac_space(s)
        self._macs: set[str] | None = None
        self._names: set[str] | None = None
        self._ips: dict[int, set[str]] = {}
        self._max_slice: dict[int, int] | None = None

    # MACs
    @property
    def used_macs(self) -> set[str]:
        if self._macs is None:
            self._macs = used_macs(self.s)
        return self._macs

    def claim_mac(self, mac: str) -> str:
        from flightdeck.services.inventory import check_mac_free

        mac = normalize_mac(mac)
        if mac in self.used_macs:
            check_mac_free(self.s, mac)  # names the owner when it is in the database
            raise UserError(f"MAC {mac} is given twice")
        self.used_macs.add(mac)
        return mac

    def macs(self, count: int) -> list[str]:
        new = next_macs(self.used_macs, self.mac_base, self.mac_mask, count)
        self.used_macs.update(new)
        return new

    # Names and slices
    @property
    def names(self) -> set[str]:
        if self._names is None:
            self._names = host_names(self.s)
        return self._names

    def claim_name(self, name: str) -> str:
        from flightdeck.errors import Conflict

        if name in self.names:
            raise Conflict(f"host {name} is already in the database: choose another name")
        self.names.add(name)
        return name

    def vm_name(self, appliance: str, container: Host) -> tuple[str, int]:
        if self._max_slice is None:
            self._max_slice = max_slices(self.s)
        start = self._max_slice.get(container.id, 0)
        name, slice_ = next_vm_name(appliance, container.rack, container.rank, start, self.names)
        self.names.add(name)
        self._max_slice[container.id] = max(start, slice_)
        return name, slice_

    # IPs
    def _used_ips(self, net: Network) -> set[str]:
        if net.id not in self._ips:
            self._ips[net.id] = {
                ip
                for ip in self.s.scalars(select(Interface.ip).where(Interface.network_id == net.id))
                if ip
            }
        return self._ips[net.id]

    def next_ip(self, net: Network) -> str:
        used = self._used_ips(net)
        ip = next_free_ip(ipv4_network(net), used)
        used.add(ip)
        return ip

    def claim_ip(self, net: Network, ip: str) -> str:
        from flightdeck.services.inventory import check_ip_free

        used = self._used_ips(net)
        if ip in used:
            check_ip_free(self.s, net, ip)
            raise UserError(f"IP {ip} is given twice")
        used.add(ip)
        return ip

    # VLANs
    def used_vlans(self) -> dict[int, str]:
        """Every VLAN id in use, with who uses it."""
        return used_vlans(self.s)

    def vlan(self, explicit: int | None) -> int:
        used = used_vlans(self.s)
        return next_free_vlan(used) if explicit is None else check_vlan(explicit, used)


def insert_vms(s: Session, vms: Sequence[NewVM]) -> dict[str, int]:
    """Insert the VMs with a few multi-row INSERTs; returns host name -> host id."""
    if not vms:
        return {}
    host_ids: dict[str, int] = dict(
        s.execute(
            insert(Host).returning(Host.name, Host.id),
            [
                {
                    "name": v.name,
                    "appliance_id": v.appliance_id,
                    "rack": v.container.rack,
                    "rank": v.container.rank,
                    "cpus": v.cpus,
                    "os": "linux",
                    "comment": None,
                    "run_action": v.run_action,
                    "install_action": v.install_action,
                }
                for v in vms
            ],
        )
        .tuples()
        .all()
    )
    s.execute(
        insert(Interface),
        [
            {
                "host_id": host_ids[v.name],
                "device": n.device,
                "mac": n.mac,
                "ip": n.ip,
                "network_id": n.network_id,
                "vlan": n.vlan,
                "module": None,
                "name": n.name or v.name,
                "options": None,
                "channel": None,
                "disable_kvm": False,
            }
            for v in vms
            for n in v.nics
        ],
    )
    vm_ids: dict[int, int] = dict(
        s.execute(
            insert(VM).returning(VM.host_id, VM.id),
            [
                {
                    "host_id": host_ids[v.name],
                    "container_id": v.container.id,
                    "cluster_id": v.cluster_id,
                    "mem_mb": v.mem_mb,
                    "slice": v.slice,
                    "virt_type": "hvm",
                    "cdrom_path": None,
                }
                for v in vms
            ],
        )
        .tuples()
        .all()
    )
    disks = [
        {
            "vm_id": vm_ids[host_ids[v.name]],
            "position": i,
            "vbd_type": d.vbd_type,
            "prefix": d.prefix,
            "name": d.name,
            "device": d.device,
            "bus": d.bus,
            "size_gb": d.size_gb,
        }
        for v in vms
        for i, d in enumerate(v.disks)
    ]
    if disks:
        s.execute(insert(VMDisk), disks)
    s.execute(insert(HostBoot), [{"host_id": host_ids[v.name], "action": v.boot} for v in vms])
    return host_ids
