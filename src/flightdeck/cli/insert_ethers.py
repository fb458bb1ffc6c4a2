"""`insert-ethers`: name the nodes that PXE boot on the private network, as they ask.

    insert-ethers [appliance=<membership>] [rack=<n>] [rank=<n>] [log=<dnsmasq log>]
    insert-ethers --remove <host>

It follows dnsmasq's DHCP log (`rocks start service dhcp` writes it with --log-dhcp). dnsmasq's
range is static, so a MAC the database does not know is answered with nothing and logged as
`DHCPDISCOVER(<if>) <mac> no address available`. For each such MAC insert-ethers adds a host
(the appliance's next name in the rack, `compute-0-0`, `compute-0-1`... or `vm-container-0-0`...,
the next free private IP, an interface, boot action install) in one transaction, then rewrites
the fixed leases and has dnsmasq reload them, so the node's next DHCP retry gets its address and
it installs. Each discovery is shown as it happens: a live table on a terminal, one line each
otherwise. Ctrl-C or SIGTERM stops it cleanly (the node being added, if any, is finished first).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from flightdeck.errors import FlightdeckError, PermissionDenied, UsageError

if TYPE_CHECKING:
    from flightdeck.services.dhcp import SyncResult

USAGE = (
    "usage: insert-ethers [appliance=<membership>] [rack=<n>] [rank=<n>] [log=<dnsmasq log>]\n"
    "       insert-ethers --remove <host>\n"
)
DEFAULT_APPLIANCE = "Compute"
POLL = 0.2


class _Stop(Exception):
    """SIGTERM arrived: leave the loop like Ctrl-C does."""


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
            if key not in ("appliance", "membership", "rack", "rank", "log"):
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


def follow(path: Path, handle: TextIO, stopping: list[bool]) -> Iterator[str]:
    """Lines appended to `path` after `handle`'s position (survives truncation and re-creation).

    The caller opens `handle` and seeks to the end *before* it says it is watching, so a line
    written right after that message is never skipped.
    """
    inode = os.fstat(handle.fileno()).st_ino
    partial = ""
    try:
        while not stopping:
            chunk = handle.readline()
            if chunk:
                partial += chunk
                if partial.endswith("\n"):
                    yield partial
                    partial = ""
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (st.st_ino != inode or st.st_size < handle.tell()):
                handle.close()
                handle = path.open("r", errors="replace")
                inode = os.fstat(handle.fileno()).st_ino
                continue
            time.sleep(POLL)
    finally:
        handle.close()


class Screen:
    """A live table on a terminal, or one line per discovery for logs and pipes."""

    HEADER = ("APPLIANCE", "NAME", "MAC", "IP")

    def __init__(self, out: TextIO, appliance: str, live: bool) -> None:
        self.out, self.appliance, self.live = out, appliance, live
        self.rows: list[tuple[str, str, str, str]] = []

    def start(self, source: Path) -> None:
        if self.live:
            self._draw(f"watching {source}")
        else:
            self._line(f"insert-ethers: adding {self.appliance} nodes; watching {source}")

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
    from flightdeck.pxe.dnsmasq import parse_discover
    from flightdeck.services import dhcp, provisioning

    appliance = params.get("appliance", DEFAULT_APPLIANCE)
    rack = _int(params, "rack") or 0
    rank = _int(params, "rank")
    db = open_database()
    try:
        membership = provisioning.membership(db, appliance)
        if "log" in params:
            log = Path(params["log"])
        else:
            st = dhcp.status()
            if st.dnsmasq is None:
                raise FlightdeckError(
                    "dnsmasq is not running, so no DHCP request can be seen: "
                    "rocks start service dhcp"
                )
            log = st.log
        if not log.is_file():
            raise FlightdeckError(f"no dnsmasq log at {log}: rocks start service dhcp")
        known = provisioning.known_macs(db)
        screen = Screen(out, membership, out.isatty())
        stopping: list[bool] = []

        def _term(_sig: int, _frame: object) -> None:
            stopping.append(True)

        previous = signal.signal(signal.SIGTERM, _term)
        handle = log.open("r", errors="replace")
        handle.seek(0, os.SEEK_END)
        screen.start(log)
        added = 0
        try:
            for line in follow(log, handle, stopping):
                seen = parse_discover(line)
                if seen is None or seen.mac in known:
                    continue
                known.add(seen.mac)
                synced: list[dhcp.SyncResult] = []
                found = provisioning.insert(db, seen.mac, appliance, rack, rank, synced.append)
                if found is None:
                    continue  # added meanwhile by someone else
                added += 1
                rank = found.rank + 1 if rank is not None else None
                note = sync_note(synced[0]) if synced else "dnsmasq not told"
                screen.add(
                    (found.appliance, found.name, found.mac, found.ip),
                    f"{found.name} gets {found.ip}; {note}",
                )
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
        out.write(f"insert-ethers: {added} new host(s)\n")
        out.flush()
        return 0
    finally:
        db.dispose()


def remove(host: str, out: TextIO) -> int:
    from flightdeck.db.engine import open_database
    from flightdeck.services import provisioning

    db = open_database()
    try:
        name, sync = provisioning.forget(db, host)
    finally:
        db.dispose()
    out.write(f"removed {name}; {sync.hosts} fixed lease(s) left, {sync_note(sync)}\n")
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
