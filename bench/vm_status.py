"""`rocks list host vm status=y` over 1,000 VMs on 20 containers, whole process.

Each container is a libvirt test driver whose node file already holds its 50 running domains,
so a fresh `rocks` process really opens 20 connections (in parallel) and lists 1,000 states.
Baseline in the same run: a Python process that opens the same 20 URIs one after the other
with libvirt-python and prints every domain's state (what a naive serial loop costs).

    .venv/bin/python bench/vm_status.py [--runs 5]
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

VENV_BIN = Path(sys.executable).parent
CONTAINERS, PER = 20, 50

BASELINE = """
import sys, libvirt
libvirt.registerErrorHandler(lambda *a: None, None)
n = 0
for uri in sys.argv[1:]:
    c = libvirt.open(uri)
    for d in c.listAllDomains(0):
        print(d.name(), d.state()[0]); n += 1
print(n)
"""


def domain(name: str) -> str:
    return (
        f"<domain type='test'><name>{name}</name><memory>262144</memory>"
        "<os><type>hvm</type></os></domain>"
    )


def timed(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    rocks = str(VENV_BIN / "rocks")
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FLIGHTDECK_HOME=home)
        env.pop("FLIGHTDECK_DB", None)

        def run(*args: str) -> None:
            subprocess.run([rocks, *args], env=env, check=True, stdout=subprocess.DEVNULL)

        run(
            "init",
            "frontend",
            "name=bench.example.org",
            "public-ip=192.0.2.10",
            "public-netmask=255.255.255.0",
            "private-ip=10.1.1.1",
            "private-netmask=255.255.0.0",
        )
        uris = []
        for c in range(CONTAINERS):
            name = f"vm-container-0-{c}"
            run("add", "host", name, "membership=VM Container", "rack=0", f"rank={c}")
            node = Path(home) / f"{name}.xml"
            uri = f"test://{node}"
            uris.append(uri)
            run("set", "host", "attr", name, "libvirt_uri", uri)
        # The VMs: one per container per command (add host vm takes many containers).
        containers = [f"vm-container-0-{c}" for c in range(CONTAINERS)]
        for _ in range(PER):
            run("add", "host", "vm", *containers, "membership=Compute")
        for c in range(CONTAINERS):
            names = [f"compute-0-{c}-{s}" for s in range(PER)]
            (Path(home) / f"vm-container-0-{c}.xml").write_text(
                "<node>" + "".join(domain(n) for n in names) + "</node>"
            )
        out = subprocess.run(
            [rocks, "list", "host", "vm", "status=y", "output-header=no"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        active = sum(1 for line in out.splitlines() if line.rstrip().endswith("active"))
        assert active == CONTAINERS * PER, f"expected {CONTAINERS * PER} active, got {active}"
        fd, base = [], []
        for _ in range(a.runs):
            fd += timed([rocks, "list", "host", "vm", "status=y"], env, 1)
            base += timed([sys.executable, "-c", BASELINE, *uris], env, 1)
        print(f"{CONTAINERS} containers x {PER} VMs = {CONTAINERS * PER} VMs, {a.runs} runs")
        print(
            f"rocks list host vm status=y   median {statistics.median(fd):.3f} s"
            f"  min {min(fd):.3f} s"
        )
        print(
            f"serial libvirt-python loop    median {statistics.median(base):.3f} s"
            f"  min {min(base):.3f} s"
        )


if __name__ == "__main__":
    main()
