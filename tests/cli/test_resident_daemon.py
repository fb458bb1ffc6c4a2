"""cli/resident_daemon.py through its commands: `rocks start|report|stop service rocksd`, as an
admin without systemd runs them (each a real `rocks` process, served by rocksd once it runs)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from resident import rocks

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    run_dir = tempfile.mkdtemp(prefix="fdrd", dir="/tmp")
    out = dict(
        os.environ,
        FLIGHTDECK_HOME=str(tmp_path / "home"),
        FLIGHTDECK_RESIDENT_SOCKET=f"{run_dir}/run/rocks.sock",
    )
    for name in ("FLIGHTDECK_DB", "FLIGHTDECK_DEBUG", "FLIGHTDECK_RESIDENT"):
        out.pop(name, None)
    try:
        yield out
    finally:
        rocks(("stop", "service", "rocksd"), out)
        shutil.rmtree(run_dir, ignore_errors=True)


def test_start_report_serve_and_stop(env: dict[str, str]) -> None:
    sock = env["FLIGHTDECK_RESIDENT_SOCKET"]
    log = Path(env["FLIGHTDECK_HOME"]) / "rocksd.log"
    started = rocks(("start", "service", "rocksd"), env)
    assert started.returncode == 0, started.stderr
    assert started.stdout.startswith("rocksd started (pid ") and sock in started.stdout
    assert os.path.exists(sock)

    report = rocks(("report", "service", "rocksd"), env)
    assert report.returncode == 0 and report.stdout.startswith("rocksd is running (pid ")
    assert "running rocks report service rocksd as pid" in log.read_text()  # served

    again = rocks(("start", "service", "rocksd"), env)
    assert again.returncode != 0
    assert again.stderr.startswith("error - rocksd is already running (pid ")

    stopped = rocks(("stop", "service", "rocksd"), env)  # served by the rocksd it stops
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith("rocksd stopped (pid ")
    assert not os.path.exists(sock)
    assert not (Path(env["FLIGHTDECK_HOME"]) / "rocksd.pid").exists()
    assert log.read_text().rstrip().endswith("rocksd: stopped")

    gone = rocks(("report", "service", "rocksd"), env)
    assert gone.returncode == 3 and gone.stderr.startswith("error - rocksd is not running")
    twice = rocks(("stop", "service", "rocksd"), env)
    assert twice.returncode == 0 and twice.stdout == "rocksd was not running\n"
