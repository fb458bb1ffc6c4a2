"""Provisioning in the database: what a booting node is told, its install report, insert-ethers.

- `BootAnswers` is the boot server's provider (`flightdeck.pxe.bootserver.Provider`): each
  answer is one short read transaction, so `rocks set host boot` takes effect at the next boot
  without any sync.
- `complete` is the install report: only the node's own address may report for it (the peer
  address must be the IP the database gives that MAC), and a good report sets its boot action
  to `os`, so its next boot is from disk. A refusal is an error the boot server logs.
- `discover` is insert-ethers' transaction for one unknown MAC: the next name of the appliance
  in the rack, the next free private IP (from the top, as Rocks; never one of the discovery
  pool's), the host, its interface and boot action `install`. `forget` removes a host again.
- `Audit` is insert-ethers' log of what it did (`<state>/dhcp/insert-ethers.log`, mode 0600):
  one line per host added or removed and per record refused, every field escaped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.db.engine import Database
from flightdeck.db.models import BootAction, Host, HostBoot, Interface, Network
from flightdeck.errors import DriverError, NotFound, PermissionDenied, UserError
from flightdeck.logsafe import escape
from flightdeck.planner.addresses import next_free_ip
from flightdeck.planner.macs import normalize_mac
from flightdeck.planner.names import validate_host_name
from flightdeck.pxe import ipxe
from flightdeck.services.base import reading, writing
from flightdeck.services.bootactions import is_url
from flightdeck.services.dhcp import PRIVATE, SyncResult, sync_dhcp
from flightdeck.services.inventory import find_appliance, ipv4_network, next_rank, used_ips


def _node(s: Session, mac: str) -> tuple[Host, Interface]:
    row = s.execute(
        select(Host, Interface)
        .join(Interface, Interface.host_id == Host.id)
        .where(Interface.mac == mac)
    ).first()
    if row is None:
        raise NotFound(f"MAC {mac} is not in the database: run insert-ethers to add it")
    return row[0], row[1]


def _boot(s: Session, host: Host) -> str:
    row = s.get(HostBoot, host.id)
    return row.action if row is not None else "os"


def _file_url(base: str, action: BootAction, value: str, which: str) -> str:
    return value if is_url(value) else f"{base}/files/{action.id}/{which}"


class BootAnswers:
    """The boot server's answers, from the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def script(self, mac: str, base_url: str) -> str:
        with reading(self.db) as s:
            try:
                host, iface = _node(s, mac)
            except NotFound as exc:
                return ipxe.message_script(mac, exc.message)
            if iface.vlan:
                return ipxe.message_script(mac, f"{host.name} is on VLAN {iface.vlan}: not ours")
            boot = _boot(s, host)
            if boot == "os":
                return ipxe.local_script(host.name, mac)
            name = host.install_action if boot == "install" else host.run_action
            action = s.scalar(select(BootAction).where(BootAction.name == name))
            if action is None or not action.kernel:
                return ipxe.message_script(
                    mac,
                    f"boot action '{name}' of {host.name} has no kernel: rocks set bootaction "
                    f"action='{name}' kernel=<path>",
                )
            done = f"{base_url}/install/{mac}"
            return ipxe.install_script(
                ipxe.InstallBoot(
                    host=host.name,
                    mac=mac,
                    action=name,
                    kernel_url=_file_url(base_url, action, action.kernel, ipxe.KERNEL_FILE),
                    initrd_url=_file_url(base_url, action, action.ramdisk, ipxe.INITRD_FILE)
                    if action.ramdisk
                    else None,
                    args=action.args or "",
                    install_url=done,
                    report_url=f"{done}/done",
                )
            )

    def instructions(self, mac: str, base_url: str) -> str:
        """Key=value lines the installer reads (a kickstart or preseed would go here)."""
        with reading(self.db) as s:
            host, iface = _node(s, mac)
            net = s.get(Network, iface.network_id) if iface.network_id else None
            lines = {
                "host": host.name,
                "mac": mac,
                "ip": iface.ip or "",
                "netmask": net.netmask if net else "",
                "domain": (net.dnszone or "") if net else "",
                "action": host.install_action,
                "report": f"{base_url}/install/{mac}/done",
            }
        for key, value in lines.items():
            if not value.isprintable():  # a newline would be another key=value line
                raise DriverError(f"{key} {value!r} of {host.name} cannot go into its instructions")
        return "".join(f"{k}={v}\n" for k, v in lines.items())

    def check_report(self, mac: str, peer: str) -> None:
        """Refuse an install report from anyone but the node, before its body is read."""
        with reading(self.db) as s:
            _check_sender(*_node(s, normalize_mac(mac)), mac=normalize_mac(mac), peer=peer)

    def complete(self, mac: str, peer: str) -> str:
        return complete(self.db, mac, peer)

    # A virtual frontend's image install (flightdeck.services.vfrontend).

    def frontend_image(self, sha256: str) -> Path:
        from flightdeck.services.frontend_image import image_file

        return image_file(self.db, sha256)

    def frontend_identity(self, mac: str, peer: str) -> bytes:
        from flightdeck.services.frontend_image import identity_for

        return identity_for(self.db, normalize_mac(mac), peer)

    def check_frontend_report(self, mac: str, peer: str) -> None:
        from flightdeck.services.frontend_image import reporter

        reporter(self.db, normalize_mac(mac), peer)

    def frontend_done(self, mac: str, peer: str) -> str:
        from flightdeck.services.frontend_image import complete
        from flightdeck.services.lifecycle import restart_when_off

        return complete(
            self.db,
            normalize_mac(mac),
            peer,
            restart=lambda name: restart_when_off(self.db, name),
        )

    def frontend_failed(self, mac: str, peer: str) -> str:
        from flightdeck.services.frontend_image import reporter

        return reporter(self.db, normalize_mac(mac), peer)

    def boot_file(self, action_id: int, which: str) -> Path:
        with reading(self.db) as s:
            action = s.get(BootAction, action_id)
            if action is None:
                raise NotFound(f"no boot action #{action_id}")
            value = action.kernel if which == ipxe.KERNEL_FILE else action.ramdisk
        if not value or is_url(value):
            raise NotFound(f"boot action {action.name!r} has no local {which}")
        return Path(value)


