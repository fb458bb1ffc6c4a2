"""All or nothing: `rocks add cluster` killed with SIGKILL in the middle leaves no trace.

The real executable runs with its stderr on a pseudo-terminal, so its progress bar draws
(`cli/progress.py` draws only on a tty) and tells us when it is inside the transaction, inserting
rows. We kill it right then, and the database must be exactly what it was, still open, and a new
`add cluster` must work, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

ROCKS = str(Path(sys.executable).parent / "rocks")
PUBLIC = "137.110.119.118"


def _read_until(fd: int, marker: bytes, proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """Everything the child wrote to the terminal, up to and including `marker`."""
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal within {timeout} s: {seen!r}"
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            assert proc.poll() is None, f"rocks exited ({proc.returncode}) first: {seen!r}"
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal (it exited)
            chunk = b""
        assert chunk, f"rocks closed the terminal before {marker!r}: {seen!r}"
        seen += chunk
    return seen


@pytest.mark.slow
def test_sigkill_while_inserting_leaves_no_trace(espresso: Any, db_url: str) -> None:
    rocks = espresso
    before = rocks.dump()
    env = dict(os.environ, FLIGHTDECK_DB=db_url)
    env.pop("FLIGHTDECK_DEBUG", None)
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [ROCKS, "add", "cluster", PUBLIC, "1000"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
        os.close(slave)
        try:
            seen = _read_until(master, b"inserting", proc, timeout=120)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    finally:
        os.close(master)
    # It was drawing the bar, it was past planning, and it died of the signal, uncommitted.
    assert b"planning" in seen, seen
    assert b"committing" not in seen, f"killed too late to prove anything: {seen!r}"
    assert proc.returncode == -signal.SIGKILL

    after = rocks.dump()
    for table in ("hosts", "interfaces", "vms", "vm_disks", "clusters", "routes", "host_boot"):
        assert after[table] == before[table], table
    assert after == before

    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(url.database or "") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    # The database opens, and the same cluster can be made: nothing of the first one is left to
    # clash with (name, IP, MACs, VLAN all come out as on an untouched site).
    out = rocks.ok("add", "cluster", PUBLIC, "2")
    assert out.splitlines()[0] == "created frontend VM named: frontend-0-0-0"
    assert rocks.ok("list", "host", "macs", "frontend-0-0-0", "names=yes").split()[5:7] == [
        "76:77:6e:40:00:00",
        "frontend-0-0-0",
    ]
    assert rocks.ok("report", "vm", "nextmac") == "76:77:6e:40:00:04\n"
