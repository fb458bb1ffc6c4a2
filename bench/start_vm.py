"""`rocks start host vm` against `virsh create` of the same domain XML, whole processes.

On the real libvirtd (qemu:///system, TCG). The VM is a small compute VM whose one NIC is on a
bridge this script creates (address-less, removed at the end); the disk volume is created by the
first `rocks start`, then both sides start the same XML from the same disk. Each sample is one
start (timed) followed by a stop (not timed); rocks and virsh are interleaved.

    .venv/bin/python bench/start_vm.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _harness import add_pyc_option, child_env, pyc_line

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
        with tempfile.TemporaryDirectory() as home:
            env = child_env(dict(os.environ, FLIGHTDECK_HOME=home), a.no_pyc)
            env.pop("FLIGHTDECK_DB", None)

            def run(*args: str) -> str:
                return subprocess.run(
                    [rocks, *args], env=env, check=True, capture_output=True, text=True
                ).stdout

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
            ours, theirs = [], []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                run("start", "host", "vm", vm)
                ours.append(time.perf_counter() - t0)
                run("stop", "host", "vm", vm)
                t0 = time.perf_counter()
                subprocess.run(
                    ["virsh", "-q", "-c", "qemu:///system", "create", str(xml_path)],
                    check=True,
                    capture_output=True,
                )
                theirs.append(time.perf_counter() - t0)
                subprocess.run(
                    ["virsh", "-q", "-c", "qemu:///system", "destroy", vm],
                    check=True,
                    capture_output=True,
                )
            run("remove", "host", "vm", vm)
        m_ours, m_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"{a.runs} runs each, real libvirtd, TCG, 128 MB guest; {pyc_line(a.no_pyc)}")
        print(
            f"rocks start host vm   median {m_ours * 1000:7.1f} ms  min {min(ours) * 1000:7.1f} ms"
        )
        print(
            f"virsh create          median {m_theirs * 1000:7.1f} ms"
            f"  min {min(theirs) * 1000:7.1f} ms"
        )
        print(f"ratio {m_ours / m_theirs:.2f}x (aim: within 1.3x)")
    finally:
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "destroy", vm], capture_output=True)
        subprocess.run(["virsh", "-q", "-c", "qemu:///system", "undefine", vm], capture_output=True)
        subprocess.run(["ip", "link", "del", bridge], check=False)


if __name__ == "__main__":
    main()