def _check_sender(host: Host, iface: Interface, *, mac: str, peer: str) -> None:
    if not iface.ip or iface.ip != peer:
        raise PermissionDenied(
            f"install report for {host.name} ({mac}) came from {peer}, not from its "
            f"address {iface.ip or '(none)'}"
        )


def complete(db: Database, mac: str, peer: str) -> str:
    """A node reports its install done: boot action `os`. Only from its own address."""
    mac = normalize_mac(mac)
    with writing(db) as s:
        host, iface = _node(s, mac)
        _check_sender(host, iface, mac=mac, peer=peer)
        row = s.get(HostBoot, host.id)
        if row is None:
            s.add(HostBoot(host_id=host.id, action="os"))
        else:
            row.action = "os"
        return host.name


# insert-ethers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Discovered:
    name: str
    mac: str
    ip: str
    appliance: str
    rack: int
    rank: int


def discover(
    db: Database,
    mac: str,
    appliance: str,
    rack: int = 0,
    rank: int | None = None,
    exclude: Sequence[str] = (),
) -> Discovered | None:
    """Add the host of an unknown MAC (one transaction); None when the MAC is known already.

    Its IP is the highest free one of the private network, never one of `exclude` (the
    discovery pool, whose addresses dnsmasq lends).
    """
    mac = normalize_mac(mac)
    if rack < 0 or (rank is not None and rank < 0):
        raise UserError("rack and rank must be 0 or more")
    with writing(db) as s:
        if s.scalar(select(Interface.id).where(Interface.mac == mac)) is not None:
            return None
        app = find_appliance(s, appliance)
        net = s.scalar(select(Network).where(Network.name == PRIVATE))
        if net is None:
            raise NotFound("there is no private network: run rocks init frontend first")
        rank = next_rank(s, app.id, rack) if rank is None else rank
        while True:
            name = validate_host_name(f"{app.name}-{rack}-{rank}")
            if s.scalar(select(Host.id).where(Host.name == name)) is None:
                break
            rank += 1
        ip = next_free_ip(ipv4_network(net), used_ips(s, net), exclude=exclude)
        host = Host(name=name, appliance_id=app.id, rack=rack, rank=rank, cpus=1, os="linux")
        s.add(host)
        s.flush()
        s.add_all(
            [
                Interface(
                    host_id=host.id, device="eth0", mac=mac, ip=ip, network_id=net.id, name=name
                ),
                HostBoot(host_id=host.id, action="install"),
            ]
        )
        return Discovered(name, mac, ip, app.membership, rack, rank)


def membership(db: Database, appliance: str) -> str:
    """The membership an appliance name or membership names (NotFound lists the valid ones)."""
    with reading(db) as s:
        return find_appliance(s, appliance).membership


def known_macs(db: Database) -> set[str]:
    with reading(db) as s:
        return {m for m in s.scalars(select(Interface.mac)) if m}


@dataclass(frozen=True)
class Forgotten:
    name: str
    #: (MAC, IP) of each interface it had, for the audit.
    interfaces: list[tuple[str, str]]
    sync: SyncResult


def forget(db: Database, name: str) -> Forgotten:
    """`insert-ethers --remove`: remove the host, then give dnsmasq the shorter list."""
    from flightdeck.db.hostexpr import resolve_host
    from flightdeck.services.inventory import remove_hosts

    with reading(db) as s:
        host = resolve_host(s, name)
        ifaces = [
            (mac or "-", ip or "-")
            for mac, ip in s.execute(
                select(Interface.mac, Interface.ip).where(Interface.host_id == host.id)
            ).tuples()
        ]
    removed = remove_hosts(db, [host.name])
    return Forgotten(removed[0], ifaces, sync_dhcp(db))


def insert(
    db: Database,
    mac: str,
    appliance: str,
    rack: int,
    rank: int | None,
    on_sync: Callable[[SyncResult], None] | None = None,
    exclude: Sequence[str] = (),
) -> Discovered | None:
    """Discover one MAC, then reload dnsmasq so the node's next DHCP request gets its lease."""
    found = discover(db, mac, appliance, rack, rank, exclude)
    if found is not None:
        result = sync_dhcp(db)
        if on_sync is not None:
            on_sync(result)
    return found


class Audit:
    """insert-ethers' own log: what it added, removed and refused, one escaped line each.

    Appended to (never rewritten), created 0600 in the 0700 DHCP directory: the administrator
    reads it (`<state>/dhcp/insert-ethers.log`), nobody else.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, event: str, **fields: object) -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        words = " ".join(f"{k.replace('_', '-')}={escape(v, 128)}" for k, v in fields.items())
        line = f"{when} insert-ethers[{os.getpid()}] uid={os.getuid()} {event} {words}".rstrip()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
