"""A virtual cluster on the real libvirtd: install, boot, pause, save, restore, stop, move.

Everything goes through `rocks` as an administrator types it (in process, on a fresh SQLite
database in tmp_path), and the checks look at what really happened: the guest's own words on
its serial console (read through libvirt's console stream), the domain state libvirt reports,
and the bytes of the disk volumes read back through libvirt.

The installer is the image of `rocks create installer image` (Debian cloud kernel + busybox):
booted with `fd.stamp=1` it writes `FLIGHTDECK-STAMP <host>` to the start of its disk, so the
install path is proven down to the disk. TCG only (domain type qemu): this machine has no
usable KVM (shared/reference/feasibility.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from e2e.e2e_common import on_libvirtd
from flightdeck.pxe.image import DEFAULT_CACHE, MARKER_BOOTED, Image, stamp_bytes
from flightdeck.virt.console import read_serial, wait_for_state

#: The physical frontend (this machine, as `rocks init frontend` registers it).
PHYSICAL = "frontend-0-0"
SECOND = "vm-container-0-0"
BOOT_TIMEOUT = 120.0


def rows(rocks: Any, *argv: str) -> list[dict[str, Any]]:
    out = rocks.ok(*argv, "output-format=json")
    return list(json.loads(out)) if out.strip() else []


def status(rocks: Any, vm: str) -> str:
    found = rows(rocks, "list", "host", "vm", vm, "status=y")
    assert found and found[0]["vm_host"] == vm, found
    return str(found[0]["status"])


def placement(rocks: Any, vm: str) -> str:
    return str(rows(rocks, "list", "host", "vm", vm)[0]["host"])


def build_cluster(rocks: Any, lab: Any, image: Image, computes: int) -> None:
    """This machine as frontend, its libvirtd as container, the installer, one cluster."""
    rocks.ok(
        "init",
        "frontend",
        "name=fdt-lab.example.org",
        "public-ip=192.0.2.10",
        "public-netmask=255.255.255.0",
        "private-ip=10.1.1.1",
        "private-netmask=255.255.0.0",
        f"public-iface={lab.public_br}",
        f"private-iface={lab.private_br}",
    )
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(lab.tmp / "disks"))
    rocks.ok("set", "host", "attr", PHYSICAL, "libvirt_uri", lab.uri)
    rocks.ok("set", "host", "attr", PHYSICAL, "kvm_vlan_mode", "bridge")
    where = image.kernel.parent
    out = rocks.ok("create", "installer", "image", f"dir={where}", f"cache={DEFAULT_CACHE}")
    assert f"up to date: installer image {where} (Linux {image.version})" in out
    lab.domains |= {lab.fe, *(lab.compute(i) for i in range(computes))}
    rocks.ok(
        "add",
        "cluster",
        "192.0.2.20",
        str(computes),
        f"vlan={lab.vlan}",
        f"fe-name={lab.fe}",
        "cluster-naming=yes",
        "mem-per-frontend=256",
        "mem-per-compute=256",
        "disk-per-frontend=1",
        "disk-per-compute=1",
    )
    # The original's path: the frontend boots the installer image by direct kernel boot (the
    # frontend image's install is tests/e2e/test_virtual_frontend.py's).
    rocks.ok("set", "host", "installaction", lab.fe, "action=install vm frontend")


def boot_devices(xml: str) -> tuple[str | None, list[str]]:
    """The direct-boot kernel (None for a firmware boot) and the boot order of a domain XML."""
    os_el = ET.fromstring(xml).find("os")
    assert os_el is not None
    return os_el.findtext("kernel"), [b.get("dev", "") for b in os_el.findall("boot")]


@on_libvirtd
def test_frontend_installs_then_boots_pauses_saves_restores_and_stops(
    rocks: Any, lab: Any, installer_image: Image, timings: dict[str, float]
) -> None:
    build_cluster(rocks, lab, installer_image, computes=0)
    fe, conn = lab.fe, lab.hv(PHYSICAL)
    actions = {r["action"]: r for r in rows(rocks, "list", "bootaction")}
    fe_action = actions["install vm frontend"]
    assert fe_action["kernel"] == str(installer_image.kernel)
    assert fe_action["ramdisk"] == str(installer_image.initrd)
    assert fe_action["args"].split()[-1] == "console=ttyS0"
    assert actions["install"]["args"] == "console=ttyS0 fd.stamp=1"
    rocks.ok(
        "set",
        "bootaction",
        "action=install vm frontend",
        f"args={fe_action['args']} fd.host={fe} fd.stamp=1",
    )
    assert rows(rocks, "list", "host", "boot", fe)[0]["action"] == "install"

    # 1. Install: direct kernel boot of the installer; the marker on the serial console.
    t0 = time.monotonic()
    assert rocks.ok("start", "host", "vm", fe) == f"installing {fe} on {PHYSICAL}\n"
    started = time.monotonic()
    serial = read_serial(conn, fe, MARKER_BOOTED.encode(), BOOT_TIMEOUT)
    seen = time.monotonic()
    text = serial.decode(errors="replace")
    assert f"{MARKER_BOOTED} host={fe} uptime=" in text, f"no marker; the console said:\n{text}"
    timings["install start: rocks start host vm"] = started - t0
    timings["install start: rocks start -> marker"] = seen - t0
    uptime = text.split(f"{MARKER_BOOTED} host={fe} uptime=", 1)[1].split()[0]
    timings["install start: guest kernel uptime at marker"] = float(uptime)
    # It installs once: the next boot is from disk.
    assert rows(rocks, "list", "host", "boot", fe)[0]["action"] == "os"

    # The installer stamps the disk and powers off; the domain stays defined, shut off.
    assert wait_for_state(conn, fe, {"shutoff", "nostate"}, 60) == "shutoff"
    timings["install start: rocks start -> powered off"] = time.monotonic() - t0
    assert status(rocks, fe) == "shutoff"
    disk = lab.tmp / "disks" / f"{fe}.vda"
    assert stamp_bytes(fe) in b"".join(conn.read_volume(str(disk))), "the installer left no stamp"

    # 2. Boot: installed (boot action os), so its disk only, no PXE attempt first (issue 15);
    # no kernel (the stamped disk has no boot loader: it sits in SeaBIOS).
    kernel, order = boot_devices(rocks.ok("report", "host", "vm", "config", fe))
    assert kernel is None and order == ["hd"]
    assert rocks.ok("start", "host", "vm", fe) == f"started {fe} on {PHYSICAL}\n"
    assert status(rocks, fe) == "active"
    assert boot_devices(conn.xml(fe)) == (None, ["hd"])
    # A console that never says the words ends at the deadline, not later.
    t0 = time.monotonic()
    read_serial(conn, fe, b"words the firmware never prints", 2.0)
    assert time.monotonic() - t0 < 8.0

    # 3. Pause, resume, save (the memory goes to a file; the domain stops), restore, stop.
    assert rocks.ok("pause", "host", "vm", fe) == f"paused {fe}\n"
    assert status(rocks, fe) == "paused"
    assert rocks.ok("resume", "host", "vm", fe) == f"resumed {fe}\n"
    assert status(rocks, fe) == "active"
    saved = lab.tmp / "disks" / f"{fe}.saved"
    assert rocks.ok("save", "host", "vm", fe) == f"saved {fe} to {saved}\n"
    assert status(rocks, fe) == "shutoff"
    assert saved.is_file() and saved.stat().st_size > 0
    assert rocks.ok("restore", "host", "vm", fe) == f"restored {fe} from {saved}\n"
    assert status(rocks, fe) == "active"
    assert rocks.ok("stop", "host", "vm", fe) == f"stopped {fe}\n"
    assert conn.domain(fe) is None
    assert status(rocks, fe) == "nostate"


@on_libvirtd
def test_move_compute_to_another_container_keeps_its_disk(
    rocks: Any, lab: Any, installer_image: Image, timings: dict[str, float]
) -> None:
    build_cluster(rocks, lab, installer_image, computes=1)
    vm, conn = lab.compute(0), lab.hv(PHYSICAL)
    # A second container, on the same libvirtd but with its own disk directory.
    rocks.ok("add", "host", SECOND, "membership=VM Container", "rack=0", "rank=0")
    rocks.ok(
        "add", "host", "interface", SECOND, lab.private_br, "ip=auto", "subnet=private",
        "mac=02:fd:00:00:00:01",
    )  # fmt: skip
    for attr, value in (
        ("libvirt_uri", lab.uri),
        ("kvm_vlan_mode", "bridge"),
        ("kvm_disk_dir", str(lab.tmp / "disks2")),
    ):
        rocks.ok("set", "host", "attr", SECOND, attr, value)
    assert placement(rocks, vm) == PHYSICAL

    # The first start creates its volume (it PXE-boots, and nobody answers); then it stops.
    assert rocks.ok("start", "host", "vm", vm) == f"started {vm} on {PHYSICAL}\n"
    assert status(rocks, vm) == "active"
    rocks.ok("stop", "host", "vm", vm)
    source = lab.tmp / "disks" / f"{vm}.vda"
    # A sector only this test knows, written through the qcow2 layer at 1 MiB.
    pattern = f"FLIGHTDECK-MOVE {lab.token}\n".encode().ljust(512, b"\0")
    (lab.tmp / "pattern").write_bytes(pattern)
    qemu_io = ["qemu-io", "-f", "qcow2", "-c", f"write -s {lab.tmp / 'pattern'} 1M 512"]
    subprocess.run([*qemu_io, str(source)], check=True, capture_output=True)

    t0 = time.monotonic()
    out = rocks.ok("move", "host", "vm", vm, SECOND)
    timings["move host vm (1 GB qcow2, cold)"] = time.monotonic() - t0
    assert out == f"moved {vm} from {PHYSICAL} to {SECOND}\n"
    target = lab.tmp / "disks2" / f"{vm}.vda"
    assert placement(rocks, vm) == SECOND
    assert conn.volume(str(source)) is None, "the source volume is still there"
    assert pattern in b"".join(lab.hv(SECOND).read_volume(str(target)))
    # Still a sound qcow2, and the guest sees the sector where it was.
    subprocess.run(["qemu-img", "check", "-q", "-f", "qcow2", str(target)], check=True)
    raw = lab.tmp / "moved.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(target), str(raw)], check=True
    )
    with raw.open("rb") as fh:
        fh.seek(1 << 20)
        assert fh.read(512) == pattern
    raw.unlink()

    # It starts on the new container from the new path.
    disk = ET.fromstring(rocks.ok("report", "host", "vm", "config", vm)).find("devices/disk/source")
    assert disk is not None and disk.get("file") == str(target)
    assert rocks.ok("start", "host", "vm", vm) == f"started {vm} on {SECOND}\n"
    assert status(rocks, vm) == "active"
    assert rocks.ok("stop", "host", "vm", vm) == f"stopped {vm}\n"


def test_libvirtd_that_does_not_answer_is_a_failure_not_a_skip(tmp_path: Path) -> None:
    """The promise of conftest.libvirt_uri, checked in a child pytest on a dead socket."""
    test = tmp_path / "test_dead.py"
    test.write_text("def test_x(libvirt_uri):\n    pass\n")
    conftest = Path(__file__).with_name("conftest.py")
    (tmp_path / "conftest.py").write_text(conftest.read_text())
    helper = conftest.parent.parent / "libvirt_purge.py"  # conftest imports it
    (tmp_path / helper.name).write_text(helper.read_text())
    env = {
        "FLIGHTDECK_TEST_LIBVIRT": f"qemu+unix:///system?socket={tmp_path}/nobody.sock",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(test),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1, done.stdout
    assert "is set but libvirtd does not answer" in done.stdout
