"""Concurrent `rocks add host vm`: 8 processes, 50 VMs each, on SQLite and PostgreSQL.

Each process (forked with multiprocessing) calls `flightdeck.cli.main.run` 50 times, one VM per
call, so the 400 VMs are 400 separate write transactions racing for names, slices, MACs and IPs.
Four processes share each container, so they contend for the same slice numbers too. Nothing may
clash, nothing may fail with "database is locked", and all 400 must be there.
"""

from __future__ import annotations

import io
import ipaddress
import multiprocessing
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PROCESSES = 8
PER_PROCESS = 50
CONTAINERS = ("vm-container-0-0", "vm-container-0-1")


def _worker(container: str, count: int, results: Any) -> None:
    from flightdeck.cli.command import Context
    from flightdeck.cli.main import run

    done = []
    for _ in range(count):
        out, err = io.StringIO(), io.StringIO()
        ctx = Context(out=out, err=err)
        try:
            code = run(["add", "host", "vm", container, "membership=Compute"], ctx)
        except BaseException as exc:  # report, do not hang the parent
            code, err = 99, io.StringIO(repr(exc))
        finally:
            if ctx._db is not None:
                ctx._db.dispose()  # type: ignore[attr-defined]
        done.append((code, out.getvalue(), err.getvalue()))
    results.put(done)


@pytest.mark.slow
def test_400_vms_from_8_processes(espresso: Any, db_url: str) -> None:
    fork = multiprocessing.get_context("fork")
    results = fork.Queue()
    procs = [
        fork.Process(target=_worker, args=(CONTAINERS[i % 2], PER_PROCESS, results))
        for i in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    runs = [r for _ in procs for r in results.get(timeout=540)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0

    failures = [r for r in runs if r[0] != 0]
    assert not failures, failures[:5]
    assert not [r for r in runs if "locked" in r[2].lower()]
    assert len(runs) == PROCESSES * PER_PROCESS

    printed = [line for r in runs for line in r[1].splitlines()]
    assert len(printed) == 400 and len(set(printed)) == 400

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            vms = conn.execute(
                text(
                    "SELECT h.name, v.slice, c.name FROM vms v "
                    "JOIN hosts h ON h.id = v.host_id JOIN hosts c ON c.id = v.container_id"
                )
            ).all()
            nics = conn.execute(
                text("SELECT i.mac, i.ip FROM interfaces i JOIN vms v ON v.host_id = i.host_id")
            ).all()
    finally:
        engine.dispose()

    assert len(vms) == 400
    assert len({name for name, _, _ in vms}) == 400
    assert {f"added VM {n} on physical node {c}" for n, _, c in vms} == set(printed)
    # Per container, slices 0..199, each exactly once, and the name carries its slice.
    for container in CONTAINERS:
        slices = Counter(s for _, s, c in vms if c == container)
        assert sorted(slices) == list(range(200)), container
        assert set(slices.values()) == {1}
    for name, slice_, container in vms:
        assert name == f"compute-0-{container[-1]}-{slice_}"
    # MACs: 400 distinct, and consecutive from the base (allocation never interleaved).
    macs = sorted(int(m.replace(":", ""), 16) for m, _ in nics)
    base = int("76776e400000", 16)
    assert macs == list(range(base, base + 400))
    # IPs: 400 distinct, counting down under the containers' .254 and .253.
    ips = sorted((int(ipaddress.IPv4Address(ip)) for _, ip in nics), reverse=True)
    top = int(ipaddress.IPv4Address("10.1.255.252"))
    assert ips == list(range(top, top - 400, -1))
