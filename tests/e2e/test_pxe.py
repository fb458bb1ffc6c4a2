"""PXE installs from the frontend's dnsmasq, on the real libvirtd (TCG), end to end.

The private network: a network namespace of this test holds the frontend's private address
(10.1.1.1/16, and a ULA so dnsmasq can send the IPv6 router advertisement that spares iPXE
~13 s), dnsmasq and the boot server (`rocks start service dhcp netns=...`); a veth joins it to
the lab's address-less private bridge in the root namespace, where the VMs' NICs are. Nothing
else is touched: the namespace goes with the test, the bridge with the lab fixture.

Names carry the test's token, or a random rack number where the Rocks name scheme decides
them (compute-<rack>-0-0 on vm-container-<rack>-0), so another session's VMs on the same
libvirtd are never in the way.
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_common import on_libvirtd
from flightdeck.pxe.dnsmasq import parse_ack
from flightdeck.pxe.image import (
    DEFAULT_CACHE,
    MARKER_BOOTED,
    MARKER_REPORTED,
    MARKER_STAMPED,
    Image,
    stamp_bytes,
)
from flightdeck.services import dhcp
from flightdeck.virt.console import read_serial, wait_for_state
from flightdeck.virt.designer import DiskSpec, NicSpec, VMSpec, design

SERVER_IP = "10.1.1.1"
INSTALL_TIMEOUT = float(os.environ.get("FD_PXE_TIMEOUT", "240"))




def _ours(console: str) -> str:
    """The installer's own lines of a console (not the kernel's), and the last few."""
    lines = console.splitlines()
    return "\n".join([ln for ln in lines if "FLIGHTDECK" in ln] + ["..."] + lines[-15:])


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def rows(rocks: Any, *argv: str) -> list[dict[str, Any]]:
    out = rocks.ok(*argv, "output-format=json")
    return list(json.loads(out)) if out.strip() else []


def boot_of(rocks: Any, host: str) -> str:
    return str(rows(rocks, "list", "host", "boot", host)[0]["action"])


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll `check` until it returns something true; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.5)


@dataclass
class Net:
    """The private network of one test: its namespace and everything the service logs."""

    netns: str
    rack: int
    home: Path

    @property
    def container(self) -> str:
        return f"vm-container-{self.rack}-0"

    def dnsmasq_log(self) -> str:
        return dhcp.paths().log.read_text(errors="replace")

    def boot_log(self) -> str:
        return dhcp.bootserver_log().read_text(errors="replace")

    def acks(self, mac: str) -> list[str]:
        """The IPs dnsmasq acknowledged to `mac`, in order."""
        out = []
        for line in self.dnsmasq_log().splitlines():
            got = parse_ack(line)
            if got and got[0] == mac:
                out.append(got[1])
        return out

    def explain(self, console: str) -> str:
        """What the guest, dnsmasq and the boot server said (for a failed assertion)."""
        return (
            f"console:\n{_ours(console)}\n--- dnsmasq log:\n{self.dnsmasq_log()[-4000:]}\n"
            f"--- boot server log:\n{self.boot_log()[-2000:]}"
        )

    def in_netns(self, code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ip", "netns", "exec", self.netns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def net(lab: Any, rocks: Any, installer_image: Image) -> Iterator[Net]:
    """The frontend's database and private network, with the DHCP service running in it."""
    token = lab.token
    ns, veth = f"fdp-{token}", f"fdp{token}v"
    rack = random.randint(100, 9999)
    it = Net(ns, rack, lab.tmp)
    _ip("netns", "add", ns)
    try:
        _ip("link", "add", veth, "type", "veth", "peer", "name", "srv0", "netns", ns)
        Path(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6").write_text("1\n")
        _ip("link", "set", veth, "master", lab.private_br)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{SERVER_IP}/16", "dev", "srv0")
        _ip("-n", ns, "addr", "add", "fdfa:fd::1/64", "dev", "srv0", "nodad")
        _ip("-n", ns, "link", "set", "srv0", "up")
        build_site(rocks, lab, it, installer_image)
        out = rocks.ok("start", "service", "dhcp", f"netns={ns}", "interface=srv0")
        assert f"on srv0 in netns {ns}" in out and f"http://{SERVER_IP}:8078" in out, out
        yield it
    finally:
        try:
            dhcp.stop_service()
        except Exception as exc:
            print(f"stopping the DHCP service: {exc}")
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def build_site(rocks: Any, lab: Any, it: Net, image: Image) -> None:
    """This machine as frontend, one VM container (this libvirtd), the installer image."""
    rocks.ok(
        "init", "frontend", "name=fdp-lab.example.org", "public-ip=192.0.2.10",
        "public-netmask=255.255.255.0", f"private-ip={SERVER_IP}", "private-netmask=255.255.0.0",
        f"public-iface={lab.public_br}", "private-iface=srv0",
    )  # fmt: skip
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(lab.tmp / "disks"))
    rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", lab.uri)
    rocks.ok("add", "host", it.container, "membership=VM Container", f"rack={it.rack}", "rank=0")
    rocks.ok(
        "add", "host", "interface", it.container, lab.private_br, "ip=auto", "subnet=private",
        f"mac=02:fd:{it.rack // 256:02x}:{it.rack % 256:02x}:00:01",
    )  # fmt: skip
    rocks.ok("set", "host", "attr", it.container, "libvirt_uri", lab.uri)
    rocks.ok("set", "host", "attr", it.container, "kvm_vlan_mode", "bridge")
    where = image.kernel.parent
    rocks.ok("create", "installer", "image", f"dir={where}", f"cache={DEFAULT_CACHE}")


