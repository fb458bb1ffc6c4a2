"""A VM container that stops answering: named in one line, in bounded time, nothing half-done.

The container is a real libvirtd (the lab's second daemon, tests/e2e/lab.py) reached through
libvirt's remote driver, frozen with SIGSTOP: its socket still accepts, nothing answers, which
is what a hung daemon or dropped traffic looks like from here. A second container (libvirt's
test driver) goes on working. Two moments: a connection already open when the daemon froze
(mid-operation: libvirt's keepalive must close it), and a command started afterwards (the
connect timeout).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.e2e_common import lab, on_libvirtd

netns_lab = lab.netns_lab



FROZEN = "vm-container-0-0"
HEALTHY = "vm-container-0-1"
#: kvm_connect_timeout of the site (s): keepalive closes a silent connection within about it.
TIMEOUT = 4
#: What "bounded" means here: the timeout, the listing's own margin (5 s), and slack for a
#: loaded CI machine; without the bounds these calls block until TCP gives up (minutes) or
#: forever (a frozen local socket).
BOUND = 40.0


@pytest.fixture
def frozen_site(
    rocks: Any, netns_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, list[str]]]:
    """Two containers (the lab's libvirtd, a test driver) with two VMs each; yields the VMs
    by container. The lab's daemon is thawed again before the lab is cleaned up."""
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    daemon = netns_lab.libvirtd
    daemon.start()
    rocks.ok("init", "frontend", "name=faults.example.org", "public-ip=192.0.2.10",
             "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
             "private-netmask=255.255.0.0")  # fmt: skip
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok("set", "attr", "kvm_connect_timeout", str(TIMEOUT))
    uris = {"frontend-0-0": _test_driver(tmp_path, "fe"), FROZEN: daemon.uri,
            HEALTHY: _test_driver(tmp_path, "c1")}  # fmt: skip
    for rank, name in enumerate((FROZEN, HEALTHY)):
        rocks.ok("add", "host", name, "membership=VM Container", "rack=0", f"rank={rank}")
        rocks.ok("add", "host", "interface", name, "eth0", f"mac=52:54:00:fd:0a:0{rank}",
                 "ip=auto", "subnet=private")  # fmt: skip
    for host, uri in uris.items():
        rocks.ok("set", "host", "attr", host, "libvirt_uri", uri)
    for container in (FROZEN, HEALTHY):
        for _ in range(2):
            rocks.ok("add", "host", "vm", container, "membership=Compute")
    vms: dict[str, list[str]] = {}
    for row in _rows(rocks("list", "host", "vm", "output-format=json").out):
        vms.setdefault(row["host"], []).append(row["vm_host"])
    assert set(vms) == {FROZEN, HEALTHY} and all(len(v) == 2 for v in vms.values()), vms
    try:
        yield vms
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            os.kill(daemon.proc.pid, signal.SIGCONT)


def _test_driver(tmp: Path, name: str) -> str:
    node = tmp / f"{name}.xml"
    node.write_text("<node/>\n")
    return f"test://{node}"


def _rows(out: str) -> list[dict[str, Any]]:
    return list(json.loads(out)) if out.strip() else []


def _freeze(netns_lab: Any) -> None:
    proc = netns_lab.libvirtd.proc
    assert proc is not None and proc.poll() is None
    os.kill(proc.pid, signal.SIGSTOP)


@on_libvirtd
def test_a_container_frozen_mid_operation_is_named_and_the_others_go_on(
    rocks: Any, netns_lab: Any, frozen_site: dict[str, list[str]]
) -> None:
    vms = frozen_site
    # The connection to the lab's daemon is opened, and cached, by a first listing.
    states = {r["vm_host"]: r["status"] for r in _rows(
        rocks.ok("list", "host", "vm", "status=y", "output-format=json"))}  # fmt: skip
    assert {states[v] for v in vms[FROZEN]} == {"nostate"}, states
    before = rocks.ok("list", "host", "vm", "output-format=json")
    _freeze(netns_lab)

    t0 = time.monotonic()
    listed = rocks("list", "host", "vm", "status=y", "output-format=json")
    listing = time.monotonic() - t0
    assert listed.code == 0, listed.err
    states = {r["vm_host"]: r["status"] for r in _rows(listed.out)}
    assert {states[v] for v in vms[FROZEN]} == {"nostate-error"}, states
    assert {states[v] for v in vms[HEALTHY]} == {"nostate"}, states
    assert listing < BOUND, f"the listing took {listing:.1f} s"

    t0 = time.monotonic()
    started = rocks("start", "host", "vm", vms[FROZEN][0], vms[HEALTHY][0])
    starting = time.monotonic() - t0
    assert started.code == 1, (started.out, started.err)
    assert "Traceback" not in started.err
    errors = [line for line in started.err.splitlines() if line.startswith("error - ")]
    assert any(f"container {FROZEN} does not answer" in line for line in errors), started.err
    assert errors[-1] == f"error - 1 of 2 VM(s) failed: {vms[FROZEN][0]}", started.err
    assert vms[HEALTHY][0] in started.out, started.out
    assert starting < BOUND, f"the start took {starting:.1f} s"
    # Nothing half-done: the database is as it was (the state is libvirt's, not a column).
    assert rocks.ok("list", "host", "vm", "output-format=json") == before
    print(f"\nfrozen container: listing {listing:.1f} s, start {starting:.1f} s "
          f"(kvm_connect_timeout {TIMEOUT} s)")  # fmt: skip


@on_libvirtd
def test_a_command_started_after_the_freeze_waits_the_connect_timeout_only(
    rocks: Any, netns_lab: Any, frozen_site: dict[str, list[str]], tmp_path: Path
) -> None:
    vms = frozen_site
    _freeze(netns_lab)
    env = dict(os.environ, FLIGHTDECK_DB=rocks.url, FLIGHTDECK_HOME=str(tmp_path))
    t0 = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("rocks")), "list", "host", "vm", "status=y",
         "output-format=json"],
        env=env, capture_output=True, text=True, timeout=BOUND * 3, check=False,
    )  # fmt: skip
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    states = {r["vm_host"]: r["status"] for r in _rows(done.stdout)}
    assert {states[v] for v in vms[FROZEN]} == {"nostate-error"}, states
    assert {states[v] for v in vms[HEALTHY]} == {"nostate"}, states
    assert took < BOUND, f"the listing took {took:.1f} s"
