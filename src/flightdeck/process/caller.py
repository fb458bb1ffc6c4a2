"""Becoming the caller: a forked child that runs a command as the process that asked for it.

`rocksd` (cli/resident_server.py) runs each `rocks` command in a fork of itself; this module is
the process side of that, kept with the other process drivers: how to tell whether the asking
process is confined as we are (`confinement`, from /proc of the pid the kernel named), and how
a fork takes on the caller's surroundings (`fork_as`): its session, resource limits, priority,
CPUs, OOM score, standard streams, working directory, umask, environment and argv.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: Namespaces the caller must share with us: `ip netns exec ns rocks ...` must not be run in
#: our network, nor a command from a container in the host's.
NAMESPACES = ("net", "mnt", "pid", "uts", "ipc", "user", "cgroup", "time")
#: Privileges (from /proc/<pid>/status) the caller must have as we have them: root with
#: capabilities dropped, no-new-privileges or a seccomp filter must not shed them through us.
PRIVILEGES = (
    "Uid",  # real, effective, saved and file-system: a setuid caller is not its effective uid
    "Gid",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "NoNewPrivs",
    "Seccomp",
)


def confinement(pid: int | str) -> dict[str, object]:
    """What confines process `pid` (or "self"), as the kernel says: its namespaces, its root
    directory and its privileges. A fork of ours is the caller only where these are equal."""
    out: dict[str, object] = {}
    for ns in NAMESPACES:
        try:
            out[ns] = os.readlink(f"/proc/{pid}/ns/{ns}")
        except FileNotFoundError:
            out[ns] = None  # a kernel without this namespace type: the same for both
    root = os.stat(f"/proc/{pid}/root")
    out["root directory"] = (root.st_dev, root.st_ino)
    with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as status:
        lines = status.read().splitlines()[1:]  # not Name:, the one field the process chose
    for line in lines:
        name, _, value = line.partition(":")
        if name in PRIVILEGES:
            out[name] = value.strip()
    return out


def differs(mine: dict[str, object], theirs: dict[str, object]) -> list[str]:
    """The names of what confines `theirs` otherwise than `mine`."""
    return [key for key in mine if theirs.get(key) != mine[key]]


@dataclass(frozen=True)
class Caller:
    """The process a child is to become."""

    pid: int
    #: Its stdin, stdout, stderr and working directory, as descriptors received from it.
    fds: Sequence[int]
    umask: int
    environ: Mapping[str, str]
    argv: Sequence[str]


def fork_as(caller: Caller, body: Callable[[], int]) -> int:
    """Fork; the child takes on `caller`'s surroundings, runs `body` and ends (os._exit) with
    0 when it returned 0, else 1; the parent gets the child's pid. Anything failing before
    `body` ends the child at once: `body` is where the caller is told it runs."""
    child = os.fork()
    if child:
        return child
    status = 1
    try:
        _become(caller)
        status = 0 if body() == 0 else 1
    finally:
        os._exit(status)


def _become(caller: Caller) -> None:
    os.setsid()  # out of the parent's process group: its signals are not the command's
    _take_limits(caller.pid)
    for signum in (signal.SIGCHLD, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    for target, fd in enumerate(caller.fds[:3]):
        os.dup2(fd, target)
    os.fchdir(caller.fds[3])
    for fd in caller.fds:
        os.close(fd)
    os.umask(caller.umask)
    os.environ.clear()
    os.environ.update(caller.environ)
    _reopen_std_streams()
    sys.argv = list(caller.argv)


def _take_limits(pid: int) -> None:
    """The caller's resource limits (`ulimit`, `prlimit`), priority (`nice`), CPUs (`taskset`)
    and OOM score: where the command runs, not ours (rocksd is niced on a virtual frontend)."""
    import resource

    for name in dir(resource):
        if name.startswith("RLIMIT_"):
            limit = getattr(resource, name)
            resource.setrlimit(limit, resource.prlimit(pid, limit))
    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, pid))
    os.sched_setaffinity(0, os.sched_getaffinity(pid))
    score = Path(f"/proc/{pid}/oom_score_adj").read_text()
    Path("/proc/self/oom_score_adj").write_text(score)


def _reopen_std_streams() -> None:
    """Text streams on the caller's descriptors, buffered as Python buffers its own."""
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        old = getattr(sys, name)
        tty = os.isatty(fd)
        stream = io.TextIOWrapper(
            open(fd, mode + "b", closefd=False, buffering=-1),  # noqa: SIM115 - lives as sys.std*
            encoding=getattr(old, "encoding", None) or "utf-8",
            errors="backslashreplace" if name == "stderr" else getattr(old, "errors", "strict"),
            line_buffering=tty or name == "stderr",
        )
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def finish() -> None:
    """What an ending interpreter does, before the caller is told the status: atexit's
    functions, then the standard streams flushed."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
