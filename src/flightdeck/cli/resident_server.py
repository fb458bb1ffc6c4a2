"""`rocksd`: a resident process with every Flightdeck module imported, forking one per command.

Why: a `rocks` command imports ~420 ms of Python (SQLAlchemy, the ORM, our models, libvirt)
before its work begins, and on a virtual frontend, whose imports run ~25x slower under TCG, that
is seconds. `rocksd` pays it once; each `rocks` that finds its socket (`cli.resident_client`)
hands over its command and waits for the exit status.

Why a fork per command and not a thread: a command is then exactly what it is in its own
process. It gets its own database engine and libvirt connections (the server opens neither),
the client's environment, working directory, umask and standard streams, and whatever it does
(a crash, a leak, `os.chdir`, a signal) ends with it. The server only imports, checks and forks.

Who may use it (checked in this order, before anything in the request is read):

1. the socket's directory is created 0700 and the socket 0600, owned by the server's user;
2. the peer's user, from the kernel (SO_PEERCRED), must be the server's own: a served command
   runs with the server's privileges, so only someone who already has them may ask;
3. the peer process (the pid the kernel names, read in /proc, never from the request) must be
   confined as the server is: the same namespaces (`ip netns exec ns rocks ...` runs in `ns`),
   root directory, capabilities, no-new-privileges and seccomp mode. A root shell that dropped
   a capability must not get it back by asking us; it runs the command itself.

The child then takes the client's resource limits, nice value, CPU affinity and OOM score
(`prlimit`, `getpriority`, `sched_getaffinity` of the client's pid), so `nice rocks ...` and
`ulimit` hold; it stays in rocksd's cgroup.

What is run: only the code the client would have run itself. The request names its virtualenv,
its `flightdeck` package directory and its Python version; any difference is refused and the
command runs in the client. Before each fork the server also checks that no file of its package
changed since it imported them (a stamp of every `.py`'s size and modification time); if one did,
it refuses, removes its socket and exits (a service manager restarts it on the new code).

Bounds: a request is at most `MAX_REQUEST` bytes and must arrive within `REQUEST_TIMEOUT`
seconds; at most `MAX_CHILDREN` commands run at once (more are refused and run in their clients).
Every decision is one line on standard error, with client-chosen text escaped.

    rocksd [--socket PATH] [--pid-file PATH] [--request-timeout S] [--max-children N]

`rocks start|stop|report service rocksd` run it as a daemon where there is no systemd
(`cli/resident_daemon.py`); a virtual frontend's image starts it with a unit.

The socket defaults to FLIGHTDECK_RESIDENT_SOCKET, else /run/flightdeck/rocks.sock.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import gc
import importlib
import os
import pkgutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import flightdeck
from flightdeck.cli import resident_client as wire
from flightdeck.logsafe import escape
from flightdeck.process import caller
from flightdeck.process.daemon import read_pid, write_pid

#: Largest request in bytes (arguments and environment); a root shell's is ~3 KB.
MAX_REQUEST = 1 << 20
#: Seconds a client has to send its whole request once connected.
REQUEST_TIMEOUT = 5.0
#: Commands running at once; beyond it clients run their commands themselves.
MAX_CHILDREN = 64
#: Descriptors a request carries: stdin, stdout, stderr, the working directory.
FDS = 4
#: Modules never imported ahead: Alembic's migration scripts run when imported.
SKIP = ("flightdeck.db.migrations",)
#: Libraries' modules imported only when first used (SQLAlchemy loads a dialect when an engine
#: is made: ~10 ms a command); imported ahead when installed.
LAZY = (
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
)


@dataclass(frozen=True)
class Request:
    """One decoded request: what to run and in which surroundings."""

    identity: tuple[bytes, bytes, bytes]
    umask: int
    argv: list[str]
    environ: dict[str, str]


class Refused(Exception):
    """The request is not run here; its text is the reason the client is told and we log."""


class Stale(Refused):
    """Our code on disk is not the code we imported: refuse, and stop serving."""


def decode(payload: bytes) -> Request:
    """Parse a request's fields (`cli.resident_client.encode_request`); Refused when malformed."""
    fields = payload.split(b"\0")
    if len(fields) < 6 or fields[0] != wire.PROTOCOL:
        raise Refused("not a request this rocksd understands")
    try:
        umask = int(fields[4], 8)
        argc = int(fields[5])
    except ValueError:
        raise Refused("malformed request") from None
    if not 0 <= umask <= 0o777 or not 0 <= argc <= len(fields) - 6:
        raise Refused("malformed request")
    argv = [os.fsdecode(a) for a in fields[6 : 6 + argc]]
    environ: dict[str, str] = {}
    for entry in fields[6 + argc :]:
        name, sep, value = entry.partition(b"=")
        if not sep or not name:
            raise Refused("malformed request")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return Request((fields[1], fields[2], fields[3]), umask, argv, environ)


