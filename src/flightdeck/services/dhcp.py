"""DHCP and PXE on the private network: dnsmasq's files from the database, and the service.

Who gets a lease: every interface with a MAC and an IP on the `private` network, except those
on a VLAN (VLAN id > 0): as the original's dhcpd (reference §3.4), the physical frontend never
answers a virtual cluster's nodes, whose own frontend does. Everyone else asking is unknown:
dnsmasq's static range gives them nothing and logs them, and insert-ethers names them.

`rocks start service dhcp` runs two processes, both without systemd, their pid files and logs
under `<state dir>/dhcp/` (mode 0700: leases, MACs and logs are the administrator's): dnsmasq
(DHCP, TFTP, the IPv6 router advertisement) and the boot server (HTTP on the frontend's
private address, port 8078, and on its public address for virtual frontends' image installs:
`python -m flightdeck.services.bootserver`). Both are supervised by `process.daemon`; they are
started by `services.dhcp_service` (the boot server's process uses `services.provisioning`,
which uses this module: what starts it by its module's path sits above both). `netns=` runs
both inside a network namespace, which is how the tests give them a private network of their
own.

It also fixes the *discovery pool* (the lowest `POOL_SIZE` free addresses of the private
network when it starts, kept in the service's state file), writes the discovery hook dnsmasq
runs for the pool's leases and `discover.ipxe`; insert-ethers listens on `discovery_socket()`
(see `flightdeck.pxe.discovery`).
"""

from __future__ import annotations

import json
import os
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
from flightdeck.planner.addresses import lowest_free_run, network_of
from flightdeck.process.daemon import Daemon, NotRunning
from flightdeck.pxe import discovery, dnsmasq
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


def discovery_hook() -> Path:
    """The executable dnsmasq runs for each lease (`--dhcp-script`)."""
    return dhcp_dir() / "discover-hook"


def discovery_socket() -> Path:
    """Where insert-ethers listens for the hook's records (mode 0600, root only)."""
    return dhcp_dir() / "discover.sock"


def insert_ethers_log() -> Path:
    """The audit of insert-ethers: every host it adds or removes, every record it refuses."""
    return dhcp_dir() / "insert-ethers.log"


def make_dhcp_dir() -> Path:
    """`<state>/dhcp`, created 0700 (and made 0700 if it was looser)."""
    root = dhcp_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if root.stat().st_mode & 0o077:
        os.chmod(root, 0o700)
    return root


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


def discovery_pool(s: Session, st: Site) -> discovery.Pool:
    """The lowest POOL_SIZE addresses of the private network that nobody uses now."""
    net = network_of(st.network.subnet, st.network.netmask)
    used = [ip for (ip,) in s.execute(select(Interface.ip).where(Interface.ip.is_not(None)))]
    size = min(discovery.POOL_SIZE, max(1, (net.num_addresses - 2) // 4))
    first, last = lowest_free_run(net, [*used, st.server_ip], size)
    return discovery.Pool(first, last)


def running_pool() -> discovery.Pool | None:
    """The discovery pool of the running service (from its state file), or None."""
    pool = _state().get("pool")
    if isinstance(pool, list) and len(pool) == 2 and all(isinstance(a, str) for a in pool):
        return discovery.Pool(pool[0], pool[1])
    return None


def _settings(st: Site, interface: str | None, ra: bool, pool: discovery.Pool) -> dnsmasq.Settings:
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
        discovery=dnsmasq.Discovery(pool, discovery_hook()),
    )


def render(
    db: Database,
    interface: str | None = None,
    ra: bool = True,
    pool: discovery.Pool | None = None,
) -> Files:
    """The three files; the discovery pool is `pool`, else computed from the database now."""
    with reading(db) as s:
        st = site(s)
        hosts = leases(s, st.network)
        pool = pool or discovery_pool(s, st)
        conf = dnsmasq.render_conf(_settings(st, interface, ra, pool))
        return Files(conf, dnsmasq.render_hosts(hosts), _options(s, st), len(hosts))


def report_dhcp(db: Database, interface: str | None = None) -> list[tuple[Path, str]]:
    """`rocks report host dhcp`: each file and its text (the conf as a running service has it)."""
    running = _state()
    given = running.get("interface")
    iface = interface or (str(given) if given else None)
    ra = bool(running.get("ra", True)) if running else True
    f = render(db, iface, ra, running_pool())
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
    make_dhcp_dir()
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
    #: The boot server's public listener (virtual frontends' image installs), if any.
    public_url: str | None = None


def service_state() -> dict[str, object]:
    """What `rocks start service dhcp` recorded (netns, interface, url, public_url, port, ra)."""
    try:
        data = json.loads((dhcp_dir() / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_state = service_state


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
        text("public_url"),
    )


def stop_service() -> tuple[int | None, int | None]:
    """Stop the boot server and dnsmasq; their pids (None for one that was not running)."""
    boot = boot_daemon().stop()
    dns = dnsmasq.stop(paths())
    if boot is None and dns is None:
        raise NotRunning(f"the DHCP service is not running (no live process in {dhcp_dir()})")
    (dhcp_dir() / STATE_NAME).unlink(missing_ok=True)
    return dns, boot
