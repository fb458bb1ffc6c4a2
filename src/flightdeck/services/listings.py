"""Read-only listings on SQLAlchemy Core: the cheap, frequent `rocks list ...` commands.

Why a module of its own: these commands do a few milliseconds of work, yet importing
`sqlalchemy.orm` and building the mapped classes of `db/models.py` used to cost them ~120 ms
of a ~600 ms process. Everything here queries the `db/tables.py` tables through
`reading_core(db)` and imports neither the ORM nor the models (a test runs the commands in a
fresh interpreter and checks `sys.modules`). Each function is one read transaction.

`services.inventory` and `services.attributes` re-export these functions, so callers and tests
that know them there keep working.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BindParameter, Connection, bindparam, func, select, union_all

from flightdeck.db import attrcore, tables
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order, resolve_host_id, resolve_host_ids
from flightdeck.db.prepared import Prepared
from flightdeck.errors import NotFound, UserError
from flightdeck.services.base import reading_core


@dataclass(frozen=True)
class HostRow:
    name: str
    membership: str
    cpus: int
    rack: int
    rank: int
    run_action: str
    install_action: str
    comment: str | None


@dataclass(frozen=True)
class NetworkRow:
    name: str
    subnet: str
    netmask: str
    mtu: int
    dnszone: str | None


def list_hosts(db: Database, exprs: Sequence[str]) -> list[HostRow]:
    """The hosts named by `exprs` (every host if none), by rack, rank and name."""
    h, a = tables.hosts.c, tables.appliances.c
    with reading_core(db) as conn:
        query = select(
            h.name,
            a.membership,
            h.cpus,
            h.rack,
            h.rank,
            h.run_action,
            h.install_action,
            h.comment,
        ).join_from(tables.hosts, tables.appliances, a.id == h.appliance_id)
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs)))
        query = query.order_by(*host_order())
        return [HostRow(*row) for row in conn.execute(query).tuples()]


@dataclass(frozen=True)
class InterfaceRow:
    host: str
    subnet: str | None
    iface: str
    mac: str | None
    ip: str | None
    netmask: str | None
    module: str | None
    name: str | None
    vlan: int | None
    options: str | None
    channel: str | None


def list_interfaces(db: Database, exprs: Sequence[str]) -> list[InterfaceRow]:
    """The interfaces of the hosts named by `exprs` (every host's if none), by host, device."""
    h, i, n = tables.hosts.c, tables.interfaces.c, tables.networks.c
    with reading_core(db) as conn:
        query = (
            select(h.name, n.name, i.device, i.mac, i.ip, n.netmask, i.module, i.name, i.vlan,
                   i.options, i.channel)
            .join_from(tables.interfaces, tables.hosts, h.id == i.host_id)
            .outerjoin(tables.networks, n.id == i.network_id)
        )  # fmt: skip
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs)))
        query = query.order_by(*host_order(), i.device)
        return [InterfaceRow(*row) for row in conn.execute(query).tuples()]


def list_networks(db: Database) -> list[NetworkRow]:
    """Every network, in the order they were added."""
    n = tables.networks.c
    with reading_core(db) as conn:
        query = select(n.name, n.subnet, n.netmask, n.mtu, n.dnszone).order_by(n.id)
        return [NetworkRow(*row) for row in conn.execute(query).tuples()]


def list_appliances(db: Database) -> list[tuple[str, str, bool]]:
    """(appliance, membership, public) of every appliance, in the order they were added."""
    a = tables.appliances.c
    with reading_core(db) as conn:
        query = select(a.name, a.membership, a.public).order_by(a.id)
        return list(conn.execute(query).tuples().all())


def list_global(db: Database, name: str | None = None) -> list[tuple[str, str]]:
    """(name, value) of the global attributes (only `name` if given), by name."""
    g = tables.global_attributes.c
    with reading_core(db) as conn:
        query = select(g.name, g.value).order_by(g.name)
        if name:
            query = query.where(g.name == name)
        return [(n, v) for n, v in conn.execute(query).tuples()]


def list_host_attrs(
    db: Database, exprs: Sequence[str], name: str | None = None
) -> list[tuple[str, str, str, str]]:
    """(host, attribute, value, source) for every attribute that applies to each host named by
    `exprs` (every host if none): host (H) over appliance (A) over global (G), by name without
    case per host, the hosts in the order given. Four reads in all, whatever the host count
    (the ORM version read three per host)."""
    with reading_core(db) as conn:
        ids = resolve_host_ids(conn, exprs)
        resolved = attrcore.resolve_hosts(conn, ids, name)
    out: list[tuple[str, str, str, str]] = []
    for hid in ids:
        hname, merged = resolved[hid]
        out.extend((hname, n, *merged[n]) for n in sorted(merged, key=str.lower))
    return out


