"""Virtual clusters: add / list / remove cluster and the cluster's MAC list.

A cluster is a virtual frontend plus N hosted VMs sharing one VLAN. Its membership is a
`cluster_id` on each VM (not "whatever carries the VLAN id", the original's weak spot, §4.7.6);
the VLAN is unique per cluster in the schema.

`add_cluster` reads what the plan depends on, asks the planner (`planner.cluster.plan_cluster`,
pure: every name, MAC, address, VLAN and placement is decided there) and writes the plan, all
in one write transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import check_plain_name, host_order, resolve_host, resolve_hosts
from flightdeck.db.models import VM, Appliance, Cluster, Host, Interface, Network, Route
from flightdeck.errors import UserError
from flightdeck.planner.cluster import (
    COMPUTE,
    FRONTEND,
    ClusterInventory,
    ClusterPlan,
    Container,
    RandomSource,
    VMPlan,
    check_request,
    plan_cluster,
)
from flightdeck.planner.cluster import ClusterRequest as ClusterRequest  # the service's input
from flightdeck.planner.cluster import Network as PlanNetwork
from flightdeck.planner.names import check_fqdn
from flightdeck.services.base import writing

# `rocks list cluster` and `list host macs` read Core tables (services.listings); re-exported
# here for callers.
from flightdeck.services.listings import ClusterListing as ClusterListing
from flightdeck.services.listings import cluster_macs as cluster_macs
from flightdeck.services.listings import list_clusters as list_clusters

if TYPE_CHECKING:
    from flightdeck.services.allocation import NewVM

# What only `add cluster` needs (allocation, inventory lookups) is imported inside it: `rocks
# list cluster` and `remove cluster` do not pay for those modules.

Progress = Callable[[str, int, int], None]


def _no_progress(_phase: str, _done: int, _total: int) -> None:
    return None


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


@dataclass(frozen=True)
class _Loaded:
    """The inventory the planner gets, and the rows its plan's names stand for."""

    inventory: ClusterInventory
    hosts: dict[str, Host]
    networks: dict[str, Network]


def _network(s: Session, net: Network) -> PlanNetwork:
    from flightdeck.services.allocation import used_ips

    return PlanNetwork(net.name, net.subnet, net.netmask, used_ips(s, net))


def _inventory(s: Session, req: ClusterRequest) -> _Loaded:
    """Everything `plan_cluster` needs, read in a fixed number of queries."""
    from flightdeck.services import allocation as al
    from flightdeck.services.inventory import find_network

    physical = _physical_frontend(s)
    public = find_network(s, "public")
    private = find_network(s, req.subnet)
    fe_box = resolve_host(s, req.fe_container) if req.fe_container else physical
    if req.container_hosts:
        # Each name on its own, in the order given: a container listed twice gets twice the
        # share of the round robin, as in Rocks.
        boxes = [
            h for name in req.container_hosts for h in resolve_hosts(s, [name], default_all=False)
        ]
    else:
        boxes = _default_containers(s, fe_box)
    hosts = {h.name: h for h in [fe_box, *boxes]}
    unique = list(hosts.values())
    kvm = {h.id for h in al.kvm_hosts(s, unique)}
    dirs = al.disk_dirs(s, unique)
    slices = al.max_slices(s)
    capacity = {}
    if req.placement == "capacity":
        capacity = {c.name: c for c in al.container_capacity(s, unique)}

    def container(h: Host) -> Container:
        return Container(
            h.name, h.rack, h.rank, h.id in kvm, dirs[h.id], slices.get(h.id, 0),
            capacity.get(h.name),
        )  # fmt: skip

    base, mask = al.mac_space(s)
    inventory = ClusterInventory(
        public=_network(s, public),
        private=_network(s, private),
        gateway=attrs.global_value(s, "Kickstart_PublicGateway"),
        mac_base=base,
        mac_mask=mask,
        used_macs=frozenset(al.used_macs(s)),
        used_vlans=al.used_vlans(s),
        names=frozenset(al.host_names(s)),
        fe_container=container(fe_box),
        containers=tuple(container(h) for h in boxes),
    )
    return _Loaded(inventory, hosts, {public.name: public, private.name: private})


