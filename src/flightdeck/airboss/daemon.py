"""`rocks start|stop|report service airboss`: the Airboss as a background daemon, no systemd.

The daemon is `python -m flightdeck.airboss serve --pid-file <state>/airboss.pid`, started in
a session of its own with its standard output and error appended to `<state>/airboss.log`
(`process.daemon`). It writes the pid file, and `airboss.json` (its pid and address) next to
it, once it listens; `start` waits for that. `stop` sends SIGTERM to the pid in the file after
checking that the process is an Airboss (a stale pid file must not kill whatever process got
that number since), and waits for it to end (open requests finish first).

A systemd unit ships next to this module (`airboss.service`) for sites that prefer it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from flightdeck import config as site
from flightdeck.errors import Conflict
from flightdeck.process.daemon import Daemon, NotRunning, python_module

PID_NAME = "airboss.pid"
LOG_NAME = "airboss.log"
STATE_NAME = "airboss.json"
#: The module the daemon runs (`airboss serve`).
MODULE = "flightdeck.airboss"


def _is_airboss(argv: list[str]) -> bool:
    """`airboss serve` or `python -m flightdeck.airboss serve` (the systemd unit's or ours)."""
    program = any(a == MODULE or os.path.basename(a) == "airboss" for a in argv)
    return program and "serve" in argv


@dataclass(frozen=True)
class Paths:
    pid: Path
    log: Path
    state: Path


def paths() -> Paths:
    home = site.state_dir()
    return Paths(home / PID_NAME, home / LOG_NAME, home / STATE_NAME)


def daemon() -> Daemon:
    p = paths()
    return Daemon("the Airboss", p.pid, p.log, _is_airboss)


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    url: str | None
    log: Path


def status() -> Status:
    p = paths()
    pid = daemon().running()
    if pid is None:
        return Status(False, None, None, p.log)
    url = None
    try:
        state = json.loads(p.state.read_text(encoding="utf-8"))
        if state.get("pid") == pid:
            url = state.get("url")
    except (OSError, ValueError):
        pass
    return Status(True, pid, url, p.log)


def start(args: list[str], timeout: float = 30.0) -> Status:
    """Start the daemon with `airboss serve` arguments `args`; return once it listens."""
    current = status()
    if current.running:
        raise Conflict(f"the Airboss is already running (pid {current.pid}, {current.url})")
    p = paths()
    p.state.unlink(missing_ok=True)
    d = daemon()
    d.spawn(
        python_module(MODULE, "serve", "--pid-file", str(p.pid), *args),
        timeout=timeout,
        ready=lambda _pid: status().running,
    )
    return status()


def stop(timeout: float = 30.0) -> int:
    """SIGTERM the running daemon and wait until it has ended; its pid."""
    p = paths()
    pid = daemon().stop(timeout, kill=False)
    if pid is None:
        p.state.unlink(missing_ok=True)
        raise NotRunning(f"the Airboss is not running (no live process in {p.pid})")
    p.state.unlink(missing_ok=True)
    return pid
