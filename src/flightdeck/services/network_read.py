"""A container's network as the database says it, on SQLAlchemy Core: the planner's input, how
the container's network is reached, and `rocks list host vlan`.

Why apart from `services.network` (which reports, syncs and makes VLAN devices): `list host
vlan` only reads, and importing the ORM and the mapped classes for it cost ~100 ms of a ~450 ms
process (2.03x `import sqlalchemy`, where the other listings run 1.03-1.25x). The statements
here name `db/tables.py` tables; `services.network` runs the same ones on its ORM session.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from flightdeck.db import attrcore, tables
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import resolve_host_ids
from flightdeck.errors import FlightdeckError
from flightdeck.planner.defaults import DEFAULT_LIBVIRT_URI_TEMPLATE
from flightdeck.planner.network import (
    GuestNic,
    HostInterface,
    HostNetwork,
    HostNetworkInput,
    NetworkDef,
    RouteDef,
    Settings,
    plan_host_network,
)
from flightdeck.services.base import reading_core

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ATTR_NETNS = "kvm_netns"
SETTING_ATTRS = ("kvm_vlan_mode", "bridge_stp_forward_delay", "bridge_hello_time", "tx_offload")

Where = Literal["local", "remote", "none"]


# Where a container's network is reached ------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """How to reach a container's network: in-process, over ssh, or not at all."""

    where: Where
    host: str
    ssh_target: str | None = None
    netns: str | None = None


def container_uri(name: str, values: Mapping[str, str]) -> str:
    """A container's libvirt URI from its resolved attributes: `libvirt_uri`, else
    `libvirt_uri_template` (by default `qemu+ssh://root@{host}/system`) with its name."""
    template = values.get("libvirt_uri_template", DEFAULT_LIBVIRT_URI_TEMPLATE)
    return values.get("libvirt_uri") or template.replace("{host}", name)


def reach(name: str, values: Mapping[str, str]) -> Reach:
    """From the container's libvirt URI: no host part is this machine, `test:` is nowhere."""
    parts = urlsplit(container_uri(name, values))
    if parts.scheme.split("+")[0] == "test":
        return Reach("none", name)
    if not parts.hostname or parts.hostname in ("localhost", "127.0.0.1", "::1"):
        return Reach("local", name, netns=values.get(ATTR_NETNS) or None)
    return Reach("remote", name, ssh_target=f"{parts.username or 'root'}@{parts.hostname}")


def target(reach: Reach):  # type: ignore[no-untyped-def]  # -> flightdeck.net.apply.Target
    """The live network of `reach` (netlink here, iproute2 over ssh there); close it after."""
    if reach.where == "local":
        from flightdeck.net.netlink import NetlinkHost

        return NetlinkHost(reach.host, reach.netns)
    from flightdeck.net.shell import ShellHost, SshRunner

    assert reach.ssh_target is not None
    return ShellHost(reach.host, SshRunner(reach.host, reach.ssh_target))


# From the database to the planner -------------------------------------------------------------


