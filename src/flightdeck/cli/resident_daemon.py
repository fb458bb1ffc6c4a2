"""`rocks start|stop|report service rocksd`: `rocksd` as a background daemon, no systemd.

The daemon is the `rocksd` script installed with `rocks` (`rocksd --pid-file
<state>/rocksd.pid`), started in a session of its own with its log (one line per decision)
appended to `<state>/rocksd.log` (`process.daemon`). It writes the pid file once its socket
listens, after its imports (~1-2 s on a frontend, ~30 s on a virtual frontend under TCG);
`start` waits for that. `stop` checks that the pid file's process is a rocksd before it sends
SIGTERM; commands it is running go on.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from flightdeck import config as site
from flightdeck.cli import resident_client
from flightdeck.errors import Conflict, NotFound
from flightdeck.process.daemon import Daemon, NotRunning

PID_NAME = "rocksd.pid"
LOG_NAME = "rocksd.log"
#: Seconds `start` waits for the socket: the imports under TCG take ~30 s of CPU.
START_TIMEOUT = 180.0


def _is_rocksd(argv: list[str]) -> bool:
    """`rocksd ...` or `python .../rocksd ...` (ours, or a unit's)."""
    return any(os.path.basename(a) == "rocksd" for a in argv)


def script() -> str:
    """The `rocksd` installed with this Flightdeck: next to the interpreter (a virtualenv's
    bin), else on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "rocksd")
    found = beside if os.path.exists(beside) else shutil.which("rocksd")
    if found is None:
        raise NotFound(
            f"rocksd is not installed next to {sys.executable} nor on PATH: reinstall "
            "Flightdeck (pip install 'flightdeck[server]')"
        )
    return found


def daemon() -> Daemon:
    home = site.state_dir()
    return Daemon("rocksd", home / PID_NAME, home / LOG_NAME, _is_rocksd)


@dataclass(frozen=True)
class Status:
    pid: int | None
    socket: str
    log: Path


def status() -> Status:
    d = daemon()
    return Status(d.running(), resident_client.socket_path(), d.log)


def start(timeout: float = START_TIMEOUT) -> Status:
    """Start rocksd on this environment's socket; return once it listens."""
    current = status()
    if current.pid is not None:
        raise Conflict(f"rocksd is already running (pid {current.pid}, {current.socket})")
    d = daemon()
    d.spawn(
        [sys.executable, script(), "--pid-file", str(d.pid_file), "--socket", current.socket],
        timeout=timeout,
    )
    return status()


def stop(timeout: float = 30.0) -> int:
    """SIGTERM the running daemon and wait until it has ended; its pid."""
    d = daemon()
    pid = d.stop(timeout, kill=False)
    if pid is None:
        raise NotRunning(f"rocksd is not running (no live process in {d.pid_file})")
    return pid
