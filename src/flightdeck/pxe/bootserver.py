"""The boot server: a small HTTP server on the frontend's private address.

It serves what an installing node fetches after its DHCP answer, and takes its report:

    GET  /ipxe/<mac>                 the node's iPXE script (install, local boot, or a message)
    GET  /files/<action id>/vmlinuz  the kernel of a boot action (only files named by one)
    GET  /files/<action id>/initrd.gz
    GET  /install/<mac>              install instructions (key=value lines; a real installer's
                                     kickstart or preseed would be served here)
    POST /install/<mac>/done         install completion: only from the node's own address

and, for virtual frontends installing from the frontend image (also on the public listener,
which serves nothing else):

    GET  /frontend/image/<sha256>    the gzip'd frontend image with that checksum
    GET  /frontend/<mac>/identity    the VM's identity tar: only to the VM's own address
    POST /frontend/<mac>/done        image install completion: only from the VM's own address
    POST /frontend/<mac>/failed      the installer refused what it got (logged)

What each answer contains is the `Provider`'s business (the services, with the database); this
module only speaks HTTP, so it can be tested on loopback with any provider. Every request is one
line in the log (the process's standard error): time, peer, method, path, status, and why when
refused. Plain `http.server` with a thread per request: a few nodes booting at once fetch a
~30 MB kernel+initrd each, and none may wait for another.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from flightdeck.errors import DriverError, FlightdeckError, NotFound, PermissionDenied
from flightdeck.pxe.dnsmasq import cmdline, netns_prefix, read_pid, stop_pid
from flightdeck.pxe.ipxe import INITRD_FILE, KERNEL_FILE

DEFAULT_PORT = 8078
#: Completion bodies are a few words; anything longer is refused unread.
MAX_BODY = 4096
_MAC = r"((?:[0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2})"
ROUTES = (
    ("GET", re.compile(rf"^/ipxe/{_MAC}$"), "script"),
    ("GET", re.compile(rf"^/install/{_MAC}$"), "instructions"),
    ("POST", re.compile(rf"^/install/{_MAC}/done$"), "complete"),
    ("GET", re.compile(rf"^/files/(\d+)/({KERNEL_FILE}|{re.escape(INITRD_FILE)})$"), "file"),
    ("GET", re.compile(r"^/frontend/image/([0-9a-f]{64})$"), "image"),
    ("GET", re.compile(rf"^/frontend/{_MAC}/identity$"), "identity"),
    ("POST", re.compile(rf"^/frontend/{_MAC}/done$"), "image_done"),
    ("POST", re.compile(rf"^/frontend/{_MAC}/failed$"), "image_failed"),
)
#: What the public listener answers: a virtual frontend's image install, nothing else.
PUBLIC_ROUTES = frozenset({"image", "identity", "image_done", "image_failed"})


class Provider(Protocol):
    """The answers; each may raise FlightdeckError (NotFound -> 404, PermissionDenied -> 403)."""

    def script(self, mac: str, base_url: str) -> str: ...

    def instructions(self, mac: str, base_url: str) -> str: ...

    def complete(self, mac: str, peer: str) -> str: ...

    def boot_file(self, action_id: int, which: str) -> Path: ...

    def frontend_image(self, sha256: str) -> Path: ...

    def frontend_identity(self, mac: str, peer: str) -> bytes: ...

    def frontend_done(self, mac: str, peer: str) -> str: ...

    def frontend_failed(self, mac: str, peer: str) -> str: ...


def normalize(mac: str) -> str:
    return mac.replace("-", ":").lower()


def _status(exc: FlightdeckError) -> int:
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    return 400


class BootServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        listen: tuple[str, int],
        provider: Provider,
        base_url: str,
        routes: frozenset[str] | None = None,
        log_lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(listen, _Handler)
        self.provider = provider
        self.base_url = base_url
        #: The route names this listener answers (None: all).
        self.routes = routes
        self.log_lock = log_lock or threading.Lock()


class _Handler(BaseHTTPRequestHandler):
    server: BootServer
    server_version = "flightdeck-boot/1"
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        return None  # one line per request, written by _log

    def _log(self, status: int, note: str = "") -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%S")
        path = urllib.parse.unquote(self.path)
        line = f"{when} {self.client_address[0]} {self.command} {path} {status}"
        with self.server.log_lock:
            sys.stderr.write(line + (f" {note}" if note else "") + "\n")
            sys.stderr.flush()

    def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=utf-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        # iPXE percent-encodes the colons of ${netX/mac}.
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        for verb, pattern, name in ROUTES:
            m = pattern.match(path)
            if m is None or (self.server.routes is not None and name not in self.server.routes):
                continue
            if verb != method:
                self._send(405, b"method not allowed\n")
                self._log(405)
                return
            try:
                self._route(name, m)
            except FlightdeckError as exc:
                status = _status(exc)
                self._send(status, (exc.message + "\n").encode())
                self._log(status, f"refused: {exc.message}")
            except (BrokenPipeError, ConnectionResetError):
                self._log(499, "client went away")
            return
        self._send(404, b"not found\n")
        self._log(404)

    def _body(self) -> str:
        """A report's few words (bounded), on one line."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise PermissionDenied(f"report body of {length} bytes is too long")
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        return " ".join(body.split())

    def _route(self, name: str, m: re.Match[str]) -> None:
        p, base, peer = self.server.provider, self.server.base_url, self.client_address[0]
        if name == "script":
            text = p.script(normalize(m.group(1)), base)
            self._send(200, text.encode())
            first = next((ln for ln in text.splitlines() if ln.startswith("# ")), "")
            self._log(200, first[2:])
        elif name == "instructions":
            self._send(200, p.instructions(normalize(m.group(1)), base).encode())
            self._log(200)
        elif name == "complete":
            body = self._body()
            host = p.complete(normalize(m.group(1)), peer)
            self._send(200, f"ok {host}\n".encode())
            self._log(200, f"install of {host} complete {body.strip()}".rstrip())
        elif name == "identity":
            data = p.frontend_identity(normalize(m.group(1)), peer)
            self._send(200, data, "application/x-tar")
            self._log(200, f"identity, {len(data)} bytes")
        elif name in ("image_done", "image_failed"):
            body = self._body()
            mac = normalize(m.group(1))
            if name == "image_done":
                host = p.frontend_done(mac, peer)
                self._send(200, f"ok {host}\n".encode())
                self._log(200, f"image install of {host} complete {body}".rstrip())
            else:
                host = p.frontend_failed(mac, peer)
                self._send(200, f"noted {host}\n".encode())
                self._log(200, f"refused: the installer of {host} refused the image: {body}")
        else:
            path = (
                p.frontend_image(m.group(1))
                if name == "image"
                else p.boot_file(int(m.group(1)), m.group(2))
            )
            try:
                handle = path.open("rb")
            except OSError as exc:
                raise NotFound(f"boot file {path}: {exc.strerror}") from None
            with handle:
                size = os.fstat(handle.fileno()).st_size
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                shutil.copyfileobj(handle, self.wfile, 1 << 20)
            self._log(200, f"{size} bytes")


