"""Concurrent `rocks add host` processes: no duplicates, no "database is locked", no failure.

`ip=auto` is read-then-write (the next free IP), and so is the rank in a rack: both race unless
write transactions are serialised (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL).
Every worker is a real OS process; the database is the real one.
"""

from __future__ import annotations

import io
import ipaddress
import json
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

# fork: the children inherit the imported test module (pytest imports it under a name that a
# spawned interpreter could not import again).
CTX = multiprocessing.get_context("fork")
RACK = 5


def mac_of(worker: int, i: int) -> str:
    return f"52:54:{worker:02x}:00:{i // 256:02x}:{i % 256:02x}"


def commands(worker: int, i: int) -> list[list[str]]:
    name = f"conc-{worker}-{i}"
    return [
        ["add", "host", name, "membership=Compute", f"rack={RACK}"],
        ["add", "host", "interface", name, "eth0", f"mac={mac_of(worker, i)}", "ip=auto",
         "subnet=private"],
    ]  # fmt: skip


def _worker(worker: int, count: int, url: str, start: Any, queue: Any) -> None:
    """One OS process: `count` hosts through flightdeck.cli.main.run, as `rocks` would."""
    os.environ["FLIGHTDECK_DB"] = url
    os.environ.pop("FLIGHTDECK_DEBUG", None)
    from flightdeck.cli.command import Context
    from flightdeck.cli.main import run

    results: list[tuple[str, int, str]] = []
    start.wait(60)
    for i in range(count):
        for argv in commands(worker, i):
            out, err = io.StringIO(), io.StringIO()
            ctx = Context(out=out, err=err)
            try:
                code = run(argv, ctx)
            finally:
                if ctx._db is not None:
                    ctx._db.dispose()  # type: ignore[attr-defined]
            results.append((" ".join(argv), code, err.getvalue()))
    queue.put((worker, results))


def check(rocks: Any, workers: int, per_worker: int) -> None:
    """Everything the workers added is there, once, with distinct IPs, MACs and ranks."""
    hosts = json.loads(rocks.ok("list", "host", "conc-%", "output-format=json"))
    names = [h["host"] for h in hosts]
    assert len(names) == workers * per_worker
    assert set(names) == {f"conc-{w}-{i}" for w in range(workers) for i in range(per_worker)}
    ranks = sorted(int(h["rank"]) for h in hosts)
    assert ranks == list(range(workers * per_worker)), "two hosts got the same rank"

    ifaces = json.loads(rocks.ok("list", "host", "interface", "conc-%", "output-format=json"))
    assert len(ifaces) == workers * per_worker
    ips = [i["ip"] for i in ifaces]
    macs = [i["mac"] for i in ifaces]
    assert len(set(ips)) == len(ips), "duplicate IP"
    assert len(set(macs)) == len(macs), "duplicate MAC"
    assert set(macs) == {mac_of(w, i) for w in range(workers) for i in range(per_worker)}
    # The highest free addresses of private, with no gap: .254 and .253 are the containers'.
    top = int(ipaddress.IPv4Address("10.1.255.252"))
    expected = {str(ipaddress.IPv4Address(top - j)) for j in range(workers * per_worker)}
    assert set(ips) == expected

    # And the database itself agrees (not only what the listing shows).
    dump = rocks.dump()
    all_ips = [(r[5], r[4]) for r in dump["interfaces"] if r[4] is not None]  # (network, ip)
    assert len(all_ips) == len(set(all_ips))
    all_names = [r[1] for r in dump["hosts"]]
    assert len(all_names) == len(set(all_names))


@pytest.mark.slow
def test_eight_processes_add_fifty_hosts_each(espresso: Any) -> None:
    workers, per_worker = 8, 50
    start = CTX.Event()
    queue = CTX.Queue()
    procs = [
        CTX.Process(target=_worker, args=(w, per_worker, espresso.url, start, queue))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    start.set()
    results = dict(queue.get(timeout=540) for _ in procs)
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * workers

    assert sorted(results) == list(range(workers))
    for worker, runs in results.items():
        assert len(runs) == 2 * per_worker
        for argv, code, err in runs:
            assert "locked" not in err, f"worker {worker}: rocks {argv}: {err}"
            assert (code, err) == (0, ""), f"worker {worker}: rocks {argv}: {err}"
    check(espresso, workers, per_worker)


@pytest.mark.slow
def test_four_real_rocks_executables_add_five_hosts_each(espresso: Any) -> None:
    workers, per_worker = 4, 5

    def one_worker(worker: int) -> list[tuple[str, int, str]]:
        done = []
        for i in range(per_worker):
            for argv in commands(worker, i):
                p = espresso.process(argv)
                done.append((" ".join(argv), p.returncode, p.stderr))
        return done

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one_worker, range(workers)))
    for runs in results:
        for argv, code, err in runs:
            assert (code, err) == (0, ""), f"rocks {argv}: {err}"
    check(espresso, workers, per_worker)
