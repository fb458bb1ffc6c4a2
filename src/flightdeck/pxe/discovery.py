"""How insert-ethers learns of new machines: dnsmasq's own decisions, over a root-only socket.

insert-ethers used to search dnsmasq's log for the line it writes for an unknown MAC. That log
also holds strings the clients choose (DHCP user classes, TFTP file names from any local user),
so a client could write a line that named a MAC which never asked. Now the channel carries only
what dnsmasq decided, as structured arguments no client can extend:

1. dnsmasq's static range still answers known MACs only; a second, small range (the *discovery
   pool*, `tag:!known`, 2-minute leases) lends unknown machines an address, tags the answer
   `discover`, and gives iPXE `discover.ipxe`, which waits for the machine to be named.
2. For each lease dnsmasq runs its `--dhcp-script` (`hook`, as root, arguments: action, MAC, IP,
   host name; environment: the interface, the tags, any relay). The hook keeps only a lease of
   the pool handed out on our interface, not relayed, to an Ethernet MAC of exactly six octets
   (dnsmasq prefixes other hardware types, `06-...`, and prints a 7-octet address as 7 octets:
   both are refused, never read as their prefix), and sends one fixed-format record.
3. The record goes to a Unix datagram socket that insert-ethers binds mode 0600 in the state
   directory (only root can send) and that reports each sender's credentials (`SO_PASSCRED`):
   records from anyone but root are refused, and every record is parsed again as strictly.

Nothing listening means nothing is recorded: a machine that asks while insert-ethers is not
running is seen at its next request (the hook also runs on renewals, `--script-on-renewal`).

Standard library only: the hook is a fresh Python process for each lease event.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flightdeck.logsafe import escape

#: The tag dnsmasq's discovery range sets (dnsmasq.conf: `dhcp-range=tag:!known,set:discover`).
TAG = "discover"
#: dnsmasq's shortest lease (seconds); the pool's addresses are only lent.
POOL_LEASE = 120
#: Addresses in the pool: machines discovered at once (each holds one for POOL_LEASE).
POOL_SIZE = 16
#: Record format version (the first word of every record).
VERSION = "fd1"
#: Longest record we accept (bytes); a valid one is under 80.
MAX_RECORD = 256

_MAC_RE = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")
_IFACE_RE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
_UCRED = struct.Struct("iII")  # struct ucred: pid, uid, gid


class Refused(ValueError):
    """A lease event or record that is not a discovery we believe; the message says why."""


@dataclass(frozen=True)
class Event:
    """dnsmasq lent `ip` of the discovery pool to `mac`, which asked on `interface`."""

    mac: str
    ip: str
    interface: str

    def record(self) -> bytes:
        return f"{VERSION} {self.mac} {self.ip} {self.interface}".encode("ascii")


@dataclass(frozen=True)
class Pool:
    """The discovery pool: `first`..`last` (inclusive) of the private network."""

    first: str
    last: str

    def __contains__(self, ip: object) -> bool:
        try:
            value = ipaddress.IPv4Address(str(ip))
        except ValueError:
            return False
        return ipaddress.IPv4Address(self.first) <= value <= ipaddress.IPv4Address(self.last)

    def addresses(self) -> list[str]:
        lo, hi = int(ipaddress.IPv4Address(self.first)), int(ipaddress.IPv4Address(self.last))
        return [str(ipaddress.IPv4Address(v)) for v in range(lo, hi + 1)]


def mac(text: str) -> str:
    """An Ethernet MAC exactly as dnsmasq prints one: six lower-case hex octets."""
    if not _MAC_RE.fullmatch(text):
        raise Refused(f"{escape(text, 64)!s} is not a 6-octet Ethernet MAC")
    return text


def _ipv4(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise Refused(f"{escape(text, 64)} is not an IPv4 address") from None


def _iface(text: str) -> str:
    if not _IFACE_RE.fullmatch(text):
        raise Refused(f"{escape(text, 64)} is not an interface name")
    return text


def event_from_hook(
    argv: Sequence[str], env: Mapping[str, str], interface: str, pool: Pool
) -> Event | None:
    """The discovery in one `--dhcp-script` call, None when it is none, Refused when suspect.

    None (quietly): other actions (`del`, `tftp`, `init`...), and leases without our tag (known
    hosts, and every lease dnsmasq re-announces at start, which carries no tags).
    """
    if len(argv) < 3 or argv[0] not in ("add", "old"):
        return None
    if TAG not in env.get("DNSMASQ_TAGS", "").split():
        return None
    if "DNSMASQ_RELAY_ADDRESS" in env:
        raise Refused(f"lease for {escape(argv[1], 64)} came through a relay")
    where = env.get("DNSMASQ_INTERFACE", "")
    if where != interface:
        raise Refused(f"lease for {escape(argv[1], 64)} on {escape(where, 32)!r}, not {interface}")
    found = Event(mac(argv[1]), _ipv4(argv[2]), interface)
    if found.ip not in pool:
        raise Refused(
            f"lease {found.ip} of {found.mac} is outside the pool {pool.first}-{pool.last}"
        )
    return found


def parse_record(data: bytes) -> Event:
    """A record as `Event.record` writes it, checked field by field; anything else is Refused."""
    if len(data) > MAX_RECORD:
        raise Refused(f"record of {len(data)} bytes")
    try:
        words = data.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise Refused(f"record {escape(data.decode(errors='replace'), 80)} is not ASCII") from None
    if len(words) != 4 or words[0] != VERSION:
        raise Refused(f"record {escape(data.decode('ascii'), 80)} is not {VERSION} MAC IP IFACE")
    return Event(mac(words[1]), _ipv4(words[2]), _iface(words[3]))


# The hook (dnsmasq's --dhcp-script) -------------------------------------------------------------


def render_hook(python: str, sock: Path, interface: str, pool: Pool) -> str:
    """The hook file dnsmasq runs: a shell script that hands dnsmasq's arguments to `hook_main`."""
    from shlex import quote

    args = " ".join(quote(str(a)) for a in (sock, _iface(interface), pool.first, pool.last))
    return (
        "#!/bin/sh\n"
        "# Flightdeck: dnsmasq's dhcp-script (rocks start service dhcp writes it). It passes\n"
        "# dnsmasq's own lease decisions for the discovery pool to insert-ethers.\n"
        "# Leases dnsmasq did not tag as discoveries (every known host's) end here, without\n"
        "# starting Python (~80 ms each): only a filter, the checks are hook_main's.\n"
        f'case " $DNSMASQ_TAGS " in *" {TAG} "*) ;; *) exit 0 ;; esac\n'
        f'exec {quote(python)} -I -m flightdeck.pxe.discovery {args} "$@"\n'
    )


