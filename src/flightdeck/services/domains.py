"""From the database to a `VMSpec`: where a VM runs, how its NICs attach, how it boots.

This is the bridge between the cluster database and the designer: it resolves each NIC to a
device of the container (reference §8.2/§8.3), the disks to paths, the attributes (host >
appliance > global) and, for a virtual frontend due to install, the kernel boot.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from flightdeck.db import attrs
from flightdeck.db.models import VM, BootAction, Cluster, Host, HostBoot, Interface, Network, Route
from flightdeck.errors import NotFound, UserError
from flightdeck.planner.disks import DiskSpec as DBDisk
from flightdeck.services.frontend_identity import FRONTEND_IMAGE_INSTALL, install_args
from flightdeck.services.network_read import container_uri
from flightdeck.virt.designer import DiskSpec, DomainType, KernelBoot, Labels, NicSpec, VMSpec

FRONTEND_INSTALL = "install vm frontend"


@dataclass(frozen=True)
class Placement:
    """A VM and where it runs."""

    vm: str
    container: str
    uri: str


def container_uris(s: Session, containers: list[Host]) -> dict[int, str]:
    """The libvirt URI of each container (`network_read.container_uri`)."""
    names = ("libvirt_uri", "libvirt_uri_template")
    named = {n: attrs.resolve_many(s, containers, n) for n in names}
    return {
        c.id: container_uri(c.name, {n: by[c.id] for n, by in named.items() if c.id in by})
        for c in containers
    }


def vm_row(s: Session, host: Host) -> VM:
    """The VM row of `host` (a `UserError` if it is not a virtual host).

    Through the `Host.vm` relationship, loaded once per session: starting a VM asked for it
    five times, a query each. A row not there when first asked (or deleted since, in this
    session) is looked up again: a writer may have inserted it by Core meanwhile.
    """
    vm = host.vm
    if vm is None or inspect(vm).was_deleted:
        vm = s.scalar(select(VM).where(VM.host_id == host.id))
    if vm is None:
        raise UserError(f"host {host.name} is not a virtual host")
    return vm


def placement(s: Session, host: Host) -> Placement:
    vm = vm_row(s, host)
    if vm.container is None:
        raise UserError(
            f"host {host.name} does not have a physical host: "
            f"rocks set host vm {host.name} physnode=<container>"
        )
    return Placement(
        host.name, vm.container.name, container_uris(s, [vm.container])[vm.container.id]
    )


def _nics(s: Session, host: Host, vm: VM, container: Host, vlan_mode: str) -> list[NicSpec]:
    cluster_net = None
    if vm.cluster_id is not None:
        cluster = s.get(Cluster, vm.cluster_id)
        cluster_net = cluster.network_id if cluster else None
    ports = [i for i in container.interfaces if not i.device.startswith("vlan")]
    out: list[NicSpec] = []
    for nic in sorted(host.interfaces, key=lambda i: i.device):
        if nic.disable_kvm or not nic.mac:
            continue
        if nic.vlan is not None and nic.vlan >= 2:
            net_id = cluster_net or nic.network_id or _private_id(s)
            parent = next((p for p in ports if p.network_id == net_id), None)
            if parent is None:
                raise UserError(_no_port(container, host, nic, s.get(Network, net_id)))
            if vlan_mode == "bridge":
                out.append(NicSpec(nic.mac, "bridge", f"vlan{nic.vlan}"))
            else:
                out.append(NicSpec(nic.mac, "direct", f"p{parent.device}.{nic.vlan}"))
            continue
        # Untagged: its network; with none (a Hosted VM added without vlan=, a second NIC),
        # the physical private network, as vlan=0 ("the physical network, untagged") says.
        net_id = nic.network_id or _private_id(s)
        parent = next((p for p in ports if net_id and p.network_id == net_id), None)
        if parent is None:
            net = s.get(Network, net_id) if net_id else None
            raise UserError(_no_port(container, host, nic, net))
        out.append(NicSpec(nic.mac, "bridge", parent.device))
    return out


def _private_id(s: Session) -> int | None:
    return s.scalar(select(Network.id).where(Network.name == "private"))


def _no_port(container: Host, host: Host, nic: Interface, net: Network | None) -> str:
    name = net.name if net else "(none)"
    return (
        f"container {container.name} has no interface on network {name} for {host.name} "
        f"{nic.device}: rocks add host interface {container.name} <iface> subnet={name}"
    )


def _disks(vm: VM) -> list[DiskSpec]:
    out = []
    for d in vm.disks:
        path = DBDisk(d.vbd_type, d.prefix, d.name, d.device, d.bus, d.size_gb).path
        fmt = "qcow2" if d.vbd_type == "qcow2" else "qed" if d.vbd_type == "qed" else "raw"
        out.append(
            DiskSpec(
                path=path,
                device=d.device,
                bus=d.bus,
                format=fmt,  # type: ignore[arg-type]
                block=d.vbd_type == "phy",
            )
        )
    return out


#: The boot actions a virtual frontend installs with by direct kernel boot: the original's
#: (an installer of the site's choice) and the frontend image's (flightdeck.services.vfrontend).
KERNEL_BOOT_ACTIONS = (FRONTEND_INSTALL, FRONTEND_IMAGE_INSTALL)


def frontend_install_due(s: Session, host: Host) -> bool:
    boot = s.get(HostBoot, host.id)
    return (
        host.install_action in KERNEL_BOOT_ACTIONS
        and boot is not None
        and boot.action == "install"
    )


def _kernel_boot(s: Session, host: Host) -> KernelBoot:
    name = host.install_action
    action = s.scalar(select(BootAction).where(BootAction.name == name))
    if name == FRONTEND_IMAGE_INSTALL and (action is None or not action.kernel):
        raise NotFound(
            f"{host.name} installs from the frontend image, which is not built: "
            "run rocks create frontend image"
        )
    if action is None or not action.kernel:
        raise NotFound(
            f"boot action '{name}' has no kernel, so {host.name} cannot install: "
            f"rocks set bootaction action='{name}' kernel=<path> ramdisk=<path>"
        )
    if name == FRONTEND_IMAGE_INSTALL:
        args = [*(action.args or "").split(), *install_args(s, host)]
        return KernelBoot(kernel=action.kernel, initrd=action.ramdisk, cmdline=" ".join(args))
    args = (action.args or "").split()
    public = next((i for i in host.interfaces if i.network and i.network.name == "public"), None)
    if public is not None:
        args = [f"ksdevice={public.mac}" if a == "ksdevice=eth1" else a for a in args]
        if public.ip and public.network:
            args += [f"ip={public.ip}", f"netmask={public.network.netmask}"]
        dns = attrs.global_value(s, "Kickstart_PublicDNSServers")
        if dns:
            args.append(f"dns={dns.split(',')[0].strip()}")
        gw = s.scalar(
            select(Route.gateway).where(Route.host_id == host.id, Route.destination == "0.0.0.0")
        )
        if gw:
            args.append(f"gateway={gw}")
    # Which VM is installing, for the installer (the PXE boot server appends the same):
    # installers ignore arguments they do not know.
    args.append(f"fd.host={host.name}")
    return KernelBoot(kernel=action.kernel, initrd=action.ramdisk, cmdline=" ".join(args))


def _labels(s: Session, host: Host, vm: VM, container: Host) -> Labels:
    """Appliance, cluster (its frontend and VLAN) and owner, for the domain's title."""
    cluster = s.get(Cluster, vm.cluster_id) if vm.cluster_id is not None else None
    if cluster is None:
        cluster = s.scalar(select(Cluster).where(Cluster.frontend_id == host.id))
    if cluster is not None:
        fe = cluster.frontend.name
        return Labels(
            host.appliance.name, host.appliance.membership, container.name, fe, cluster.vlan, fe
        )
    physical = attrs.global_value(s, "Kickstart_PrivateHostname")
    return Labels(host.appliance.name, host.appliance.membership, container.name, physical)