def _check_fqdn_free(s: Session, fqdn: str) -> None:
    """A virtual frontend's FQDN names it among targets: it must name nothing else."""
    taken = s.scalar(
        select(Interface.id).where(func.lower(Interface.name) == fqdn).limit(1)
    ) or s.scalar(select(Host.id).where(func.lower(Host.name) == fqdn).limit(1))
    if taken is not None:
        raise UserError(f"fe-fqdn={fqdn} is already the name of a host: give another name")


def add_cluster(
    db: Database,
    req: ClusterRequest,
    progress: Progress = _no_progress,
    rng: RandomSource | None = None,
) -> ClusterCreated:
    """`rocks add cluster`: read the inventory, plan (`planner.cluster`), write the plan, in
    one write transaction (on any error nothing is written)."""
    check_request(req)
    with writing(db) as s:
        progress("planning", 0, req.num_computes + 1)
        planned = plan_in(s, req, rng)
        progress("inserting", req.num_computes // 2, req.num_computes + 1)
        created = write_plan(s, planned)
        progress("committing", req.num_computes + 1, req.num_computes + 1)
    return created


@dataclass(frozen=True)
class Planned:
    """A cluster's plan and the rows its names stand for (what `write_plan` writes)."""

    plan: ClusterPlan
    hosts: dict[str, Host]
    networks: dict[str, Network]


def plan_in(s: Session, req: ClusterRequest, rng: RandomSource | None = None) -> Planned:
    """The plan of `add cluster` inside the caller's write transaction (also `rocks apply
    cluster`'s, so a cluster made from a spec is the one `add cluster` makes)."""
    import random

    check_request(req)
    if req.fe_name:
        check_plain_name(s, req.fe_name)
    if req.fe_fqdn:
        _check_fqdn_free(s, check_fqdn(req.fe_fqdn))
    loaded = _inventory(s, req)
    plan = plan_cluster(req, loaded.inventory, rng or random.Random())
    return Planned(plan, loaded.hosts, loaded.networks)


def new_vm(
    v: VMPlan,
    apps: dict[str, int],
    container: Host,
    network_id: Callable[[str], int],
    cluster_id: int | None = None,
) -> NewVM:
    """The rows of one planned VM (`add cluster`, and `rocks apply cluster` growing one):
    `network_id` gives the id of a NIC's network from its name."""
    from flightdeck.services.allocation import NewNic, NewVM

    nics = [
        NewNic(
            n.device,
            n.mac,
            n.ip,
            network_id(n.network) if n.network else None,
            n.vlan,
            n.name,
        )
        for n in v.nics
    ]
    return NewVM(
        name=v.name,
        appliance_id=apps[v.appliance],
        container=container,
        slice=v.slice,
        cpus=v.cpus,
        mem_mb=v.mem_mb,
        nics=nics,
        disks=list(v.disks),
        cluster_id=cluster_id,
        install_action=v.install_action,
        run_action=v.run_action,
    )


def appliance_ids(s: Session) -> dict[str, int]:
    from flightdeck.services.inventory import find_appliance

    return {name: find_appliance(s, name).id for name in (FRONTEND, COMPUTE)}


def write_plan(s: Session, planned: Planned) -> ClusterCreated:
    """Write a planned cluster (frontend, cluster row, computes, default route)."""
    from flightdeck.services.allocation import insert_vms

    plan = planned.plan
    apps = appliance_ids(s)
    fe = plan.frontend.name

    def rows(v: VMPlan, cluster_id: int | None = None) -> NewVM:
        return new_vm(
            v, apps, planned.hosts[v.container], lambda n: planned.networks[n].id, cluster_id
        )

    ids = insert_vms(s, [rows(plan.frontend)])
    private_id = planned.networks[plan.network].id
    cluster = Cluster(frontend_id=ids[fe], vlan=plan.vlan, network_id=private_id)
    s.add(cluster)
    s.flush()
    s.execute(update(VM).where(VM.host_id == ids[fe]).values(cluster_id=cluster.id))
    insert_vms(s, [rows(c, cluster.id) for c in plan.computes])
    s.add(Route(host_id=ids[fe], destination="0.0.0.0", netmask="0.0.0.0", gateway=plan.gateway))
    return ClusterCreated(fe, plan.vlan, [(c.name, c.container) for c in plan.computes])


# Listing ---------------------------------------------------------------------------------------



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


def frontend_vlan(s: Session, fe: Host) -> int:
    return _cluster_of(s, fe).vlan
