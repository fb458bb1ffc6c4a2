"""`rocks start host vm` against `virsh create` of the same domain XML, whole processes.

On the real libvirtd (qemu:///system, TCG). The VM is a small compute VM whose one NIC is on a
bridge this script creates (address-less, removed at the end); the disk volume is created by the
warm-up `rocks start`, then every side starts the same XML from the same disk. Each sample is one
start (timed) followed by a stop (not timed); the three take turns going first. The second
baseline, `virsh define; start` in one virsh process, is what rocks asks of libvirt (a persistent
domain, as the original's), where `virsh create` starts a transient one. `rocks` is timed twice:
on its own (FLIGHTDECK_RESIDENT=no: it imports everything itself) and served by a `rocksd` this
script starts (cli/resident_server.py: the same command in a child of a process that has it all
imported).

    .venv/bin/python bench/start_vm.py [--runs 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _harness import add_pyc_option, child_env, pyc_line, start_rocksd, timed

VENV_BIN = Path(sys.executable).parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    add_pyc_option(ap)
    a = ap.parse_args()
    rocks = str(VENV_BIN / "rocks")
    bridge = f"fdb{secrets.token_hex(3)}"
    subprocess.run(["ip", "link", "add", "name", bridge, "type", "bridge"], check=True)
    subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
    vm = f"fdbench-{secrets.token_hex(3)}"
    try:
        with tempfile.TemporaryDirectory() as home, contextlib.ExitStack() as stack:
            env = child_env(dict(os.environ, FLIGHTDECK_HOME=home), a.no_pyc)
            env.pop("FLIGHTDECK_DB", None)
            env["FLIGHTDECK_RESIDENT"] = "no"

            def run(*args: str) -> str:
                done = subprocess.run([rocks, *args], env=env, capture_output=True, text=True)
                if done.returncode:
                    raise SystemExit(f"rocks {' '.join(args)}: {done.stderr.strip()}")
                return done.stdout

            run(
                "init",
                "frontend",
                "name=bench.example.org",
                "public-ip=192.0.2.10",
                "public-netmask=255.255.255.0",
                "private-ip=10.1.1.1",
                "private-netmask=255.255.0.0",
                f"private-iface={bridge}",
            )
            run("set", "attr", "kvm_domain_type", "qemu")
            run("set", "attr", "kvm_disk_dir", f"{home}/disks")
            run(
                "add",
                "host",
                "vm",
                "frontend-0-0",
                "membership=Compute",
                f"name={vm}",
                "mem=128",
                "disksize=1",
            )
            xml_path = Path(home) / "domain.xml"
            xml_path.write_text(run("report", "host", "vm", "config", vm))
            virsh = ["virsh", "-q", "-c", "qemu:///system"]
            # What rocks asks of libvirt (a persistent domain: define, then start), in one
            # virsh process: the second baseline, for where the time goes.
            persistent = [*virsh, f"define {xml_path}; start {vm}"]
            times: dict[str, list[float]] = {
                "rocks": [], "rocksd": [], "create": [], "define+start": []
            }  # fmt: skip

            def sample(key: str, cmd: list[str], with_env: dict[str, str] = env) -> None:
                times[key].append(timed(cmd, with_env)[0] / 1000)  # _harness.timed: wall ms

            run("start", "host", "vm", vm)  # warm-up: makes the disk volume
            run("stop", "host", "vm", vm)
            served = start_rocksd(home, env, stack)
            for i in range(a.runs):
                order = ["rocks", "rocksd", "create", "define+start"]
                for key in order[i % 4 :] + order[: i % 4]:  # each goes first in turn
                    if key in ("rocks", "rocksd"):
                        start = [rocks, "start", "host", "vm", vm]
                        sample(key, start, served if key == "rocksd" else env)
                        run("stop", "host", "vm", vm)
                    elif key == "create":
                        sample(key, [*virsh, "create", str(xml_path)])
                        subprocess.run([*virsh, "destroy", vm], check=True, capture_output=True)
                    else:
                        sample(key, persistent)
                        subprocess.run([*virsh, f"destroy {vm}; undefine {vm}"], check=True,
                                       capture_output=True)  # fmt: skip
            run("remove", "host", "vm", vm)
        print(f"{a.runs} runs each, real libvirtd, TCG, 128 MB guest; {pyc_line(a.no_pyc)}")
        base = statistics.median(times["create"])
        for key, label in (("rocks", "rocks start host vm"), ("rocksd", "  served by rocksd"),
                           ("create", "virsh create"),
                           ("define+start", "virsh define; start")):  # fmt: skip
            m = statistics.median(times[key])
            print(f"{label:<22}median {m * 1000:7.1f} ms  min {min(times[key]) * 1000:7.1f} ms"
                  f"  {m / base:.2f}x virsh create")  # fmt: skip
        print("aim: rocks start host vm within 1.3x virsh create")
    finally:
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy", vm], capture_output=True)
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "undefine", vm], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], check=False)


if __name__ == "__main__":
    main()
