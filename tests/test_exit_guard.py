"""The exit guard (tests/exit_guard.py) against the hang it exists for: a session whose tests
pass, then a finalizer that never returns once garbage is collected after the summary."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import exit_guard

CONFTEST = """\
from exit_guard import pytest_configure, pytest_sessionfinish  # the suite's own hooks
"""
STUCK = """\
import threading


class Stuck:
    def __del__(self):
        threading.Event().wait()  # a finalizer that never returns (the GIL is let go)


def test_leaves_a_stuck_cycle_behind():
    stuck = Stuck()
    stuck.me = stuck
"""
CLEAN = """\
def test_nothing_left_behind():
    assert True
"""


def _session(
    tmp_path: Path, body: str, grace: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_body.py").write_text(body)
    env = dict(os.environ, **{exit_guard.GRACE_ENV: str(grace)})
    env["PYTHONPATH"] = os.pathsep.join([str(Path(exit_guard.__file__).parent),
                                         env.get("PYTHONPATH", "")])  # fmt: skip
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return done, time.monotonic() - t0


def test_a_finalizer_stuck_after_the_summary_is_reported_and_ends_the_run(
    tmp_path: Path,
) -> None:
    done, took = _session(tmp_path, STUCK, grace=3)
    assert "1 passed" in done.stdout, done.stdout
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert "Timeout (0:00:03)!" in done.stderr, done.stderr[-2000:]
    assert "in __del__" in done.stderr, done.stderr[-2000:]  # the culprit's frame is shown
    assert took < 60, took


def test_a_run_that_exits_is_left_alone(tmp_path: Path) -> None:
    done, _ = _session(tmp_path, CLEAN, grace=3)
    assert done.returncode == 0, done.stderr
    assert "Timeout" not in done.stderr and "exit guard" not in done.stderr
