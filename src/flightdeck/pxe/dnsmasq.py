"""dnsmasq as the private network's DHCP and TFTP server: its files, and the process, no systemd.

Three files, rendered from typed values so the same database gives the same bytes:

- `dnsmasq.conf`, written once by `rocks start service dhcp`: the interface, the *static*
  range (only MACs named in the hosts file get their fixed address), the small *discovery
  pool* that lends an unknown machine an address for two minutes and runs the discovery hook
  (`flightdeck.pxe.discovery`: how insert-ethers hears of it), TFTP for the iPXE chain scripts,
  the log, pid and lease files, and the IPv6 router advertisement that saves iPXE ~13 s of
  waiting for IPv6 autoconfiguration (shared/reference/feasibility.md).
- `hosts` (`--dhcp-hostsfile`): one fixed lease per known MAC, `mac,ip,name,lease`.
- `opts` (`--dhcp-optsfile`): router, DNS server, domain.

The last two are what `rocks sync dhcp` rewrites; dnsmasq re-reads both on SIGHUP, so a sync
never restarts it and leases in flight survive.

Every value that goes into these files is checked here, at render, whatever the database says:
one line of dnsmasq's configuration is one option, and a newline (or a comma where dnsmasq
splits on commas) in a value would be another option. A bad value is a DriverError naming it.

dnsmasq daemonises itself and writes its pid file; `start` runs it (inside a network namespace
with `ip netns exec` when asked, as the tests do) and waits for that file. `stop` checks that
the pid really is our dnsmasq (its command line names our conf file) before signalling it, so
a stale pid file never kills a stranger.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flightdeck.errors import DriverError
from flightdeck.process import daemon
from flightdeck.pxe.discovery import POOL_LEASE, TAG, Pool

#: Where QEMU's and Debian's iPXE put the BIOS chain loader (package `ipxe`); served over TFTP
#: to PXE ROMs that are not iPXE yet (real hardware). QEMU NICs already boot iPXE.
UNDIONLY_CANDIDATES = (Path("/usr/lib/ipxe/undionly.kpxe"), Path("/boot/ipxe/undionly.kpxe"))
CHAIN_NAME = "boot.ipxe"
#: What iPXE on an unknown machine gets (TFTP): wait to be named, then chain to CHAIN_NAME.
DISCOVER_NAME = "discover.ipxe"
UNDIONLY_NAME = "undionly.kpxe"
#: DHCP option 175 is iPXE's own; its presence tags the request `ipxe`.
IPXE_OPTION = 175

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_IFACE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_LEASE_RE = re.compile(r"^(infinite|[0-9]{1,9}[smhdw]?)$")
#: What dnsmasq reads as the end of a value or of an option: no path may hold one.
_PATH_UNSAFE = re.compile(r"[\x00-\x1f\x7f,#]")


def _ip(what: str, value: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise DriverError(
            f"{what} {value!r} is not an IPv4 address: fix it in the database"
        ) from None


def _path(what: str, value: Path) -> str:
    text = str(value)
    if _PATH_UNSAFE.search(text) or not text.startswith("/"):
        raise DriverError(
            f"{what} {text!r} cannot go into dnsmasq's configuration (absolute, no control "
            "characters, commas or #): move FLIGHTDECK_HOME"
        )
    return text


def check_domain(value: str) -> str:
    """A DNS domain as dnsmasq's domain option takes it (letters, digits, hyphens, dots)."""
    if not _DOMAIN_RE.match(value):
        raise DriverError(
            f"DNS zone {value!r} is not a domain name (letters, digits, hyphens and dots): "
            "fix the network's dnszone"
        )
    return value


@dataclass(frozen=True)
class DhcpHost:
    """One fixed lease: this MAC always gets this IP and this host name."""

    mac: str
    ip: str
    name: str

    def line(self, lease: str) -> str:
        # dnsmasq takes a plain label as the name: a FQDN's domain is the domain option's job.
        label = self.name.split(".", 1)[0]
        if not _NAME_RE.match(label):
            raise DriverError(f"host name {self.name!r} is not a valid DHCP host name")
        if not _MAC_RE.match(self.mac):
            raise DriverError(f"MAC {self.mac!r} of {self.name} is not a 6-octet Ethernet MAC")
        if not _LEASE_RE.match(lease):
            raise DriverError(f"lease time {lease!r} is not a dnsmasq lease time")
        return f"{self.mac},{_ip(f'IP of {self.name}', self.ip)},{label},{lease}"


