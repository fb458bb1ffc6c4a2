"""The nodes of an owner's cluster: the MAC list `list host macs key=` shows (reference §2.5),
and the dashboard's fuller view (boot action and CD-ROM as well)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import BindParameter, Connection, bindparam, select, union_all

from flightdeck.db.engine import Database, core_reads
from flightdeck.db.hostexpr import host_order
from flightdeck.db.models import VM, Cluster, Host, HostBoot, Interface
from flightdeck.db.prepared import Prepared
from flightdeck.services.airboss.access import Target


@dataclass(slots=True)
class Node:
    """One line of `list host macs`: a node's MACs on its cluster's VLAN and its name.

    Not frozen: its MACs are appended as the rows come, and a cluster's listing makes one per
    node per request (a frozen dataclass's `__init__` costs ~3x: 1.8 against 0.6 us here)."""

    name: str
    macs: list[str]
    frontend: bool
    status: str | None = None
    #: Its id (for the dashboard's second query; never sent to the owner).
    host_id: int = 0


class _Q:
    _cid: BindParameter[int] = bindparam("cid")
    _fe = select(Cluster.frontend_id).where(Cluster.id == _cid).scalar_subquery()
    _vlan = select(Cluster.vlan).where(Cluster.id == _cid).scalar_subquery()
    #: A cluster's members (its VMs and its frontend), in host order, each with its MACs on the
    #: cluster's VLAN (one row per MAC, in device order; one row with none if it has none):
    #: one statement, where it took three.
    #: (An index search for its VMs and its frontend, not a scan of every host on the site.)
    members = Prepared(
        select(Host.id, Host.name, Host.id == _fe, Interface.mac)
        .outerjoin(
            Interface,
            (Interface.host_id == Host.id)
            & (Interface.vlan == _vlan)
            & Interface.mac.is_not(None),
        )
        .where(
            Host.id.in_(
                union_all(
                    select(VM.host_id).where(VM.cluster_id == _cid),
                    select(Cluster.frontend_id).where(Cluster.id == _cid),
                )
            )
        )
        .order_by(*host_order(), Interface.device)
    )
    details = Prepared(
        select(Host.id, HostBoot.action, VM.cdrom_path)
        .outerjoin(HostBoot, HostBoot.host_id == Host.id)
        .outerjoin(VM, VM.host_id == Host.id)
        .where(Host.id.in_(bindparam("ids", expanding=True)))
    )
    host_macs = Prepared(
        select(Interface.mac)
        .where(Interface.host_id == bindparam("host"), Interface.mac.is_not(None))
        .order_by(Interface.device)
    )


def _nodes(conn: Connection, target: Target) -> list[Node]:
    covers = target.scope.covers
    if target.cluster_id is None:
        if not covers(target.host_id, None):
            return []
        macs = [m for m in _Q.host_macs.execute(conn, {"host": target.host_id}).scalars() if m]
        return [Node(target.name, macs, False, host_id=target.host_id)]
    listed: dict[int, Node] = {}
    rows = _Q.members.execute(conn, {"cid": target.cluster_id}).all()  # (fetched at once)
    for hid, name, frontend, mac in rows:
        node = listed.get(hid)
        if node is None:
            if not covers(hid, target.cluster_id):
                continue
            node = listed[hid] = Node(name, [], bool(frontend), host_id=hid)
        if mac is not None:
            node.macs.append(mac)
    return sorted(listed.values(), key=lambda n: not n.frontend)  # the frontend first


def cluster_nodes(db: Database | Connection, target: Target) -> list[Node]:
    """The nodes of the target's cluster that the key covers, frontend first (read on `db`'s
    own transaction, or inside the caller's on a connection).

    MACs are those on the cluster's VLAN, so a frontend's public NIC is not listed (as the
    original); a VM outside any cluster lists all of its MACs.
    """
    with core_reads(db) as conn:
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
    with core_reads(db) as conn:
        listed = _nodes(conn, target)
        ids = [n.host_id for n in listed]
        rows = _Q.details.execute(conn, {"ids": ids}).all()
    found = {hid: (action, cdrom) for hid, action, cdrom in rows}
    out = []
    for n in listed:
        action, cdrom = found.get(n.host_id, (None, None))
        out.append(NodeDetails(n, action, cdrom.rsplit("/", 1)[-1] if cdrom else None))
    return out