@dataclass(frozen=True)
class ClusterListing:
    """One block of `rocks list cluster`: a frontend label and its (node, type) rows."""

    label: str
    frontend: str
    kind: str
    nodes: list[tuple[str, str]]


def list_clusters(db: Database, exprs: Sequence[str]) -> list[ClusterListing]:
    """The physical cluster (its hosts, then the VMs of no cluster) and each virtual cluster
    (by VLAN: its computes) whose frontend `exprs` names (all if none). A frontend is labelled
    by its name on the public network (`frontend-0-0-0-public`), else its own name."""
    h, v, c, i = tables.hosts.c, tables.vms.c, tables.clusters.c, tables.interfaces.c
    g, n = tables.global_attributes.c, tables.networks.c
    with reading_core(db) as conn:
        fe_name = conn.scalar(select(g.value).where(g.name == "Kickstart_PrivateHostname"))
        physical = conn.execute(select(h.id, h.name).where(h.name == fe_name)).first()
        if fe_name is None or physical is None:
            raise UserError("no physical frontend is registered: run 'rocks init frontend' first")
        clusters = {fe: (cid, vlan) for cid, fe, vlan in conn.execute(
            select(c.id, c.frontend_id, c.vlan)).tuples()}  # fmt: skip
        wanted: set[int] | None = None
        if exprs:
            wanted = set()
            ids = resolve_host_ids(conn, exprs, default_all=False)
            names = {hid: nm for hid, nm in conn.execute(select(h.id, h.name).where(h.id.in_(ids)))}
            for hid in ids:
                if hid != physical.id and hid not in clusters:
                    raise UserError(f"host {names[hid]} is not a virtual frontend")
                wanted.add(hid)
        public = conn.scalar(select(n.id).where(n.name == "public"))
        fe_ids = [physical.id, *clusters]
        labels: dict[int, str] = {}
        if public is not None:
            for hid, name in conn.execute(
                select(i.host_id, i.name)
                .where(i.host_id.in_(fe_ids), i.network_id == public)
                .order_by(i.id)
            ).tuples():
                if name:
                    labels.setdefault(hid, name)
        out: list[ClusterListing] = []
        if wanted is None or physical.id in wanted:
            vm_hosts = select(v.host_id)
            rows = [(name, "physical") for name in conn.scalars(
                select(h.name).where(h.id != physical.id, h.id.not_in(vm_hosts))
                .order_by(*host_order()))]  # fmt: skip
            rows += [(name, "VM") for name in conn.scalars(
                select(h.name).join_from(tables.hosts, tables.vms, v.host_id == h.id)
                .where(v.cluster_id.is_(None)).order_by(*host_order()))]  # fmt: skip
            label = labels.get(physical.id, physical.name)
            out.append(ClusterListing(label, physical.name, "physical", rows))
        members: dict[int, list[str]] = {}
        fe_of = {cid: fe for fe, (cid, _vlan) in clusters.items()}
        for cid, name, hid in conn.execute(
            select(v.cluster_id, h.name, h.id)
            .join_from(tables.vms, tables.hosts, h.id == v.host_id)
            .where(v.cluster_id.is_not(None))
            .order_by(*host_order())
        ).tuples():
            if fe_of.get(cid) != hid:
                members.setdefault(cid, []).append(name)
        fe_names: dict[int, str] = {
            hid: name
            for hid, name in conn.execute(select(h.id, h.name).where(h.id.in_(list(clusters))))
        }
    for fe, (cid, _vlan) in sorted(clusters.items(), key=lambda kv: kv[1][1]):
        if wanted is not None and fe not in wanted:
            continue
        nodes = [(name, "VM") for name in members.get(cid, [])]
        out.append(ClusterListing(labels.get(fe, fe_names[fe]), fe_names[fe], "VM", nodes))
    return out


@dataclass(frozen=True)
class VMRow:
    """One VM of `rocks list host vm`: disks as (spec, size GB)."""

    name: str
    slice: int
    mem_mb: int
    cpus: int
    macs: list[str]
    container: str | None
    virt_type: str
    disks: list[tuple[str, int]]
    cdrom: str | None


