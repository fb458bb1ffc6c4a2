"""The boot server: a small HTTP server on the frontend's private address.

It serves what an installing node fetches after its DHCP answer, and takes its report:

    GET  /ipxe/<mac>                 the node's iPXE script (install, local boot, or a message)
    GET  /files/<action id>/vmlinuz  the kernel of a boot action (only files named by one)
    GET  /files/<action id>/initrd.gz
    GET  /install/<mac>              install instructions (key=value lines; a real installer's
                                     kickstart or preseed would be served here)
    POST /install/<mac>/done         install completion: only from the node's own address

What each answer contains is the `Provider`'s business (the services, with the database); this
module only speaks HTTP, so it can be tested on loopback with any provider. Every request is one
line in the log (the process's standard error): time, peer, method, path, status, and why when
refused. Plain `http.server` with a thread per request: a few nodes booting at once fetch a
~30 MB kernel+initrd each, and none may wait for another.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol

from flightdeck.errors import FlightdeckError, NotFound, PermissionDenied
from flightdeck.process.daemon import read_pid, write_pid
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
)


class Provider(Protocol):
    """The answers; each may raise FlightdeckError (NotFound -> 404, PermissionDenied -> 403)."""

    def script(self, mac: str, base_url: str) -> str: ...

    def instructions(self, mac: str, base_url: str) -> str: ...

    def complete(self, mac: str, peer: str) -> str: ...

    def boot_file(self, action_id: int, which: str) -> Path: ...


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

    def __init__(self, listen: tuple[str, int], provider: Provider, base_url: str) -> None:
        super().__init__(listen, _Handler)
        self.provider = provider
        self.base_url = base_url
        self.log_lock = threading.Lock()


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
            if m is None:
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
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise PermissionDenied(f"completion body of {length} bytes is too long")
            body = self.rfile.read(length).decode(errors="replace") if length else ""
            host = p.complete(normalize(m.group(1)), peer)
            self._send(200, f"ok {host}\n".encode())
            self._log(200, f"install of {host} complete {body.strip()}".rstrip())
        else:
            path = p.boot_file(int(m.group(1)), m.group(2))
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


def serve(listen: str, port: int, provider: Provider, pid_file: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT; the pid file is written once the socket listens."""
    base = f"http://{listen}:{port}"
    server = BootServer((listen, port), provider, base)
    stopping = threading.Event()

    def _stop(_sig: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if pid_file is not None:
        write_pid(pid_file, os.getpid())
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} listening on {base}\n")
    sys.stderr.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if pid_file is not None and read_pid(pid_file) == os.getpid():
            pid_file.unlink(missing_ok=True)