def vm_spec(
    s: Session, host: Host, offered_type: DomainType | None = None
) -> tuple[VMSpec, Placement]:
    """Everything the designer needs for `host`, and where it runs.

    `offered_type` is the domain type the container's libvirt offers (services ask it).
    """
    where = placement(s, host)
    vm = vm_row(s, host)
    assert vm.container is not None
    values = attrs.values_of(s, host)
    vlan_mode = (attrs.resolve(s, vm.container, "kvm_vlan_mode") or "macvtap").lower()
    boot = s.get(HostBoot, host.id)
    is_frontend = s.scalar(select(Cluster.id).where(Cluster.frontend_id == host.id)) is not None
    spec = VMSpec(
        name=host.name,
        vcpus=host.cpus,
        mem_mb=vm.mem_mb,
        nics=_nics(s, host, vm, vm.container, vlan_mode),
        disks=_disks(vm),
        cdrom=vm.cdrom_path,
        kernel_boot=_kernel_boot(s, host) if frontend_install_due(s, host) else None,
        guest_agent=is_frontend,
        attrs=values,
        # PXE first for every node a frontend serves, installed or not: the frontend decides
        # (install or localboot), so `set host boot action=install` + a reboot from inside
        # reinstalls, as in Rocks. An installed virtual frontend boots its disk only: no PXE
        # server answers it, and iPXE would wait on each NIC first.
        installing=boot is None or boot.action != "os" or not is_frontend,
        offered_type=offered_type,
        labels=_labels(s, host, vm, vm.container),
    )
    return spec, where
