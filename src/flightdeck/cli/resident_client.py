"""`rocks` handing its command to `rocksd`, the resident process that has already imported it all.

A `rocks` command spends ~420 ms importing (SQLAlchemy, the ORM, our models, libvirt) before it
does its work; `rocks start host vm` does ~350 ms of libvirt work after that. `rocksd`
(`cli.resident_server`) imports everything once and forks one child per command, so a served
command costs the interpreter's start, this module (~5 ms) and a fork. Nothing about the command
changes: the child runs `cli.main.run` with this process's arguments, environment, working
directory, umask and standard streams (the descriptors themselves, passed over the socket, so a
terminal stays a terminal and a pipe a pipe), and its exit status becomes this process's.

Before it sends anything it asks the kernel who listens (SO_PEERCRED): only a server run by root
or by this user is given this process's descriptors and environment.

When nothing answers (no `rocksd`, a stale socket, a server started from other code or another
Python, one that is full, a stranger's) the command runs here as it always did: `served` returns
None and the caller imports `cli.main`. Once the server has said which process runs the command,
it is never run a second time here, whatever happens after.

Standard library only, and cheap: `os.stat` of the socket first, so a machine without `rocksd`
pays one system call. `FLIGHTDECK_RESIDENT=no` runs every command here; so does any `-X` option
(`-X importtime` measures this process's imports, which a served command would not have).

The wire, both ways on one Unix stream socket (`PROTOCOL` names it; no JSON, whose import costs
more than all of this module):

* request: 4 bytes big-endian length, sent with SCM_RIGHTS carrying stdin, stdout, stderr and
  the working directory, then that many bytes: NUL-separated fields, `PROTOCOL`, the
  interpreter's prefix (its virtualenv), the `flightdeck` package directory, the Python
  version, the umask (octal), the argument count, the arguments, then `NAME=value` for every
  environment variable;
* replies, one ASCII line each: `refused <reason>` (run it here), or `pid <n>` and later
  `exit <status>`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from collections.abc import Callable

#: Names this wire format; a server that speaks another refuses, and the command runs here.
PROTOCOL = b"flightdeck-rocksd-1"
#: Where `rocksd` listens unless FLIGHTDECK_RESIDENT_SOCKET says otherwise.
DEFAULT_SOCKET = "/run/flightdeck/rocks.sock"
#: Seconds to connect and to be told `pid` or `refused`; the server answers in ~1 ms.
ANSWER_TIMEOUT = 5.0
#: Longest reply line, in bytes: `exit 255` or a short reason.
MAX_LINE = 512
#: Signals a user sends to "the command" that must reach the process running it.
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
#: Passed on too, but not an end: the terminal's new size; Ctrl-Z (the command stops with us,
#: and goes on when the shell continues us).
PASSED = ("SIGWINCH", "SIGTSTP")
#: Exit status when the served process ended without saying (EX_SOFTWARE, as cli.main).
EXIT_LOST = 70


def socket_path() -> str:
    return os.environ.get("FLIGHTDECK_RESIDENT_SOCKET") or DEFAULT_SOCKET


def package_dir() -> str:
    """The `flightdeck` package this process would run (its directory, symlinks resolved)."""
    return os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def identity() -> tuple[bytes, bytes, bytes]:
    """What must match between client and server for the server to run *this* code."""
    version = ".".join(str(n) for n in sys.version_info[:3])
    return (
        os.fsencode(sys.prefix),  # the virtualenv: `python` and `python3` in it are one
        os.fsencode(package_dir()),
        version.encode(),
    )


def encode_request(argv: list[str], environ: dict[str, str], umask: int) -> bytes:
    """The request's fields (everything but the descriptors), NUL-separated."""
    fields = [PROTOCOL, *identity(), b"%o" % umask, b"%d" % len(argv)]
    fields += [os.fsencode(a) for a in argv]
    fields += [os.fsencode(k) + b"=" + os.fsencode(v) for k, v in environ.items()]
    return b"\0".join(fields)


def served(argv: list[str]) -> int | None:
    """Run `rocks argv` in `rocksd`; its exit status, or None to run it in this process."""
    if os.environ.get("FLIGHTDECK_RESIDENT", "").lower() in ("no", "0", "off", "false"):
        return None
    if sys._xoptions or sys.flags.dev_mode:
        return None
    from flightdeck.cli.program import HELP_WORDS  # imports nothing

    if not argv or argv[0] in HELP_WORDS or argv[-1] in HELP_WORDS:
        return None  # help reads one generated file: cheaper here than a fork away
    path = socket_path()
    try:
        os.stat(path)
    except OSError:
        return None
    # `_socket` and `_signal`, not `socket` and `signal`: the public modules build enums of
    # every constant at import (~12 ms together, a quarter of a served listing).
    import _signal  # type: ignore[import-not-found]  # no stub; `signal` re-exports it
    import _socket

    # A signal that comes while the server is being asked waits (blocked) until this process
    # knows whom to forward it to, or, if the command runs here after all, until it does.
    caught = {getattr(_signal, name) for name in (*FORWARDED, *PASSED)}
    blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, caught)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        return _ask(sock, path, argv, lambda: _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked))
    finally:
        sock.close()
        _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)


