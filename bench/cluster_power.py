"""`rocks set cluster power <fe> action=on` with 64 computes on 8 containers (libvirt test driver).

The control plane of the ordered power-on: the frontend started, then 64 computes, at most 4
at once per container (the default `kvm_power_parallel`); the frontend's readiness is excluded
(`wait=no`: on a real site that is the frontend's own boot). Each container is a libvirt test
driver of its own node file, so a fresh `rocks` process really opens 8 connections and defines
and starts 65 domains (with their disk volumes).

Baselines in the same run, in process on the same database: the original's loop (one node
after the other, `set host power` per node with its `delay=1` s between nodes: the serial
work plus 64 s), and the same serial loop without the sleep (what parallelism alone buys).

    .venv/bin/python bench/cluster_power.py [--runs 5]
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

from _harness import test_driver_site

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
CONTAINERS, COMPUTES = 8, 64
FE = "frontend-0-0-0"
#: The original's `delay=` default between nodes (seconds).
ORIGINAL_DELAY = 1.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FLIGHTDECK_HOME=home)
        env.pop("FLIGHTDECK_DB", None)

        def run(*args: str) -> str:
            return subprocess.run(
                [ROCKS, *args], env=env, check=True, capture_output=True, text=True
            ).stdout

        test_driver_site(home, env, CONTAINERS, COMPUTES)
        # The frontend boots the original's installer (a kernel), not the frontend image.
        run("set", "bootaction", "install vm frontend", "kernel=/boot/fd/vmlinuz",
            "ramdisk=/boot/fd/initrd.gz")  # fmt: skip
        run("set", "host", "installaction", FE, "action=install vm frontend")

        # Whole process: a fresh rocks each run (the test driver starts from its node file).
        ours = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            out = run("set", "cluster", "power", FE, "action=on", "wait=no")
            ours.append(time.perf_counter() - t0)
            assert out.splitlines()[-1] == f"{FE} on: {COMPUTES + 1} started", out[-300:]

        # In process: ours again, then the serial loop (with and without the original's delay).
        os.environ["FLIGHTDECK_HOME"] = home
        from flightdeck.db.engine import open_database
        from flightdeck.services import clusterpower as cp
        from flightdeck.services import lifecycle

        db = open_database()
        nodes = [FE, *sorted(n for n in lifecycle.statuses(db) if n != FE)]
        assert len(nodes) == COMPUTES + 1

        def stop_all() -> None:
            done = cp.power_cluster(db, FE, "off", grace=0)
            assert not done.failed, done.failed

        inproc = []
        for _ in range(a.runs):
            stop_all()
            t0 = time.perf_counter()
            done = cp.power_cluster(db, FE, "on", wait=False)
            inproc.append(time.perf_counter() - t0)
            assert not done.failed
        serial = []
        for _ in range(max(1, a.runs // 2)):
            stop_all()
            t0 = time.perf_counter()
            for n in nodes:
                (o,) = lifecycle.start_vms(db, [n])
                assert o.ok, o.message
            serial.append(time.perf_counter() - t0)
        stop_all()
        t0 = time.perf_counter()
        for i, n in enumerate(nodes):
            (o,) = lifecycle.start_vms(db, [n])
            assert o.ok, o.message
            if i < len(nodes) - 1:
                time.sleep(ORIGINAL_DELAY)
        original = time.perf_counter() - t0
        db.dispose()

    def row(what: str, xs: list[float]) -> None:
        print(f"{what:<58} median {statistics.median(xs):7.2f} s  min {min(xs):7.2f} s")

    print(f"{CONTAINERS} containers, 1 frontend + {COMPUTES} computes, {a.runs} runs")
    row("rocks set cluster power action=on wait=no (process)", ours)
    row("power_cluster on, wait=no (in process)", inproc)
    row("serial loop, one node after the other (in process)", serial)
    row(f"the original's loop: serial + {ORIGINAL_DELAY:g} s between nodes (1 run)", [original])


if __name__ == "__main__":
    main()
