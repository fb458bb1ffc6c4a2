"""`rocks apply cluster` of a 1,000-node spec, whole process, against `rocks add cluster`.

A physical frontend and 4 VM containers (each a libvirt test driver of its own node file, so
apply really asks each container for its running VMs). The spec is what `rocks report cluster`
prints for `rocks add cluster <ip> 1000`. Timed, interleaved, each on a fresh copy of the site:

- create: `rocks apply cluster file=<spec>` on the site without the cluster (1,000 computes
  to add), and the baseline in the same run, `rocks add cluster <ip> 1000` on the same copy;
- round trip: `rocks apply cluster file=<spec>` on the site with the cluster (nothing to do:
  the whole diff of 1,001 VMs, their disks, attributes and live state);
- `rocks report cluster` of the 1,000-node cluster.

Aim: apply of a 1,000-node spec under 3 s.

    .venv/bin/python bench/apply_cluster.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
CONTAINERS, COMPUTES = 4, 1000
FE = "frontend-0-0-0"
PUBLIC = "192.0.2.20"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        empty, full = Path(tmp, "empty"), Path(tmp, "full")
        empty.mkdir()
        env = dict(os.environ)
        env.pop("FLIGHTDECK_DB", None)

        def run(home: Path, *args: str) -> str:
            return subprocess.run(
                [ROCKS, *args], env={**env, "FLIGHTDECK_HOME": str(home)}, check=True,
                capture_output=True, text=True,
            ).stdout  # fmt: skip

        run(empty, "init", "frontend", "name=bench.example.org", "public-ip=192.0.2.10",
            "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
            "private-netmask=255.255.0.0")  # fmt: skip
        for c in range(CONTAINERS):
            name = f"vm-container-0-{c}"
            run(empty, "add", "host", name, "membership=VM Container", "rack=0", f"rank={c}")
            run(empty, "add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:02:{c:02x}",
                "ip=auto", "subnet=private")  # fmt: skip
            Path(tmp, f"{name}.xml").write_text("<node/>")
            run(empty, "set", "host", "attr", name, "libvirt_uri", f"test://{tmp}/{name}.xml")
        shutil.copytree(empty, full)
        run(full, "add", "cluster", PUBLIC, str(COMPUTES))
        spec = Path(tmp, "spec.yaml")
        spec.write_text(run(full, "report", "cluster", FE))
        assert spec.read_text().count("name: hosted-vm-") == COMPUTES
        assert "no changes" in run(full, "apply", "cluster", f"file={spec}")

        def fresh(src: Path) -> Path:
            dst = Path(tmp, "run")
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
            return dst

        def timed(src: Path, *args: str) -> tuple[float, str]:
            home = fresh(src)
            t0 = time.perf_counter()
            out = run(home, *args)
            return time.perf_counter() - t0, out

        times: dict[str, list[float]] = {k: [] for k in ("apply", "add", "noop", "report")}
        for i in range(a.runs):
            order = ["apply", "add"] if i % 2 == 0 else ["add", "apply"]
            for what in order:
                if what == "apply":
                    t, out = timed(empty, "apply", "cluster", f"file={spec}")
                    assert f"{COMPUTES + 1} to add" in out or "+ hosted-vm-" in out, out[-300:]
                else:
                    t, _ = timed(empty, "add", "cluster", PUBLIC, str(COMPUTES))
                times[what].append(t)
            t, out = timed(full, "apply", "cluster", f"file={spec}")
            assert "no changes" in out, out[-300:]
            times["noop"].append(t)
            t, _ = timed(full, "report", "cluster", FE)
            times["report"].append(t)

    def row(what: str, xs: list[float]) -> None:
        print(f"{what:<58} median {statistics.median(xs):6.2f} s  min {min(xs):6.2f} s")

    print(f"{CONTAINERS} containers, 1 frontend + {COMPUTES} computes, {a.runs} runs")
    row("rocks apply cluster, creating it (1,001 VMs)", times["apply"])
    row("baseline: rocks add cluster <ip> 1000 (same site)", times["add"])
    row("rocks apply cluster, the same spec again (no changes)", times["noop"])
    row("rocks report cluster", times["report"])


if __name__ == "__main__":
    main()