class _Lines:
    """Reply lines from the server, each at most MAX_LINE bytes (a longer one is cut)."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def readline(self) -> bytes:
        while b"\n" not in self.buffer and len(self.buffer) < MAX_LINE:
            chunk = self.sock.recv(MAX_LINE)
            if not chunk:
                break
            self.buffer += chunk
        line, sep, self.buffer = self.buffer.partition(b"\n")
        return (line + sep)[:MAX_LINE]


def _ask(
    sock: _socket.socket, path: str, argv: list[str], unblock: Callable[[], object]
) -> int | None:
    import _socket
    from array import array

    sock.settimeout(ANSWER_TIMEOUT)
    umask = os.umask(0)
    os.umask(umask)
    payload = encode_request(argv, dict(os.environ), umask)
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    lines = _Lines(sock)
    try:
        sock.connect(path)
        if not _trusted(sock):
            return None
        fds = array("i", [0, 1, 2, cwd])
        rights = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)]
        sock.sendmsg([len(payload).to_bytes(4, "big")], rights)
        sock.sendall(payload)
        first = lines.readline()
    except OSError:
        return None  # nothing listening, or it went away before taking the command
    finally:
        os.close(cwd)
    if not first.startswith(b"pid "):
        if os.environ.get("FLIGHTDECK_DEBUG"):
            sys.stderr.write(f"rocks: rocksd did not run it ({_text(first)}); running here\n")
        return None
    try:
        pid = int(first[4:])
    except ValueError:
        return None
    return _wait(sock, lines, pid, unblock)


def peer(sock: _socket.socket) -> tuple[int, int, int]:
    """The pid, uid and gid of the process at the other end, from the kernel (SO_PEERCRED's
    `struct ucred`, three native ints); both ends of the rocksd socket check each other."""
    import _socket

    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    pid, uid, gid = (int.from_bytes(creds[i : i + 4], sys.byteorder) for i in (0, 4, 8))
    return pid, uid, gid


def _trusted(sock: _socket.socket) -> bool:
    """The server is root or this user (the kernel says, SO_PEERCRED): anyone else listening
    on the path (a socket in a world-writable directory, FLIGHTDECK_RESIDENT_SOCKET set by
    mistake) gets neither this process's descriptors nor its environment."""
    _pid, uid, _gid = peer(sock)
    if uid in (0, os.geteuid()):
        return True
    sys.stderr.write(
        f"rocks: {socket_path()} is served by uid {uid}, not root or you; running here\n"
    )
    return False


def _wait(sock: _socket.socket, lines: _Lines, pid: int, unblock: Callable[[], object]) -> int:
    """Pass the user's signals to `pid` until the server reports its exit status."""
    import _signal  # type: ignore[import-not-found]  # no stub; `signal` re-exports it

    sent: list[int] = []

    def pass_on(signum: int, _frame: object = None) -> None:
        try:  # noqa: SIM105 - contextlib is an import this module does without
            os.kill(pid, signum)
        except OSError:
            pass

    def forward(signum: int, _frame: object) -> None:
        sent.append(signum)
        pass_on(signum)

    def suspend(_signum: int, _frame: object) -> None:
        try:
            os.kill(pid, _signal.SIGSTOP)
            os.kill(os.getpid(), _signal.SIGSTOP)  # returns when the shell continues us
            os.kill(pid, _signal.SIGCONT)
        except OSError:
            pass

    for name in FORWARDED:
        _signal.signal(getattr(_signal, name), forward)
    _signal.signal(_signal.SIGWINCH, pass_on)
    _signal.signal(_signal.SIGTSTP, suspend)
    unblock()
    sock.settimeout(None)  # the command takes as long as it takes
    try:
        line = lines.readline()
    except OSError:
        line = b""
    if line.startswith(b"exit "):
        try:
            return int(line[5:])
        except ValueError:
            pass
    if sent:
        return 128 + sent[-1]
    sys.stderr.write(
        f"error - rocksd's process for this command (pid {pid}) ended without an exit status; "
        "see rocksd's log\n"
    )
    return EXIT_LOST


def _text(line: bytes) -> str:
    return line.decode("ascii", "replace").strip() or "no answer"