def list_host_vms(db: Database, exprs: Sequence[str]) -> list[VMRow]:
    """The VMs among the hosts `exprs` names (every VM if none), by rack, rank and name: three
    reads whatever their number."""
    from flightdeck.planner.disks import DiskSpec

    h, v, i, d = tables.hosts.c, tables.vms.c, tables.interfaces.c, tables.vm_disks.c
    container = tables.hosts.alias("container")
    query = (
        select(h.id, h.name, v.id, v.slice, v.mem_mb, h.cpus, container.c.name, v.virt_type,
               v.cdrom_path)
        .join_from(tables.hosts, tables.vms, v.host_id == h.id)
        .outerjoin(container, container.c.id == v.container_id)
    )  # fmt: skip
    with reading_core(db) as conn:
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs)))
        rows = list(conn.execute(query.order_by(*host_order())).tuples())
        host_ids = [r[0] for r in rows]
        vm_ids = [r[2] for r in rows]
        macs: dict[int, list[str]] = {}
        for hid, mac in conn.execute(
            select(i.host_id, i.mac).where(i.host_id.in_(host_ids)).order_by(i.host_id, i.device)
        ).tuples():
            if mac:
                macs.setdefault(hid, []).append(mac)
        disks: dict[int, list[tuple[str, int]]] = {}
        for vid, vbd, prefix, name, device, bus, size in conn.execute(
            select(d.vm_id, d.vbd_type, d.prefix, d.name, d.device, d.bus, d.size_gb)
            .where(d.vm_id.in_(vm_ids))
            .order_by(d.vm_id, d.position)
        ).tuples():
            spec = DiskSpec(vbd, prefix, name, device, bus, size)
            disks.setdefault(vid, []).append((spec.format(), size))
    return [
        VMRow(name, slice_, mem, cpus, macs.get(hid, []), cname, vt or "para",
              disks.get(vid, []), cdrom)
        for hid, name, vid, slice_, mem, cpus, cname, vt, cdrom in rows
    ]  # fmt: skip


def list_boot(db: Database, exprs: Sequence[str]) -> list[tuple[str, str | None]]:
    """(host, next boot action or None) of the hosts `exprs` names (all if none), in the order
    the expressions name them."""
    h, b = tables.hosts.c, tables.host_boot.c
    with reading_core(db) as conn:
        ids = resolve_host_ids(conn, exprs)
        query = select(h.id, h.name, b.action).outerjoin_from(
            tables.hosts, tables.host_boot, b.host_id == h.id
        )
        if exprs and len(ids) <= attrcore.FEW_HOSTS:
            query = query.where(h.id.in_(ids))
        found = {hid: (name, action) for hid, name, action in conn.execute(query).tuples()}
    return [found[hid] for hid in ids]


def list_boot_actions(db: Database) -> list[tuple[str, str | None, str | None, str | None]]:
    """(name, kernel, ramdisk, args) of every boot action, by name."""
    a = tables.boot_actions.c
    with reading_core(db) as conn:
        query = select(a.name, a.kernel, a.ramdisk, a.args).order_by(a.name)
        return list(conn.execute(query).tuples())


def appliance_id(conn: Connection, name: str) -> int:
    """An appliance's id by its name (`compute`) or membership (`Compute`), without case."""
    a = tables.appliances.c
    key = name.strip().lower()
    found = conn.scalar(
        select(a.id).where((func.lower(a.name) == key) | (func.lower(a.membership) == key))
    )
    if found is None:
        known = ", ".join(repr(m) for m in conn.scalars(select(a.membership).order_by(a.id)))
        raise NotFound(f"membership {name!r} is not valid: use one of {known}")
    return int(found)


def list_appliance_attrs(db: Database, appliances: Sequence[str]) -> list[tuple[str, str, str]]:
    """(appliance, attribute, value) set on the named appliances (all if none), by both names."""
    a, aa = tables.appliances.c, tables.appliance_attributes.c
    with reading_core(db) as conn:
        query = (
            select(a.name, aa.name, aa.value)
            .join_from(tables.appliance_attributes, tables.appliances, a.id == aa.appliance_id)
            .order_by(a.name, aa.name)
        )
        if appliances:
            query = query.where(a.id.in_([appliance_id(conn, n) for n in appliances]))
        return list(conn.execute(query).tuples())


@dataclass(frozen=True)
class KeyRow:
    """One registered key, for `rocks list host key`; `kind` is "" when not asked for."""

    host: str
    id: int
    description: str | None
    fingerprint: str
    kind: str
    pem: str


def list_host_keys(db: Database, exprs: Sequence[str], *, kinds: bool = True) -> list[KeyRow]:
    """The keys of the named hosts (all hosts when none), in host order then key id. `kinds`
    parses each key to name its type (rsa-2048, ed25519...): it imports `cryptography`
    (~40 ms), so the plain listing does without it."""
    h, k = tables.hosts.c, tables.public_keys.c
    with reading_core(db) as conn:
        query = select(h.name, k.id, k.description, k.fingerprint, k.public_key).join_from(
            tables.public_keys, tables.hosts, h.id == k.host_id
        )
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs, default_all=False)))
        rows = list(conn.execute(query.order_by(*host_order(), k.id)).tuples())
    return [KeyRow(name, kid, desc, fp, _key_kind(pem) if kinds else "", pem)
            for name, kid, desc, fp, pem in rows]  # fmt: skip