@dataclass(frozen=True)
class Paths:
    """The files of one dnsmasq instance, all under one directory (`<state>/dhcp`)."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "dnsmasq.conf"

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def opts(self) -> Path:
        return self.root / "opts"

    @property
    def leases(self) -> Path:
        return self.root / "leases"

    @property
    def pid(self) -> Path:
        return self.root / "dnsmasq.pid"

    @property
    def log(self) -> Path:
        return self.root / "dnsmasq.log"

    @property
    def tftp(self) -> Path:
        return self.root / "tftp"


@dataclass(frozen=True)
class Discovery:
    """The discovery pool and the hook dnsmasq runs for its leases (`flightdeck.pxe.discovery`)."""

    pool: Pool
    hook: Path


@dataclass(frozen=True)
class Settings:
    """What `dnsmasq.conf` says: where it listens, the network, the boot files."""

    interface: str
    server_ip: str
    subnet: str
    netmask: str
    paths: Paths
    lease: str = "infinite"
    #: Send an IPv6 router advertisement built from the interface's own IPv6 prefix.
    router_advert: bool = True
    #: Also offer undionly.kpxe to PXE ROMs that are not iPXE (it must be in the TFTP root).
    undionly: bool = False
    #: Lend unknown machines a pool address and tell insert-ethers (None: ignore them).
    discovery: Discovery | None = None
    extra: Sequence[str] = field(default_factory=tuple)


def render_conf(st: Settings) -> str:
    """The main configuration (read once, at start)."""
    if not _IFACE_RE.match(st.interface):
        raise DriverError(f"invalid interface name {st.interface!r} for dnsmasq")
    if not _LEASE_RE.match(st.lease):
        raise DriverError(f"lease time {st.lease!r} is not a dnsmasq lease time")
    p = st.paths
    server = _ip("the frontend's private address", st.server_ip)
    subnet = _ip("the private network's subnet", st.subnet)
    netmask = _ip("the private network's netmask", st.netmask)
    lines = [
        "# Flightdeck: dnsmasq for the private network (written by rocks start service dhcp).",
        "# Fixed leases live in the hosts file and options in the opts file; rocks sync dhcp",
        "# rewrites those two and sends SIGHUP, which re-reads them without a restart.",
        "port=0",
        f"interface={st.interface}",
        "bind-interfaces",
        # State files may sit in a directory only root can read (FLIGHTDECK_HOME): stay root,
        # or a SIGHUP could no longer re-read the hosts file.
        "user=root",
        f"dhcp-range=set:private,{subnet},static,{netmask},{st.lease}",
    ]
    d = st.discovery
    if d is not None:
        first = _ip("the discovery pool's first address", d.pool.first)
        last = _ip("the discovery pool's last address", d.pool.last)
        lines += [
            "# Unknown machines: an address lent for two minutes and the discovery hook, which",
            "# tells insert-ethers (dnsmasq's own decision, never its log, names new hosts).",
            f"dhcp-range=tag:!known,set:{TAG},{first},{last},{netmask},{POOL_LEASE}",
            f"dhcp-script={_path('the discovery hook', d.hook)}",
            "script-on-renewal",
        ]
    lines += [
        "dhcp-authoritative",
        f"dhcp-hostsfile={_path('the hosts file', p.hosts)}",
        f"dhcp-optsfile={_path('the opts file', p.opts)}",
        f"dhcp-leasefile={_path('the lease file', p.leases)}",
        f"dhcp-match=set:ipxe,{IPXE_OPTION}",
    ]
    if d is not None:
        lines += [
            f"dhcp-boot=tag:ipxe,tag:!{TAG},{CHAIN_NAME},,{server}",
            f"dhcp-boot=tag:ipxe,tag:{TAG},{DISCOVER_NAME},,{server}",
        ]
    else:
        lines.append(f"dhcp-boot=tag:ipxe,{CHAIN_NAME},,{server}")
    if st.undionly:
        lines.append(f"dhcp-boot=tag:!ipxe,{UNDIONLY_NAME},,{server}")
    lines += [
        "enable-tftp",
        f"tftp-root={_path('the TFTP root', p.tftp)}",
        "log-dhcp",
        f"log-facility={_path('the log', p.log)}",
        f"pid-file={_path('the pid file', p.pid)}",
    ]
    if st.router_advert:
        lines += ["enable-ra", f"dhcp-range=::,constructor:{st.interface},ra-only"]
    for line in st.extra:
        if "\n" in line or "\r" in line:
            raise DriverError(f"extra dnsmasq option {line!r} holds a line break")
        lines.append(line)
    return "\n".join(lines) + "\n"


def render_hosts(hosts: Sequence[DhcpHost], lease: str = "infinite") -> str:
    """The `--dhcp-hostsfile`: one fixed lease a line, in the given order."""
    head = "# Flightdeck: fixed leases (rocks report host dhcp); dnsmasq re-reads this on SIGHUP\n"
    return head + "".join(h.line(lease) + "\n" for h in hosts)


def render_opts(router: str | None, dns: str | None, domain: str | None) -> str:
    """The `--dhcp-optsfile`: the options every host on the private network gets."""
    lines = ["# Flightdeck: DHCP options of the private network"]
    if router:
        lines.append(f"tag:private,option:router,{_ip('the router', router)}")
    if dns:
        lines.append(f"tag:private,option:dns-server,{_ip('the DNS server', dns)}")
    if domain:
        lines.append(f"tag:private,option:domain-name,{check_domain(domain)}")
    return "\n".join(lines) + "\n"


def find_undionly() -> Path | None:
    return next((p for p in UNDIONLY_CANDIDATES if p.is_file()), None)


# Files ------------------------------------------------------------------------------------------


def write_if_changed(path: Path, text: str, mode: int = 0o644) -> bool:
    """Write `text` atomically unless the file already holds it; True when it was written."""
    try:
        if path.read_text(encoding="utf-8") == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


# The process ----------------------------------------------------------------------------------


def netns_prefix(netns: str | None) -> list[str]:
    """`ip netns exec <ns>` when a namespace is asked for (checked to exist: a clear error)."""
    return daemon.in_netns(netns)


def _daemon(paths: Paths) -> daemon.Daemon:
    """Our dnsmasq: the one whose command line names our conf file."""
    conf = f"--conf-file={paths.conf}"

    def ours(argv: list[str]) -> bool:
        return bool(argv) and os.path.basename(argv[0]) == "dnsmasq" and conf in argv

    return daemon.Daemon("dnsmasq", paths.pid, paths.log, ours)


def running(paths: Paths) -> int | None:
    """The pid of the dnsmasq that runs with our conf file, or None."""
    return _daemon(paths).running()


def start(paths: Paths, netns: str | None = None, timeout: float = 10.0) -> int:
    """Run dnsmasq with `paths.conf`; its pid once it has written its pid file."""
    dns = _daemon(paths)
    pid = dns.running()
    if pid is not None:
        raise DriverError(f"dnsmasq already runs with {paths.conf} (pid {pid})")
    paths.log.touch()
    argv = [*daemon.in_netns(netns), "dnsmasq", f"--conf-file={paths.conf}"]
    return dns.start_forking(
        argv, timeout=timeout, install="apt-get install dnsmasq-base iproute2", see=paths.conf
    )


def reload(paths: Paths) -> int | None:
    """SIGHUP: dnsmasq re-reads the hosts and opts files. The pid, or None when not running."""
    return _daemon(paths).signal(signal.SIGHUP)


def stop(paths: Paths) -> int | None:
    """Stop our dnsmasq; its pid, or None when it was not running."""
    return _daemon(paths).stop()


# The log ----------------------------------------------------------------------------------------
#
# Nothing of ours decides anything from dnsmasq's log: it holds strings the clients choose.
# `parse_ack` is for tests and reports that show what dnsmasq answered.

#: `... DHCPACK(srv0) 10.1.255.254 52:54:00:12:34:56 compute-0-0-0`
ACK_RE = re.compile(
    r"dnsmasq-dhcp\[\d+\]: (?:\d+ )?DHCPACK\(([^)]+)\) ([0-9.]+) "
    r"((?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2})(?: |$)"
)


def parse_ack(line: str) -> tuple[str, str] | None:
    """(mac, ip) of a DHCPACK line (for display and tests only: the log is not trusted)."""
    m = ACK_RE.search(line)
    return (m.group(3).lower(), m.group(2)) if m else None
