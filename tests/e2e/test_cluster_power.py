"""Cluster power in order on the real libvirtd: the frontend is ready before a compute starts.

A virtual cluster of a frontend and two computes on this machine's libvirtd (TCG). The times
come from libvirt itself: a lifecycle event callback on a connection of the test records when
each domain STARTED and STOPPED, and the frontend's readiness is the guest's own words.

The frontend installs with the busybox installer (`install vm frontend`), as the other
short end-to-end tests do: its `FLIGHTDECK-BOOTED` line on the serial console stands for the
frontend image's `FLIGHTDECK-FRONTEND-READY` (that image takes minutes to install under TCG;
tests/e2e/test_virtual_frontend.py boots it to ready). The busybox guest runs no guest agent,
so the sequence's default readiness (the agent answers) is checked the other way round: a
frontend whose agent never answers gets no compute started, and the command says why.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import libvirt
import pytest

from flightdeck.db.engine import open_database
from flightdeck.pxe.image import DEFAULT_CACHE, MARKER_BOOTED, Image
from flightdeck.services import clusterpower as cp
from flightdeck.virt import hypervisor as hv
from flightdeck.virt.console import read_serial, wait_for_state

pytestmark = [
    pytest.mark.libvirtd,
    pytest.mark.slow,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

PHYSICAL = "frontend-0-0"
BOOT_TIMEOUT = 120.0

class Events:
    """(Unix time, domain, STARTED/STOPPED) of the lab's domains, as libvirt reports them."""

    NAMES: ClassVar[dict[int, str]] = {
        libvirt.VIR_DOMAIN_EVENT_STARTED: "STARTED",
        libvirt.VIR_DOMAIN_EVENT_STOPPED: "STOPPED",
    }

    def __init__(self, uri: str, names: set[str]) -> None:
        hv.event_loop()  # the process's one libvirt event loop (keepalive needs it too)
        self.names = names
        self.seen: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        self.conn = libvirt.open(uri)
        self.conn.setKeepAlive(5, 3)
        self.handle = self.conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None
        )

    def _event(self, _conn: Any, dom: Any, event: int, _detail: int, _opaque: Any) -> None:
        name = dom.name()
        if name in self.names and event in self.NAMES:
            with self.lock:
                self.seen.append((time.time(), name, self.NAMES[event]))

    def times(self, name: str, what: str) -> list[float]:
        with self.lock:
            return [t for t, n, w in self.seen if n == name and w == what]

    def wait(self, name: str, what: str, count: int = 1, timeout: float = 30) -> list[float]:
        """The times of `what` for `name` once libvirt delivered `count` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.times(name, what)) < count:
            assert time.monotonic() < deadline, f"no {what} event for {name}: {self.seen}"
            time.sleep(0.05)
        return found

    def close(self) -> None:
        self.conn.domainEventDeregisterAny(self.handle)
        self.conn.close()


@pytest.fixture
def events(lab: Any) -> Iterator[Events]:
    it = Events(lab.uri, {lab.fe, lab.compute(0), lab.compute(1)})
    try:
        yield it
    finally:
        it.close()


def build_cluster(rocks: Any, lab: Any, image: Image) -> None:
    """This machine as frontend, its libvirtd as container, one cluster of two computes whose
    frontend installs with the busybox installer (direct kernel boot)."""
    rocks.ok("init", "frontend", "name=fdt-lab.example.org", "public-ip=192.0.2.10",
             "public-netmask=255.255.255.0", "private-ip=10.1.1.1",
             "private-netmask=255.255.0.0", f"public-iface={lab.public_br}",
             f"private-iface={lab.private_br}")  # fmt: skip
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(lab.tmp / "disks"))
    rocks.ok("set", "attr", "kvm_shutdown_grace", "2")
    rocks.ok("set", "host", "attr", PHYSICAL, "libvirt_uri", lab.uri)
    rocks.ok("set", "host", "attr", PHYSICAL, "kvm_vlan_mode", "bridge")
    where = image.kernel.parent
    rocks.ok("create", "installer", "image", f"dir={where}", f"cache={DEFAULT_CACHE}")
    lab.domains |= {lab.fe, lab.compute(0), lab.compute(1)}
    rocks.ok("add", "cluster", "192.0.2.20", "2", f"vlan={lab.vlan}", f"fe-name={lab.fe}",
             "cluster-naming=yes", "mem-per-frontend=256", "mem-per-compute=256",
             "disk-per-frontend=1", "disk-per-compute=1")  # fmt: skip
    rocks.ok("set", "host", "installaction", lab.fe, "action=install vm frontend")
    args = json.loads(rocks.ok("list", "bootaction", "output-format=json"))
    fe_args = next(r["args"] for r in args if r["action"] == "install vm frontend")
    rocks.ok("set", "bootaction", "action=install vm frontend", f"args={fe_args} fd.host={lab.fe}")


def test_the_frontend_is_ready_before_the_first_compute_starts(
    rocks: Any, lab: Any, installer_image: Image, events: Events, timings: dict[str, float]
) -> None:
    build_cluster(rocks, lab, installer_image)
    fe, computes = lab.fe, [lab.compute(0), lab.compute(1)]
    conn = lab.hv(PHYSICAL)
    said: dict[str, float] = {}

    def console_says_booted(name: str) -> bool:
        """The guest's own ready line (read once, through libvirt's console stream)."""
        text = read_serial(conn, name, MARKER_BOOTED.encode(), BOOT_TIMEOUT)
        if f"{MARKER_BOOTED} host={fe}".encode() in text:
            said.setdefault(name, time.time())
            return True
        return False

    db = open_database(rocks.url)
    try:
        t0 = time.monotonic()
        run = cp.power_cluster(db, fe, "on", probe=console_says_booted, poll=0.2,
                               ready_timeout=BOOT_TIMEOUT)  # fmt: skip
        timings["cluster power on: frontend start -> ready -> computes started"] = (
            time.monotonic() - t0
        )
    finally:
        db.dispose()
    assert not run.failed, run.failed
    (fe_started,) = events.wait(fe, "STARTED")
    started = {c: events.wait(c, "STARTED")[0] for c in computes}
    ready = said[fe]
    assert fe_started < ready, "the frontend was found ready before libvirt started it"
    assert min(started.values()) > ready, (fe_started, ready, started, events.seen)
    assert run.ready_at is not None and run.ready_at >= ready
    timings["cluster power on: frontend ready -> first compute STARTED"] = (
        min(started.values()) - ready
    )

    # The busybox frontend powers itself off after its line; off stops the computes (their
    # iPXE has no ACPI: destroyed after the 2 s grace) and finds the frontend already off.
    assert wait_for_state(conn, fe, {"shutoff", "nostate"}, 60) in {"shutoff", "nostate"}
    out = rocks.ok("set", "cluster", "power", fe, "action=off")
    assert out.splitlines()[-1] == f"{fe} off: 2 stopped, 1 already stopped ({fe})", out
    for c in computes:
        (stopped,) = events.wait(c, "STOPPED")
        assert stopped > started[c]

    # The default readiness: the guest agent. Installed now (boot action os), the frontend
    # boots its disk (no boot loader: it sits in the firmware) and no agent answers: no
    # compute is started, the command fails and says why.
    r = rocks("set", "cluster", "power", fe, "action=on", "timeout=6")
    assert r.code == 1
    assert f"error - {fe}: not ready within 6 s (its guest agent does not answer" in r.err
    assert len(events.wait(fe, "STARTED", count=2)) == 2
    time.sleep(0.5)  # events are delivered asynchronously: give a stray one time to arrive
    assert all(len(events.times(c, "STARTED")) == 1 for c in computes), events.seen
    assert {conn.state(c) for c in computes} <= {"shutoff", "nostate"}