def _key_kind(pem: str) -> str:
    from flightdeck.crypto import keys as ck

    try:
        return ck.describe_key(ck.parse_public_key(pem))
    except UserError:
        return "unusable"


@dataclass(frozen=True)
class AuditRow:
    """One Airboss decision, as `rocks list airboss log` and the `audit` operation show it."""

    id: int
    at: dt.datetime
    client: str | None
    keyid: str | None
    operation: str | None
    target: str | None
    accepted: bool
    reason: str | None
    token_id: str | None = None
    restrictions: str | None = None


def list_audit(db: Database, limit: int | None = 100) -> list[AuditRow]:
    """The last `limit` decisions (all with None), oldest first."""
    if limit is not None and limit < 1:
        raise UserError(f"limit={limit} must be at least 1")
    a = tables.audit_log.c
    query = select(a.id, a.at, a.client, a.keyid, a.operation, a.target, a.accepted, a.reason,
                   a.token_id, a.restrictions).order_by(a.id.desc())  # fmt: skip
    if limit is not None:
        query = query.limit(limit)
    with reading_core(db) as conn:
        rows = list(conn.execute(query).tuples())
    return [AuditRow(*row) for row in reversed(rows)]


@dataclass(frozen=True)
class RevokedRow:
    """One revoked capability token, for `rocks list host token`."""

    host: str
    token_id: str
    keyid: str | None
    revoked_by: str
    revoked_at: dt.datetime


def list_revoked(db: Database, exprs: Sequence[str]) -> list[RevokedRow]:
    """The revoked token ids of the named hosts (all when none), host order then time."""
    h, r = tables.hosts.c, tables.revoked_tokens.c
    query = select(h.name, r.token_id, r.keyid, r.revoked_by, r.revoked_at).join_from(
        tables.revoked_tokens, tables.hosts, h.id == r.host_id
    )
    with reading_core(db) as conn:
        if exprs:
            query = query.where(h.id.in_(resolve_host_ids(conn, exprs, default_all=False)))
        rows = list(conn.execute(query.order_by(*host_order(), r.id)).tuples())
    return [RevokedRow(*row) for row in rows]


class _Members:
    h, v, c, i = tables.hosts.c, tables.vms.c, tables.clusters.c, tables.interfaces.c
    cid: BindParameter[int] = bindparam("cid")
    frontend = select(c.frontend_id).where(c.id == cid).scalar_subquery()
    vlan = select(c.vlan).where(c.id == cid).scalar_subquery()
    #: A cluster's members (its VMs and its frontend) in host order, each with its MACs on the
    #: cluster's VLAN (one row per MAC, in device order; one row with none if it has none).
    #: Its VMs and its frontend are found through indexes, not by testing every host of the
    #: site (an `OR` of the two made SQLite scan `hosts`: 17.5 ms a call at 20,000 VMs).
    statement = Prepared(
        select(h.id, h.name, h.id == frontend, i.mac)
        .outerjoin_from(
            tables.hosts,
            tables.interfaces,
            (i.host_id == h.id) & (i.vlan == vlan) & i.mac.is_not(None),
        )
        .where(
            h.id.in_(
                union_all(
                    select(v.host_id).where(v.cluster_id == cid),
                    select(c.frontend_id).where(c.id == cid),
                )
            )
        )
        .order_by(*host_order(), i.device)
    )


def cluster_members(conn: Connection, cluster_id: int) -> list[tuple[int, str, bool, list[str]]]:
    """The nodes of cluster `cluster_id`, frontend first then host order: (host id, name,
    whether it is the frontend, its MACs on the cluster's VLAN in device order). One statement;
    what `list host macs` prints and the Airboss's MAC list answers (`airboss.nodes`)."""
    members: dict[int, tuple[int, str, bool, list[str]]] = {}
    for hid, name, frontend, mac in _Members.statement.execute(conn, {"cid": cluster_id}).all():
        member = members.get(hid)
        if member is None:
            member = members[hid] = (hid, name, bool(frontend), [])
        if mac:
            member[3].append(mac)
    return sorted(members.values(), key=lambda m: not m[2])  # stable: host order otherwise


def cluster_macs(db: Database, expr: str) -> list[tuple[list[str], str]]:
    """The MACs of each node of a virtual cluster on its VLAN, frontend first: (macs, name).
    `expr` names the frontend (its name, public name, MAC...)."""
    c = tables.clusters.c
    with reading_core(db) as conn:
        fe, fe_name = resolve_host_id(conn, expr)
        cluster = conn.execute(select(c.id).where(c.frontend_id == fe)).scalar()
        if cluster is None:
            raise UserError(f"host {fe_name} is not a virtual frontend")
        return [(macs, name) for _id, name, _fe, macs in cluster_members(conn, cluster)]
