"""`open host console` on the owner's side, shared by `rocks open host console` and `pilot`.

VNC: a first session is opened before anything else, so a wrong key or target, or a stopped
VM, fails at once with the Airboss's reason; then a listening socket on 127.0.0.1 (`port=`, or
a free one), and each TCP connection a viewer makes to it is relayed through its own WebSocket
session to the Airboss (the first through the session already open; later ones signed anew, so
a viewer that reconnects just works). A VNC viewer is started when one is installed
(`VIEWERS`, or `viewer=`; `viewer=none` never); otherwise the address is printed and the
forwarder runs until Ctrl-C.

Serial: one session, attached to the terminal like `virsh console`: raw mode when standard
input is a terminal, Ctrl-] detaches. When standard input is not a terminal (a script, a test)
its bytes are sent as they come and the guest's output is written to standard output until the
console closes (the VM stopped) or the process is interrupted; the end of input does not end
the session.

Standard library only (threads and blocking sockets, no asyncio): it runs on a laptop. The
viewer is started by `process.daemon.spawn_program` (processes are the driver packages'
business).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable
from typing import BinaryIO

from flightdeck.api.operations import CONSOLE_KINDS
from flightdeck.errors import UserError
from flightdeck.pilot.client import AirbossClient
from flightdeck.pilot.websocket import Closed, WebSocket, WebSocketError
from flightdeck.process.daemon import spawn_program

#: Viewers tried in this order when `viewer=` is not given.
VIEWERS = ("vncviewer", "xtightvncviewer", "remote-viewer")
#: Ctrl-]: detaches a serial console attached to a terminal (as `virsh console`).
ESCAPE = b"\x1d"
CHUNK = 64 * 1024


def check_kind(kind: str | None) -> str:
    word = (kind or "vnc").strip().lower()
    if word not in CONSOLE_KINDS:
        raise UserError('invalid console. console must be "vnc" or "serial"')
    return word


def find_viewer(choice: str | None) -> str | None:
    """The viewer program to start: `choice`, else the first of `VIEWERS` installed; None
    for `none` or when none is installed. A named viewer that is not installed is an error."""
    if choice is not None and choice.strip().lower() == "none":
        return None
    if choice:
        found = shutil.which(choice)
        if found is None:
            raise UserError(
                f"viewer {choice!r} is not installed: install it, or give viewer=none and "
                "point any VNC viewer at the printed address"
            )
        return found
    return next((p for p in (shutil.which(v) for v in VIEWERS) if p), None)


def viewer_argv(viewer: str, port: int) -> list[str]:
    """The command line that points `viewer` at 127.0.0.1:`port`."""
    name = os.path.basename(viewer)
    if name.startswith("remote-viewer"):
        return [viewer, f"vnc://127.0.0.1:{port}"]
    return [viewer, f"127.0.0.1::{port}"]  # TigerVNC / TightVNC: `::` introduces a port


def pump_to_websocket(source: Callable[[], bytes], ws: WebSocket) -> None:
    """Send what `source` yields until it returns b"" or the session breaks."""
    with contextlib.suppress(OSError, WebSocketError):
        while True:
            data = source()
            if not data:
                return
            ws.send(data)


class Forwarder:
    """127.0.0.1:<port>, each connection relayed through a new console session."""

    def __init__(
        self,
        client: AirbossClient,
        target: str,
        kind: str = "vnc",
        port: int = 0,
        *,
        warn: Callable[[str], object] = lambda _line: None,
        first: WebSocket | None = None,
    ) -> None:
        self.client = client
        self.target = target
        self.kind = kind
        self.warn = warn
        #: A session opened before the port (the Airboss said yes): the first viewer's.
        self._first = first
        self._first_lock = threading.Lock()
        if not 0 <= port <= 65535:
            raise UserError(f"port={port}: give 1 to 65535, or 0 for a free port")
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind(("127.0.0.1", port))
        except OSError as exc:
            self.listener.close()
            raise UserError(
                f"port={port}: cannot listen on 127.0.0.1:{port}: {exc.strerror}"
            ) from None
        self.listener.listen(16)
        self.port: int = self.listener.getsockname()[1]
        self._stop = threading.Event()

    def serve(self) -> None:
        """Accept and relay connections until `stop()` (or the listener fails)."""
        while not self._stop.is_set():
            try:
                conn, _peer = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        with self._first_lock:
            first, self._first = self._first, None
        if first is not None:
            with contextlib.suppress(OSError, WebSocketError):
                first.close()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()

    def _session(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._first_lock:
            first, self._first = self._first, None
        if first is not None:
            relay(conn, first)
            return
        try:
            ws = self.client.open_console(self.target, self.kind)
        except Exception as exc:  # refused or unreachable: tell the owner, drop the viewer
            self.warn(f"error - {getattr(exc, 'message', None) or exc}")
            conn.close()
            return
        relay(conn, ws)

    def __enter__(self) -> Forwarder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def relay(conn: socket.socket, ws: WebSocket) -> Closed | None:
    """Relay TCP `conn` <-> `ws` until either ends; the server's close, if it closed."""
    up = threading.Thread(
        target=pump_to_websocket, args=(lambda: conn.recv(CHUNK), ws), daemon=True
    )
    up.start()
    closed: Closed | None = None
    try:
        while True:
            got = ws.recv()
            if isinstance(got, Closed):
                closed = got
                return closed
            conn.sendall(got)
    except (OSError, WebSocketError):
        return closed
    finally:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        ws.close()


