"""The test run's exit guard: a run whose tests are over never hangs CI, and says what hung.

After its summary, pytest still runs hooks (pytest >= 9.2 collects garbage in
`pytest_unconfigure`, running every pending finalizer), then Python joins every non-daemon
thread (thread-pool workers included) and multiprocessing child, and collects garbage again.
One finalizer or thread blocked there hangs the run until CI's own limit, saying nothing: it
happened twice, each time after every test had passed.

So the guard is armed when the last test is over, and again as soon as the summary is
printed: if the process is still alive `grace()` seconds after the summary, faulthandler (a C
thread: it needs neither the GIL nor the interpreter) prints every thread's stack and exits
with status 1. Arming allocates nothing (the stream is opened at configure time): an
allocation can start a garbage collection, and a collection is exactly what may hang. The hooks
are imported by tests/conftest.py, and by the guard's own test, which runs a session with a
finalizer that never returns.
"""

from __future__ import annotations

import faulthandler
import io
import os
import sys
import threading
from collections.abc import Generator

import pytest

#: Environment variable: seconds the process may take to exit after the summary.
GRACE_ENV = "FLIGHTDECK_TEST_EXIT_GRACE"
DEFAULT_GRACE = 120.0

_stream: io.TextIOWrapper | None = None


def grace() -> float:
    """Seconds (`$FLIGHTDECK_TEST_EXIT_GRACE`, default 120) before the guard fires."""
    try:
        return max(1.0, float(os.environ.get(GRACE_ENV, DEFAULT_GRACE)))
    except ValueError:
        return DEFAULT_GRACE


def pytest_configure(config: pytest.Config) -> None:
    """Open the guard's stream now (a copy of stderr's descriptor, which pytest may redirect
    later), so that arming it after the summary allocates nothing."""
    global _stream
    del config
    _stream = os.fdopen(os.dup(2), "w")


#: Seconds the end of the session may take before the summary (the session's fixtures are torn
#: down then: the lab's daemons, the PostgreSQL schemas), on top of the exit's grace.
TEARDOWN = 600.0


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Armed once the last test is over (for the session's teardown and the other plugins'
    end, which pytest-timeout does not cover), and again, with the exit's grace, after the
    summary: this is the outermost wrapper, so what follows its `yield` runs last."""
    del session
    faulthandler.dump_traceback_later(TEARDOWN + grace(), exit=True, file=_stream or sys.stderr)
    try:
        return (yield)
    finally:
        faulthandler.dump_traceback_later(grace(), exit=True, file=_stream or sys.stderr)
        _name_what_python_will_join()


def _name_what_python_will_join() -> None:
    """Print the non-daemon threads and multiprocessing children still alive: Python joins
    them at exit, and one stuck in a blocking call is what the guard would otherwise report."""
    main = threading.main_thread()
    names = [t.name for t in threading.enumerate() if t is not main and not t.daemon]
    mp = sys.modules.get("multiprocessing")  # never imported here: an import allocates
    if mp is not None:
        names += [f"process {p.pid}" for p in mp.active_children()]
    if names:
        print(f"\nexit guard: still alive at exit (joined by Python): {', '.join(names)}",
              file=_stream or sys.stderr, flush=True)  # fmt: skip