def send(sock: Path, event: Event) -> bool:
    """Send one record; False when nobody listens (insert-ethers is not running)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(event.record(), str(sock))
        except (FileNotFoundError, ConnectionRefusedError):
            return False
    return True


def hook_main(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """`python -m flightdeck.pxe.discovery SOCKET IFACE FIRST LAST <dnsmasq's arguments>`.

    A refusal is one escaped line on standard error, which dnsmasq copies into its log. The
    exit status is 0 unless the hook itself is misconfigured (dnsmasq only logs it).
    """
    if len(argv) < 4:
        sys.stderr.write("flightdeck discovery hook: usage: SOCKET IFACE FIRST LAST ACTION ...\n")
        return 2
    sock, interface, pool = Path(argv[0]), argv[1], Pool(argv[2], argv[3])
    try:
        found = event_from_hook(argv[4:], env, interface, pool)
    except Refused as exc:
        sys.stderr.write(f"flightdeck discovery hook: refused: {exc}\n")
        return 0
    if found is not None:
        send(sock, found)
    return 0


# The listening end (insert-ethers) --------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """One datagram: the event, or why it was refused, and who sent it."""

    event: Event | None
    refused: str | None
    pid: int
    uid: int


class Listener:
    """The socket insert-ethers reads: bound 0600 by root, one listener at a time (a lock).

    A second insert-ethers would take half the discoveries; it is refused instead (`Busy`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise Busy(path) from None
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            path.unlink(missing_ok=True)  # a stale socket of a listener that died
            old = os.umask(0o177)
            try:
                self._sock.bind(str(path))
            finally:
                os.umask(old)
            os.chmod(path, 0o600)
        except BaseException:
            self.close()
            raise

    def receive(self, timeout: float) -> Received | None:
        """The next datagram within `timeout` seconds, or None."""
        self._sock.settimeout(timeout)
        try:
            data, ancdata, _flags, _addr = self._sock.recvmsg(
                MAX_RECORD + 1, socket.CMSG_SPACE(_UCRED.size)
            )
        except TimeoutError:
            return None
        pid, uid = -1, -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, uid, _gid = _UCRED.unpack(payload[: _UCRED.size])
        if uid != 0:
            return Received(None, f"record from uid {uid} (pid {pid}), not root", pid, uid)
        try:
            return Received(parse_record(data), None, pid, uid)
        except Refused as exc:
            return Received(None, str(exc), pid, uid)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            os.close(self._lock)


class Busy(Exception):
    """Another listener holds the socket's lock."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"another insert-ethers already listens on {path}")
        self.path = path


if __name__ == "__main__":
    sys.exit(hook_main(sys.argv[1:], os.environ))
