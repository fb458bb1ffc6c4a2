"""CLI start-up against its floors, whole process, same run.

`rocks help` is compared with `python -c pass` (the interpreter's own start-up), and the
read-only listings on a small database (`rocks init frontend` only) with
`python -c 'import sqlalchemy'` (what any command that reads the database must pay). The
listings read Core tables and never import `sqlalchemy.orm` (`list host interface`, `list host
attr`, `list cluster`, `list host vm`, `list bootaction`, `list host boot`, `list appliance attr`,
`list host key`, `list host token`, `list airboss log` and `list host vlan live=no` too since
issue 20). Each command alternates with its floor run by run, after one warm-up each
(`_harness.interleaved`), so both share the machine's noise. Prints median and minimum wall
clock and CPU of N runs, in ms. The children load flightdeck from its bytecode cache, as an
installed copy does (`--no-pyc` keeps PYTHONDONTWRITEBYTECODE: every run then compiles it).

`--rocksd` starts a `rocksd` first and times each command served by it (cli/resident_server.py)
against the same floors; CPU is then the client's alone (the served child is rocksd's).

    .venv/bin/python bench/startup.py [--runs 20] [--rocksd]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import add_pyc_option, child_env, interleaved, pyc_line, start_rocksd

VENV_BIN = Path(sys.executable).parent
ROCKS = str(VENV_BIN / "rocks")
PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rocksd", action="store_true", help="time the commands served by rocksd")
    add_pyc_option(ap)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as home, contextlib.ExitStack() as stack:
        env = child_env(dict(os.environ, FLIGHTDECK_HOME=home), a.no_pyc)
        env.pop("FLIGHTDECK_DB", None)
        env["FLIGHTDECK_RESIDENT"] = "no"
        if a.rocksd:
            env = start_rocksd(home, env, stack)
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
        sqlalchemy_floor = ("python -c 'import sqlalchemy'", [PY, "-c", "import sqlalchemy"])
        pairs = [("rocks help", [ROCKS, "help"], "python -c pass", [PY, "-c", "pass"])]
        for words in (
            "list appliance",
            "list membership",
            "list network",
            "list attr",
            "list host",
            "list host interface",
            "list host attr",
            "list cluster",
            "list host vm",
            "list bootaction",
            "list host boot",
            "list appliance attr",
            "list host key",
            "list host token",
            "list airboss log",
            "list host vlan live=no",
        ):
            pairs.append((f"rocks {words}", [ROCKS, *words.split()], *sqlalchemy_floor))
        served = "; served by rocksd (cpu: the client's)" if a.rocksd else ""
        print(f"{pyc_line(a.no_pyc)}; {a.runs} runs each{served}")
        print(f"{'command':<32} {'wall median':>11} {'min':>7} {'cpu median':>11} {'min':>7}"
              "  (ms)  ratio (wall median)")  # fmt: skip
        for name, cmd, floor_name, floor in pairs:
            wall, cpu, _ = interleaved({"rocks": cmd, "baseline": floor}, env, a.runs)
            for label, key in ((floor_name, "baseline"), (name, "rocks")):
                wm, wmin = statistics.median(wall[key]), min(wall[key])
                cm, cmin = statistics.median(cpu[key]), min(cpu[key])
                ratio = statistics.median(wall["rocks"]) / statistics.median(wall["baseline"])
                tail = f"   {ratio:.2f}x" if key == "rocks" else ""
                print(f"{label:<32} {wm:>11.1f} {wmin:>7.1f} {cm:>11.1f} {cmin:>7.1f}{tail}")
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
