"""insert-ethers against a real dnsmasq: only dnsmasq's own decisions name new hosts.

The private network of each test: a namespace holding the frontend's side (srv0, 10.1.1.1/16,
dnsmasq and the boot server started by `rocks start service dhcp netns=...`), joined by a veth
to a second namespace where the "nodes" are (cli0), whose packets `dhcp_client` builds byte
by byte. insert-ethers runs as the administrator runs it, a process of its own.

The attacks of issue 14: strings a client controls (a DHCP vendor class, host name or user
class; the name of a file asked for over TFTP by a local user) made to look like the line
dnsmasq logs for an unknown MAC, and a 7-octet hardware address that the old log pattern read
as its 6-octet prefix. None may add a host; a real unknown machine still must.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dhcp_client import run_in
from flightdeck.pxe.discovery import (
    Busy,
    Event,
    Listener,
    Pool,
    Refused,
    event_from_hook,
    parse_record,
    send,
)

#: The database is not what these tests are about: SQLite only.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

SERVER = "10.1.1.1"
KNOWN = "52:54:00:fd:00:01"  # vm-container-0-0 of the espresso site
NEW = "52:54:00:55:55:01"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Lan:
    server_ns: str
    client_ns: str
    home: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def set_mac(self, mac: str) -> None:
        """The client's NIC takes `mac`, as a different machine would have it."""
        _ip("-n", self.client_ns, "link", "set", "cli0", "down")
        _ip("-n", self.client_ns, "link", "set", "cli0", "address", mac)
        _ip("-n", self.client_ns, "link", "set", "cli0", "up")

    def dhcp(self, **req: Any) -> dict[str, Any]:
        return run_in(self.client_ns, [{"kind": "dhcp", "dev": "cli0", **req}])[0]

    def relay(self, mac: str) -> dict[str, Any]:
        """A local user on the frontend posing as a DHCP relay for the private network."""
        req = {"kind": "relay", "server": SERVER, "giaddr": SERVER, "chaddr": mac}
        return run_in(self.server_ns, [req])[0]

    def tftp(self, name: str) -> dict[str, Any]:
        """A TFTP read request from the frontend itself (any local user may send one)."""
        return run_in(self.server_ns, [{"kind": "tftp", "server": SERVER, "file": name}])[0]


@pytest.fixture
def lan(espresso: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lan]:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    token = secrets.token_hex(3)
    env = dict(os.environ, FLIGHTDECK_DB=espresso.url, FLIGHTDECK_HOME=str(tmp_path))
    it = Lan(f"fdd-{token}", f"fdc-{token}", tmp_path, env)
    _ip("netns", "add", it.server_ns)
    try:
        _ip("netns", "add", it.client_ns)
        _ip("-n", it.server_ns, "link", "add", "srv0", "type", "veth", "peer", "name", "cli0",
            "netns", it.client_ns)  # fmt: skip
        _ip("-n", it.server_ns, "link", "set", "lo", "up")
        _ip("-n", it.server_ns, "addr", "add", f"{SERVER}/16", "dev", "srv0")
        _ip("-n", it.server_ns, "link", "set", "srv0", "up")
        _ip("-n", it.client_ns, "link", "set", "lo", "up")
        _ip("-n", it.client_ns, "link", "set", "cli0", "up")
        espresso.ok("start", "service", "dhcp", f"netns={it.server_ns}", "interface=srv0",
                    "ra=no")  # fmt: skip
        yield it
    finally:
        for proc in it.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        subprocess.run([sys.executable, "-m", "flightdeck.cli.main", "stop", "service", "dhcp"],
                       env=it.env, capture_output=True, check=False)  # fmt: skip
        subprocess.run(["ip", "netns", "del", it.client_ns], check=False, capture_output=True)
        subprocess.run(["ip", "netns", "del", it.server_ns], check=False, capture_output=True)


class InsertEthers:
    """`insert-ethers appliance=Compute` as a process; its output lines as they come."""

    def __init__(self, lan: Lan, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flightdeck.cli.insert_ethers", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=lan.env,
        )  # fmt: skip
        lan.procs.append(self.proc)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout or ():
            self.lines.put(line.rstrip("\n"))

    def next(self, timeout: float = 30) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            err = (
                self.proc.stderr.read() if self.proc.poll() is not None and self.proc.stderr else ""
            )
            pytest.fail(f"insert-ethers said nothing within {timeout:g} s {err}")
        self.seen.append(line)
        return line

    def stop(self) -> tuple[int, list[str]]:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return self.proc.returncode, rest