def attach_serial(
    ws: WebSocket,
    stdin: BinaryIO,
    stdout: BinaryIO,
    *,
    tty: bool,
) -> str:
    """Attach `stdin`/`stdout` to a serial console session; why it ended.

    With `tty`, the terminal is put in raw mode (restored on the way out) and Ctrl-] ends the
    session; without, input is sent as it comes and its end leaves the session open.
    """
    fd = stdin.fileno()
    detached = threading.Event()
    read_raw: Callable[[], bytes] = lambda: os.read(fd, 1024)  # noqa: E731
    restore: Callable[[], None] = lambda: None  # noqa: E731
    if tty:
        try:
            read_raw, restore = raw_terminal(fd)
        except UserError:
            ws.close()
            raise

    def read_input() -> bytes:
        data = read_raw()
        if tty and ESCAPE in data:
            before = data.split(ESCAPE, 1)[0]
            detached.set()
            if before:
                ws.send(before)
            ws.close(1000, "detached")
            return b""
        return data

    threading.Thread(target=pump_to_websocket, args=(read_input, ws), daemon=True).start()
    out = stdout.fileno()
    try:
        while True:
            try:
                got = ws.recv()
            except WebSocketError as exc:
                return "detached" if detached.is_set() else exc.message
            if isinstance(got, Closed):
                return "detached" if detached.is_set() else got.reason or f"closed ({got.code})"
            view = memoryview(got)
            while view:
                view = view[os.write(out, view):]
    finally:
        restore()
        ws.close()


def raw_terminal(fd: int) -> tuple[Callable[[], bytes], Callable[[], None]]:
    """Keystrokes from the terminal as they are typed, and how to put it back: termios raw mode
    on POSIX, msvcrt on Windows (imported only here, when a serial console is attached to a
    terminal: pilot itself needs neither)."""
    try:
        import termios
        import tty as ttymod
    except ImportError:
        try:
            msvcrt = importlib.import_module("msvcrt")
        except ImportError:
            raise UserError(
                "this terminal can be put in raw mode neither with termios nor with msvcrt: "
                "pipe the input (pilot ... console=serial < file), or use console=vnc or web=yes"
            ) from None

        def read_keys() -> bytes:
            data: bytes = msvcrt.getch()
            while msvcrt.kbhit():
                data += msvcrt.getch()
            return data

        return read_keys, lambda: None
    saved = termios.tcgetattr(fd)
    ttymod.setraw(fd)
    return (lambda: os.read(fd, 1024)), (
        lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)
    )


def open_console(
    client: AirbossClient,
    target: str,
    *,
    kind: str = "vnc",
    viewer: str | None = None,
    port: int = 0,
    say: Callable[[str], None],
    warn: Callable[[str], object],
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
) -> int:
    """What `open host console` does; the exit status."""
    kind = check_kind(kind)
    if kind == "serial":
        ws = client.open_console(target, "serial")
        src = stdin or sys.stdin.buffer
        is_tty = os.isatty(src.fileno())
        if is_tty:
            warn(f"Connected to the serial console of {target} (escape character is ^])")
        why = attach_serial(ws, src, stdout or sys.stdout.buffer, tty=is_tty)
        warn(("\r\n" if is_tty else "") + f"console closed: {why}")
        return 0
    program = find_viewer(viewer)
    # Authorised before any port opens: a wrong key, target or a stopped VM fails here, with
    # the Airboss's reason; the session it opens is the first viewer's.
    first = client.open_console(target, "vnc")
    with Forwarder(client, target, "vnc", port, warn=warn, first=first) as fwd:
        address = f"127.0.0.1:{fwd.port}"
        server = threading.Thread(target=fwd.serve, daemon=True)
        server.start()
        started = spawn_program(viewer_argv(program, fwd.port)) if program else None
        if started is not None:
            say(f"{target}: VNC console on {address}, viewer {os.path.basename(program or '')}")
            with contextlib.suppress(KeyboardInterrupt):
                started.wait()
            return 0
        say(address)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while server.is_alive():
                server.join(1.0)
    return 0
