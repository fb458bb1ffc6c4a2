"""DHCP and PXE on the private network: dnsmasq's files from the database, and the service.

Who gets a lease: every interface with a MAC and an IP on the `private` network, except those
on a VLAN (VLAN id > 0): as the original's dhcpd (reference §3.4), the physical frontend never
answers a virtual cluster's nodes, whose own frontend does. Everyone else asking is unknown:
dnsmasq's static range gives them nothing and logs them, and insert-ethers names them.

`rocks start service dhcp` runs two processes, both without systemd, their pid files and logs
under `<state dir>/dhcp/`: dnsmasq (DHCP, TFTP, the IPv6 router advertisement) and the boot
server (HTTP on the frontend's private address, port 8078: `python -m
flightdeck.services.bootserver`). Both are supervised by `process.daemon`; they are started by
`services.dhcp_service` (the boot server's process uses `services.provisioning`, which uses
this module: what starts it by its module's path sits above both). `netns=` runs both inside a
network namespace, which is how the tests give them a private network of their own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from flightdeck import config
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import host_order
from flightdeck.db.models import Host, Interface, Network
from flightdeck.errors import NotFound, UserError
from flightdeck.process.daemon import Daemon, NotRunning
from flightdeck.pxe import dnsmasq
from flightdeck.services.base import reading

PRIVATE = "private"
STATE_NAME = "service.json"


def dhcp_dir() -> Path:
    return config.state_dir() / "dhcp"


def paths() -> dnsmasq.Paths:
    return dnsmasq.Paths(dhcp_dir())


def bootserver_pid() -> Path:
    return dhcp_dir() / "bootserver.pid"


def bootserver_log() -> Path:
    return dhcp_dir() / "bootserver.log"


def boot_daemon() -> Daemon:
    """The boot server: the process with our pid file on its command line."""
    pid_file = bootserver_pid()

    def ours(argv: list[str]) -> bool:
        return "--pid-file" in argv and str(pid_file) in argv

    return Daemon("the boot server", pid_file, bootserver_log(), ours)


@dataclass(frozen=True)
class Site:
    """What the frontend's database says about its private network."""

    network: Network
    server_ip: str
    #: The frontend's device on the private network (where dnsmasq listens by default).
    interface: str | None


def site(s: Session) -> Site:
    net = s.scalar(select(Network).where(Network.name == PRIVATE))
    if net is None:
        raise NotFound("there is no private network: run rocks init frontend first")
    server = attrs.global_value(s, "Kickstart_PrivateAddress")
    fe_name = attrs.global_value(s, "Kickstart_PrivateHostname")
    device = None
    if fe_name:
        row = s.execute(
            select(Interface.device, Interface.ip)
            .join(Host, Host.id == Interface.host_id)
            .where(Host.name == fe_name, Interface.network_id == net.id)
        ).first()
        if row is not None:
            device, server = row[0], server or row[1]
    if not server:
        raise NotFound(
            "the frontend has no private address: set attribute Kickstart_PrivateAddress"
        )
    return Site(net, server, device)


def leases(s: Session, net: Network) -> list[dnsmasq.DhcpHost]:
    """The fixed leases: private-network interfaces with a MAC and an IP, not on a VLAN."""
    rows = s.execute(
        select(Interface.mac, Interface.ip, Host.name)
        .join(Host, Host.id == Interface.host_id)
        .where(
            Interface.network_id == net.id,
            Interface.mac.is_not(None),
            Interface.ip.is_not(None),
            or_(Interface.vlan.is_(None), Interface.vlan == 0),
        )
        .order_by(*host_order(), Interface.device)
    ).tuples()
    return [dnsmasq.DhcpHost(str(mac), str(ip), name) for mac, ip, name in rows]


def _options(s: Session, st: Site) -> str:
    return dnsmasq.render_opts(st.server_ip, st.server_ip, st.network.dnszone)


@dataclass(frozen=True)
class Files:
    conf: str
    hosts: str
    opts: str
    count: int


def _settings(st: Site, interface: str | None, ra: bool) -> dnsmasq.Settings:
    iface = interface or st.interface
    if not iface:
        raise UserError("the frontend has no private interface: give interface=<device>")
    return dnsmasq.Settings(
        interface=iface,
        server_ip=st.server_ip,
        subnet=st.network.subnet,
        netmask=st.network.netmask,
        paths=paths(),
        router_advert=ra,
        undionly=dnsmasq.find_undionly() is not None,
    )


def render(db: Database, interface: str | None = None, ra: bool = True) -> Files:
    with reading(db) as s:
        st = site(s)
        hosts = leases(s, st.network)
        conf = dnsmasq.render_conf(_settings(st, interface, ra))
        return Files(conf, dnsmasq.render_hosts(hosts), _options(s, st), len(hosts))


def report_dhcp(db: Database, interface: str | None = None) -> list[tuple[Path, str]]:
    """`rocks report host dhcp`: each file and its text (the conf as a running service has it)."""
    running = _state()
    given = running.get("interface")
    iface = interface or (str(given) if given else None)
    ra = bool(running.get("ra", True)) if running else True
    f = render(db, iface, ra)
    p = paths()
    return [(p.conf, f.conf), (p.hosts, f.hosts), (p.opts, f.opts)]


@dataclass(frozen=True)
class SyncResult:
    hosts: int
    changed: list[Path]
    #: The dnsmasq that was told to reload, or None (not running, or nothing changed).
    reloaded: int | None


def sync_dhcp(db: Database) -> SyncResult:
    """Write the hosts and opts files; SIGHUP dnsmasq when one changed. Never restarts it."""
    with reading(db) as s:
        st = site(s)
        hosts = leases(s, st.network)
        opts = _options(s, st)
    p = paths()
    changed = []
    if dnsmasq.write_if_changed(p.hosts, dnsmasq.render_hosts(hosts)):
        changed.append(p.hosts)
    if dnsmasq.write_if_changed(p.opts, opts):
        changed.append(p.opts)
    pid = dnsmasq.reload(p) if changed else None
    return SyncResult(len(hosts), changed, pid)


# The service ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    dnsmasq: int | None
    bootserver: int | None
    netns: str | None
    interface: str | None
    url: str | None
    log: Path


def _state() -> dict[str, object]:
    try:
        data = json.loads((dhcp_dir() / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def status() -> Status:
    state = _state()
    p = paths()

    def text(key: str) -> str | None:
        value = state.get(key)
        return str(value) if value else None

    return Status(
        dnsmasq.running(p),
        boot_daemon().running(),
        text("netns"),
        text("interface"),
        text("url"),
        p.log,
    )


def stop_service() -> tuple[int | None, int | None]:
    """Stop the boot server and dnsmasq; their pids (None for one that was not running)."""
    boot = boot_daemon().stop()
    dns = dnsmasq.stop(paths())
    if boot is None and dns is None:
        raise NotRunning(f"the DHCP service is not running (no live process in {dhcp_dir()})")
    (dhcp_dir() / STATE_NAME).unlink(missing_ok=True)
    return dns, boot
