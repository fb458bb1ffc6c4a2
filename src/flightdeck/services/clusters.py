"""Virtual clusters: add / list / remove cluster and the cluster's MAC list.

A cluster is a virtual frontend plus N hosted VMs sharing one VLAN. Its membership is a
`cluster_id` on each VM (not "whatever carries the VLAN id", the original's weak spot, §4.7.6);
the VLAN is unique per cluster in the schema.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order, resolve_host, resolve_hosts
from flightdeck.db.models import VM, Appliance, Cluster, Host, Interface, Network, Route
from flightdeck.errors import PlannerError, UserError
from flightdeck.services.base import reading, writing

# What only `add cluster` needs (allocation, inventory checks, the planner) is imported inside
# it: `rocks list cluster` and `remove cluster` do not pay for those modules.

Progress = Callable[[str, int, int], None]


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


@dataclass(frozen=True)
class ClusterRequest:
    ip: str
    num_computes: int
    cpus_per_compute: int = 1
    mem_per_compute: int = 1024
    disk_per_compute: int = 36
    disk_per_frontend: int = 36
    cpus_per_frontend: int = 1
    mem_per_frontend: int = 1024
    container_hosts: Sequence[str] = ()
    vlan: int | None = None
    subnet: str = "private"
    gateway: str | None = None
    fe_name: str | None = None
    fe_container: str | None = None
    cluster_naming: bool = False
    placement: str = "round-robin"
    virt_type: str = "hvm"


@dataclass(frozen=True)
class ClusterCreated:
    frontend: str
    vlan: int
    computes: list[tuple[str, str]] = field(default_factory=list)


def _physical_frontend(s: Session) -> Host:
    name = attrs.global_value(s, "Kickstart_PrivateHostname")
    host = s.scalar(select(Host).where(Host.name == name)) if name else None
    if host is None:
        raise UserError("no physical frontend is registered: run 'rocks init frontend' first")
    return host


def _default_containers(s: Session, fallback: Host) -> list[Host]:
    """Every kvm-capable physical host except frontends; the fallback when there is none."""
    from flightdeck.services.allocation import kvm_hosts

    vm_hosts = select(VM.host_id)
    frontend = select(Appliance.id).where(Appliance.name == "frontend")
    candidates = s.scalars(
        select(Host)
        .where(Host.id.not_in(vm_hosts), Host.appliance_id.not_in(frontend))
        .order_by(*host_order())
    )
    found = kvm_hosts(s, candidates)
    return found or [fallback]


def _capacity_order(
    s: Session, fe_container: Host, containers: Sequence[Host], req: ClusterRequest
) -> list[str]:
    """Computes where the most memory is free, after the frontend has taken its share.

    The frontend is pinned to fe_container; when that host's memory is known its share is
    deducted first (and a frontend that does not fit is refused), so the computes placed next
    to it see what is really left.
    """
    from flightdeck.planner.placement import by_capacity
    from flightdeck.services.allocation import container_capacity

    hosts = list({h.id: h for h in [*containers, fe_container]}.values())
    caps = {c.name: c for c in container_capacity(s, hosts)}
    fe_cap = caps[fe_container.name]
    fe_free = fe_cap.free_mb
    if fe_free is not None:
        if fe_free < req.mem_per_frontend:
            raise PlannerError(
                f"cluster does not fit: the frontend needs {req.mem_per_frontend} MB, "
                f"{max(0, math.floor(fe_free))} MB free on {fe_container.name}; pick another "
                "fe-container or lower mem-per-frontend"
            )
        caps[fe_container.name] = dataclasses.replace(
            fe_cap, mem_used_mb=fe_cap.mem_used_mb + req.mem_per_frontend
        )
    return by_capacity([caps[c.name] for c in containers], [req.mem_per_compute] * req.num_computes)


def add_cluster(
    db: Database, req: ClusterRequest, progress: Progress = _no_progress
) -> ClusterCreated:
    from flightdeck.planner.addresses import check_ip_in_network
    from flightdeck.planner.disks import default_disk
    from flightdeck.planner.names import cluster_compute_name, validate_host_name
    from flightdeck.planner.placement import round_robin
    from flightdeck.services.allocation import (
        Allocator,
        NewNic,
        NewVM,
        disk_dirs,
        insert_vms,
        require_kvm,
    )
    from flightdeck.services.inventory import (
        check_ip,
        check_ip_free,
        find_appliance,
        find_network,
        ipv4_network,
    )

    if req.virt_type.lower() != "hvm":
        raise UserError("KVM supports only 'hvm' virtualization (virt-type=hvm)")
    if req.num_computes < 0:
        raise UserError(f"num-computes={req.num_computes} must be zero or more")
    if req.cluster_naming and not req.fe_name:
        raise UserError("you must select a fe-name when using cluster-naming=yes")
    if req.placement not in ("round-robin", "capacity"):
        raise UserError(f"placement={req.placement!r}: use round-robin or capacity")
    public_ip = check_ip(req.ip)
    if req.fe_name:
        validate_host_name(req.fe_name)

    with writing(db) as s:
        progress("planning", 0, req.num_computes + 1)
        physical = _physical_frontend(s)
        public = find_network(s, "public")
        private = find_network(s, req.subnet)
        check_ip_in_network(public_ip, ipv4_network(public), public.name)
        check_ip_free(s, public, public_ip)
        gateway_text = req.gateway or attrs.global_value(s, "Kickstart_PublicGateway")
        if not gateway_text:
            raise UserError(
                "no public gateway: give gateway=<ip> or set the Kickstart_PublicGateway attribute"
            )
        # The frontend's only route out is through eth1, so the gateway must be on that network.
        gateway = check_ip_in_network(gateway_text, ipv4_network(public), public.name)
        alloc = Allocator(s)
        vlan = alloc.vlan(req.vlan)

        fe_container = resolve_host(s, req.fe_container) if req.fe_container else physical
        if req.container_hosts:
            # Each name on its own, in the order given: a container listed twice gets twice the
            # share of the round robin, as in Rocks.
            containers = [
                h
                for name in req.container_hosts
                for h in resolve_hosts(s, [name], default_all=False)
            ]
        else:
            containers = _default_containers(s, fe_container)
        require_kvm(s, [fe_container, *containers])

        by_name = {c.name: c for c in containers}
        if req.placement == "capacity":
            unique = list({c.id: c for c in containers}.values())
            order = _capacity_order(s, fe_container, unique, req)
        else:
            order = round_robin([c.name for c in containers], req.num_computes)
        placed = [by_name[n] for n in order]
        dirs = disk_dirs(s, [fe_container, *containers])

        fe_app = find_appliance(s, "frontend")
        vm_app = find_appliance(s, "hosted-vm")
        if req.fe_name:
            fe_name, fe_slice = alloc.claim_name(req.fe_name), 0
        else:
            fe_name, fe_slice = alloc.vm_name(fe_app.name, fe_container)
        fe_macs = alloc.macs(2)
        frontend = NewVM(
            name=fe_name,
            appliance_id=fe_app.id,
            container=fe_container,
            slice=fe_slice,
            cpus=req.cpus_per_frontend,
            mem_mb=req.mem_per_frontend,
            nics=[
                NewNic("eth0", fe_macs[0], alloc.next_ip(private), private.id, vlan, fe_name),
                NewNic(
                    "eth1",
                    fe_macs[1],
                    alloc.claim_ip(public, public_ip),
                    public.id,
                    0,
                    f"{fe_name}-public",
                ),
            ],
            disks=[default_disk(fe_name, dirs[fe_container.id], req.disk_per_frontend)],
            install_action="install vm frontend",
            run_action="os",
        )
        computes: list[NewVM] = []
        macs = alloc.macs(req.num_computes) if req.num_computes else []
        for i, c in enumerate(placed):
            if req.cluster_naming:
                name, slice_ = alloc.claim_name(cluster_compute_name(fe_name, i)), 0
            else:
                name, slice_ = alloc.vm_name(vm_app.name, c)
            computes.append(
                NewVM(
                    name=name,
                    appliance_id=vm_app.id,
                    container=c,
                    slice=slice_,
                    cpus=req.cpus_per_compute,
                    mem_mb=req.mem_per_compute,
                    nics=[NewNic("eth0", macs[i], None, None, vlan, name)],
                    disks=[default_disk(name, dirs[c.id], req.disk_per_compute)],
                    install_action="install",
                    run_action="none",
                )
            )
        progress("inserting", req.num_computes // 2, req.num_computes + 1)
        ids = insert_vms(s, [frontend])
        cluster = Cluster(frontend_id=ids[fe_name], vlan=vlan, network_id=private.id)
        s.add(cluster)
        s.flush()
        for v in computes:
            v.cluster_id = cluster.id
        s.execute(update(VM).where(VM.host_id == ids[fe_name]).values(cluster_id=cluster.id))
        insert_vms(s, computes)
        s.add(
            Route(host_id=ids[fe_name], destination="0.0.0.0", netmask="0.0.0.0", gateway=gateway)
        )
        progress("committing", req.num_computes + 1, req.num_computes + 1)
    return ClusterCreated(fe_name, vlan, [(v.name, v.container.name) for v in computes])


# Listing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterListing:
    """One block of `rocks list cluster`: a frontend label and its (node, type) rows."""

    label: str
    frontend: str
    kind: str
    nodes: list[tuple[str, str]]


def _public_labels(s: Session, hosts: Sequence[Host], public: Network | None) -> dict[int, str]:
    """Each host's name on the public network (`frontend-0-0-0-public`), else its own name."""
    labels = {h.id: h.name for h in hosts}
    if public is None or not hosts:
        return labels
    found: dict[int, str] = {}
    for host_id, name in s.execute(
        select(Interface.host_id, Interface.name)
        .where(Interface.host_id.in_(list(labels)), Interface.network_id == public.id)
        .order_by(Interface.id)
    ).tuples():
        if name:
            found.setdefault(host_id, name)
    return {**labels, **found}


