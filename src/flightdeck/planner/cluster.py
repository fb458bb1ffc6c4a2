"""The plan of a virtual cluster: `plan_cluster(request, inventory, rng) -> ClusterPlan`.

Everything `rocks add cluster` decides, from plain values and nothing else (reference §2.2,
§3): the VLAN (lowest free, or the one asked for, checked free), the frontend's name,
container and NICs (eth0 on the cluster's VLAN of `private` with its highest free address,
eth1 on `public` with the address given), its default route, where each compute goes (round
robin over the containers as Rocks, or where the most memory is free), each VM's name (the
Rocks `<appliance>-<rack>-<rank>-<slice>`, or `vm-<frontend>-<i>` with cluster-naming), MACs
(the site's space, next after the highest used), disks and boot actions.

The service (`services.clusters.add_cluster`) reads the inventory in one transaction, calls
this, and writes the plan in the same transaction; the plan is a value, so it is tested as
one (tests/planner/golden/cluster-*.json). Refusals are the services' errors: `UserError` for
a request that cannot be (a bad IP, a VLAN out of range), `Conflict` when it clashes with
what exists (an address, a name, a VLAN in use), `PlannerError` when it does not fit.

Memory is in MB (2^20 bytes), disks in GB (10^9 bytes).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from flightdeck.errors import Conflict, PlannerError, UserError
from flightdeck.planner import defaults
from flightdeck.planner.addresses import check_ip_in_network, network_of, next_free_ip
from flightdeck.planner.disks import DiskSpec, default_disk
from flightdeck.planner.macs import next_macs
from flightdeck.planner.names import (
    check_fqdn,
    cluster_compute_name,
    next_vm_name,
    validate_host_name,
)
from flightdeck.planner.placement import ContainerCapacity, by_capacity, round_robin
from flightdeck.planner.vlans import check_vlan, next_free_vlan

PLACEMENTS = ("round-robin", "capacity")
FRONTEND = "frontend"
COMPUTE = "hosted-vm"
#: The boot actions a cluster's VMs install with (rows of `rocks list bootaction`): the
#: frontend from the frontend image (`rocks create frontend image`), the computes over PXE.
FRONTEND_INSTALL = "install vm frontend image"
COMPUTE_INSTALL = "install"


class RandomSource(Protocol):
    """An injected source of chance (`random.Random` is one)."""

    def random(self) -> float: ...


@dataclass(frozen=True)
class ClusterRequest:
    """What `rocks add cluster` was asked (sizes: MB of memory, GB of disk)."""

    ip: str
    num_computes: int
    cpus_per_compute: int = defaults.CPUS
    mem_per_compute: int = defaults.MEM_MB
    disk_per_compute: int = defaults.DISK_GB
    disk_per_frontend: int = defaults.DISK_GB
    cpus_per_frontend: int = defaults.CPUS
    mem_per_frontend: int = defaults.MEM_MB
    #: Host expressions of the computes' containers, in order (the service resolves them).
    container_hosts: Sequence[str] = ()
    vlan: int | None = None
    subnet: str = "private"
    gateway: str | None = None
    fe_name: str | None = None
    fe_container: str | None = None
    cluster_naming: bool = False
    placement: str = "round-robin"
    virt_type: str = "hvm"
    #: The virtual frontend's public FQDN, carried into the plan as given.
    fe_fqdn: str | None = None


@dataclass(frozen=True)
class Container:
    """A host the cluster's VMs may go on, as the database knows it."""

    name: str
    rack: int
    rank: int
    #: Attribute `kvm` is true.
    kvm: bool
    #: Attribute `kvm_disk_dir` (or the site's default).
    disk_dir: str
    #: The highest slice of the VMs on it (0 when there are none).
    max_slice: int = 0
    #: Its memory, for placement=capacity (None: not read).
    capacity: ContainerCapacity | None = None


