"""The virtual frontend: image build (cold, cached) and power-on to FLIGHTDECK-FRONTEND-READY.

On the real libvirtd (qemu:///system, TCG), everything through `rocks` processes as an admin
types it. A network namespace of this script is the physical frontend (private 10.1.1.1/16 and
public 192.0.2.10/24 on two address-less bridges of the script), where `rocks start service
dhcp` runs dnsmasq and the boot server with its public listener. The virtual frontend has 1 GiB
and a 4 GB disk.

Reference in the same run: the same VM booting the busybox installer of `rocks create installer
image` (boot action `install vm frontend`), timed from `rocks start host vm` to its
FLIGHTDECK-BOOTED line; then the frontend image install, timed from `rocks start host vm` to the
install report (boot action os) and to FLIGHTDECK-FRONTEND-READY on the serial console.

    .venv/bin/python bench/virtual_frontend.py [--cold] [--runs 1]

`--cold` first builds the image from an empty cache directory (mmdebstrap downloads the Debian
packages again), then again with that cache (the "cached" figure); without it only the cached
build is timed (against /var/cache/flightdeck/frontend).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CACHE = Path("/var/cache/flightdeck/frontend")
IMAGE_DIR = Path("/var/cache/flightdeck/bench-frontend-image")
TIMEOUT = 1200.0


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


def main() -> None:
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import read_serial, wait_for_state

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--cold", action="store_true", help="also build from an empty cache")
    a = ap.parse_args()
    tok = secrets.token_hex(3)
    ns, pub_br, prv_br, vlan = f"fdb-{tok}", f"fdb{tok}u", f"fdb{tok}p", 3777
    vf = f"fdbvf-{tok}"
    home = Path(tempfile.mkdtemp(prefix="fd-vf-bench-"))
    env = dict(os.environ, FLIGHTDECK_HOME=str(home))
    env.pop("FLIGHTDECK_DB", None)
    os.environ["FLIGHTDECK_HOME"] = str(home)

    def rocks(*args: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "rocks"), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"rocks {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def timed(*args: str) -> float:
        t0 = time.monotonic()
        rocks(*args)
        return time.monotonic() - t0

    def boot(*args: str) -> str:
        return rocks("list", "host", "boot", vf, "output-header=no", *args).split()[-1]

    conn = hv.connect("bench", "qemu:///system", 15)
    bridges = [pub_br, prv_br, f"vlan{vlan}"]
    try:
        for br in bridges:
            sh("ip", "link", "add", br, "type", "bridge")
            Path(f"/proc/sys/net/ipv6/conf/{br}/disable_ipv6").write_text("1\n")
            sh("ip", "link", "set", br, "up")
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for outside, inside, br, addr in (
            (f"fdb{tok}a", "prv0", prv_br, "10.1.1.1/16"),
            (f"fdb{tok}b", "pub0", pub_br, "192.0.2.10/24"),
        ):
            sh("ip", "link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            sh("ip", "link", "set", outside, "master", br, "up")
            sh("ip", "-n", ns, "addr", "add", addr, "dev", inside)
            sh("ip", "-n", ns, "link", "set", inside, "up")
        rocks("init", "frontend", "name=fdb.example.org", "public-ip=192.0.2.10",
              "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
              "private-netmask=255.255.0.0", f"private-iface={prv_br}",
              f"public-iface={pub_br}", "gateway=192.0.2.1")  # fmt: skip
        rocks("set", "attr", "kvm_domain_type", "qemu")
        rocks("set", "attr", "kvm_disk_dir", str(home / "disks"))
        rocks("set", "host", "attr", "frontend-0-0", "libvirt_uri", "qemu:///system")
        rocks("set", "host", "attr", "frontend-0-0", "kvm_vlan_mode", "bridge")

        builds: dict[str, float] = {}
        if a.cold:
            cold_cache, cold_dest = home / "cold-cache", home / "cold-image"
            builds["cold (empty cache: mmdebstrap, wheels, root, disk)"] = timed(
                "create", "frontend", "image", f"dir={cold_dest}", f"cache={cold_cache}"
            )
            builds["cached (same inputs: wheel digest, reuse)"] = timed(
                "create", "frontend", "image", f"dir={cold_dest}", f"cache={cold_cache}"
            )
            shutil.rmtree(cold_cache, ignore_errors=True)
        warm = timed("create", "frontend", "image", f"dir={IMAGE_DIR}", f"cache={CACHE}")
        builds["warm (cached Debian root) or reused"] = warm
        builds["cached (same inputs)"] = timed(
            "create", "frontend", "image", f"dir={IMAGE_DIR}", f"cache={CACHE}"
        )
        rocks("create", "installer", "image")
        rocks("start", "service", "dhcp", f"netns={ns}", "interface=prv0")
        rocks("add", "cluster", "192.0.2.20", "0", f"vlan={vlan}", f"fe-name={vf}",
              "fe-fqdn=vi-1.example.org", "mem-per-frontend=1024",
              "disk-per-frontend=4")  # fmt: skip
        load = os.getloadavg()[0]

        busybox, installed, ready = [], [], []
        for _run in range(a.runs):
            # Reference: the busybox installer's direct kernel boot, same VM.
            rocks("set", "host", "installaction", vf, "action=install vm frontend")
            rocks("set", "host", "boot", vf, "action=install")
            t0 = time.monotonic()
            rocks("start", "host", "vm", vf)
            out = read_serial(conn, vf, b"FLIGHTDECK-BOOTED", 120)
            if b"FLIGHTDECK-BOOTED" not in out:
                raise SystemExit("the busybox installer printed no marker")
            busybox.append(time.monotonic() - t0)
            wait_for_state(conn, vf, {"shutoff", "nostate"}, 60)
            rocks("stop", "host", "vm", vf)
            # The frontend image install, then the first boot.
            rocks("set", "host", "installaction", vf, "action=install vm frontend image")
            rocks("set", "host", "boot", vf, "action=install")
            t0 = time.monotonic()
            rocks("start", "host", "vm", vf)
            while boot() != "os":
                if time.monotonic() - t0 > TIMEOUT:
                    raise SystemExit("the image install did not report")
                time.sleep(0.5)
            installed.append(time.monotonic() - t0)
            while True:
                dom = conn.domain(vf)
                if dom is not None and dom.isActive() and "<kernel>" not in dom.XMLDesc(0):
                    break
                if time.monotonic() - t0 > TIMEOUT:
                    raise SystemExit("the frontend was not started from its disk")
                time.sleep(0.5)
            out = read_serial(conn, vf, b"FLIGHTDECK-FRONTEND-READY", TIMEOUT)
            if b"FLIGHTDECK-FRONTEND-READY" not in out:
                raise SystemExit("no FLIGHTDECK-FRONTEND-READY line")
            ready.append(time.monotonic() - t0)
            line = next(ln for ln in out.decode().splitlines() if "FRONTEND-READY" in ln)
            print(f"run {_run + 1}: busybox marker {busybox[-1]:.1f} s; image installed "
                  f"{installed[-1]:.1f} s; ready {ready[-1]:.1f} s ({line.strip()})",
                  flush=True)  # fmt: skip
            rocks("stop", "host", "vm", vf)
        print(f"load average at start {load:.2f}; {a.runs} run(s)")
        for what, secs in builds.items():
            print(f"image build, {what}: {secs:.1f} s")
        print(f"reference, busybox installer: start -> FLIGHTDECK-BOOTED: "
              f"median {statistics.median(busybox):.1f} s")  # fmt: skip
        print(f"frontend image: start -> installed (report): "
              f"median {statistics.median(installed):.1f} s")  # fmt: skip
        print(f"frontend image: start -> FLIGHTDECK-FRONTEND-READY: "
              f"median {statistics.median(ready):.1f} s")  # fmt: skip
    finally:
        subprocess.run([str(VENV_BIN / "rocks"), "stop", "service", "dhcp"], env=env,
                       capture_output=True, check=False)  # fmt: skip
        subprocess.run([str(VENV_BIN / "rocks"), "remove", "cluster", vf], env=env,
                       capture_output=True, check=False)  # fmt: skip
        with contextlib.suppress(Exception):
            if conn.domain(vf) is not None:
                conn.destroy(vf)
                conn.undefine(vf)
        _drop_pools(home)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for br in bridges:
            subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _drop_pools(home: Path) -> None:
    """The storage pools libvirt made for directories under `home` (ours only)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        for pool in conn.listAllStoragePools(0):
            if f"<path>{home}/" not in pool.XMLDesc(0):
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
    finally:
        conn.close()


if __name__ == "__main__":
    main()
