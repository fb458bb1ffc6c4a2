"""The Airboss's libvirt pool: daemon threads, so a call stuck on a dead container never keeps
a stopping Airboss (or any process) alive."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from flightdeck.airboss.workers import DaemonPool


def test_results_exceptions_and_the_event_loop() -> None:
    pool = DaemonPool(2, "t")
    assert pool.submit(lambda x: x * 2, 21).result(5) == 42
    with pytest.raises(ZeroDivisionError):
        pool.submit(lambda: 1 / 0).result(5)

    async def main() -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, lambda: 7)

    assert asyncio.run(main()) == 7
    pool.shutdown(wait=True)
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: 1)


def test_shutdown_cancels_what_waits_and_does_not_wait_for_a_stuck_call() -> None:
    pool = DaemonPool(1, "t", grace=0.2)
    stuck = threading.Event()
    first = pool.submit(stuck.wait)
    while not first.running():
        time.sleep(0.01)
    queued = pool.submit(lambda: "never")
    pool.shutdown(wait=True, cancel_futures=True)
    assert queued.cancelled() and not first.done()
    stuck.set()
    assert first.result(5) is True


def test_a_process_whose_pool_is_stuck_still_exits() -> None:
    code = (
        "import threading\n"
        "from flightdeck.airboss.workers import DaemonPool\n"
        "DaemonPool(2, 'x').submit(threading.Event().wait)\n"
        "print('bye')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and done.stdout == "bye\n", done.stderr
