"""The owner installs computes from their virtual frontend (guide §3.3.5), against the physical
frontend's own PXE install, in the same run.

On the real libvirtd (qemu:///system, TCG), with the site of the end-to-end tests
(`tests/vcluster.py`: the physical frontend in a network namespace with dnsmasq, the boot server
and the Airboss; one virtual cluster of 5 computes whose frontend is installed from the frontend
image and ready). Logged in to the virtual frontend over ssh with the owner's key, insert-ethers
runs and the guide's tunnel is up; then, timed from the owner's command to the last install
report the virtual frontend's boot server logs:

- 1 compute: `rocks set host power <MAC> key=private.key action=install` (a node nobody has named
  yet: DHCP from the virtual frontend, insert-ethers names it, PXE, installer, report);
- 4 computes at once: the same command with four MACs.

Baseline, same run, same container: VMs of the physical cluster (`rocks add host vm ...
membership=Compute`), PXE-installed by the physical frontend's dnsmasq, timed from `rocks start
host vm` to the report (boot action `os`), 1 and then 4 at once.

    .venv/bin/python bench/owner_install.py

Needs root and the frontend image (built or reused from /var/cache/flightdeck/frontend).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import vcluster  # noqa: E402  (the e2e tests' site, reused as is)
from flightdeck.pxe import frontend_image as fim  # noqa: E402
from flightdeck.virt import hypervisor as hv  # noqa: E402
from libvirt_purge import purge  # noqa: E402

IMAGE_DIR = Path("/var/cache/flightdeck/bench-frontend-image")
KEY = "/root/private.key"
TIMEOUT = 900.0
REPORTED = re.compile(r"install of (compute-\d+-\d+) complete")


def _wait(what: str, check: object, timeout: float = TIMEOUT) -> float:
    """Seconds until `check()` is true, polled every 0.5 s."""
    t0 = time.monotonic()
    while not check():  # type: ignore[operator]
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"{what}: not within {timeout:g} s")
        time.sleep(0.5)
    return time.monotonic() - t0


def main() -> None:
    shapes = [("vi-1.example.org", 5)]
    load = os.getloadavg()[0]
    results: dict[str, float] = {}
    with vcluster.site(IMAGE_DIR, fim.DEFAULT_CACHE, shapes) as s:
        c = s.clusters[0]
        s.ssh(c, f"umask 077; cat > {KEY}", stdin=c.key.read_text())
        s.on(c, "nohup insert-ethers > /root/insert-ethers.out 2>&1 < /dev/null & sleep 1; true")
        s.on(c, f"ssh -f -N -L 8677:localhost:8677 {vcluster.PHYSICAL}")

        def reports() -> int:
            got = s.ssh(c, "cat /var/lib/flightdeck/dhcp/bootserver.log").stdout
            return len(REPORTED.findall(got))

        macs = list(c.macs.values())
        for label, group in (("1 compute", macs[:1]), ("4 computes at once", macs[1:5])):
            want = reports() + len(group)
            t0 = time.monotonic()
            s.on(c, f"rocks set host power {' '.join(group)} key={KEY} action=install")
            _wait(label, lambda want=want: reports() >= want)
            what = f"via the virtual frontend, {label}: power install -> reported"
            results[what] = time.monotonic() - t0
            print(f"{what}: {results[what]:.1f} s", flush=True)

        # Baseline: the physical frontend's own PXE install of VMs of the physical cluster.
        physical: list[str] = []
        try:
            def vms() -> set[str]:
                out = s.out("list", "host", "vm", "output-header=no", "output-col=vm-host")
                return {w.rstrip(":") for w in out.split()} - {""}

            s.out("create", "installer", "image")  # the physical side's `install` action
            before = vms()
            for _ in range(5):
                s.out("add", "host", "vm", "frontend-0-0", "membership=Compute", "mem=256",
                      "disksize=1")  # fmt: skip
                physical += sorted(vms() - before - set(physical))
            s.out("sync", "dhcp")

            def installed(names: list[str]) -> bool:
                out = s.out("list", "host", "boot", *names, "output-header=no")
                return out.count(" os") == len(names)

            for label, group in (("1 compute", physical[:1]), ("4 computes at once", physical[1:])):
                t0 = time.monotonic()
                s.out("start", "host", "vm", *group)
                _wait(label, lambda g=group: installed(g))
                what = f"physical frontend, {label}: start -> reported"
                results[what] = time.monotonic() - t0
                print(f"{what}: {results[what]:.1f} s", flush=True)
        finally:
            purge(hv.connect("frontend-0-0", "qemu:///system", 15).conn, physical, s.home)
    print(f"load average at start {load:.2f}; {len(results)} figures above")


if __name__ == "__main__":
    main()
