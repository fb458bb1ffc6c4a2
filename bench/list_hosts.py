"""`rocks list host` on 10,000 hosts against the same listing in plain SQL.

The database (espresso plus N compute hosts, each with one interface on `private`) is built once,
in process: `init_frontend`, then bulk SQLAlchemy Core inserts in one transaction. Then,
interleaved, the whole `rocks list host` process (the venv's `rocks` executable) and a separate
stdlib-sqlite3 process that runs the equivalent SELECT and prints the same table (checked byte
for byte), so both pay interpreter start-up. Prints the median and minimum of N runs in ms.
Aim: 10,000 hosts listed in under 1 s, whole process.

    .venv/bin/python bench/list_hosts.py [--runs 9] [--hosts 10000] [--profile]

`--profile` also prints where `rocks list host` spends its time: `-X importtime` (the slowest
imports, cumulative) and cProfile of the command (the top functions, cumulative).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import add_pyc_option, child_env, interleaved, pyc_line, report

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
PY = sys.executable

BASELINE = r"""
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = db.execute(
    "SELECT h.name, a.membership, h.cpus, h.rack, h.rank, h.run_action, h.install_action, "
    "h.comment FROM hosts h JOIN appliances a ON a.id = h.appliance_id "
    "ORDER BY h.rack, h.rank, h.name").fetchall()
head = ["HOST", "MEMBERSHIP", "CPUS", "RACK", "RANK", "RUNACTION", "INSTALLACTION", "COMMENT"]
cells = [[r[0] + ":"] + ["" if c is None else str(c) for c in r[1:]] for r in rows]
w = [max(len(head[i]), *(len(r[i]) for r in cells)) for i in range(len(head))]
out = [" ".join(h.ljust(x) for h, x in zip(head, w)).rstrip()]
for r in cells:
    out.append(" ".join((c or "-" * x).ljust(x) for c, x in zip(r, w)).rstrip())
sys.stdout.write("\n".join(out) + "\n")
"""


def build(path: Path, hosts: int) -> None:
    """espresso, then `hosts` computes (rack = i // 100, rank = i % 100) with eth0 each."""
    from sqlalchemy import select

    from flightdeck.db.engine import open_database
    from flightdeck.db.models import Appliance, Host, HostBoot, Interface, Network
    from flightdeck.services.frontend import FrontendSpec, init_frontend

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
            compute = s.scalar(select(Appliance.id).where(Appliance.name == "compute"))
            private = s.scalar(select(Network.id).where(Network.name == "private"))
            first = s.scalar(select(Host.id).order_by(Host.id.desc()).limit(1)) or 0
            top = int(ipaddress.IPv4Address("10.1.255.254"))
            names = [f"compute-{i // 100}-{i % 100}" for i in range(hosts)]
            s.execute(
                Host.__table__.insert(),
                [
                    {"id": first + 1 + i, "name": n, "appliance_id": compute, "rack": i // 100,
                     "rank": i % 100, "cpus": 1 + i % 16, "os": "linux", "run_action": "os",
                     "install_action": "install",
                     "comment": "GPU node" if i % 10 == 0 else None}
                    for i, n in enumerate(names)
                ],
            )  # fmt: skip
            s.execute(
                HostBoot.__table__.insert(),
                [{"host_id": first + 1 + i, "action": "os"} for i in range(hosts)],
            )
            s.execute(
                Interface.__table__.insert(),
                [
                    {"host_id": first + 1 + i, "device": "eth0",
                     "mac": f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                     "ip": str(ipaddress.IPv4Address(top - i)), "network_id": private,
                     "name": n, "disable_kvm": False}
                    for i, n in enumerate(names)
                ],
            )  # fmt: skip
    finally:
        db.dispose()




def profile(env: dict[str, str], tmp: Path) -> None:
    """Where the time goes: the slowest imports, then the command's own functions."""
    done = subprocess.run(
        [PY, "-X", "importtime", ROCKS, "list", "host"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    imports = []
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            imports.append((int(m.group(2)), len(m.group(3)), m.group(4)))
    total = sum(c for c, depth, _ in imports if depth == 1)
    print(f"\n-X importtime: top-level imports total {total / 1000:.0f} ms; slowest (cumulative):")
    for cum, _depth, name in sorted(imports, reverse=True)[:15]:
        print(f"  {cum / 1000:8.1f} ms  {name}")
    stats = tmp / "list_host.prof"
    subprocess.run(
        [PY, "-m", "cProfile", "-o", str(stats), ROCKS, "list", "host"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    import pstats

    print("\ncProfile of rocks list host (top 25 by cumulative time):")
    pstats.Stats(str(stats)).sort_stats("cumulative").print_stats(25)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true", help="also show imports and cProfile")
    add_pyc_option(ap)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flightdeck.db"
        t0 = time.perf_counter()
        build(path, a.hosts)
        print(f"built {a.hosts} hosts with one interface each in {time.perf_counter() - t0:.1f} s")
        env = dict(os.environ, FLIGHTDECK_DB=f"sqlite:///{path}")
        env.pop("FLIGHTDECK_DEBUG", None)
        env = child_env(env, a.no_pyc)  # an installed rocks has its bytecode
        cmds = {"rocks": [ROCKS, "list", "host"], "baseline": [PY, "-c", BASELINE, str(path)]}
        wall, cpu, outputs = interleaved(cmds, env, a.runs)
        assert outputs["rocks"] == outputs["baseline"], "the two listings differ"
        lines = outputs["rocks"].count("\n")
        assert lines == a.hosts + 2, lines  # header, the frontend, the computes
        print(f"both print the same {lines} lines")
        print(f"{pyc_line(a.no_pyc)}; {a.runs} runs each")
        report(f"list host ({a.hosts} hosts)", "rocks list host", wall, cpu)
        rm = statistics.median(wall["rocks"])
        verdict = "met" if rm < 1000 else "MISSED"
        print(f"aim: under 1000 ms -> {verdict} (median wall {rm:.0f} ms)")
        if a.profile:
            profile(env, Path(tmp))


if __name__ == "__main__":
    main()
