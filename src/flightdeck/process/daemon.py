"""Background daemons without systemd: start, pid file, readiness, stop, log tail.

A `Daemon` is a pid file, a log and a way to recognise the process by its command line
(`/proc/<pid>/cmdline`): a stale pid file, whose number the kernel has given to another
process since, never gets that process signalled or reported as ours.

Two ways to start one:

* `spawn(argv)`: a process that stays in the foreground of its own session (our Python
  daemons: `python_module(...)` is the argv of `python -m <module>`). It runs in a new session
  (no terminal), with standard input from /dev/null, standard output and error appended to the
  log, no descriptor of ours but those (a shell script's flock held by the caller must not
  live on in it), in `/` unless told otherwise. It is ready when its pid file names it (it
  writes the file once it listens) and `ready(pid)` agrees.
* `start_forking(argv)`: a program that daemonises itself and writes its own pid file
  (dnsmasq); ready when that file names a process we recognise.

`stop()` sends SIGTERM and waits; past the timeout it sends SIGKILL, or with `kill=False`
reports that the process did not stop. Either way a stale pid file is removed.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flightdeck.errors import DriverError, FlightdeckError

#: How often the start and stop waits look again, in seconds.
POLL = 0.05
#: Bytes read from the end of a log for `tail` (a few lines, never the whole file).
TAIL_BYTES = 4096


class NotRunning(FlightdeckError):
    """The daemon does not run (exit status 3, as an init script's `status`)."""

    exit_code = 3
    code = "not-running"


# Processes -----------------------------------------------------------------------------------


def read_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    """Write the pid file atomically (a reader sees no file or the whole number)."""
    tmp = path.with_name(f".{path.name}.{pid}.tmp")
    tmp.write_text(f"{pid}\n", encoding="utf-8")
    os.replace(tmp, path)


def alive(pid: int) -> bool:
    """True for a live process (a zombie, which nobody may have reaped yet, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def tail(path: Path, lines: int = 5) -> str:
    """The last `lines` lines of a log, joined by " | " (for a one-line error); "" if none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - TAIL_BYTES))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def in_netns(netns: str | None) -> list[str]:
    """`ip netns exec <ns>` when a namespace is asked for (checked to exist: a clear error)."""
    if not netns:
        return []
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", netns) or not Path("/run/netns", netns).exists():
        raise DriverError(f"network namespace {netns!r} does not exist: ip netns add {netns}")
    return ["ip", "netns", "exec", netns]


def python_module(module: str, *args: str) -> list[str]:
    """The argv that runs `python -m <module> <args>` with this interpreter: how every daemon
    of ours is started, by its module's path."""
    return [sys.executable, "-m", module, *args]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Reap the child when it ends (a caller that lives on must not collect zombies)."""
    threading.Thread(target=proc.wait, daemon=True).start()


# Daemons --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Daemon:
    """One daemon: what it is called in messages, its pid file and log, how to know it."""

    name: str
    pid_file: Path
    log: Path
    #: True when a process's command line is this daemon's (not a stranger's).
    recognise: Callable[[list[str]], bool]

    def running(self) -> int | None:
        """The pid of the live daemon the pid file names, or None."""
        pid = read_pid(self.pid_file)
        if pid is None or not alive(pid) or not self.recognise(cmdline(pid)):
            return None
        return pid

    def tail(self) -> str:
        return tail(self.log) or f"see {self.log}"

    def spawn(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        ready: Callable[[int], bool] = lambda _pid: True,
        cwd: str | None = "/",
    ) -> int:
        """Start `argv` in the background; its pid once it has written the pid file.

        `cwd` is its working directory (None: ours, for a daemon given relative paths).
        """
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.unlink(missing_ok=True)
        with open(self.log, "ab") as out:
            os.chmod(self.log, 0o640)
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                close_fds=True,
                cwd=cwd,
                umask=0o027,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # `ip netns exec` replaces itself with the daemon: the pid is our child's.
            if read_pid(self.pid_file) == proc.pid and self.running() == proc.pid and ready(
                proc.pid
            ):
                _reap(proc)
                return proc.pid
            if proc.poll() is not None:
                raise DriverError(f"{self.name} did not start: {self.tail()}")
            time.sleep(POLL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        raise DriverError(f"{self.name} did not start within {timeout:g} s: see {self.log}")

    def start_forking(
        self, argv: Sequence[str], *, timeout: float, install: str, see: Path | None = None
    ) -> int:
        """Run a program that daemonises itself; its daemon's pid once the pid file names it.

        `install` says how to get the program when it is missing; `see` is where to look
        when it refuses to start (its configuration).
        """
        self.pid_file.unlink(missing_ok=True)
        try:
            done = subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError:
            raise DriverError(f"{argv[0]} is not installed: {install}") from None
        except subprocess.TimeoutExpired:
            raise DriverError(f"{self.name} did not start within {timeout:g} s") from None
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().splitlines()
            raise DriverError(
                f"{self.name} did not start ({why[-1] if why else f'exit {done.returncode}'}): "
                f"see {see or self.log}"
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.running()
            if pid is not None:
                return pid
            time.sleep(POLL)
        raise DriverError(f"{self.name} wrote no pid file {self.pid_file} within {timeout:g} s")

    def signal(self, sig: signal.Signals) -> int | None:
        """Send `sig` to the running daemon; its pid, or None when it does not run."""
        pid = self.running()
        if pid is not None:
            os.kill(pid, sig)
        return pid

    def stop(self, timeout: float = 10.0, *, kill: bool = True) -> int | None:
        """SIGTERM the daemon and wait until it has ended; its pid (None: it was not running).

        Past `timeout` seconds: SIGKILL, or with `kill=False` a DriverError.
        """
        pid = self.running()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while alive(pid):
            if time.monotonic() > deadline:
                if not kill:
                    raise DriverError(f"{self.name} (pid {pid}) did not stop within {timeout:g} s")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline += timeout
            time.sleep(POLL)
        if read_pid(self.pid_file) == pid:
            self.pid_file.unlink(missing_ok=True)
        return pid


# A program for the user ------------------------------------------------------------------------


class Child(Protocol):
    """A started program: wait for it to end (its exit status)."""

    def wait(self) -> int: ...


def spawn_program(argv: Sequence[str]) -> Child | None:
    """Start `argv` (a VNC viewer) on this terminal, searched for on PATH; None when it cannot
    be started (then the caller prints what to connect to instead)."""
    try:
        return subprocess.Popen(list(argv))
    except OSError:
        return None
