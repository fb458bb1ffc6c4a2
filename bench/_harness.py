"""What the whole-process benchmarks share: timing a child process and printing the table."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def add_pyc_option(ap: argparse.ArgumentParser) -> None:
    """`--no-pyc`: keep PYTHONDONTWRITEBYTECODE in the children's environment. By default it
    is dropped, so a child process loads flightdeck's modules from the bytecode cache, as an
    installed Flightdeck does, instead of compiling every module on every run (~20-30 ms of
    a `rocks` command here: this session's shells set the variable)."""
    ap.add_argument(
        "--no-pyc",
        action="store_true",
        help="keep PYTHONDONTWRITEBYTECODE (every run recompiles flightdeck; an install does not)",
    )


def child_env(env: dict[str, str], no_pyc: bool) -> dict[str, str]:
    """`env` for the measured children: without PYTHONDONTWRITEBYTECODE unless `no_pyc`."""
    out = dict(env)
    if not no_pyc:
        out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def pyc_line(no_pyc: bool) -> str:
    return f"bytecode cache: {'off (--no-pyc)' if no_pyc else 'on'}"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall and CPU (user + system of the child) milliseconds of one run, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    wall = (time.perf_counter() - t0) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu, done.stdout


def report(
    title: str, label: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]
) -> None:
    """Median and minimum, wall clock and CPU, baseline first; ratio of the medians."""
    print(f"{title:<34} {'wall median':>11} {'min':>7} {'cpu median':>11} {'min':>7}  (ms)")
    rows = (("baseline: stdlib sqlite3 process", "baseline"), (label, "rocks"))
    for text, key in rows:
        wm, wmin = statistics.median(wall[key]), min(wall[key])
        cm, cmin = statistics.median(cpu[key]), min(cpu[key])
        print(f"{text:<34} {wm:>11.1f} {wmin:>7.1f} {cm:>11.1f} {cmin:>7.1f}")
    ratio = statistics.median(wall["rocks"]) / statistics.median(wall["baseline"])
    cratio = statistics.median(cpu["rocks"]) / statistics.median(cpu["baseline"])
    print(f"{'ratio rocks / baseline':<34} {ratio:>10.2f}x {'':>7} {cratio:>10.2f}x")


def interleaved(
    cmds: dict[str, list[str]], env: dict[str, str], runs: int
) -> tuple[dict[str, list[float]], dict[str, list[float]], dict[str, str]]:
    """Time `rocks` and `baseline` alternately (after one warm-up each, for the page cache and
    bytecode), so both share the machine's noise; wall and CPU ms per run, and first outputs."""
    wall: dict[str, list[float]] = {name: [] for name in cmds}
    cpu: dict[str, list[float]] = {name: [] for name in cmds}
    outputs: dict[str, str] = {}
    for cmd in cmds.values():
        timed(cmd, env)
    for i in range(runs):
        names = ["rocks", "baseline"] if i % 2 == 0 else ["baseline", "rocks"]
        for name in names:
            w, c, out = timed(cmds[name], env)
            wall[name].append(w)
            cpu[name].append(c)
            outputs.setdefault(name, out)
    return wall, cpu, outputs


def start_rocksd(home: str, env: dict[str, str], stack: contextlib.ExitStack) -> dict[str, str]:
    """A `rocksd` (stopped when `stack` closes) listening on a socket in `home`, once it
    listens; the environment of `env` in which `rocks` is served by it."""
    sock = f"{home}/run/rocks.sock"
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "rocksd"), "--socket", sock],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    stack.callback(server.wait)
    stack.callback(server.terminate)
    while not os.path.exists(sock):  # rocksd imports for ~1-2 s, then listens
        if server.poll() is not None:
            raise SystemExit("rocksd did not start")
        time.sleep(0.05)
    served = dict(env, FLIGHTDECK_RESIDENT_SOCKET=sock)
    served.pop("FLIGHTDECK_RESIDENT", None)
    return served


def start_airboss(
    home: Path, env: dict[str, str], *args: str, timeout: float = 30.0, name: str = "airboss"
) -> tuple[subprocess.Popen[bytes], str]:
    """`airboss serve` on a free loopback port for a benchmark; the process and its address.

    Its pid, state (`<name>.json`) and log files go to `home`; `args` are more `serve`
    arguments (e.g. `--rate 1000000`). The caller terminates the process.
    """
    pid_file = home / f"{name}.pid"
    state = pid_file.with_suffix(".json")
    log = home / f"{name}.log"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "airboss"), "serve", "--listen", "127.0.0.1:0",
         "--pid-file", str(pid_file), *args],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists():
            return proc, str(json.loads(state.read_text())["listen"])
        if proc.poll() is not None:
            raise SystemExit(f"airboss exited: {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"airboss did not start within {timeout:g} s: see {log}")


def test_driver_site(home: str, env: dict[str, str], containers: int, computes: int) -> None:
    """A fresh site under `home`: a frontend, `containers` VM containers each a libvirt test
    driver of its own node file, and one virtual cluster of `computes` computes over them."""
    rocks = str(Path(sys.executable).parent / "rocks")

    def run(*args: str) -> None:
        subprocess.run([rocks, *args], env=env, check=True, capture_output=True, text=True)

    run("init", "frontend", "name=bench.example.org", "public-ip=192.0.2.10",
        "public-netmask=255.255.255.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0")
    run("set", "attr", "kvm_disk_dir", f"{home}/disks")
    run("set", "host", "attr", "frontend-0-0", "libvirt_uri", f"test://{home}/fe.xml")
    Path(home, "fe.xml").write_text("<node/>")
    names = [f"vm-container-0-{c}" for c in range(containers)]
    for c, name in enumerate(names):
        run("add", "host", name, "membership=VM Container", "rack=0", f"rank={c}")
        run("add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:01:{c:02x}",
            "ip=auto", "subnet=private")  # fmt: skip
        Path(home, f"{name}.xml").write_text("<node/>")
        run("set", "host", "attr", name, "libvirt_uri", f"test://{home}/{name}.xml")
    run("add", "cluster", "192.0.2.20", str(computes), "container-hosts=" + " ".join(names),
        "mem-per-compute=256", "disk-per-compute=1", "disk-per-frontend=1")
