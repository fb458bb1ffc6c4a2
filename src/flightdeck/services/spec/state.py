"""What the database holds about one virtual cluster, read in a fixed number of queries.

`report` prints it as a spec; `apply` compares a spec with it. Both need the same facts for
every VM of the cluster (frontend first, then the computes in the order they were made, by host
id): its host and VM rows, disks, boot action, host attributes and keys. A 1,000-node cluster
costs the same dozen queries as a 2-node one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.db.models import (
    VM,
    Cluster,
    Host,
    HostAttr,
    HostBoot,
    Interface,
    Network,
    PublicKey,
    Route,
    VMDisk,
)
from flightdeck.planner.disks import DiskSpec

T = TypeVar("T")
#: Ids per `IN (...)` (under SQLite's bound-parameter limit, whatever its build).
CHUNK = 900


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class KeyState:
    id: int
    fingerprint: str
    pem: str
    description: str | None


@dataclass
class VMState:
    """One VM of the cluster as the database has it (memory MB, disks GB)."""

    host: Host
    vm: VM
    container: Host | None
    disks: list[DiskSpec]
    boot: str | None
    attributes: dict[str, str] = field(default_factory=dict)
    keys: list[KeyState] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.host.name


@dataclass
class ClusterState:
    cluster: Cluster
    network: Network
    frontend: VMState
    computes: list[VMState]
    #: The frontend's public interface (eth1: its IP and public name) and default gateway.
    public: Interface | None
    gateway: str | None

    @property
    def vms(self) -> list[VMState]:
        return [self.frontend, *self.computes]


def _by_host(rows: Iterable[Any], key: str = "host_id") -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for r in rows:
        out.setdefault(getattr(r, key), []).append(r)
    return out


def load(s: Session, cluster: Cluster) -> ClusterState:
    """Everything about `cluster` a spec talks about."""
    rows = list(
        s.execute(
            select(Host, VM)
            .join(VM, VM.host_id == Host.id)
            # Both sides on `vms` (the join makes its host_id the host's id): SQLite then
            # searches its two indexes, where an OR with `hosts.id` scanned every host.
            .where((VM.cluster_id == cluster.id) | (VM.host_id == cluster.frontend_id))
            .order_by(Host.id)
        ).tuples()
    )
    ids = [h.id for h, _vm in rows]
    vm_ids = [vm.id for _h, vm in rows]
    container_ids = sorted({vm.container_id for _h, vm in rows if vm.container_id is not None})
    containers: dict[int, Host] = {}
    disks: dict[int, list[VMDisk]] = {}
    boots: dict[int, str] = {}
    attrs: dict[int, dict[str, str]] = {}
    keys: dict[int, list[KeyState]] = {}
    for part in chunks(container_ids):
        containers.update({h.id: h for h in s.scalars(select(Host).where(Host.id.in_(part)))})
    for part in chunks(vm_ids):
        q = select(VMDisk).where(VMDisk.vm_id.in_(part)).order_by(VMDisk.vm_id, VMDisk.position)
        for d in s.scalars(q):
            disks.setdefault(d.vm_id, []).append(d)
    for part in chunks(ids):
        boots.update(
            s.execute(select(HostBoot.host_id, HostBoot.action).where(HostBoot.host_id.in_(part)))
            .tuples()
            .all()
        )
        for a in s.scalars(select(HostAttr).where(HostAttr.host_id.in_(part))):
            attrs.setdefault(a.host_id, {})[a.name] = a.value
        for k in s.scalars(
            select(PublicKey).where(PublicKey.host_id.in_(part)).order_by(PublicKey.id)
        ):
            keys.setdefault(k.host_id, []).append(
                KeyState(k.id, k.fingerprint, k.public_key, k.description)
            )

    def state(h: Host, vm: VM) -> VMState:
        return VMState(
            host=h,
            vm=vm,
            container=containers.get(vm.container_id) if vm.container_id else None,
            disks=[
                DiskSpec(d.vbd_type, d.prefix, d.name, d.device, d.bus, d.size_gb)
                for d in disks.get(vm.id, [])
            ],
            boot=boots.get(h.id),
            attributes=dict(sorted(attrs.get(h.id, {}).items())),
            keys=keys.get(h.id, []),
        )

    states = [state(h, vm) for h, vm in rows]
    frontend = next(v for v in states if v.host.id == cluster.frontend_id)
    computes = [v for v in states if v.host.id != cluster.frontend_id]
    public = s.scalar(
        select(Interface)
        .join(Network, Network.id == Interface.network_id)
        .where(Interface.host_id == frontend.host.id, Network.name == "public")
        .order_by(Interface.id)
        .limit(1)
    )
    gateway = s.scalar(
        select(Route.gateway).where(
            Route.host_id == frontend.host.id, Route.destination == "0.0.0.0"
        )
    )
    network = s.get(Network, cluster.network_id)
    assert network is not None  # a foreign key
    return ClusterState(cluster, network, frontend, computes, public, gateway)


def cluster_of(s: Session, host: Host) -> Cluster | None:
    return s.scalar(select(Cluster).where(Cluster.frontend_id == host.id))
