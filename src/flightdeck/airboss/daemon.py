"""`rocks start|stop|report service airboss`: the Airboss as a background daemon, no systemd.

The daemon is `python -m flightdeck.airboss serve --pid-file <state>/airboss.pid`, started by a
double fork (the new process belongs to no terminal and is nobody's child to reap) with its
standard output and error appended to `<state>/airboss.log`. It writes the pid file, and
`airboss.json` (its pid and address) next to it, once it listens; `start` waits for that. `stop`
sends SIGTERM to the pid in the file after checking that the process is an Airboss (a stale
pid file must not kill whatever process got that number since), and waits for it to end.

Plain `os.fork` / `os.execv`: the layering rule keeps `subprocess` to the driver packages.
A systemd unit ships next to this module (`airboss.service`) for sites that prefer it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from flightdeck import config as site
from flightdeck.errors import Conflict, DriverError, FlightdeckError

PID_NAME = "airboss.pid"
LOG_NAME = "airboss.log"
STATE_NAME = "airboss.json"


class NotRunning(FlightdeckError):
    """The Airboss is not running (exit status 3, as an init script's `status`)."""

    exit_code = 3
    code = "not-running"


@dataclass(frozen=True)
class Paths:
    pid: Path
    log: Path
    state: Path


def paths() -> Paths:
    home = site.state_dir()
    return Paths(home / PID_NAME, home / LOG_NAME, home / STATE_NAME)


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    url: str | None
    log: Path


def _proc_state(pid: int) -> str | None:
    """The process state letter from /proc (None when there is no such process)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()[0]


def alive(pid: int) -> bool:
    """True for a live process (a zombie, which nobody may have reaped yet, is not)."""
    state = _proc_state(pid)
    if state is not None:
        return state not in ("Z", "X")
    if Path("/proc/self").exists():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_airboss(pid: int) -> bool:
    """True when `pid` runs `airboss serve` (or `python -m flightdeck.airboss serve`)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    program = any(a == b"flightdeck.airboss" or os.path.basename(a) == b"airboss" for a in args)
    return program and b"serve" in args


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def status() -> Status:
    p = paths()
    pid = _read_pid(p.pid)
    if pid is None or not alive(pid) or not _is_airboss(pid):
        return Status(False, None, None, p.log)
    url = None
    try:
        state = json.loads(p.state.read_text(encoding="utf-8"))
        if state.get("pid") == pid:
            url = state.get("url")
    except (OSError, ValueError):
        pass
    return Status(True, pid, url, p.log)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 4096))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def start(args: list[str], timeout: float = 30.0) -> Status:
    """Start the daemon with `airboss serve` arguments `args`; return once it listens."""
    current = status()
    if current.running:
        raise Conflict(f"the Airboss is already running (pid {current.pid}, {current.url})")
    p = paths()
    p.pid.parent.mkdir(parents=True, exist_ok=True)
    for stale in (p.pid, p.state):
        stale.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "flightdeck.airboss", "serve", "--pid-file", str(p.pid), *args]
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the forked process
        try:
            os.close(read_end)
            os.setsid()
            if os.fork():
                os._exit(0)
            os.chdir("/")
            os.umask(0o027)
            log_fd = os.open(p.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            null_fd = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null_fd, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.write(write_end, str(os.getpid()).encode())
            # Nothing else the caller holds may live on in the daemon: an inherited descriptor
            # (a shell script's flock, a socket) would stay held as long as the daemon runs.
            os.closerange(3, os.sysconf("SC_OPEN_MAX"))
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode().strip()
    if not text.isdigit():
        raise DriverError(f"the Airboss did not start: see {p.log}")
    pid = int(text)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _read_pid(p.pid) == pid:
            now = status()
            if now.running:
                return now
        if not alive(pid):
            raise DriverError(f"the Airboss did not start: {_tail(p.log) or 'see ' + str(p.log)}")
        time.sleep(0.05)
    raise DriverError(f"the Airboss did not start listening within {timeout:g} s: see {p.log}")


def stop(timeout: float = 30.0) -> int:
    """SIGTERM the running daemon and wait until it has ended; its pid."""
    p = paths()
    pid = _read_pid(p.pid)
    if pid is None or not alive(pid) or not _is_airboss(pid):
        for stale in (p.pid, p.state):
            stale.unlink(missing_ok=True)
        raise NotRunning(f"the Airboss is not running (no live process in {p.pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            for stale in (p.pid, p.state):
                if _read_pid(stale) == pid or stale.suffix == ".json":
                    stale.unlink(missing_ok=True)
            return pid
        time.sleep(0.05)
    raise DriverError(f"the Airboss (pid {pid}) did not stop within {timeout:g} s")