def console(conn: Any, vm: str, until: bytes, timeout: float = INSTALL_TIMEOUT) -> str:
    return read_serial(conn, vm, until, timeout).decode(errors="replace")


@on_libvirtd
def test_guide_path_vm_pxe_installs_reports_and_then_boots_its_disk(
    rocks: Any, lab: Any, net: Net, timings: dict[str, float]
) -> None:
    # The guide, section 3.4: add a compute VM to a container and start it.
    out = rocks.ok("add", "host", "vm", net.container, "membership=Compute", "mem=256",
                   "disksize=1")  # fmt: skip
    vm = f"compute-{net.rack}-0-0"
    assert out.strip() == f"added VM {vm} on physical node {net.container}", out
    lab.domains.add(vm)
    iface = rows(rocks, "list", "host", "interface", vm)[0]
    mac, ip = iface["mac"], iface["ip"]
    assert boot_of(rocks, vm) == "install"
    assert f"{mac},{ip},{vm},infinite" in rocks.ok("report", "host", "dhcp")
    assert "dhcp: wrote" in rocks.ok("sync", "dhcp")  # the VM is new since the service started
    assert rocks.ok("sync", "dhcp").startswith("dhcp: no change")
    assert "dnsmasq is running" in rocks.ok("report", "service", "dhcp")

    # Bad input: a completion report from another address than the node's is refused, logged.
    url = f"http://{SERVER_IP}:8078/install/{mac}/done"
    r = net.in_netns(
        "import urllib.request, urllib.error\n"
        f"try:\n urllib.request.urlopen(urllib.request.Request({url!r}, data=b'host=x'))\n"
        "except urllib.error.HTTPError as e:\n print(e.code, e.read().decode().strip())\n"
    )
    assert r.stdout.startswith("403 install report for"), (r.stdout, r.stderr)
    assert f"came from {SERVER_IP}, not from its address {ip}" in r.stdout
    assert f"POST /install/{mac}/done 403 refused: install report for {vm}" in net.boot_log()
    assert boot_of(rocks, vm) == "install"

    # 1. Install: PXE -> iPXE script -> installer -> stamp -> report -> power off.
    conn = lab.hv(net.container)
    t0 = time.monotonic()
    assert rocks.ok("start", "host", "vm", vm) == f"started {vm} on {net.container}\n"
    text = console(conn, vm, MARKER_REPORTED.encode())
    timings["pxe install: start -> reported"] = time.monotonic() - t0
    for words in (
        f"{MARKER_BOOTED} host={vm}",
        MARKER_STAMPED,
        f"FLIGHTDECK-DHCP ip={ip} server={SERVER_IP}",
        f"FLIGHTDECK-INSTRUCTIONS host={vm} mac={mac} ip={ip}",
        f"{MARKER_REPORTED} ok {vm}",
    ):
        assert words in text, net.explain(text)
    assert wait_for_state(conn, vm, {"shutoff", "nostate"}, 60) == "shutoff"
    assert boot_of(rocks, vm) == "os"
    disk = lab.tmp / "disks" / f"{vm}.vda"
    assert stamp_bytes(vm) in b"".join(conn.read_volume(str(disk))), "no stamp on the disk"
    log = net.boot_log()
    assert f"GET /ipxe/{mac} 200 {vm} ({mac}): install with boot action 'install'" in log
    # The report carries the stamp as the installer read it back from the disk.
    done = f"POST /install/{mac}/done 200 install of {vm} complete host={vm}"
    assert f"{done} stamp=FLIGHTDECK-STAMP {vm}" in log
    assert net.acks(mac) and set(net.acks(mac)) == {ip}

    # 2. The next start boots the disk: the script served is the local-boot one, no installer.
    served = log.count(f"GET /ipxe/{mac} 200")
    assert rocks.ok("start", "host", "vm", vm) == f"started {vm} on {net.container}\n"
    wait_for(
        "the second iPXE script",
        lambda: net.boot_log().count(f"GET /ipxe/{mac} 200") > served,
        INSTALL_TIMEOUT,
    )
    assert net.boot_log().rstrip().endswith(f"{vm} ({mac}): boot action 'os' -> local disk")
    again = console(conn, vm, MARKER_BOOTED.encode(), 8.0)
    assert MARKER_BOOTED not in again, again
    assert set(net.acks(mac)) == {ip}
    rocks.ok("stop", "host", "vm", vm)