def interfaces(rocks: Any) -> str:
    return str(rocks.ok("list", "host", "interface"))


@sqlite_only
def test_forged_log_lines_in_client_strings_add_no_host_and_a_real_node_is_added(
    espresso: Any, lan: Lan
) -> None:
    watcher = InsertEthers(lan, "appliance=Compute")
    assert "watching" in watcher.next()

    def fake(mac: str) -> str:
        return f"x\ndnsmasq-dhcp[1]: 1 DHCPDISCOVER(srv0) {mac} no address available"

    # A known node (it gets its lease) whose strings carry forged discoveries.
    lan.set_mac(KNOWN)
    got = lan.dhcp(
        chaddr=KNOWN, vendor=fake("52:54:00:66:66:01"), hostname=fake("52:54:00:66:66:02"),
        user_class=fake("52:54:00:66:66:03"),
    )  # fmt: skip
    assert got["ack"] is not None and got["ack"]["ip"] == "10.1.255.254", got
    # The same without the newline, for a log reader that keeps lines whole.
    lan.dhcp(chaddr=KNOWN, vendor=fake("52:54:00:66:66:04").replace("\n", " "))
    # A local user's TFTP request for a file named like dnsmasq's line.
    lan.tftp(fake("52:54:00:66:66:05"))
    lan.tftp(fake("52:54:00:66:66:06").replace("\n", " "))
    # A local user relaying a request for a MAC of its choosing.
    lan.relay("52:54:00:66:66:07")
    # A 7-octet hardware address: not an Ethernet MAC, never its 6-octet prefix.
    lan.set_mac("52:54:00:77:77:07")
    lan.dhcp(chaddr="52:54:00:77:77:01:07")
    # A non-Ethernet hardware type (6: IEEE 802) with a 6-octet address.
    lan.dhcp(chaddr="52:54:00:77:77:02", htype=6)

    # A real unknown machine PXE-boots: it is named, and its next request gets the lease.
    lan.set_mac(NEW)
    lan.dhcp(chaddr=NEW)
    found = watcher.next(60)
    assert found.startswith(f"discovered {NEW}: compute-0-0 "), (found, watcher.seen)
    ip = found.split()[3]
    retry = lan.dhcp(chaddr=NEW)
    assert retry["ack"] is not None and retry["ack"]["ip"] == ip, retry
    code, rest = watcher.stop()
    assert code == 0 and rest[-1] == "insert-ethers: 1 new host(s)", rest

    listed = interfaces(espresso)
    assert NEW in listed
    for forged in ("66:66:0", "77:77:0"):
        assert forged not in listed, listed
    assert sorted(espresso.ok("list", "host", "output-header=no", "output-col=host").split()) == [
        "compute-0-0:", "frontend-0-0:", "vm-container-0-0:", "vm-container-0-1:",
    ]  # fmt: skip


@sqlite_only
def test_a_machine_that_asked_before_insert_ethers_started_is_named_at_its_next_request(
    espresso: Any, lan: Lan
) -> None:
    """The lease was lent while nobody listened; its renewal (script-on-renewal) names it."""
    lan.set_mac(NEW)
    first = lan.dhcp(chaddr=NEW)
    assert first["ack"] is not None and first["ack"]["file"] == "discover.ipxe", first
    watcher = InsertEthers(lan, "appliance=VM Container", "rack=3")
    assert "watching" in watcher.next()
    second = InsertEthers(lan, "appliance=Compute")  # one insert-ethers at a time
    assert second.proc.wait(30) == 1
    assert "another insert-ethers already listens" in (
        second.proc.stderr.read() if second.proc.stderr else ""
    )
    lan.dhcp(chaddr=NEW)  # discover.ipxe asks again
    found = watcher.next(60)
    assert found.startswith(f"discovered {NEW}: vm-container-3-0 "), found
    assert re.search(r"; dnsmasq reloaded \(pid \d+\)$", found), found
    fixed = lan.dhcp(chaddr=NEW)
    assert fixed["ack"] is not None and fixed["ack"]["file"] == "boot.ipxe", fixed
    assert watcher.stop()[0] == 0
    log = (lan.home / "dhcp" / "insert-ethers.log").read_text().splitlines()
    assert len(log) == 1 and " add host=vm-container-3-0 mac=52:54:00:55:55:01 " in log[0]
    assert f"lease={first['ack']['ip']} interface=srv0" in log[0]


