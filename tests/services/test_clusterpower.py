"""Cluster power in order, on libvirt's test driver: the frontend first, its computes once it is
ready (an injected probe stands for its guest agent), per-container bounds, off in reverse."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flightdeck.db.engine import Database, open_database
from flightdeck.errors import UserError
from flightdeck.services import clusterpower as cp
from flightdeck.services import lifecycle

FE = "frontend-0-0-0"


@pytest.fixture
def db(espresso: Any, db_url: str) -> Iterator[Database]:
    espresso.ok("set", "attr", "kvm_domain_type", "qemu")
    # The busybox installer's boot action (kernel boot), as the Airboss tests use.
    espresso.ok("set", "bootaction", "install vm frontend", "kernel=/boot/fd/vmlinuz",
                "ramdisk=/boot/fd/initrd.gz")  # fmt: skip
    espresso.ok("add", "cluster", "137.110.119.118", "6", "mem-per-compute=256",
                "disk-per-compute=1", "disk-per-frontend=1")  # fmt: skip
    espresso.ok("set", "host", "installaction", FE, "action=install vm frontend")
    d = open_database(db_url)
    yield d
    d.dispose()


def states(db: Database) -> dict[str, str]:
    return lifecycle.statuses(db)


class Probe:
    """Ready after `after` calls; remembers when it said so."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.calls = 0
        self.ready_at: float | None = None

    def __call__(self, name: str) -> bool:
        assert name == FE
        self.calls += 1
        if self.calls > self.after:
            if self.ready_at is None:
                self.ready_at = time.time()
            return True
        return False


def test_on_starts_the_frontend_then_the_computes_once_it_is_ready(db: Database) -> None:
    probe = Probe(after=2)
    seen: list[cp.NodeResult] = []
    run = cp.power_cluster(db, FE, "on", probe=probe, poll=0.05, echo=seen.append)
    assert [r.node for r in seen][:2] == [FE, FE]  # started, then ready
    assert seen[0].message.startswith("installing frontend-0-0-0 on frontend-0-0")
    assert seen[1].step and seen[1].message.startswith("ready after ")
    assert probe.calls == 3 and probe.ready_at is not None
    computes = [r for r in run.results if not r.frontend]
    assert len(computes) == 6 and all(r.ok for r in computes)
    assert min(r.when for r in computes) >= probe.ready_at
    assert run.ready_at is not None and run.ready_at >= probe.ready_at
    assert set(states(db).values()) == {"active"}
    assert run.summary() == f"{FE} on: 7 started"


def test_wait_no_starts_the_computes_right_away(db: Database) -> None:
    def never(_name: str) -> bool:
        raise AssertionError("not asked with wait=no")

    run = cp.power_cluster(db, FE, "on", wait=False, probe=never)
    assert not run.failed and len(run.results) == 7


def test_a_frontend_that_is_never_ready_starts_no_compute(db: Database) -> None:
    run = cp.power_cluster(db, FE, "on", probe=lambda _n: False, ready_timeout=0.3, poll=0.05)
    (failed,) = run.failed
    assert failed.node == FE and "not ready within 0.3 s" in failed.message
    assert "wait=no" in failed.message
    live = states(db)
    assert live[FE] == "active"
    assert all(v == "nostate" for k, v in live.items() if k != FE)


def test_already_running_nodes_succeed_and_say_so(db: Database) -> None:
    lifecycle.start_vms(db, ["hosted-vm-0-0-0", "hosted-vm-0-1-0"])
    run = cp.power_cluster(db, FE, "on", wait=False)
    assert not run.failed
    already = {r.node for r in run.results if r.already}
    assert already == {"hosted-vm-0-0-0", "hosted-vm-0-1-0"}
    assert run.summary() == (
        f"{FE} on: 5 started, 2 already running (hosted-vm-0-0-0, hosted-vm-0-1-0)"
    )


