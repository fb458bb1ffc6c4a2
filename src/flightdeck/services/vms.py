"""VMs in the database: add / list / set / remove host vm, the CD-ROM and the next MAC.

Starting and stopping them on libvirt is the virt driver's business; here a VM is a host row
with interfaces, a VM row (container, memory, slice, CD-ROM, cluster) and disks.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import check_plain_name, resolve_host, resolve_hosts
from flightdeck.db.models import VM, Cluster, Host, VMDisk
from flightdeck.errors import Conflict, UserError
from flightdeck.planner import defaults
from flightdeck.planner.addresses import check_ip_in_network
from flightdeck.planner.disks import default_disk, parse_disk_list
from flightdeck.planner.macs import next_macs
from flightdeck.planner.names import validate_host_name, vm_name
from flightdeck.planner.vlans import parse_vlan_list
from flightdeck.services.allocation import (
    Allocator,
    NewNic,
    NewVM,
    disk_dirs,
    insert_vms,
    require_kvm,
)
from flightdeck.services.base import reading, writing
from flightdeck.services.inventory import find_appliance, find_network, ipv4_network

# `rocks list host vm` reads Core tables (services.listings); re-exported here for callers.
from flightdeck.services.listings import VMRow as VMRow
from flightdeck.services.listings import list_host_vms as list_host_vms

HOSTED_VM = "hosted-vm"


def vm_of(s: Session, host: Host) -> VM:
    vm = s.scalar(select(VM).where(VM.host_id == host.id))
    if vm is None:
        raise UserError(f"host {host.name} is not a virtual machine")
    return vm


@dataclass(frozen=True)
class AddVMRequest:
    containers: Sequence[str]
    membership: str
    name: str | None = None
    mem_mb: int = defaults.MEM_MB
    cpus: int = defaults.CPUS
    slice: int | None = None
    mac: str | None = None
    num_macs: int = 1
    disk: str | None = None
    disksize: str | None = None
    vlan: str | None = None
    ip: str | None = None
    subnet: str = "private"


def _check_single_only(req: AddVMRequest, count: int) -> None:
    """name, ip, slice and mac identify one VM: refuse them when several VMs are being made."""
    if count > 1:
        for key in ("name", "ip", "slice", "mac"):
            if getattr(req, key) is not None:
                raise UserError(f"can't supply the {key!r} parameter with more than one host")


def add_host_vm(db: Database, req: AddVMRequest) -> list[tuple[str, str]]:
    """Add one VM per container; returns (vm, container) pairs."""
    _check_single_only(req, len(req.containers))
    if req.num_macs < 1:
        raise UserError(f"num-macs={req.num_macs} must be at least 1")
    default_size = defaults.DISK_GB
    if not req.disk and req.disksize is not None:
        text = req.disksize.strip()
        if not text.isdigit() or int(text) < 1:
            raise UserError(
                f"disksize={req.disksize!r} must be one whole number of GB greater than 0 "
                "(several sizes need disk= with as many specs)"
            )
        default_size = int(text)
    vlans = parse_vlan_list(req.vlan) if req.vlan else []
    if len(vlans) > req.num_macs:
        raise UserError(f"vlan={req.vlan} names {len(vlans)} NICs but num-macs={req.num_macs}")
    with writing(db) as s:
        app = find_appliance(s, req.membership)
        hosted = app.name == HOSTED_VM
        containers = resolve_hosts(s, req.containers, default_all=False)
        _check_single_only(req, len(containers))  # one expression may name several hosts
        require_kvm(s, containers)
        alloc = Allocator(s)
        net = None if hosted else find_network(s, req.subnet)
        given_ip = None
        if net is not None and req.ip is not None:
            given_ip = check_ip_in_network(req.ip, ipv4_network(net), net.name)
        dirs = disk_dirs(s, containers)
        cluster_by_vlan = dict(s.execute(select(Cluster.vlan, Cluster.id)).tuples().all())
        new: list[NewVM] = []
        for c in containers:
            if req.name is not None:
                name = alloc.claim_name(check_plain_name(s, validate_host_name(req.name)))
                slice_ = req.slice if req.slice is not None else 0
            elif req.slice is not None:
                name = alloc.claim_name(vm_name(app.name, c.rack, c.rank, req.slice))
                slice_ = req.slice
            else:
                name, slice_ = alloc.vm_name(app.name, c)
            macs = [alloc.claim_mac(req.mac)] if req.mac else []
            macs += alloc.macs(req.num_macs - len(macs))
            ip = None
            if net is not None:
                ip = alloc.claim_ip(net, given_ip) if given_ip else alloc.next_ip(net)
            nic_vlans = vlans + [None] * (req.num_macs - len(vlans))
            nics = [
                NewNic(
                    device=f"eth{i}",
                    mac=m,
                    vlan=nic_vlans[i],
                    ip=ip if i == 0 else None,
                    network_id=net.id if (i == 0 and net is not None) else None,
                )
                for i, m in enumerate(macs)
            ]
            if req.disk:
                disks = parse_disk_list(req.disk, req.disksize)
            else:
                disks = [default_disk(name, dirs[c.id], default_size)]
            first_vlan = nic_vlans[0]
            new.append(
                NewVM(
                    name=name,
                    appliance_id=app.id,
                    container=c,
                    slice=slice_,
                    cpus=req.cpus,
                    mem_mb=req.mem_mb,
                    nics=nics,
                    disks=disks,
                    cluster_id=cluster_by_vlan.get(first_vlan) if first_vlan else None,
                )
            )
        insert_vms(s, new)
        return [(v.name, v.container.name) for v in new]


def set_host_vm(
    db: Database,
    expr: str,
    *,
    mem: int | None = None,
    cpus: int | None = None,
    disk: str | None = None,
    disksize: str | None = None,
    physnode: str | None = None,
    slice_: int | None = None,
) -> None:
    with writing(db) as s:
        host = resolve_host(s, expr)
        vm = vm_of(s, host)
        if mem is not None:
            vm.mem_mb = mem
        if cpus is not None:
            host.cpus = cpus
        if slice_ is not None:
            vm.slice = slice_
        if physnode is not None:
            target = resolve_host(s, physnode)
            require_kvm(s, [target])
            vm.container_id = target.id
        if disk is not None:
            s.execute(delete(VMDisk).where(VMDisk.vm_id == vm.id))
            for i, spec in enumerate(parse_disk_list(disk, disksize)):
                s.add(
                    VMDisk(
                        vm_id=vm.id,
                        position=i,
                        vbd_type=spec.vbd_type,
                        prefix=spec.prefix,
                        name=spec.name,
                        device=spec.device,
                        bus=spec.bus,
                        size_gb=spec.size_gb,
                    )
                )
        elif disksize is not None:
            sizes = disksize.split()
            current = list(
                s.scalars(select(VMDisk).where(VMDisk.vm_id == vm.id).order_by(VMDisk.position))
            )
            if len(sizes) > len(current):
                raise UserError(
                    f"disksize={disksize!r} gives {len(sizes)} sizes but {host.name} "
                    f"has {len(current)} disk(s)"
                )
            for row, text in zip(current, sizes, strict=False):
                if not text.isdigit():
                    raise UserError(f"disksize {text!r} must be a whole number of GB")
                if int(text) > 0:
                    row.size_gb = int(text)


def set_cdrom(db: Database, expr: str, cdrom: str) -> str | None:
    path = cdrom.strip()
    with writing(db) as s:
        vm = vm_of(s, resolve_host(s, expr))
        if path.lower() == "none" or path == "":
            vm.cdrom_path = None
            return None
        if not posixpath.isabs(path):
            raise UserError(f"cdrom={cdrom!r}: use an absolute path for the ISO (on the container)")
        if ".." in path.split("/") or any(ch in path for ch in "\n\r\x00"):
            raise UserError(f"cdrom={cdrom!r}: the path may not contain '..' or control characters")
        vm.cdrom_path = posixpath.normpath(path)
        return vm.cdrom_path


def remove_host_vms(
    db: Database,
    exprs: Sequence[str],
    *,
    keep_disks: bool = False,
    force: bool = False,
    warn: Callable[[str], object] = lambda _m: None,
) -> list[str]:
    """Remove VMs: destroy and undefine their domains, delete their volumes (unless
    `keep_disks`), then their rows. A virtual frontend goes with 'rocks remove cluster'."""
    from flightdeck.services.lifecycle import destroy_for_removal

    with writing(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        for h in hosts:
            vm_of(s, h)
            if s.scalar(select(Cluster.id).where(Cluster.frontend_id == h.id)) is not None:
                raise Conflict(
                    f"{h.name} is a virtual frontend: use 'rocks remove cluster {h.name}'"
                )
        for w in destroy_for_removal(s, hosts, keep_disks=keep_disks, force=force):
            warn(w)
        for h in hosts:
            s.delete(h)
        return [h.name for h in hosts]


def next_mac(db: Database) -> str:
    with reading(db) as s:
        alloc = Allocator(s)
        return next_macs(alloc.used_macs, alloc.mac_base, alloc.mac_mask, 1)[0]
