"""CLI start-up against its floors, whole process, same run.

`rocks help` is compared with `python -c pass` (the interpreter's own start-up) and
`rocks list appliance` on a small database with `python -c 'import sqlalchemy'` (what any
command that reads the database must pay). Prints median and minimum of N runs, in ms.

    .venv/bin/python bench/startup.py [--runs 20]
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
ROCKS = str(VENV_BIN / "rocks")
PY = sys.executable


def timed(cmd: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), min(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, FLIGHTDECK_HOME=home)
        env.pop("FLIGHTDECK_DB", None)
        subprocess.run(
            [
                ROCKS,
                "init",
                "frontend",
                "name=bench.example.org",
                "public-ip=192.0.2.10",
                "public-netmask=255.255.255.0",
                "private-ip=10.1.1.1",
                "private-netmask=255.255.0.0",
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pairs = [
            ("rocks help", [ROCKS, "help"], "python -c pass", [PY, "-c", "pass"]),
            (
                "rocks list appliance",
                [ROCKS, "list", "appliance"],
                "python -c 'import sqlalchemy'",
                [PY, "-c", "import sqlalchemy"],
            ),
        ]
        print(f"{'command':<32} {'median ms':>10} {'min ms':>8}   ratio (median)")
        for name, cmd, floor_name, floor in pairs:
            # Interleave to share the machine's noise.
            fm, fmin = timed(floor, a.runs, env)
            cm, cmin = timed(cmd, a.runs, env)
            print(f"{floor_name:<32} {fm:>10.1f} {fmin:>8.1f}")
            print(f"{name:<32} {cm:>10.1f} {cmin:>8.1f}   {cm / fm:.2f}x")


if __name__ == "__main__":
    main()