def test_computes_start_in_parallel_bounded_per_container(
    db: Database, espresso: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_power_parallel", "1")
    lock = threading.Lock()
    now: dict[str, int] = {}
    peak: dict[str, int] = {}
    real = lifecycle.start_vms

    def slow(d: Database, exprs: Any) -> Any:
        with db.transaction() as s:
            from flightdeck.db.hostexpr import resolve_host
            from flightdeck.services.domains import vm_row

            row = vm_row(s, resolve_host(s, exprs))
            box = row.container.name if row.container else "?"
        with lock:
            now[box] = now.get(box, 0) + 1
            peak[box] = max(peak.get(box, 0), now[box])
        time.sleep(0.15)
        try:
            return real(d, exprs)
        finally:
            with lock:
                now[box] -= 1

    monkeypatch.setattr(lifecycle, "start_vms", slow)
    run = cp.power_cluster(db, FE, "on", wait=False, max_parallel=None)
    assert not run.failed
    assert peak["vm-container-0-0"] == 3  # its three computes at once (default bound 4)
    assert peak["vm-container-0-1"] == 1  # kvm_power_parallel=1
    with pytest.raises(UserError, match="max-parallel=0"):
        cp.power_cluster(db, FE, "on", wait=False, max_parallel=0)


def test_off_stops_the_computes_first_and_the_frontend_last(db: Database) -> None:
    cp.power_cluster(db, FE, "on", wait=False)
    run = cp.power_cluster(db, FE, "off", grace=0)
    assert [r.node for r in run.results][-1] == FE
    fe = run.results[-1]
    assert fe.ok and all(fe.at >= r.at for r in run.results)
    assert set(states(db).values()) == {"nostate"}
    again = cp.power_cluster(db, FE, "off", grace=0)
    assert all(r.already for r in again.results)
    assert again.summary().startswith(f"{FE} off: 0 stopped, 7 already stopped")


def test_install_sets_every_boot_action_and_reinstalls_running_nodes(
    db: Database, espresso: Any
) -> None:
    espresso.ok("set", "host", "boot", "%", "action=os")
    lifecycle.start_vms(db, ["hosted-vm-0-0-0"])
    run = cp.power_cluster(db, FE, "install", wait=False)
    assert not run.failed, run.failed
    boots = espresso.ok("list", "host", "boot", "output-header=no")
    for line in boots.splitlines():
        name, action = line.split()[:2]
        if name.rstrip(":").startswith("hosted-vm"):
            assert action == "install", line
    assert not any(r.already for r in run.results)


def test_not_a_virtual_frontend(db: Database) -> None:
    with pytest.raises(UserError, match="vm-container-0-0 is not a virtual frontend"):
        cp.power_cluster(db, "vm-container-0-0", "on")
    with pytest.raises(UserError, match="action='reset'"):
        cp.power_cluster(db, FE, "reset")


def test_the_command_prints_a_line_per_node_and_a_summary(db: Database, espresso: Any) -> None:
    out = espresso.ok("set", "cluster", "power", FE, "action=on", "wait=no")
    lines = out.splitlines()
    assert lines[0] == f"{FE}: installing {FE} on frontend-0-0"
    assert len(lines) == 8 and lines[-1] == f"{FE} on: 7 started"
    # A node that fails: the others go on, the command fails naming it.
    lifecycle.stop_vms(db, ["hosted-vm-0-1-2"])
    espresso.ok("set", "host", "attr", "vm-container-0-1", "libvirt_uri", "test:///nonexistent")
    r = espresso("set", "cluster", "power", FE, "action=on", "wait=no", "max-parallel=2")
    assert r.code == 1
    assert "error - hosted-vm-0-1-2: " in r.err
    assert r.err.splitlines()[-1].startswith("error - ")
    assert "hosted-vm-0-1-0" in r.err.splitlines()[-1]


def test_without_the_frontend_its_computes_only(db: Database) -> None:
    """The owner's command run on the virtual frontend itself: it must not be stopped or
    reinstalled under the command (the original skipped the local frontend too)."""
    run = cp.power_cluster(db, FE, "on", with_frontend=False, probe=lambda _n: False)
    assert FE not in {r.node for r in run.results} and len(run.results) == 6
    live = states(db)
    assert live[FE] == "nostate" and {v for k, v in live.items() if k != FE} == {"active"}
    assert run.summary() == f"{FE} on: 6 started; the frontend left as it is"
    lifecycle.start_vms(db, [FE])
    run = cp.power_cluster(db, FE, "off", grace=0, with_frontend=False)
    assert not run.failed and FE not in {r.node for r in run.results}
    live = states(db)
    assert live[FE] == "active" and {v for k, v in live.items() if k != FE} == {"nostate"}


def test_this_machine_is_the_frontend_rocks_init_made(db: Database, espresso: Any) -> None:
    """On the physical frontend a virtual frontend is a VM, never "this machine"; the frontend
    `rocks init frontend` registered is, by its name, its public name or its MAC."""
    from flightdeck.services.airboss.local import first_mac, is_this_frontend

    assert not is_this_frontend(db, FE)
    assert not is_this_frontend(db, first_mac(db, FE) or "")
    assert not is_this_frontend(db, "vm-container-0-0")
    assert is_this_frontend(db, "frontend-0-0")
    public = espresso.ok("list", "host", "interface", "frontend-0-0", "output-format=json")
    import json

    names = [r["name"] for r in json.loads(public) if r["subnet"] == "public"]
    assert names and is_this_frontend(db, names[0])
    mac = first_mac(db, "frontend-0-0")
    if mac:
        assert is_this_frontend(db, mac.upper())
    assert not is_this_frontend(db, "x" * 5000)


def test_a_bad_attribute_at_use_is_named(db: Database, espresso: Any) -> None:
    """Values stored before they were checked at set time (an older site) fail at use with
    the same message, before anything is powered."""
    from sqlalchemy import select

    from flightdeck.db import attrs
    from flightdeck.db.models import Host

    with db.transaction(write=True) as s:
        box = s.scalar(select(Host).where(Host.name == "vm-container-0-1"))
        assert box is not None
        attrs.set_host(s, box, "kvm_power_parallel", "many")
    with pytest.raises(UserError, match="attribute kvm_power_parallel of host vm-container-0-1"):
        cp.power_cluster(db, FE, "on", wait=False)
    assert set(states(db).values()) == {"nostate"}