@dataclass(frozen=True)
class Network:
    """A network (subnet) and the addresses in use on it, with who uses each."""

    name: str
    subnet: str
    netmask: str
    #: address -> "<host> <device>" (what a conflict message names).
    used: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ClusterInventory:
    """What the database holds that the plan depends on."""

    public: Network
    #: The network the cluster's VLAN rides on (`subnet=`, default `private`).
    private: Network
    #: Attribute Kickstart_PublicGateway, the default of `gateway=`.
    gateway: str | None
    #: The VM MAC space (attributes vm_mac_base_addr / vm_mac_base_addr_mask) and its use.
    mac_base: str
    mac_mask: str
    used_macs: frozenset[str]
    #: VLAN id -> who uses it ("cluster frontend-0-0-0", "host vm-container-0-1").
    used_vlans: Mapping[int, str]
    #: Every host name taken.
    names: frozenset[str]
    #: Where the frontend goes, and the computes' containers in the order of the round robin
    #: (a container listed twice gets twice the share, as in Rocks).
    fe_container: Container
    containers: tuple[Container, ...]


@dataclass(frozen=True)
class NicPlan:
    device: str
    mac: str
    ip: str | None
    #: The network's name, None for a NIC that only rides the VLAN.
    network: str | None
    vlan: int
    name: str


@dataclass(frozen=True)
class VMPlan:
    name: str
    #: The appliance's name (`frontend`, `hosted-vm`).
    appliance: str
    container: str
    slice: int
    cpus: int
    mem_mb: int
    nics: tuple[NicPlan, ...]
    disks: tuple[DiskSpec, ...]
    install_action: str
    run_action: str


