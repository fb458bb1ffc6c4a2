"""The nodes of an owner's cluster: the MAC list `list host macs key=` shows (reference §2.5),
and the dashboard's fuller view (boot action and CD-ROM as well)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order
from flightdeck.db.models import VM, Cluster, Host, HostBoot, Interface
from flightdeck.services.airboss.access import Target, read


@dataclass(frozen=True)
class Node:
    """One line of `list host macs`: a node's MACs on its cluster's VLAN and its name."""

    name: str
    macs: list[str]
    frontend: bool
    status: str | None = None
    #: Its id (for the dashboard's second query; never sent to the owner).
    host_id: int = 0


class _Q:
    cluster = select(Cluster.frontend_id, Cluster.vlan).where(Cluster.id == bindparam("cid"))
    _in_cluster = (VM.cluster_id == bindparam("cid")) | (Host.id == bindparam("fe"))
    members = (
        select(Host.id, Host.name)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(_in_cluster)
        .order_by(*host_order())
    )
    cluster_macs = (
        select(Interface.host_id, Interface.mac)
        .join(Host, Host.id == Interface.host_id)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(_in_cluster, Interface.vlan == bindparam("vlan"), Interface.mac.is_not(None))
        .order_by(Interface.device)
    )
    details = (
        select(Host.id, HostBoot.action, VM.cdrom_path)
        .outerjoin(HostBoot, HostBoot.host_id == Host.id)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(Host.id.in_(bindparam("ids", expanding=True)))
    )
    host_macs = (
        select(Interface.host_id, Interface.mac)
        .where(Interface.host_id == bindparam("host"), Interface.mac.is_not(None))
        .order_by(Interface.device)
    )


def _nodes(conn: Connection, target: Target) -> list[Node]:
    if target.cluster_id is None:
        hosts = [(target.host_id, target.name, False)]
        found = conn.execute(_Q.host_macs, {"host": target.host_id}).all()
    else:
        fe_id, vlan = conn.execute(_Q.cluster, {"cid": target.cluster_id}).one()
        params = {"cid": target.cluster_id, "fe": fe_id, "vlan": vlan}
        members = conn.execute(_Q.members, params).all()
        ordered = sorted(members, key=lambda m: m[0] != fe_id)  # the frontend first
        hosts = [(hid, name, hid == fe_id) for hid, name in ordered]
        found = conn.execute(_Q.cluster_macs, params).all()
    macs: dict[int, list[str]] = {}
    for hid, mac in found:
        macs.setdefault(hid, []).append(mac)
    return [
        Node(name, macs.get(hid, []), fe, host_id=hid)
        for hid, name, fe in hosts
        if target.scope.covers(hid, target.cluster_id)
    ]


def cluster_nodes(db: Database, target: Target) -> list[Node]:
    """The nodes of the target's cluster that the key covers, frontend first.

    MACs are those on the cluster's VLAN, so a frontend's public NIC is not listed (as the
    original); a VM outside any cluster lists all of its MACs.
    """
    with read(db) as conn:
        return _nodes(conn, target)


def with_states(db: Database, nodes: list[Node]) -> list[Node]:
    """The same nodes with their live state (one libvirt listing per container, in parallel)."""
    from flightdeck.services.vm_status import statuses

    states = statuses(db, [n.name for n in nodes])
    return [dataclasses.replace(n, status=states.get(n.name, "nostate")) for n in nodes]


@dataclass(frozen=True)
class NodeDetails:
    """A node as the dashboard shows it: boot action (`install`, `os`, `run`; None: none set)
    and the image in its CD-ROM drive (its file name; None: empty)."""

    node: Node
    action: str | None
    cdrom: str | None


def cluster_view(db: Database, target: Target) -> list[NodeDetails]:
    """`cluster_nodes` with each node's boot action and CD-ROM, in one read transaction."""
    with read(db) as conn:
        listed = _nodes(conn, target)
        ids = [n.host_id for n in listed]
        rows = conn.execute(_Q.details, {"ids": ids}).all()
    found = {hid: (action, cdrom) for hid, action, cdrom in rows}
    out = []
    for n in listed:
        action, cdrom = found.get(n.host_id, (None, None))
        out.append(NodeDetails(n, action, cdrom.rsplit("/", 1)[-1] if cdrom else None))
    return out