def list_clusters(db: Database, exprs: Sequence[str]) -> list[ClusterListing]:
    with reading(db) as s:
        physical = _physical_frontend(s)
        public = s.scalar(select(Network).where(Network.name == "public"))
        clusters = {c.frontend_id: c for c in s.scalars(select(Cluster))}
        wanted: set[int] | None = None
        if exprs:
            wanted = set()
            for h in resolve_hosts(s, exprs, default_all=False):
                if h.id != physical.id and h.id not in clusters:
                    raise UserError(f"host {h.name} is not a virtual frontend")
                wanted.add(h.id)
        out: list[ClusterListing] = []
        vm_host = select(VM.host_id)
        if wanted is None or physical.id in wanted:
            rows: list[tuple[str, str]] = []
            physical_hosts = s.scalars(
                select(Host.name)
                .where(Host.id != physical.id, Host.id.not_in(vm_host))
                .order_by(*host_order())
            )
            rows += [(n, "physical") for n in physical_hosts]
            loose_vms = s.scalars(
                select(Host.name)
                .join(VM, VM.host_id == Host.id)
                .where(VM.cluster_id.is_(None))
                .order_by(*host_order())
            )
            rows += [(n, "VM") for n in loose_vms]
            out.append(
                ClusterListing(
                    _public_labels(s, [physical], public)[physical.id],
                    physical.name,
                    "physical",
                    rows,
                )
            )
        members: dict[int, list[str]] = {}
        fe_ids = {c.id: c.frontend_id for c in clusters.values()}
        for cid, name, hid in s.execute(
            select(VM.cluster_id, Host.name, Host.id)
            .join(Host, Host.id == VM.host_id)
            .where(VM.cluster_id.is_not(None))
            .order_by(*host_order())
        ).tuples():
            if cid is not None and fe_ids.get(cid) != hid:
                members.setdefault(cid, []).append(name)
        fes = {h.id: h for h in s.scalars(select(Host).where(Host.id.in_(list(clusters))))}
        labels = _public_labels(s, list(fes.values()), public)
        for fe_id, c in sorted(clusters.items(), key=lambda kv: kv[1].vlan):
            if wanted is not None and fe_id not in wanted:
                continue
            fe = fes[fe_id]
            out.append(
                ClusterListing(
                    labels[fe.id],
                    fe.name,
                    "VM",
                    [(n, "VM") for n in members.get(c.id, [])],
                )
            )
        return out


