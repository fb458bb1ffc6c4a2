"""Scale, simulated: 500 VM containers, up to 20,000 VMs (libvirt test-driver URIs).

Each container is a libvirt test driver of its own node file, so a status listing really opens
500 connections and lists each. The site (frontend, containers, their NICs and URIs) is made
in this process through the services (what `rocks add host` / `add host interface` / `set host
attr` do, one transaction each); then, whole `rocks` processes, timed:

* `add cluster` of `--computes` computes (default 2,000) across all containers (the default
  placement: every VM container), again and again until the site holds 20,000 VMs;
* `list host vm status=y` (every VM's live state: 500 listings in parallel) at 1k, 5k and 20k
  VMs, and `list host vm` (no state) as its baseline in the same run: the database part alone.

Aims (issue 20): `list host vm status=y` under 5 s and `add cluster` of 2,000 computes under
5 s at this scale; printed, with how each grows from 1k to 5k to 20k VMs.

    .venv/bin/python bench/scale.py [--containers 500] [--computes 2000] [--vms 20000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=500)
    ap.add_argument("--computes", type=int, default=2000)
    ap.add_argument("--vms", type=int, default=20000)
    ap.add_argument("--checkpoints", default="1000,5000,20000")
    a = ap.parse_args()
    checkpoints = sorted(int(x) for x in a.checkpoints.split(","))
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FLIGHTDECK_HOME=home)
        env.pop("FLIGHTDECK_DB", None)

        def rocks(*args: str) -> tuple[float, str]:
            t0 = time.perf_counter()
            done = subprocess.run([ROCKS, *args], env=env, capture_output=True, text=True,
                                  check=False)  # fmt: skip
            if done.returncode:
                raise SystemExit(f"rocks {' '.join(args)}: {done.stderr.strip()}")
            return time.perf_counter() - t0, done.stdout

        rocks("init", "frontend", "name=bench.example.org", "public-ip=172.16.0.10",
              "public-netmask=255.255.0.0", "private-ip=10.1.0.1", "private-netmask=255.255.0.0")
        rocks("set", "attr", "kvm_disk_dir", f"{home}/disks")
        os.environ["FLIGHTDECK_HOME"] = home
        from flightdeck.db.engine import open_database
        from flightdeck.services.attributes import set_host
        from flightdeck.services.inventory import add_host, add_interface

        db = open_database()
        t0 = time.perf_counter()
        Path(home, "fe.xml").write_text("<node/>")
        set_host(db, ["frontend-0-0"], "libvirt_uri", f"test://{home}/fe.xml")
        for c in range(a.containers):
            rack, rank = divmod(c, 100)
            name = f"vm-container-{rack}-{rank}"
            add_host(db, name, "VM Container", rack=rack, rank=rank)
            add_interface(db, name, "eth0", mac=f"52:54:00:fd:{c >> 8:02x}:{c & 255:02x}",
                          ip="auto", subnet="private")  # fmt: skip
            Path(home, f"{name}.xml").write_text("<node/>")
            set_host(db, [name], "libvirt_uri", f"test://{home}/{name}.xml")
        db.dispose()
        print(f"{a.containers} containers (test driver) made in {time.perf_counter() - t0:.1f} s")

        vms = 0
        cluster = 0
        adds: list[tuple[int, float]] = []
        listings: list[tuple[int, float, float]] = []
        while vms < a.vms:
            # Clusters of --computes, cut so that the site holds exactly each checkpoint's VMs.
            size = min(a.computes, (checkpoints[0] if checkpoints else a.vms) - vms - 1)
            ip = f"172.16.{1 + cluster // 250}.{1 + cluster % 250}"
            took, _out = rocks("add", "cluster", ip, str(size), "mem-per-compute=256",
                               "disk-per-compute=1", "disk-per-frontend=1")  # fmt: skip
            vms += size + 1
            cluster += 1
            adds.append((vms, took))
            print(f"add cluster of {size} computes (site now {vms} VMs): {took:.2f} s", flush=True)
            while checkpoints and vms >= checkpoints[0]:
                checkpoints.pop(0)
                plain, _out = rocks("list", "host", "vm")
                status, out_s = rocks("list", "host", "vm", "status=y")
                rows = len(out_s.splitlines()) - 1
                listings.append((vms, plain, status))
                print(f"  {vms} VMs: list host vm {plain:.2f} s, status=y {status:.2f} s "
                      f"({rows} rows)", flush=True)

    print(f"\n{a.containers} containers; whole rocks processes, one run")
    print("VMs in site | list host vm (baseline) | list host vm status=y")
    for n, plain, status in listings:
        print(f"{n:>11} | {plain:>22.2f} s | {status:>20.2f} s")
    print("add cluster (computes) at site size: " + ", ".join(f"{n}: {t:.2f} s" for n, t in adds))


if __name__ == "__main__":
    main()