def serve(
    listen: str,
    port: int,
    provider: Provider,
    pid_file: Path | None = None,
    public: str | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT; the pid file is written once the sockets listen.

    `public`: also listen on this address (the frontend's public one), answering only the
    virtual frontends' image install there.
    """
    base = f"http://{listen}:{port}"
    lock = threading.Lock()
    servers = [BootServer((listen, port), provider, base, None, lock)]
    if public:
        servers.append(
            BootServer((public, port), provider, f"http://{public}:{port}", PUBLIC_ROUTES, lock)
        )
    stopping = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            for server in servers:
                threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if pid_file is not None:
        tmp = pid_file.with_name(f".{pid_file.name}.tmp")
        tmp.write_text(f"{os.getpid()}\n", encoding="utf-8")
        os.replace(tmp, pid_file)
    for server in servers:
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} listening on {server.base_url}\n")
    sys.stderr.flush()
    threads = [
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        for server in servers[1:]
    ]
    for thread in threads:
        thread.start()
    try:
        servers[0].serve_forever(poll_interval=0.2)
    finally:
        for server in servers[1:]:
            server.shutdown()
        for server in servers:
            server.server_close()
        if pid_file is not None and read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)


def local_address(ip: str, netns: str | None) -> bool:
    """Whether `ip` is an address of an interface here (in `netns`): one the server can bind."""
    try:
        out = subprocess.run(
            [*netns_prefix(netns), "ip", "-o", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(f" {ip}/" in line for line in out.splitlines())


# The daemon -----------------------------------------------------------------------------------

MODULE = "flightdeck.cli.bootserver"


def running(pid_file: Path) -> int | None:
    pid = read_pid(pid_file)
    if pid is None:
        return None
    argv = cmdline(pid)
    return pid if MODULE in argv and str(pid_file) in argv else None


def spawn(
    argv: Sequence[str], pid_file: Path, log: Path, netns: str | None, timeout: float = 20.0
) -> int:
    """Start `python -m flightdeck.cli.bootserver <argv>` in the background (in `netns`)."""
    if running(pid_file) is not None:
        raise DriverError(f"the boot server already runs (pid {read_pid(pid_file)})")
    pid_file.unlink(missing_ok=True)
    full = [*netns_prefix(netns), sys.executable, "-m", MODULE, *argv, "--pid-file", str(pid_file)]
    with open(log, "ab") as out:
        os.chmod(log, 0o640)
        proc = subprocess.Popen(
            full, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running(pid_file)
        if pid is not None:
            # `ip netns exec` replaces itself with python, so the pid is that of our child.
            threading.Thread(target=proc.wait, daemon=True).start()
            return pid
        if proc.poll() is not None:
            raise DriverError(f"the boot server did not start: {_tail(log)}")
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    raise DriverError(f"the boot server did not listen within {timeout:g} s: see {log}")


def stop(pid_file: Path) -> int | None:
    pid = running(pid_file)
    if pid is not None:
        stop_pid(pid)
    pid_file.unlink(missing_ok=True)
    return pid


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"see {path}"
    return " | ".join(ln.strip() for ln in text.strip().splitlines()[-lines:]) or f"see {path}"