# Removing --------------------------------------------------------------------------------------


def _cluster_of(s: Session, host: Host) -> Cluster:
    c = s.scalar(select(Cluster).where(Cluster.frontend_id == host.id))
    if c is None:
        raise UserError(f"host {host.name} is not a virtual frontend")
    return c


def remove_clusters(
    db: Database,
    exprs: Sequence[str],
    *,
    keep_disks: bool = False,
    force: bool = False,
    warn: Callable[[str], object] = lambda _m: None,
) -> list[tuple[str, int, list[str]]]:
    """Remove each cluster: destroy and undefine its domains, delete their volumes (unless
    `keep_disks`), then its VMs, frontend, interfaces, keys and VLAN; (fe, vlan, members).

    The database rows go in the same transaction, so a container that does not answer leaves
    the cluster in the database (unless `force`, which removes it anyway with a warning).
    """
    from flightdeck.services.lifecycle import destroy_for_removal
    from flightdeck.services.network import cluster_containers, release_cluster_links

    if not exprs:
        raise UserError("must supply at least one frontend name")
    carried: list[tuple[int, list[str]]] = []
    with writing(db) as s:
        removed = []
        for fe in resolve_hosts(s, exprs, default_all=False):
            c = _cluster_of(s, fe)
            members = list(
                s.scalars(
                    select(Host)
                    .join(VM, VM.host_id == Host.id)
                    .where(VM.cluster_id == c.id, Host.id != fe.id)
                    .order_by(*host_order())
                )
            )
            removed.append((fe.name, c.vlan, [m.name for m in members]))
            carried.append((c.vlan, cluster_containers(s, c.id)))
            for w in destroy_for_removal(s, [*members, fe], keep_disks=keep_disks, force=force):
                warn(w)
            for m in members:
                s.delete(m)
            s.delete(c)
            s.delete(fe)
    # After the commit: the cluster's VLAN devices on the containers that carried it.
    for vlan, containers in carried:
        for line in release_cluster_links(db, vlan, containers):
            if line.startswith("warning"):
                warn(line)
    return removed


def cluster_macs(db: Database, expr: str) -> list[tuple[list[str], str]]:
    """The MACs of each node of a virtual cluster on its VLAN, frontend first: (macs, name)."""
    with reading(db) as s:
        fe = resolve_host(s, expr)
        c = _cluster_of(s, fe)
        nodes = [
            fe,
            *s.scalars(
                select(Host)
                .join(VM, VM.host_id == Host.id)
                .where(VM.cluster_id == c.id, Host.id != fe.id)
                .order_by(*host_order())
            ),
        ]
        macs: dict[int, list[str]] = {}
        for hid, mac in s.execute(
            select(Interface.host_id, Interface.mac)
            .where(Interface.host_id.in_([n.id for n in nodes]), Interface.vlan == c.vlan)
            .order_by(Interface.device)
        ).tuples():
            if mac:
                macs.setdefault(hid, []).append(mac)
        return [(macs.get(n.id, []), n.name) for n in nodes]


def frontend_vlan(s: Session, fe: Host) -> int:
    return _cluster_of(s, fe).vlan
