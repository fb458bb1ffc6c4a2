"""SQLite writers of several processes: the writer queue (`<db>-writer`) against SQLite's wait.

Two processes that write to one SQLite file take turns on SQLite's write lock. Alone, SQLite
makes a writer that finds it taken sleep 1 ms, then 2, 5, 10 ... up to 100 ms between tries; a
writer of another process then rarely finds the lock free while a busy Airboss keeps retaking
it. Flightdeck's writers first take turns on a file lock beside the database, polled every
50 us to 1 ms (`db/engine.py`). Both, in one run, on the same site, alternating rounds; the
baseline is the same code with the queue file made unopenable (a directory in its place), which
is exactly the fallback a site gets when the file cannot be opened:

* `rocks beside the Airboss` - one `airboss serve` answering signed MAC lists to 10 client
  threads (the pilot client library, in this process), while a second process makes 40 small
  write transactions 50 ms apart (`Database.transaction(write=True)`, one UPDATE each, what a
  `rocks set ...` command does): the writes' latency (p50, p90, max) and the Airboss's rate;
* `two replicas` - two `airboss serve` processes on the one SQLite file, the 10 clients
  alternating between them: rate and latency.

    .venv/bin/python bench/sqlite_writers.py [--seconds 4] [--rounds 2]

Everything runs on the same cores: the clients' CPU is in every figure alike.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from _harness import start_airboss

from airboss import UNLIMITED, measure, owner_site, process_cpu

if TYPE_CHECKING:
    from flightdeck.crypto.keys import PrivateKey

#: The second process: 40 write transactions, 50 ms apart; prints their latencies in ms.
WRITER = """
import json, time
from sqlalchemy import text
from flightdeck.db.engine import open_database
db = open_database()
with db.transaction() as s:  # imports and the first connection, before timing
    s.execute(text("SELECT 1"))
took = []
for _ in range(40):
    t0 = time.perf_counter()
    with db.transaction(write=True) as s:
        s.execute(text("UPDATE hosts SET name = name WHERE id = 1"))
    took.append((time.perf_counter() - t0) * 1000)
    time.sleep(0.05)
print(json.dumps(took))
"""


def queue(home: Path, on: bool) -> None:
    """The writer queue of the site's database on (a file, or none yet) or off (a directory:
    every process falls back to SQLite's own wait)."""
    path = home / "flightdeck.db-writer"
    if path.is_dir() and on:
        path.rmdir()
    elif not on:
        path.unlink(missing_ok=True)
        path.mkdir(exist_ok=True)


def beside_airboss(
    home: Path, env: dict[str, str], key: PrivateKey, mac: str, seconds: float
) -> str:
    from flightdeck.pilot.client import AirbossClient

    proc, address = start_airboss(home, env, *UNLIMITED)
    try:
        client = AirbossClient(key, address)
        client.macs(mac)
        out: list[str] = []

        def writer() -> None:
            done = subprocess.run([sys.executable, "-c", WRITER], env=env, capture_output=True,
                                  text=True, check=True)  # fmt: skip
            out.append(done.stdout)

        t = threading.Thread(target=writer)
        t.start()
        r = measure(10, seconds, lambda n, i: client.macs(mac))
        t.join()
    finally:
        proc.terminate()
        proc.wait()
    took = sorted(json.loads(out[0]))
    return (
        f"writes p50 {took[len(took) // 2]:6.2f} p90 {took[int(len(took) * 0.9)]:6.2f} "
        f"max {took[-1]:7.2f} ms | airboss {r['rps']:4.0f}/s p99 {r['p99']:5.1f} ms"
    )


def two_replicas(home: Path, env: dict[str, str], key: PrivateKey, mac: str, seconds: float) -> str:
    from flightdeck.pilot.client import AirbossClient

    procs = [start_airboss(home, env, *UNLIMITED, name=f"replica{n}") for n in range(2)]
    try:
        clients = [AirbossClient(key, procs[n % 2][1]) for n in range(10)]
        for c in clients:
            c.macs(mac)
        before = sum(process_cpu(p.pid) for p, _ in procs)
        r = measure(10, seconds, lambda n, i: clients[n].macs(mac))
        cpu = sum(process_cpu(p.pid) for p, _ in procs) - before
    finally:
        for p, _ in procs:
            p.terminate()
            p.wait()
    return (
        f"{r['rps']:4.0f}/s p50 {r['p50']:5.2f} p99 {r['p99']:6.1f} ms, "
        f"server CPU {1000 * cpu / r['n']:.2f} ms a request"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    from flightdeck.db.engine import open_database
    from flightdeck.services.clusters import cluster_macs

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env, key = owner_site(home)
        os.environ["FLIGHTDECK_HOME"] = str(home)
        db = open_database()
        mac = cluster_macs(db, "frontend-0-0-0")[1][0][0]
        db.dispose()
        print(f"{os.cpu_count()} cores; {sys.executable}")
        for name, run in (("rocks beside the Airboss", beside_airboss),
                          ("two replicas", two_replicas)):  # fmt: skip
            print(name)
            for _ in range(a.rounds):
                for on in (False, True):
                    queue(home, on)
                    label = "writer queue " if on else "SQLite's wait"
                    print(f"  {label}  {run(home, env, key, mac, a.seconds)}", flush=True)


if __name__ == "__main__":
    main()
