"""The bounds on calls to containers: `parallel` and `within` return in time, whatever a call
does, and leave nothing that keeps the process from exiting."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from flightdeck.errors import DriverError
from flightdeck.virt import hypervisor as hv


def test_parallel_gives_up_on_a_stuck_job_and_keeps_the_others() -> None:
    stuck = threading.Event()  # never set: a call to a container that never answers
    t0 = time.monotonic()
    out = hv.parallel(
        {"dead": stuck.wait, "a": lambda: "A", "b": lambda: "B"}, timeout=0.5, workers=2
    )
    took = time.monotonic() - t0
    assert out["a"] == "A" and out["b"] == "B"
    assert isinstance(out["dead"], DriverError)
    assert "container dead did not answer within 0.5 s" in str(out["dead"])
    assert took < 5, took  # the timeout, not the stuck call (which never ends)


def test_parallel_reports_each_exception_and_bounds_the_workers() -> None:
    running = 0
    most = 0
    lock = threading.Lock()

    def job(i: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        if i == 3:
            raise DriverError("container 3 said no")
        return i

    out = hv.parallel({str(i): (lambda i=i: job(i)) for i in range(8)}, timeout=10, workers=3)
    assert most <= 3
    assert {k: v for k, v in out.items() if k != "3"} == {str(i): i for i in range(8) if i != 3}
    assert isinstance(out["3"], DriverError)


def test_a_stuck_job_gives_its_slot_to_the_next() -> None:
    stuck = threading.Event()
    out = hv.parallel({"dead": stuck.wait, "next": lambda: 1}, timeout=0.3, workers=1)
    assert out["next"] == 1 and isinstance(out["dead"], DriverError)


def test_parallel_of_nothing() -> None:
    assert hv.parallel({}, timeout=1) == {}


def test_within_returns_raises_or_times_out() -> None:
    assert hv.within(lambda: 42, 1) == 42
    with pytest.raises(DriverError, match="boom"):
        hv.within(lambda: (_ for _ in ()).throw(DriverError("boom")), 1)
    with pytest.raises(TimeoutError, match=r"no answer within 0\.2 s"):
        hv.within(threading.Event().wait, 0.2)


def test_a_process_with_a_call_stuck_forever_still_exits() -> None:
    """What hung a CI run after its last test: Python joins a pool's worker threads at exit,
    so one stuck in a call kept the process alive. Ours are daemon threads."""
    code = (
        "import threading\n"
        "from flightdeck.virt import hypervisor as hv\n"
        "e = threading.Event()\n"
        "print(type(hv.parallel({'x': e.wait}, timeout=0.2)['x']).__name__)\n"
        "try:\n"
        "    hv.within(e.wait, 0.2)\n"
        "except TimeoutError:\n"
        "    print('timeout')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DriverError", "timeout"]