@dataclass(frozen=True)
class ClusterPlan:
    vlan: int
    #: The network the VLAN rides on.
    network: str
    #: The frontend's default gateway (on `public`).
    gateway: str
    frontend: VMPlan
    computes: tuple[VMPlan, ...]
    fe_fqdn: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The plan as plain JSON values (disks as their spec string and size)."""

        def vm(v: VMPlan) -> dict[str, Any]:
            out = dataclasses.asdict(v)
            out["nics"] = [dataclasses.asdict(n) for n in v.nics]
            out["disks"] = [{"spec": d.format(), "size_gb": d.size_gb} for d in v.disks]
            return out

        return {
            "vlan": self.vlan,
            "network": self.network,
            "gateway": self.gateway,
            "fe_fqdn": self.fe_fqdn,
            "frontend": vm(self.frontend),
            "computes": [vm(c) for c in self.computes],
        }


def check_request(req: ClusterRequest) -> None:
    """What the request alone can tell (before anything is read)."""
    if req.virt_type.lower() != "hvm":
        raise UserError("KVM supports only 'hvm' virtualization (virt-type=hvm)")
    if req.num_computes < 0:
        raise UserError(f"num-computes={req.num_computes} must be zero or more")
    if req.cluster_naming and not req.fe_name:
        raise UserError("you must select a fe-name when using cluster-naming=yes")
    if req.placement not in PLACEMENTS:
        raise UserError(f"placement={req.placement!r}: use round-robin or capacity")
    for what, n in (("cpus-per-compute", req.cpus_per_compute),
                    ("cpus-per-frontend", req.cpus_per_frontend),
                    ("mem-per-compute", req.mem_per_compute),
                    ("mem-per-frontend", req.mem_per_frontend)):  # fmt: skip
        if n < 1:
            raise UserError(f"{what}={n} must be a positive integer")
    network_of(req.ip, "32")  # a dotted IPv4 address, or a clear error
    if req.fe_name:
        validate_host_name(req.fe_name)
    if req.fe_fqdn is not None:
        check_fqdn(req.fe_fqdn)


class _Names:
    """Host names and slices handed out so far (the database's, and this plan's)."""

    def __init__(self, taken: frozenset[str], containers: Sequence[Container]) -> None:
        self.taken = set(taken)
        self.max_slice = {c.name: c.max_slice for c in containers}

    def claim(self, name: str) -> str:
        if name in self.taken:
            raise Conflict(f"host {name} is already in the database: choose another name")
        self.taken.add(name)
        return name

    def next(self, appliance: str, container: Container) -> tuple[str, int]:
        start = self.max_slice.get(container.name, 0)
        name, slice_ = next_vm_name(appliance, container.rack, container.rank, start, self.taken)
        self.taken.add(name)
        self.max_slice[container.name] = max(start, slice_)
        return name, slice_


def _require_kvm(containers: Sequence[Container]) -> None:
    for c in containers:
        if not c.kvm:
            raise UserError(
                f"host {c.name} cannot host VMs: its attribute kvm is not true "
                f"(rocks set host attr {c.name} kvm true, on a machine with libvirt)"
            )


def _capacity_order(
    fe: Container, containers: Sequence[Container], req: ClusterRequest
) -> list[str]:
    """Computes where the most memory is free, after the frontend has taken its share.

    The frontend is pinned to its container; when that host's memory is known its share is
    deducted first (and a frontend that does not fit is refused), so the computes placed next
    to it see what is really left.
    """
    unique = list({c.name: c for c in containers}.values())
    caps: dict[str, ContainerCapacity] = {}
    for c in [*unique, fe]:
        if c.capacity is None:
            raise PlannerError(f"the memory of {c.name} was not read: no capacity placement")
        caps[c.name] = c.capacity
    fe_cap = caps[fe.name]
    fe_free = fe_cap.free_mb
    if fe_free is not None:
        if fe_free < req.mem_per_frontend:
            raise PlannerError(
                f"cluster does not fit: the frontend needs {req.mem_per_frontend} MB, "
                f"{max(0, math.floor(fe_free))} MB free on {fe.name}; pick another "
                "fe-container or lower mem-per-frontend"
            )
        caps[fe.name] = dataclasses.replace(
            fe_cap, mem_used_mb=fe_cap.mem_used_mb + req.mem_per_frontend
        )
    return by_capacity([caps[c.name] for c in unique], [req.mem_per_compute] * req.num_computes)


def plan_cluster(req: ClusterRequest, inv: ClusterInventory, rng: RandomSource) -> ClusterPlan:
    """The cluster `req` asks for, given what exists (`inv`).

    `rng` is the injected source of chance: the original's rules (next free VLAN, address,
    slice and MAC; round robin) draw nothing from it, so today the plan is a function of
    `req` and `inv` alone (a test holds it to that); a rule that needs chance takes it from
    here, never from a global.
    """
    del rng  # see the docstring: no rule of the original is random
    check_request(req)
    public = network_of(inv.public.subnet, inv.public.netmask)
    public_ip = check_ip_in_network(req.ip.strip(), public, inv.public.name)
    if public_ip in inv.public.used:
        raise Conflict(
            f"IP {public_ip} on network {inv.public.name} is already used by "
            f"{inv.public.used[public_ip]}"
        )
    gateway_text = req.gateway or inv.gateway
    if not gateway_text:
        raise UserError(
            "no public gateway: give gateway=<ip> or set the Kickstart_PublicGateway attribute"
        )
    # The frontend's only route out is through eth1, so the gateway must be on that network.
    gateway = check_ip_in_network(gateway_text, public, inv.public.name)
    vlan = (
        next_free_vlan(inv.used_vlans) if req.vlan is None else check_vlan(req.vlan, inv.used_vlans)
    )
    fe_box = inv.fe_container
    _require_kvm([fe_box, *inv.containers])
    if req.placement == "capacity":
        order = _capacity_order(fe_box, inv.containers, req)
    else:
        order = round_robin([c.name for c in inv.containers], req.num_computes)
    by_name = {c.name: c for c in inv.containers}
    placed = [by_name[n] for n in order]

    names = _Names(inv.names, [fe_box, *inv.containers])
    if req.fe_name:
        fe_name, fe_slice = names.claim(req.fe_name), 0
    else:
        fe_name, fe_slice = names.next(FRONTEND, fe_box)
    macs = next_macs(inv.used_macs, inv.mac_base, inv.mac_mask, 2 + req.num_computes)
    private = network_of(inv.private.subnet, inv.private.netmask)
    same = inv.private.name == inv.public.name  # the VLAN riding public: eth1's is taken
    private_ip = next_free_ip(private, inv.private.used, exclude=[public_ip] if same else [])
    # Its name on the public network, which becomes its hostname once installed.
    public_name = check_fqdn(req.fe_fqdn) if req.fe_fqdn else f"{fe_name}-public"
    frontend = VMPlan(
        name=fe_name,
        appliance=FRONTEND,
        container=fe_box.name,
        slice=fe_slice,
        cpus=req.cpus_per_frontend,
        mem_mb=req.mem_per_frontend,
        nics=(
            NicPlan("eth0", macs[0], private_ip, inv.private.name, vlan, fe_name),
            NicPlan("eth1", macs[1], public_ip, inv.public.name, 0, public_name),
        ),
        disks=(default_disk(fe_name, fe_box.disk_dir, req.disk_per_frontend),),
        install_action=FRONTEND_INSTALL,
        run_action="os",
    )
    computes = _computes(
        placed, names, macs[2:], vlan, req.cpus_per_compute, req.mem_per_compute,
        req.disk_per_compute, fe_name if req.cluster_naming else None, 0,
    )  # fmt: skip
    fqdn = public_name if req.fe_fqdn else None
    return ClusterPlan(vlan, inv.private.name, gateway, frontend, tuple(computes), fqdn)


def _computes(
    placed: Sequence[Container],
    names: _Names,
    macs: Sequence[str],
    vlan: int,
    cpus: int,
    mem_mb: int,
    disk_gb: int,
    cluster_naming: str | None,
    first_index: int,
) -> tuple[VMPlan, ...]:
    """Compute VMs on `placed` (one each, in order): names (Rocks' next slice of the container,
    or `vm-<frontend>-<i>` from `first_index` with cluster naming), MACs, the default disk."""
    out = []
    index = first_index
    for i, box in enumerate(placed):
        if cluster_naming is not None:
            while first_index and cluster_compute_name(cluster_naming, index) in names.taken:
                index += 1  # growing: the next index nobody has
            name, slice_ = names.claim(cluster_compute_name(cluster_naming, index)), 0
            index += 1
        else:
            name, slice_ = names.next(COMPUTE, box)
        out.append(
            VMPlan(
                name=name,
                appliance=COMPUTE,
                container=box.name,
                slice=slice_,
                cpus=cpus,
                mem_mb=mem_mb,
                nics=(NicPlan("eth0", macs[i], None, None, vlan, name),),
                disks=(default_disk(name, box.disk_dir, disk_gb),),
                install_action=COMPUTE_INSTALL,
                run_action="none",
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class GrowRequest:
    """More computes for an existing cluster (`rocks apply cluster` with a larger count)."""

    count: int
    #: How many computes the cluster has: the round robin goes on after them, so growing from
    #: 2 to 4 places and names the new two as `add cluster` with 4 would have.
    existing: int
    vlan: int
    cpus: int = defaults.CPUS
    mem_mb: int = defaults.MEM_MB
    disk_gb: int = defaults.DISK_GB
    placement: str = "round-robin"
    #: The frontend's name with cluster naming (`vm-<frontend>-<i>`), else None.
    cluster_naming: str | None = None


def plan_more_computes(
    req: GrowRequest,
    containers: Sequence[Container],
    names: frozenset[str],
    used_macs: frozenset[str],
    mac_base: str,
    mac_mask: str,
) -> tuple[VMPlan, ...]:
    """The computes `req` adds, by the rules of `plan_cluster` (placement, names, MACs)."""
    if req.count <= 0:
        return ()
    if req.placement not in PLACEMENTS:
        raise UserError(f"placement={req.placement!r}: use round-robin or capacity")
    _require_kvm(containers)
    by_name = {c.name: c for c in containers}
    if req.placement == "capacity":
        unique = list(by_name.values())
        caps = []
        for c in unique:
            if c.capacity is None:
                raise PlannerError(f"the memory of {c.name} was not read: no capacity placement")
            caps.append(c.capacity)
        order = by_capacity(caps, [req.mem_mb] * req.count)
    else:
        order = round_robin([c.name for c in containers], req.existing + req.count)
        order = order[req.existing :]
    macs = next_macs(used_macs, mac_base, mac_mask, req.count)
    return _computes(
        [by_name[n] for n in order], _Names(names, containers), macs, req.vlan, req.cpus,
        req.mem_mb, req.disk_gb, req.cluster_naming, req.existing,
    )  # fmt: skip