# The hook and the socket on their own ---------------------------------------------------------

POOL = Pool("10.1.0.1", "10.1.0.16")
ENV = {"DNSMASQ_TAGS": "discover ipxe srv0", "DNSMASQ_INTERFACE": "srv0"}


def test_the_hook_passes_only_a_pool_lease_of_an_ethernet_mac_on_our_interface() -> None:
    def ev(argv: list[str], **env: str) -> Event | None:
        return event_from_hook(argv, ENV | env, "srv0", POOL)

    assert ev(["add", NEW, "10.1.0.3"]) == Event(NEW, "10.1.0.3", "srv0")
    assert ev(["old", NEW, "10.1.0.3", "somename"]) == Event(NEW, "10.1.0.3", "srv0")
    assert ev(["del", NEW, "10.1.0.3"]) is None
    assert ev(["tftp", "1024", "10.1.0.3", "/x"]) is None
    assert ev(["add", KNOWN, "10.1.255.254"], DNSMASQ_TAGS="private known srv0") is None
    for argv, env, says in [
        (["add", "52:54:00:55:55:01:07", "10.1.0.3"], {}, "not a 6-octet Ethernet MAC"),
        (["add", "06-52:54:00:55:55:01", "10.1.0.3"], {}, "not a 6-octet Ethernet MAC"),
        (["add", "52:54:00:55:55:0", "10.1.0.3"], {}, "not a 6-octet Ethernet MAC"),
        (["add", "52-54-00-55-55-01", "10.1.0.3"], {}, "not a 6-octet Ethernet MAC"),
        (["add", "52:54:00:55:55:01\nx", "10.1.0.3"], {}, r"55:01\\x0ax is not a 6-octet"),
        (["add", NEW, "10.1.0.99"], {}, "outside the pool 10.1.0.1-10.1.0.16"),
        (["add", NEW, "10.1.0.3 "], {}, "is not an IPv4 address"),
        (["add", NEW, "10.1.0.3"], {"DNSMASQ_INTERFACE": "eth9"}, "on 'eth9', not srv0"),
        (["add", NEW, "10.1.0.3"], {"DNSMASQ_RELAY_ADDRESS": "10.1.1.1"}, "through a relay"),
    ]:
        with pytest.raises(Refused, match=says):
            ev(argv, **env)


def test_records_are_parsed_as_strictly_as_the_hook_writes_them() -> None:
    event = Event(NEW, "10.1.0.3", "srv0")
    assert parse_record(event.record()) == event
    for bad in (b"", b"fd1 " + NEW.encode(), b"fd0 52:54:00:55:55:01 10.1.0.3 srv0",
                b"fd1 52:54:00:55:55:01:07 10.1.0.3 srv0", b"fd1 52:54:00:55:55:01 10.1.0.3 a b",
                b"fd1 52:54:00:55:55:01 10.1.0.3 srv0\n", b"\xff" * 10, b"x" * 300):  # fmt: skip
        with pytest.raises(Refused):
            parse_record(bad)


def _send_as_nobody(path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        f"s.sendto(b'fd1 52:54:00:66:66:09 10.1.0.4 srv0', {str(path)!r})"
    )
    return subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-I", "-c", code],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_the_socket_is_root_only_and_a_record_from_another_user_is_refused() -> None:
    top = Path(tempfile.mkdtemp(prefix="fd-discovery-"))  # /tmp: reachable by another user
    path = top / "d" / "discover.sock"
    listener = Listener(path)
    try:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
        with pytest.raises(Busy):
            Listener(path)
        assert send(path, Event(NEW, "10.1.0.3", "srv0"))
        got = listener.receive(5)
        assert got is not None and got.event == Event(NEW, "10.1.0.3", "srv0") and got.uid == 0
        os.chmod(top, 0o755)
        assert "Permission denied" in _send_as_nobody(path).stderr  # the modes keep users out
        # Were the socket and its directory ever opened up, another user is still refused.
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o666)
        assert _send_as_nobody(path).returncode == 0
        got = listener.receive(5)
        assert got is not None and got.event is None and got.uid == 65534
        assert got.refused is not None and "not root" in got.refused
        assert listener.receive(0.1) is None
    finally:
        listener.close()
        shutil.rmtree(top)
    assert send(path, Event(NEW, "10.1.0.3", "srv0")) is False  # nobody listens: dropped
