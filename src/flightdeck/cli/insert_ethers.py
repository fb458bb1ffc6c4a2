"""`insert-ethers`: name the nodes that PXE boot on the private network, as they ask.

    insert-ethers [appliance=<membership>] [rack=<n>] [rank=<n>]
    insert-ethers --remove <host>

It hears of new machines from dnsmasq itself, never from its log (which holds strings the
clients choose): dnsmasq lends an unknown MAC an address of its small discovery pool and runs
its `--dhcp-script`, which passes the lease (MAC, IP, interface, checked strictly) to a Unix
socket only root can write to and insert-ethers listens on (`flightdeck.pxe.discovery`). For
each new MAC it adds a host (the appliance's next name in the rack, `compute-0-0`,
`compute-0-1`... or `vm-container-0-0`..., the next free private IP, an interface, boot action
install) in one transaction, then rewrites the fixed leases and has dnsmasq reload them, so the
node's next DHCP request (its `discover.ipxe` asks every few seconds) gets its address and it
installs. Each discovery is shown as it happens: a live table on a terminal, one line each
otherwise. Ctrl-C or SIGTERM stops it cleanly (the node being added, if any, is finished first).

Every host it adds or removes, and every record it refuses, is a line of its audit log,
`<state dir>/dhcp/insert-ethers.log` (mode 0600, for the administrator).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flightdeck.errors import Conflict, FlightdeckError, PermissionDenied, UsageError
from flightdeck.logsafe import escape

if TYPE_CHECKING:
    from flightdeck.services.dhcp import SyncResult

USAGE = (
    "usage: insert-ethers [appliance=<membership>] [rack=<n>] [rank=<n>]\n"
    "       insert-ethers --remove <host>\n"
)
DEFAULT_APPLIANCE = "Compute"
#: Seconds between checks for Ctrl-C / SIGTERM while no discovery arrives.
POLL = 0.2


def parse(argv: Sequence[str]) -> dict[str, str]:
    """`name=value` words (the rocks grammar), plus `--remove <host>` / `--remove=<host>`."""
    out: dict[str, str] = {}
    words = list(argv)
    while words:
        word = words.pop(0)
        if word in ("-h", "--help", "help"):
            out["help"] = "yes"
        elif word == "--remove":
            if not words:
                raise UsageError("--remove needs the name of a host")
            out["remove"] = words.pop(0)
        elif word.startswith("--remove="):
            out["remove"] = word.split("=", 1)[1]
        elif "=" in word:  # name=value, or the original's --membership=... style
            key, value = word.split("=", 1)
            key = key.lstrip("-").lower()
            if key == "log":
                raise UsageError(
                    "log= is gone: insert-ethers hears dnsmasq's discovery hook, not its log "
                    "(rocks start service dhcp sets it up)"
                )
            if key not in ("appliance", "membership", "rack", "rank"):
                raise UsageError(f"unknown parameter {key!r}: {USAGE.splitlines()[0]}")
            out["appliance" if key == "membership" else key] = value
        else:
            raise UsageError(f"unexpected argument {word!r}: {USAGE.splitlines()[0]}")
    return out


def _int(params: dict[str, str], key: str) -> int | None:
    if key not in params:
        return None
    text = params[key].strip()
    if not text.isdigit():
        raise UsageError(f"{key}={params[key]!r} must be a whole number, 0 or more")
    return int(text)


class Screen:
    """A live table on a terminal, or one line per discovery for logs and pipes."""

    HEADER = ("APPLIANCE", "NAME", "MAC", "IP")

    def __init__(self, out: TextIO, appliance: str, live: bool) -> None:
        self.out, self.appliance, self.live = out, appliance, live
        self.rows: list[tuple[str, str, str, str]] = []

    def start(self, source: Path) -> None:
        if self.live:
            self._draw(f"watching dnsmasq's discoveries ({source})")
        else:
            self._line(
                f"insert-ethers: adding {self.appliance} nodes; watching dnsmasq's discoveries "
                f"({source})"
            )

    def note(self, text: str) -> None:
        if self.live:
            self._draw(text)
        else:
            self._line(text)

    def add(self, row: tuple[str, str, str, str], note: str) -> None:
        self.rows.append(row)
        if self.live:
            self._draw(note)
        else:
            self._line(f"discovered {row[2]}: {row[1]} {row[3]} ({row[0]}); {note}")

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _draw(self, note: str) -> None:
        rows = [self.HEADER, *self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        text = ["\x1b[H\x1b[2J", f"Inserted appliances -- {self.appliance} (Ctrl-C to quit)", ""]
        text += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        text += ["", note]
        self.out.write("\n".join(text) + "\n")
        self.out.flush()


def sync_note(sync: SyncResult) -> str:
    """What became of dnsmasq after the leases were rewritten: only "reloaded" when it was."""
    if sync.reloaded:
        return f"dnsmasq reloaded (pid {sync.reloaded})"
    if not sync.changed:
        return "dnsmasq's leases were already up to date"
    return "dnsmasq is not running (rocks start service dhcp starts it with these leases)"


def watch(params: dict[str, str], out: TextIO) -> int:
    from flightdeck.db.engine import open_database
    from flightdeck.pxe import discovery
    from flightdeck.services import dhcp, provisioning

    appliance = params.get("appliance", DEFAULT_APPLIANCE)
    rack = _int(params, "rack") or 0
    rank = _int(params, "rank")
    db = open_database()
    try:
        membership = provisioning.membership(db, appliance)
        st = dhcp.status()
        if st.dnsmasq is None:
            raise FlightdeckError(
                "dnsmasq is not running, so no DHCP request can be seen: rocks start service dhcp"
            )
        pool = dhcp.running_pool()
        if pool is None:
            raise FlightdeckError(
                "the running DHCP service has no discovery pool (started by an older "
                "Flightdeck): rocks stop service dhcp; rocks start service dhcp"
            )
        audit = provisioning.Audit(dhcp.insert_ethers_log())
        try:
            listener = discovery.Listener(dhcp.discovery_socket())
        except discovery.Busy as exc:
            raise Conflict(f"{exc}: stop it first (one insert-ethers at a time)") from None
        known = provisioning.known_macs(db)
        screen = Screen(out, membership, out.isatty())
        stopping: list[bool] = []

        def _term(_sig: int, _frame: object) -> None:
            stopping.append(True)

        previous = signal.signal(signal.SIGTERM, _term)
        screen.start(listener.path)
        added = 0
        try:
            while not stopping:
                got = listener.receive(POLL)
                if got is None:
                    continue
                seen = got.event
                if seen is None or (st.interface and seen.interface != st.interface):
                    why = got.refused or f"interface {seen.interface if seen else '?'}"
                    audit.write("refused", why=why, sender_pid=got.pid, sender_uid=got.uid)
                    screen.note(f"refused a discovery record: {escape(why)}")
                    continue
                if seen.mac in known:
                    continue
                known.add(seen.mac)
                synced: list[dhcp.SyncResult] = []
                found = provisioning.insert(
                    db, seen.mac, appliance, rack, rank, synced.append, pool.addresses()
                )
                if found is None:
                    continue  # added meanwhile by someone else
                added += 1
                rank = found.rank + 1 if rank is not None else None
                audit.write(
                    "add", host=found.name, mac=found.mac, ip=found.ip,
                    appliance=found.appliance, rack=found.rack, rank=found.rank,
                    lease=seen.ip, interface=seen.interface,
                )  # fmt: skip
                note = sync_note(synced[0]) if synced else "dnsmasq not told"
                screen.add(
                    (found.appliance, found.name, found.mac, found.ip),
                    f"{found.name} gets {found.ip}; {note}",
                )
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            listener.close()
        out.write(f"insert-ethers: {added} new host(s)\n")
        out.flush()
        return 0
    finally:
        db.dispose()


def remove(host: str, out: TextIO) -> int:
    from flightdeck.db.engine import open_database
    from flightdeck.services import dhcp, provisioning

    db = open_database()
    try:
        gone = provisioning.forget(db, host)
    finally:
        db.dispose()
    audit = provisioning.Audit(dhcp.insert_ethers_log())
    for mac, ip in gone.interfaces or [("-", "-")]:
        audit.write("remove", host=gone.name, mac=mac, ip=ip)
    sync = gone.sync
    out.write(f"removed {gone.name}; {sync.hosts} fixed lease(s) left, {sync_note(sync)}\n")
    return 0


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    try:
        params = parse(sys.argv[1:] if argv is None else argv)
        if "help" in params:
            out.write(USAGE)
            return 0
        if os.geteuid() != 0:
            raise PermissionDenied("insert-ethers changes the cluster database: run it as root")
        if "remove" in params:
            return remove(params["remove"], out)
        return watch(params, out)
    except FlightdeckError as exc:
        sys.stderr.write(f"error - {exc.message}\n")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
