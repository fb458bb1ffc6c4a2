"""The nodes of an owner's cluster: the MAC list `list host macs key=` shows (reference §2.5),
and the dashboard's fuller view (boot action and CD-ROM as well)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from flightdeck.db.engine import Database, core_reads
from flightdeck.db.models import VM, Host, HostBoot, Interface
from flightdeck.db.prepared import Prepared
from flightdeck.services.airboss.access import Target
from flightdeck.services.listings import cluster_members


@dataclass(slots=True)
class Node:
    """One line of `list host macs`: a node's MACs on its cluster's VLAN and its name.

    Not frozen: a cluster's listing makes one per node per request, and a frozen dataclass's
    `__init__` costs ~3x (1.8 against 0.6 us here)."""

    name: str
    macs: list[str]
    frontend: bool
    status: str | None = None
    #: Its id (for the dashboard's second query; never sent to the owner).
    host_id: int = 0


class _Q:
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
    cid = target.cluster_id
    return [
        Node(name, macs, frontend, host_id=hid)
        for hid, name, frontend, macs in cluster_members(conn, cid)
        if covers(hid, cid)
    ]


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