@on_libvirtd
def test_insert_ethers_names_an_unknown_vm_which_installs_and_keeps_its_address(
    rocks: Any, lab: Any, net: Net, timings: dict[str, float]
) -> None:
    env = dict(os.environ, FLIGHTDECK_DB=rocks.url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flightdeck.cli.insert_ethers", "appliance=VM Container",
         f"rack={net.rack}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(ln) for ln in proc.stdout or ()], daemon=True
    )
    reader.start()
    try:
        first = lines.get(timeout=30)
        assert first.startswith("insert-ethers: adding VM Container nodes; watching"), first

        # An unknown machine PXE-boots on the private network.
        name = f"fdp-{lab.token}-new"
        mac = f"52:54:00:{random.randint(0, 255):02x}:{random.randint(0, 255):02x}:fd"
        path = str(lab.tmp / "disks" / f"{name}.qcow2")
        conn = lab.hv(net.container)
        conn.create_volume(path, 1, "qcow2")
        spec = VMSpec(
            name=name, vcpus=1, mem_mb=256, nics=[NicSpec(mac, "bridge", lab.private_br)],
            disks=[DiskSpec(path, "vda", "virtio")], attrs={"kvm_domain_type": "qemu"},
        )  # fmt: skip
        lab.domains.add(name)
        dom = conn.define(design(spec).to_xml())
        t0 = time.monotonic()
        conn.start(dom)
        found = lines.get(timeout=120)
        timings["insert-ethers: start -> discovered"] = time.monotonic() - t0
        new = f"vm-container-{net.rack}-1"
        assert found.startswith(f"discovered {mac}: {new} "), found
        iface = rows(rocks, "list", "host", "interface", new)[0]
        ip = iface["ip"]
        assert iface["mac"] == mac and found.split()[3] == ip
        assert f"{mac},{ip},{new},infinite" in dhcp.paths().hosts.read_text()

        # dnsmasq lent it a discovery-pool address first (that is how insert-ethers heard of
        # it); its discover.ipxe asks again and gets the fixed lease, then installs and reports.
        lent = net.acks(mac)[0]
        assert lent in dhcp.running_pool(), (lent, dhcp.running_pool())  # type: ignore[operator]
        text = console(conn, name, MARKER_REPORTED.encode())
        timings["insert-ethers: start -> reported"] = time.monotonic() - t0
        assert f"{MARKER_BOOTED} host={new}" in text, text
        assert f"{MARKER_REPORTED} ok {new}" in text, text
        assert wait_for_state(conn, name, {"shutoff", "nostate"}, 60) == "shutoff"
        assert boot_of(rocks, new) == "os"
        assert stamp_bytes(new) in b"".join(conn.read_volume(path))
        acked = len(net.acks(mac))

        # The second boot gets the same IP (and boots its disk).
        conn.start(conn.require(name))
        wait_for("a second boot's lease", lambda: len(net.acks(mac)) > acked, INSTALL_TIMEOUT)
        acks = net.acks(mac)
        fixed = acks.index(ip)
        assert set(acks[:fixed]) == {lent} and set(acks[fixed:]) == {ip}, acks
        conn.destroy(name)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(10)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 0, err
    assert rest and rest[-1].rstrip() == "insert-ethers: 1 new host(s)", rest

    # insert-ethers --remove takes it out of the database and out of dnsmasq's leases.
    r = subprocess.run(
        [sys.executable, "-m", "flightdeck.cli.insert_ethers", "--remove", new],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"removed {new};") and "dnsmasq reloaded" in r.stdout
    assert mac not in dhcp.paths().hosts.read_text()