def network_input(
    ex: Connection | Session,
    host_id: int,
    host_name: str,
    values: Mapping[str, str],
    *,
    vm_host_ids: Sequence[int] | None = None,
) -> HostNetworkInput:
    """The planner's input for one container (`values`: its resolved attributes): its
    interfaces, the networks, its VMs' NICs (all of them, or only those of the VM hosts
    given), its routes. Five reads, whatever the number of VMs. `ex` is a Core connection or
    an ORM session that has flushed (these statements do not autoflush)."""
    h, i, n = tables.hosts.c, tables.interfaces.c, tables.networks.c
    c, v, r = tables.clusters.c, tables.vms.c, tables.routes.c
    nets = {
        row[0]: row
        for row in ex.execute(
            select(n.id, n.name, n.subnet, n.netmask, n.mtu, n.dnszone).order_by(n.id)
        ).tuples()
    }
    names = {nid: row[1] for nid, row in nets.items()}
    ifaces = ex.execute(
        select(i.device, i.mac, i.ip, i.network_id, i.vlan, i.module, i.options)
        .where(i.host_id == host_id)
        .order_by(i.id)
    ).tuples()
    clusters = {
        cid: (vlan, net_id, fe)
        for cid, vlan, net_id, fe in ex.execute(
            select(c.id, c.vlan, c.network_id, h.name).join_from(
                tables.clusters, tables.hosts, h.id == c.frontend_id
            )
        ).tuples()
    }
    by_vlan = {vlan: fe for vlan, _n, fe in clusters.values()}
    private = next((nid for nid, name in names.items() if name == "private"), None)
    q = (
        select(h.name, i.device, i.mac, i.vlan, i.network_id, i.disable_kvm, v.cluster_id)
        .join_from(tables.hosts, tables.vms, v.host_id == h.id)
        .join(tables.interfaces, i.host_id == h.id)
        .where(v.container_id == host_id)
        .order_by(h.name, i.device)
    )
    if vm_host_ids is not None:
        q = q.where(h.id.in_(list(vm_host_ids)))
    guests = []
    for vm, device, mac, vlan, net_id, disabled, cluster_id in ex.execute(q).tuples():
        if disabled or not mac:
            continue
        cluster = clusters.get(cluster_id) if cluster_id is not None else None
        if vlan is not None and vlan >= 2:
            net = (cluster[1] if cluster else None) or net_id or private
            label = cluster[2] if cluster else by_vlan.get(vlan)
        else:
            # No network and no VLAN (a Hosted VM added without vlan=, a second NIC): the
            # physical private network, untagged, as services/domains.py attaches it.
            net, label = net_id or private, cluster[2] if cluster else None
        guests.append(GuestNic(vm, device, mac, names.get(net) if net else None, vlan, label))
    primary = values.get("primary_net") or "private"
    zone = next((row[5] for row in nets.values() if row[1] == primary), None)
    routes = ex.execute(
        select(r.destination, r.netmask, r.gateway).where(r.host_id == host_id).order_by(r.id)
    ).tuples()
    return HostNetworkInput(
        host=host_name,
        interfaces=[
            HostInterface(dev, mac, ip, names.get(nid) if nid else None, vlan, module, options)
            for dev, mac, ip, nid, vlan, module, options in ifaces
        ],
        networks=[NetworkDef(*row[1:5]) for row in nets.values()],
        guests=guests,
        routes=[RouteDef(*route) for route in routes],
        settings=Settings(
            vlan_mode=values.get("kvm_vlan_mode"),
            stp_forward_delay=values.get("bridge_stp_forward_delay"),
            hello_time=values.get("bridge_hello_time"),
            tx_offload=values.get("tx_offload"),
        ),
        fqdn=f"{host_name}.{zone}" if zone else host_name,
    )


# rocks list host vlan -------------------------------------------------------------------------


@dataclass(frozen=True)
class VlanRow:
    host: str
    vlan: int
    device: str
    interface: str
    clusters: tuple[str, ...]
    vms: int
    #: "yes", "no", "down", or None when the live state was not looked at or is unknown.
    present: str | None


def list_vlans(
    db: Database, exprs: Sequence[str], *, live: bool = True, netns: str | None = None
) -> tuple[list[VlanRow], list[str]]:
    """The cluster VLANs each container carries, and whether their devices exist live."""
    work: list[tuple[HostNetwork, Reach]] = []
    with reading_core(db) as conn:
        ids = resolve_host_ids(conn, exprs, default_all=True)
        for hid, (name, resolved) in attrcore.resolve_hosts(conn, ids).items():
            values = attrcore.values(resolved)
            if not attrcore.is_true(values.get("kvm")):
                continue
            plan = plan_host_network(network_input(conn, hid, name, values))
            work.append((plan, Reach("local", name, netns=netns) if netns else reach(name, values)))

    def look(plan: HostNetwork, where: Reach) -> dict[str, str] | str | None:
        """The state of each attach device, an error message, or None (not looked at)."""
        if not (live and plan.vlans and where.where != "none"):
            return None
        try:
            live_net = target(where)
            try:
                snapshot = live_net.observe()
            finally:
                live_net.close()
        except FlightdeckError as exc:
            return exc.message
        states = {}
        for use in plan.vlans:
            link = snapshot.link(use.attach)
            states[use.attach] = "no" if link is None else "yes" if link.up else "down"
        return states

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(16, len(work)))) as pool:
        looked = list(pool.map(lambda w: look(*w), work))
    rows: list[VlanRow] = []
    notes: list[str] = []
    for (plan, _reach), states in zip(work, looked, strict=True):
        if isinstance(states, str):
            notes.append(f"{plan.host}: live state unknown: {states}")
            states = None
        for use in plan.vlans:
            rows.append(
                VlanRow(
                    plan.host,
                    use.vlan,
                    use.attach,
                    use.interface,
                    use.clusters,
                    len(use.vms),
                    states.get(use.attach) if states is not None else None,
                )
            )
    return rows, notes
