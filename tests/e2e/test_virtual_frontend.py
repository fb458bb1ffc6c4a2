"""The virtual frontend is a frontend: installed from the frontend image, ready, logged in to.

On the real libvirtd (TCG). The physical frontend's side lives in a network namespace of the test
(`fe`): its private address on the lab's private bridge and its public address on the public
bridge, where the boot server's public listener serves the frontend image. The owner's laptop
is a second namespace on the public bridge (`owner`). The virtual frontend is a VM with eth0 on
the cluster's VLAN bridge and eth1 on the public bridge; nothing else is touched.

The guide's §3.3.4 as an admin types it: `rocks create frontend image`, `rocks add cluster
... fe-fqdn=vi-1.example.org`, `rocks add host key`, `rocks start host vm`; then the VM's own
words on its serial console (FLIGHTDECK-FRONTEND-READY), its status, and an ssh login with the
owner's key that runs `rocks list host` inside it.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_common import on_libvirtd as marks_of_libvirtd
from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.guest import READY
from flightdeck.pxe.image import Image
from flightdeck.services import dhcp
from flightdeck.virt.console import read_serial, wait_for_state

CACHE_DIR = fim.DEFAULT_CACHE
PHYSICAL_PUBLIC = "192.0.2.10"
VF_PUBLIC = "192.0.2.20"
OWNER_IP = "192.0.2.50"
FQDN = "vi-1.example.org"
#: Power-on to ready: the install (stream ~230 MB, inflate ~1 GB under TCG), then the first boot.
READY_TIMEOUT = float(os.environ.get("FD_VF_TIMEOUT", "900"))


def on_libvirtd(test: Any) -> Any:
    return marks_of_libvirtd(test, timeout=int(READY_TIMEOUT) * 2)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def rows(rocks: Any, *argv: str) -> list[dict[str, Any]]:
    out = rocks.ok(*argv, "output-format=json")
    return list(json.loads(out)) if out.strip() else []


def boot_of(rocks: Any, host: str) -> str:
    return str(rows(rocks, "list", "host", "boot", host)[0]["action"])


def wait_for(
    what: str, check: Callable[[], Any], timeout: float, explain: Callable[[], str]
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s\n{explain()}")
        time.sleep(1.0)


@dataclass
class Site:
    """The physical frontend's namespace, the owner's, and their logs."""

    fe_ns: str
    owner_ns: str
    home: Path

    def boot_log(self) -> str:
        try:
            return dhcp.bootserver_log().read_text(errors="replace")
        except OSError:
            return "(no boot server log)"

    def ssh(
        self, key: Path, *command: str, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`ssh root@<virtual frontend> command` from the owner's namespace, key only."""
        return subprocess.run(
            [
                "ip", "netns", "exec", self.owner_ns, "ssh", "-i", str(key),
                "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new",
                "-o", f"UserKnownHostsFile={self.home / 'known_hosts'}",
                "-o", "ConnectTimeout=30", f"root@{VF_PUBLIC}", *command,
            ],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip


def _veth(ns: str, outside: str, inside: str, bridge: str, address: str) -> None:
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
    Path(f"/proc/sys/net/ipv6/conf/{outside}/disable_ipv6").write_text("1\n")
    _ip("link", "set", outside, "master", bridge)
    _ip("link", "set", outside, "up")
    _ip("-n", ns, "addr", "add", address, "dev", inside)
    _ip("-n", ns, "link", "set", inside, "up")


@pytest.fixture
def site(lab: Any, rocks: Any, installer_image: Image) -> Iterator[Site]:
    """The physical frontend (database, dnsmasq and the boot server in `fe`), the owner's ns."""
    token = lab.token
    it = Site(f"fdv-{token}", f"fdo-{token}", lab.tmp)
    for ns in (it.fe_ns, it.owner_ns):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    try:
        _veth(it.fe_ns, f"fdv{token}p", "prv0", lab.private_br, "10.1.1.1/16")
        _veth(it.fe_ns, f"fdv{token}u", "pub0", lab.public_br, f"{PHYSICAL_PUBLIC}/24")
        _veth(it.owner_ns, f"fdo{token}u", "pub0", lab.public_br, f"{OWNER_IP}/24")
        rocks.ok(
            "init", "frontend", "name=fdv-lab.example.org", f"public-ip={PHYSICAL_PUBLIC}",
            "public-netmask=255.255.255.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0",
            f"public-iface={lab.public_br}", f"private-iface={lab.private_br}",
            "gateway=192.0.2.1",
        )  # fmt: skip
        rocks.ok("set", "attr", "kvm_domain_type", "qemu")
        rocks.ok("set", "attr", "kvm_disk_dir", str(lab.tmp / "disks"))
        rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", lab.uri)
        rocks.ok("set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")
        out = rocks.ok("start", "service", "dhcp", f"netns={it.fe_ns}", "interface=prv0")
        assert f"image installs on http://{PHYSICAL_PUBLIC}:8078" in out, out
        yield it
    finally:
        try:
            dhcp.stop_service()
        except Exception as exc:
            print(f"stopping the DHCP service: {exc}")
        for ns in (it.fe_ns, it.owner_ns):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def add_cluster(rocks: Any, lab: Any, image: fim.FrontendImage) -> str:
    out = rocks.ok("create", "frontend", "image", f"dir={image.path.parent}", f"cache={CACHE_DIR}")
    assert f"up to date: frontend image {image.path}" in out, out
    lab.domains.add(lab.fe)
    rocks.ok(
        "add", "cluster", VF_PUBLIC, "0", f"vlan={lab.vlan}", f"fe-name={lab.fe}",
        f"fe-fqdn={FQDN}", "mem-per-frontend=1024", "disk-per-frontend=4",
    )  # fmt: skip
    return str(lab.fe)


@on_libvirtd
def test_virtual_frontend_installs_from_the_image_and_is_a_frontend(
    rocks: Any, lab: Any, site: Site, frontend_image: fim.FrontendImage, timings: dict[str, float]
) -> None:
    fe = add_cluster(rocks, lab, frontend_image)
    key = lab.tmp / "private.key"
    pub = rocks.ok("create", "keys", f"key={key}", "passphrase=no")
    (lab.tmp / "public.key").write_text(pub)
    rocks.ok("add", "host", "key", fe, f"key={lab.tmp / 'public.key'}")
    conn = lab.hv("frontend-0-0")
    assert boot_of(rocks, fe) == "install"

    # 1. The install: the installer streams the image from the public listener, checks it,
    #    writes it and the identity, reports; its boot action becomes os.
    t0 = time.monotonic()
    assert rocks.ok("start", "host", "vm", fe) == f"installing {fe} on frontend-0-0\n"
    status = {r["vm_host"]: r["status"] for r in rows(rocks, "list", "host", "vm", fe, "status=y")}
    assert status[fe] == "installing"
    wait_for("the install report", lambda: boot_of(rocks, fe) == "os", READY_TIMEOUT, site.boot_log)
    installed = time.monotonic()
    assert f"image install of {fe} complete" in site.boot_log()

    # 2. Started again from its own disk (by the boot server once the installer powered off);
    #    its first boot makes it a frontend, and it says so on its serial console.
    def restarted() -> bool:
        dom = conn.domain(fe)
        return dom is not None and dom.isActive() and "<kernel>" not in dom.XMLDesc(0)

    wait_for("the restart from disk", restarted, 240, site.boot_log)
    text = read_serial(conn, fe, f"{READY} {FQDN}".encode(), READY_TIMEOUT).decode(errors="replace")
    assert f"{READY} {FQDN}" in text, f"no ready line; the console said:\n{text[-6000:]}"
    ready = time.monotonic()
    if os.environ.get("FD_VF_CONSOLE"):
        Path(os.environ["FD_VF_CONSOLE"]).write_text(text)
    timings["virtual frontend: power-on -> installed (report)"] = installed - t0
    timings["virtual frontend: power-on -> FLIGHTDECK-FRONTEND-READY"] = ready - t0
    wait_for(
        "status ready",
        lambda: any(
            r["status"] == "ready" for r in rows(rocks, "list", "host", "vm", fe, "status=y")
        ),
        120,
        lambda: text[-3000:],
    )

    # 3. The owner logs in with the same private key and uses the frontend's own Flightdeck.
    key.chmod(0o600)
    got = site.ssh(key, "hostname -f; rocks list host; cat /etc/flightdeck/client.env")
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0] == FQDN, got.stdout
    assert any(ln.startswith("frontend-0-0:") and "Frontend" in ln for ln in lines), got.stdout
    assert "FLIGHTDECK_AIRBOSS=localhost:8677" in got.stdout
    timings["virtual frontend: ssh + rocks list host inside"] = time.monotonic() - ready

    # 4. rocksd starts after the ready line; once it listens, the owner's commands are served
    #    by it: the same output, without the imports that cost seconds under TCG. Timed inside
    #    the guest (date), each way, after one run that warms the page cache.
    def rocksd_listens() -> bool:
        return site.ssh(key, "test -S /run/flightdeck/rocks.sock").returncode == 0

    def rocksd_state() -> str:
        unit = "flightdeck-rocksd"
        got = site.ssh(key, f"systemctl status --no-pager {unit}; journalctl -q -u {unit}")
        return got.stdout[-3000:] + got.stderr[-1000:]

    wait_for("rocksd's socket", rocksd_listens, 600, rocksd_state)
    timings["virtual frontend: READY -> rocksd listens"] = time.monotonic() - ready
    script = (
        "rocks list host >/dev/null; "
        "a=$(date +%s%N); rocks list host >/tmp/served; b=$(date +%s%N); "
        "FLIGHTDECK_RESIDENT=no rocks list host >/tmp/alone; c=$(date +%s%N); "
        'echo $((b-a)) $((c-b)); cmp /tmp/served /tmp/alone && '
        "journalctl -q -o cat -u flightdeck-rocksd | grep -c 'running rocks list host'"
    )
    got = site.ssh(key, script)
    assert got.returncode == 0, got.stdout + got.stderr
    served_ns, alone_ns = (int(n) for n in got.stdout.split()[:2])
    assert int(got.stdout.split()[2]) >= 2, got.stdout  # the warm-up and the timed run
    timings["virtual frontend: rocks list host inside, served by rocksd"] = served_ns / 1e9
    timings["virtual frontend: rocks list host inside, FLIGHTDECK_RESIDENT=no"] = alone_ns / 1e9