def stamp(root: str) -> frozenset[tuple[str, int, int]]:
    """Every `.py` under `root` with its size (bytes) and modification time (ns): the code.

    Taken before every fork: `os.scandir` (file types without a `stat` each) and a set (no
    sort) make it ~1.5 ms for our ~300 files, against ~3.5 ms with `os.walk` and a sorted tuple;
    under TCG, 25 times that."""
    found: list[tuple[str, int, int]] = []
    dirs = [root]
    while dirs:
        with os.scandir(dirs.pop()) as entries:
            for entry in entries:
                if entry.name.endswith(".py"):
                    with contextlib.suppress(OSError):
                        st = entry.stat()
                        found.append((entry.path, st.st_size, st.st_mtime_ns))
                elif entry.name != "__pycache__" and entry.is_dir(follow_symlinks=False):
                    dirs.append(entry.path)
    return frozenset(found)


def preload(log: Log) -> int:
    """Import every Flightdeck module (the commands, the services they import lazily, their
    libraries); returns how many. One that cannot be imported (an extra not installed) is
    logged and left to the command that needs it, which then fails as it would without us."""
    count = 0
    ours = (info.name for info in pkgutil.walk_packages(flightdeck.__path__, "flightdeck."))
    for name in (*ours, *LAZY):
        if name.endswith(".__main__") or name.startswith(SKIP):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # an optional dependency missing, say
            log(f"preload {name}: {type(exc).__name__}: {escape(exc, 200)}")
        else:
            count += 1
    return count


