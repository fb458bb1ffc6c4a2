"""process/caller.py: what confines a process, read from /proc. `fork_as` is exercised by
rocksd's tests (tests/cli/test_resident_server.py), whose clients it becomes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from flightdeck.process import caller

SLEEPER = [sys.executable, "-c", "import time; time.sleep(30)"]


def _running_sleeper(cmd: list[str]) -> subprocess.Popen[bytes]:
    """`cmd`, once the pid runs the sleeper's interpreter (unshare and setpriv exec it in place,
    after confining themselves)."""
    child = subprocess.Popen(cmd)
    deadline = time.monotonic() + 30
    python = os.path.realpath(sys.executable)
    while os.readlink(f"/proc/{child.pid}/exe") != python:
        assert time.monotonic() < deadline, cmd
        time.sleep(0.02)
    return child


def test_a_process_is_confined_as_itself_and_as_its_plain_child() -> None:
    mine = caller.confinement("self")
    assert caller.differs(mine, caller.confinement(os.getpid())) == []
    assert set(mine) == {*caller.NAMESPACES, *caller.PRIVILEGES, "root directory"}
    child = _running_sleeper(SLEEPER)
    try:
        assert caller.differs(mine, caller.confinement(child.pid)) == []
    finally:
        child.kill()
        child.wait()


def test_another_network_namespace_and_a_dropped_capability_differ() -> None:
    mine = caller.confinement("self")
    for cmd, expect in (
        (["unshare", "--net", *SLEEPER], {"net"}),
        (["setpriv", "--bounding-set=-net_raw", *SLEEPER], {"CapBnd"}),
    ):
        child = _running_sleeper(cmd)
        try:
            assert expect <= set(caller.differs(mine, caller.confinement(child.pid)))
        finally:
            child.kill()
            child.wait()
