"""PXE installs from the frontend's dnsmasq: one VM alone, then four at once (staggered).

On the real libvirtd (qemu:///system, TCG), everything through `rocks` as whole processes: a
private network in a network namespace of this script (10.1.1.1/16 plus a ULA for the IPv6
router advertisement) joined by a veth to an address-less bridge the VMs' NICs are on;
`rocks start service dhcp netns=...`; compute VMs added with `rocks add host vm` (256 MiB,
1 GB disk). An install is timed from `rocks start host vm` to the boot server logging the VM's
completion report (stamp on disk, boot action set to os). Four VMs are started `--stagger`
seconds apart (feasibility.md: dnsmasq rate-limits router advertisements, so four at the same
instant each wait ~24 s for iPXE's IPv6 timeout). Each run does the solo install and then the
four, so the baseline is measured in the same run; runs after the first reinstall the same VMs.

    .venv/bin/python bench/pxe_install.py [--runs 2] [--stagger 4]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
IMAGE_DIR = "/var/cache/flightdeck/e2e-installer"
CACHE = "/var/cache/flightdeck/debs"
TIMEOUT = 300.0


def sh(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True, text=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--stagger", type=float, default=4.0, help="seconds between the four starts")
    a = ap.parse_args()
    tok = secrets.token_hex(3)
    bridge, ns, veth = f"fdb{tok}br", f"fdb-{tok}", f"fdb{tok}v"
    rack = random.randint(100, 9999)
    container = f"vm-container-{rack}-0"
    vms = [f"compute-{rack}-0-{i}" for i in range(5)]
    home = Path(tempfile.mkdtemp(prefix="fd-pxe-bench-"))
    env = dict(os.environ, FLIGHTDECK_HOME=str(home))
    env.pop("FLIGHTDECK_DB", None)

    def rocks(*args: str) -> str:
        done = subprocess.run(
            [str(VENV_BIN / "rocks"), *args], env=env, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"rocks {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    log = home / "dhcp" / "bootserver.log"

    def installed(vm: str) -> bool:
        with contextlib.suppress(FileNotFoundError):
            return f"install of {vm} complete" in log.read_text()
        return False

    def install(group: list[str], stagger: float) -> tuple[float, list[float]]:
        """Start `group` (stagger apart); seconds to all installed, and each one's own time."""
        log.write_text("")  # only this round's reports
        t0 = time.monotonic()
        starts: dict[str, float] = {}
        for i, vm in enumerate(group):
            if i:
                time.sleep(max(0.0, t0 + i * stagger - time.monotonic()))
            starts[vm] = time.monotonic()
            rocks("start", "host", "vm", vm)
        done: dict[str, float] = {}
        while len(done) < len(group):
            if time.monotonic() - t0 > TIMEOUT:
                raise SystemExit(f"not installed within {TIMEOUT:g} s: {set(group) - set(done)}")
            for vm in group:
                if vm not in done and installed(vm):
                    done[vm] = time.monotonic()
            time.sleep(0.1)
        for vm in group:  # wait until powered off, so the next round starts from shutoff
            while "shutoff" not in rocks("list", "host", "vm", vm, "status=y"):
                time.sleep(0.5)
        return max(done.values()) - t0, [done[vm] - starts[vm] for vm in group]

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", bridge, "type", "bridge")
        Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6").write_text("1\n")
        sh("ip", "link", "set", bridge, "up")
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "srv0", "netns", ns)
        Path(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6").write_text("1\n")
        sh("ip", "link", "set", veth, "master", bridge)
        sh("ip", "link", "set", veth, "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "addr", "add", "10.1.1.1/16", "dev", "srv0")
        sh("ip", "-n", ns, "addr", "add", "fdfa:fb::1/64", "dev", "srv0", "nodad")
        sh("ip", "-n", ns, "link", "set", "srv0", "up")
        rocks("init", "frontend", "name=fdb.example.org", "public-ip=192.0.2.10",
              "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
              "private-netmask=255.255.0.0", "private-iface=srv0")  # fmt: skip
        rocks("set", "attr", "kvm_domain_type", "qemu")
        rocks("set", "attr", "kvm_disk_dir", str(home / "disks"))
        rocks("add", "host", container, "membership=VM Container", f"rack={rack}", "rank=0")
        rocks("add", "host", "interface", container, bridge, "ip=auto", "subnet=private")
        rocks("set", "host", "attr", container, "libvirt_uri", "qemu:///system")
        rocks("set", "host", "attr", container, "kvm_vlan_mode", "bridge")
        rocks("create", "installer", "image", f"dir={IMAGE_DIR}", f"cache={CACHE}")
        for _ in vms:
            rocks("add", "host", "vm", container, "membership=Compute", "mem=256", "disksize=1")
        rocks("start", "service", "dhcp", f"netns={ns}", "interface=srv0")
        load = os.getloadavg()[0]
        solo, four, each = [], [], []
        for run in range(a.runs):
            if run:
                rocks("set", "host", "boot", *vms, "action=install")
            s, _ = install(vms[:1], 0.0)
            f, per = install(vms[1:], a.stagger)
            solo.append(s)
            four.append(f)
            each += per
            print(f"run {run + 1}: one VM {s:.1f} s; four VMs {f:.1f} s "
                  f"(each {', '.join(f'{x:.1f}' for x in per)} s)", flush=True)  # fmt: skip
        print(f"load average at start {load:.2f}; stagger {a.stagger:g} s; {a.runs} run(s)")
        print(f"one VM alone, start -> installed:  median {statistics.median(solo):.1f} s, "
              f"min {min(solo):.1f} s")  # fmt: skip
        print(f"four VMs, first start -> all four: median {statistics.median(four):.1f} s, "
              f"min {min(four):.1f} s")  # fmt: skip
        print(f"each of the four, its start -> installed: median {statistics.median(each):.1f} s")
        print(f"ratio four/one (medians): {statistics.median(four) / statistics.median(solo):.2f}x")
    finally:
        subprocess.run([str(VENV_BIN / "rocks"), "stop", "service", "dhcp"], env=env,
                       capture_output=True, check=False)  # fmt: skip
        subprocess.run([str(VENV_BIN / "rocks"), "remove", "host", "vm", *vms], env=env,
                       capture_output=True, check=False)  # fmt: skip
        _drop_pools(home)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(home)], check=False)


def _drop_pools(home: Path) -> None:
    """The storage pools libvirt made for directories under `home` (ours only)."""
    import libvirt

    conn = libvirt.open("qemu:///system")
    try:
        for pool in conn.listAllStoragePools(0):
            xml = pool.XMLDesc(0)
            if f"<path>{home}/" not in xml:
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
    finally:
        conn.close()


if __name__ == "__main__":
    main()