class Log:
    """One line per decision on the server's standard error, with a UTC timestamp."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr

    def __call__(self, line: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.stream.write(f"{now} rocksd: {line}\n")
        self.stream.flush()


class Server:
    """The listening socket, the code it runs and the children running commands."""

    def __init__(
        self,
        path: str,
        log: Log,
        run: Callable[[list[str]], int],
        request_timeout: float = REQUEST_TIMEOUT,
        max_children: int = MAX_CHILDREN,
    ) -> None:
        self.path = path
        self.log = log
        #: What a child runs: `cli.main.run`, given by `bin/rocksd` (this module must not
        #: import the command tree, whose `rocks start service rocksd` starts us).
        self.run = run
        self.request_timeout = request_timeout
        self.max_children = max_children
        self.root = wire.package_dir()
        self.identity = wire.identity()
        self.code = stamp(self.root)
        self.confinement = caller.confinement("self")
        self.children: set[int] = set()
        self.listener: socket.socket | None = None
        self.stopping = False

    # -- the socket ---------------------------------------------------------------------------

    def bind(self) -> None:
        """Listen on `path`: its directory 0700, the socket 0600; refuse if a server answers."""
        parent = Path(self.path).parent
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = parent.stat()
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise SystemExit(
                f"rocksd: {parent} must belong to uid {os.geteuid()} and not be group- or "
                f"world-writable (chmod 700 {parent})"
            )
        if os.path.lexists(self.path):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.settimeout(1.0)
            try:
                probe.connect(self.path)
            except OSError:
                os.unlink(self.path)  # a socket left by a server that died
            else:
                raise SystemExit(f"rocksd: another rocksd already listens on {self.path}")
            finally:
                probe.close()
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(128)
        self.listener = listener

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    # -- the loop -----------------------------------------------------------------------------

    def serve(self) -> None:
        assert self.listener is not None
        signal.signal(signal.SIGCHLD, self._reap)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.log(f"listening on {self.path} (pid {os.getpid()}, code {self.root})")
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError as exc:
                if self.stopping or exc.errno == errno.EBADF:
                    break
                self.log(f"accept: {exc}")
                continue
            try:
                self.handle(conn)
            finally:
                conn.close()
        self.close()
        self.log("stopped")

    def _stop(self, _signum: int, _frame: object) -> None:
        self.stopping = True
        if self.listener is not None:
            # accept() fails (EINVAL) once the socket is shut, and the loop sees `stopping`;
            # running commands go on.
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)

    def _reap(self, _signum: int, _frame: object) -> None:
        while self.children:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)

    def handle(self, conn: socket.socket) -> None:
        """Check the peer, read and check the request, fork the command's process."""
        pid, uid, _gid = wire.peer(conn)
        if uid != os.geteuid():
            self.log(f"refused pid {pid} uid {uid}: not this server's user ({os.geteuid()})")
            _reply(conn, b"refused not this server's user")
            return
        fds: list[int] = []
        try:
            try:
                theirs = caller.confinement(pid)
            except OSError:
                raise Refused("the client's process cannot be inspected") from None
            if unequal := caller.differs(self.confinement, theirs):
                raise Refused(f"the client's {', '.join(unequal)} differ from rocksd's")
            conn.settimeout(self.request_timeout)
            request, fds = _receive(conn)
            self.check(request)
            child = self.fork(conn, request, fds, pid)
        except Refused as why:
            self.log(f"refused pid {pid}: {why}")
            with contextlib.suppress(OSError):
                _reply(conn, b"refused " + str(why).encode())
            if isinstance(why, Stale):
                self.stopping = True
            return
        except OSError as exc:
            self.log(f"dropped pid {pid}: {type(exc).__name__}: {escape(exc, 200)}")
            return
        finally:
            for fd in fds:
                os.close(fd)
        self.log(f"pid {pid}: running rocks {escape(' '.join(request.argv))} as pid {child}")

    def check(self, request: Request) -> None:
        if request.identity != self.identity:
            raise Refused("another interpreter or Flightdeck than rocksd's")
        if len(self.children) >= self.max_children:
            raise Refused(f"{self.max_children} commands already running")
        if stamp(self.root) != self.code:
            raise Stale("code changed since rocksd started; it exits (restart it)")

    def fork(self, conn: socket.socket, request: Request, fds: list[int], client: int) -> int:
        """The command's process (`process.caller`): it says `pid`, runs, says `exit`."""
        listener = self.listener

        def body() -> int:
            if listener is not None:
                listener.close()
            conn.settimeout(None)
            _reply(conn, b"pid %d" % os.getpid())
            try:
                code = self.run(request.argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            caller.finish()
            _reply(conn, b"exit %d" % code)
            return code

        who = caller.Caller(client, fds, request.umask, request.environ, ["rocks", *request.argv])
        # The SIGCHLD handler must not run in the child, nor before the child is counted.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            child = caller.fork_as(who, body)
            self.children.add(child)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        return child


def _reply(conn: socket.socket, line: bytes) -> None:
    conn.sendall(line[: wire.MAX_LINE - 1] + b"\n")


def _receive(conn: socket.socket) -> tuple[Request, list[int]]:
    """The length and descriptors, then the fields; bounded and timed out."""
    head, fds, _flags, _addr = socket.recv_fds(conn, 4, FDS)
    try:
        if len(head) != 4 or len(fds) != FDS:
            raise Refused("malformed request")
        size = int.from_bytes(head, "big")
        if size > MAX_REQUEST:
            raise Refused(f"request larger than {MAX_REQUEST} bytes")
        chunks: list[bytes] = []
        left = size
        while left:
            chunk = conn.recv(min(left, 65536))
            if not chunk:
                raise Refused("request cut short")
            chunks.append(chunk)
            left -= len(chunk)
        return decode(b"".join(chunks)), fds
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise


def main(run: Callable[[list[str]], int], argv: list[str] | None = None) -> None:
    """`rocksd` (bin/rocksd): serve `run` (cli.main.run) until SIGTERM."""
    ap = argparse.ArgumentParser(prog="rocksd", description=__doc__.split("\n\n")[0])
    ap.add_argument("--socket", default=wire.socket_path(), help="where to listen")
    ap.add_argument("--pid-file", help="write the pid here once listening (removed at exit)")
    ap.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        help="seconds a client has to send its request (default %(default)s)",
    )
    ap.add_argument(
        "--max-children",
        type=int,
        default=MAX_CHILDREN,
        help="commands run at once; more run in their clients (default %(default)s)",
    )
    a = ap.parse_args(argv)
    for fd in (0, 1, 2):  # a descriptor a request brings must never land on 0-2 here
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)
    log = Log()
    started = time.monotonic()
    count = preload(log)
    gc.collect()
    gc.freeze()  # the imported objects stay shared with the children, untouched by their GC
    server = Server(a.socket, log, run, a.request_timeout, a.max_children)
    server.bind()
    log(f"{count} modules imported in {time.monotonic() - started:.2f} s")
    if a.pid_file:
        write_pid(Path(a.pid_file), os.getpid())
    try:
        server.serve()
    finally:
        server.close()
        if a.pid_file and read_pid(Path(a.pid_file)) == os.getpid():
            Path(a.pid_file).unlink(missing_ok=True)
