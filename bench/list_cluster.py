"""`rocks list cluster` on 100 virtual clusters of 32 nodes against the same listing in plain SQL.

The database (espresso, 4 VM containers, 100 clusters of 32 computes: 3,300 VMs) is built once
in process with the cluster service. Then, interleaved, the whole `rocks list cluster` process
and a separate stdlib-sqlite3 process that runs the equivalent queries and prints the same table
(checked byte for byte after the first run). Prints the median and minimum of N runs in ms,
wall clock and CPU (user + system of the child). Aim: under 1 s (wall).

    .venv/bin/python bench/list_cluster.py [--runs 9] [--clusters 100] [--nodes 32]
"""

from __future__ import annotations

import argparse
import os
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
q = lambda sql, *a: db.execute(sql, a).fetchall()
phys_name = q("SELECT value FROM global_attributes WHERE name = 'Kickstart_PrivateHostname'")[0][0]
phys = q("SELECT id FROM hosts WHERE name = ?", phys_name)[0][0]
public = q("SELECT id FROM networks WHERE name = 'public'")[0][0]
def label(host_id, name):
    r = q("SELECT name FROM interfaces WHERE host_id = ? AND network_id = ? ORDER BY id",
          host_id, public)
    return r[0][0] if r and r[0][0] else name
rows = [(label(phys, phys_name), "", "physical")]
rows += [("", n, "physical") for (n,) in q(
    "SELECT name FROM hosts WHERE id != ? AND id NOT IN (SELECT host_id FROM vms) "
    "ORDER BY rack, rank, name", phys)]
rows += [("", n, "VM") for (n,) in q(
    "SELECT h.name FROM hosts h JOIN vms v ON v.host_id = h.id WHERE v.cluster_id IS NULL "
    "ORDER BY h.rack, h.rank, h.name")]
members = {}
for cid, name in q(
    "SELECT v.cluster_id, h.name FROM vms v JOIN hosts h ON h.id = v.host_id "
    "JOIN clusters c ON c.id = v.cluster_id WHERE h.id != c.frontend_id "
    "ORDER BY h.rack, h.rank, h.name"):
    members.setdefault(cid, []).append(name)
for cid, fe_id, fe_name in q(
    "SELECT c.id, c.frontend_id, h.name FROM clusters c JOIN hosts h ON h.id = c.frontend_id "
    "ORDER BY c.vlan"):
    rows.append((label(fe_id, fe_name), "", "VM"))
    rows += [("", n, "VM") for n in members.get(cid, [])]
head = ["FRONTEND", "CLIENT NODES", "TYPE"]
cells = [[o + ":", n, t] for o, n, t in rows]
w = [max(len(head[i]), *(len(r[i]) for r in cells)) for i in range(3)]
out = [" ".join(h.ljust(x) for h, x in zip(head, w)).rstrip()]
for r in cells:
    out.append(" ".join((c or "-" * x).ljust(x) for c, x in zip(r, w)).rstrip())
sys.stdout.write("\n".join(out) + "\n")
"""


def build(home: Path, clusters: int, nodes: int) -> Path:
    path = home / "flightdeck.db"
    url = f"sqlite:///{path}"
    env = dict(os.environ, FLIGHTDECK_DB=url)

    def rocks(*argv: str) -> None:
        subprocess.run([ROCKS, *argv], env=env, check=True, stdout=subprocess.DEVNULL)

    rocks(
        "init",
        "frontend",
        "name=espresso.rocksclusters.org",
        "public-ip=137.110.96.1",
        "public-netmask=255.255.240.0",
        "private-ip=10.1.1.1",
        "private-netmask=255.255.0.0",
    )
    for rank in range(4):
        rocks("add", "host", f"vm-container-0-{rank}", "membership=VM Container", f"rank={rank}")
    from flightdeck.db.engine import open_database
    from flightdeck.services.clusters import ClusterRequest, add_cluster

    db = open_database(url)
    try:
        for i in range(clusters):
            add_cluster(db, ClusterRequest(ip=f"137.110.97.{i + 1}", num_computes=nodes))
    finally:
        db.dispose()
    return path




def main() -> None:
    ap = argparse.ArgumentParser()
    add_pyc_option(ap)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=32)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = build(Path(tmp), a.clusters, a.nodes)
        print(f"built {a.clusters} clusters of {a.nodes} in {time.perf_counter() - t0:.1f} s")
        env = dict(os.environ, FLIGHTDECK_DB=f"sqlite:///{path}")
        env.pop("FLIGHTDECK_DEBUG", None)
        env = child_env(env, a.no_pyc)  # an installed rocks has its bytecode
        cmds = {"rocks": [ROCKS, "list", "cluster"], "baseline": [PY, "-c", BASELINE, str(path)]}
        wall, cpu, outputs = interleaved(cmds, env, a.runs)
        assert outputs["rocks"] == outputs["baseline"], "the two listings differ"
        lines = outputs["rocks"].count("\n")
        print(f"both print the same {lines} lines")
        print(f"{pyc_line(a.no_pyc)}; {a.runs} runs each")
        report(f"list cluster ({a.clusters} x {a.nodes})", "rocks list cluster", wall, cpu)
        rm = statistics.median(wall["rocks"])
        verdict = "met" if rm < 1000 else "MISSED"
        print(f"aim: under 1000 ms -> {verdict} (median wall {rm:.0f} ms)")


if __name__ == "__main__":
    main()