def _guest_head(disk: Path, tmp: Path) -> bytes:
    """The first 2 MiB the guest sees on its (qcow2) disk."""
    out = tmp / "head.raw"
    subprocess.run(
        ["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=1M", "count=2", f"if={disk}",
         f"of={out}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.read_bytes()


@on_libvirtd
def test_a_swapped_image_is_refused_and_nothing_boots(
    rocks: Any, lab: Any, site: Site, frontend_image: fim.FrontendImage, tmp_path: Path
) -> None:
    """Someone on the public network swaps the image for another, valid, gzip'd disk: the
    installer writes it as it streams, finds the SHA-256 of the command line does not match,
    and zeroes the start of the disk, so nothing of it can boot."""
    dest = tmp_path / "image"
    dest.mkdir()
    mbr = bytearray(512)
    mbr[:4], mbr[510:] = b"EVIL", b"\x55\xaa"
    fake = gzip.compress(bytes(mbr) + b"A" * (4 << 20), compresslevel=1)
    name = frontend_image.path.name
    (dest / name).write_bytes(fake)
    manifest = json.loads((frontend_image.path.parent / fim.MANIFEST).read_text())
    manifest["size"] = len(fake)  # the file is what the manifest says; only the bytes differ
    (dest / fim.MANIFEST).write_text(json.dumps(manifest))
    lab.domains.add(lab.fe)
    rocks.ok(
        "create", "frontend", "image", f"dir={frontend_image.path.parent}", f"cache={CACHE_DIR}"
    )
    rocks.ok("set", "attr", "kvm_frontend_image", str(dest))
    rocks.ok(
        "add", "cluster", VF_PUBLIC, "0", f"vlan={lab.vlan}", f"fe-name={lab.fe}",
        f"fe-fqdn={FQDN}", "mem-per-frontend=512", "disk-per-frontend=4",
    )  # fmt: skip
    fe = lab.fe
    conn = lab.hv("frontend-0-0")
    rocks.ok("start", "host", "vm", fe)
    text = read_serial(conn, fe, b"FLIGHTDECK-IMAGE-REFUSED", 300).decode(errors="replace")
    assert "FLIGHTDECK-IMAGE-REFUSED image checksum mismatch" in text, text[-4000:]
    assert wait_for_state(conn, fe, {"shutoff", "nostate"}, 60) == "shutoff"
    head = _guest_head(lab.tmp / "disks" / f"{fe}.vda", tmp_path)
    assert head == bytes(len(head)), "the swapped image's boot sector is still on the disk"
    assert boot_of(rocks, fe) == "install"
    log = site.boot_log()
    assert f"refused: the installer of {fe} refused the image" in log, log[-2000:]
