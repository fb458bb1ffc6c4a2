"""`rocks report host network` of a container that carries 500 VMs in 200 cluster VLANs.

The database is built once, in process: espresso (`init_frontend`), one VM container with a
private and a public interface, then 200 virtual clusters in bulk SQLAlchemy Core inserts:
each a frontend VM (eth0 on its VLAN, eth1 public, bridged) and 1 or 2 hosted VMs, 500 VMs in
all, every one placed on the container. Then, interleaved, the whole process of
`rocks report host network <container>` (networkd and ifcfg) and, as the floor every `rocks`
command pays, `python -c 'import sqlalchemy'` in the same venv. Prints the median and minimum
of N runs in ms, next to `rocks list host <container>` (the cheapest database command: the
start-up every command pays) and the planning and rendering alone, in process. Aim: under
0.5 s, whole process.

    .venv/bin/python bench/network_plan.py [--runs 9] [--vms 500] [--vlans 200] [--profile]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
PY = sys.executable
CONTAINER = "vm-container-0-0"


def build(path: Path, vms: int, vlans: int) -> None:
    from sqlalchemy import select

    from flightdeck.db.engine import open_database
    from flightdeck.db.models import VM, Appliance, Cluster, Host, HostBoot, Interface, Network
    from flightdeck.services.frontend import FrontendSpec, init_frontend

    assert vms >= vlans, "every cluster has at least its frontend"
    url = f"sqlite:///{path}"
    init_frontend(
        FrontendSpec(
            name="espresso.rocksclusters.org",
            public_ip="137.110.119.117",
            public_netmask="255.255.255.0",
            private_ip="10.1.1.1",
            private_netmask="255.255.0.0",
        ),
        url,
    )
    db = open_database(url)
    try:
        with db.transaction(write=True) as s:
            app = {a.name: a.id for a in s.scalars(select(Appliance))}
            net = {n.name: n.id for n in s.scalars(select(Network))}
            container = Host(name=CONTAINER, appliance_id=app["vm-container"], rack=0, rank=0)
            s.add(container)
            s.flush()
            s.add_all(
                [
                    Interface(host_id=container.id, device="eth0", mac="52:54:00:fd:00:01",
                              ip="10.1.255.254", network_id=net["private"]),
                    Interface(host_id=container.id, device="eth1", mac="52:54:00:fd:00:02",
                              ip="137.110.119.254", network_id=net["public"]),
                ]
            )  # fmt: skip
            first = (s.scalar(select(Host.id).order_by(Host.id.desc()).limit(1)) or 0) + 1
            hosts: list[dict[str, Any]] = []
            ifaces: list[dict[str, Any]] = []
            vm_rows: list[dict[str, Any]] = []
            clusters: list[dict[str, Any]] = []
            boots: list[dict[str, Any]] = []
            computes = vms - vlans
            public = [f"137.110.119.{i}" for i in range(2, 254) if i != 117]
            assert vlans <= len(public), "one public IP per virtual frontend"
            for c in range(vlans):
                vlan = 2 + c
                fe_id = first + len(hosts)
                fe = f"frontend-0-0-{c}"
                hosts.append({"id": fe_id, "name": fe, "appliance_id": app["frontend"]})
                ifaces += [
                    {"host_id": fe_id, "device": "eth0", "mac": _mac(len(ifaces)),
                     "ip": str(ipaddress.IPv4Address("10.1.0.10") + c),
                     "network_id": net["private"], "vlan": vlan},
                    {"host_id": fe_id, "device": "eth1", "mac": _mac(len(ifaces) + 1),
                     "ip": public[c],
                     "network_id": net["public"], "vlan": 0},
                ]  # fmt: skip
                clusters.append({"id": c + 1, "frontend_id": fe_id, "vlan": vlan,
                                 "network_id": net["private"]})  # fmt: skip
                vm_rows.append({"host_id": fe_id, "container_id": container.id,
                                "cluster_id": c + 1, "slice": c})  # fmt: skip
                boots.append({"host_id": fe_id, "action": "os"})
                share = computes // vlans + (1 if c < computes % vlans else 0)
                for k in range(share):
                    hid = first + len(hosts)
                    hosts.append({"id": hid, "name": f"hosted-vm-{c}-{k}",
                                  "appliance_id": app["hosted-vm"]})  # fmt: skip
                    ifaces.append({"host_id": hid, "device": "eth0", "mac": _mac(len(ifaces)),
                                   "ip": None, "network_id": None, "vlan": vlan})  # fmt: skip
                    vm_rows.append({"host_id": hid, "container_id": container.id,
                                    "cluster_id": c + 1, "slice": 1000 + len(vm_rows)})  # fmt: skip
                    boots.append({"host_id": hid, "action": "install"})
            s.execute(Host.__table__.insert(), hosts)
            s.execute(HostBoot.__table__.insert(), boots)
            s.execute(Interface.__table__.insert(), [{"disable_kvm": False, **i} for i in ifaces])
            s.execute(Cluster.__table__.insert(), clusters)
            s.execute(VM.__table__.insert(), [{"mem_mb": 1024, **v} for v in vm_rows])
    finally:
        db.dispose()


def _mac(i: int) -> str:
    return f"76:77:6e:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu, done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--vms", type=int, default=500)
    ap.add_argument("--vlans", type=int, default=200)
    ap.add_argument("--profile", action="store_true", help="also print a cProfile of one run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flightdeck.db"
        t0 = time.perf_counter()
        build(path, a.vms, a.vlans)
        print(f"built {a.vms} VMs in {a.vlans} VLANs on {CONTAINER} in "
              f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
        env = dict(os.environ, FLIGHTDECK_DB=f"sqlite:///{path}")
        env.pop("FLIGHTDECK_DEBUG", None)
        cmds = {
            "floor: python -c 'import sqlalchemy'": [PY, "-c", "import sqlalchemy"],
            "reference: rocks list host <container>": [ROCKS, "list", "host", CONTAINER],
            "rocks report host network (networkd)": [ROCKS, "report", "host", "network",
                                                     CONTAINER],
            "rocks report host network (ifcfg)": [ROCKS, "report", "host", "network", CONTAINER,
                                                  "format=ifcfg"],
        }  # fmt: skip
        wall: dict[str, list[float]] = {k: [] for k in cmds}
        cpu: dict[str, list[float]] = {k: [] for k in cmds}
        outputs: dict[str, str] = {}
        for cmd in cmds.values():  # warm-up: page cache, bytecode
            timed(cmd, env)
        for i in range(a.runs):
            order = list(cmds) if i % 2 == 0 else list(reversed(cmds))
            for name in order:
                w, c, out = timed(cmds[name], env)
                wall[name].append(w)
                cpu[name].append(c)
                outputs.setdefault(name, out)
        networkd = outputs["rocks report host network (networkd)"]
        vlan_files = networkd.count(".netdev\n") - 2  # minus the bridges eth0 and eth1
        assert vlan_files == a.vlans, vlan_files
        ifcfg = outputs["rocks report host network (ifcfg)"]
        assert ifcfg.count("type vlan id") == a.vlans
        print(f"networkd: {networkd.count('# file ')} files ({a.vlans} VLAN .netdev); "
              f"ifcfg: {ifcfg.count('# file ')} files; {a.runs} runs each")  # fmt: skip
        print(f"{'':<40} {'wall median':>11} {'min':>7} {'cpu median':>11} {'min':>7}  (ms)")
        for name in cmds:
            print(f"{name:<40} {statistics.median(wall[name]):>11.1f} {min(wall[name]):>7.1f} "
                  f"{statistics.median(cpu[name]):>11.1f} {min(cpu[name]):>7.1f}")  # fmt: skip
        from flightdeck.db.engine import open_database
        from flightdeck.services.network import report_network

        db = open_database(f"sqlite:///{path}")
        try:
            for fmt in ("networkd", "ifcfg"):
                laps = []
                for _ in range(a.runs):
                    t1 = time.perf_counter()
                    report_network(db, [CONTAINER], fmt)
                    laps.append((time.perf_counter() - t1) * 1000)
                print(f"{'in process: plan + render (' + fmt + ')':<40} "
                      f"{statistics.median(laps):>11.1f} {min(laps):>7.1f}")  # fmt: skip
        finally:
            db.dispose()
        if a.profile:
            stats = Path(tmp) / "report.prof"
            subprocess.run(
                [PY, "-m", "cProfile", "-o", str(stats), ROCKS, "report", "host", "network",
                 CONTAINER],
                env=env, check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            import pstats

            pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
