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
line in the log (the process's standard error), written before the answer is sent: time,
peer, method, path, status, and why when refused (a client that goes away mid-answer adds a
499 line); every client-supplied string in it goes through `flightdeck.logsafe.escape`.

Plain `http.server` with a thread per connection (a few nodes booting at once fetch a ~30 MB
kernel+initrd each, and none may wait for another), held to `Limits` so that no client can
make it work for nothing:

- the request head (request line and headers) must arrive within `head_bytes` and
  `head_timeout`, however slowly it trickles (a 408 or 431 otherwise);
- a body is read only after its framing and sender are checked: `Content-Length` must be plain
  digits and at most `MAX_BODY`, `Transfer-Encoding` is refused (with a `Content-Length` too,
  RFC 9112 6.1, as a smuggling attempt), and an install report from anyone but the node is
  refused before one byte of its body is read; then the body must arrive within `body_timeout`;
- at most `connections` connections are served at once, `per_peer` from one address; others
  get a 503 from the accepting thread and no thread of their own;
- a send that makes no progress for `send_timeout` ends the connection.

Every connection carries one request (HTTP/1.0, closed after the answer).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from flightdeck.errors import FlightdeckError, NotFound, PermissionDenied
from flightdeck.logsafe import escape
from flightdeck.process.daemon import in_netns, read_pid, write_pid
from flightdeck.pxe.ipxe import INITRD_FILE, KERNEL_FILE

DEFAULT_PORT = 8078
#: Completion bodies are a few words; anything longer is refused unread (bytes).
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
#: RFC 9110 8.6: Content-Length = 1*DIGIT (no sign, no spaces, no list); 12 digits is plenty.
_LENGTH_RE = re.compile(r"[0-9]{1,12}")
#: At most one line per this many seconds about connections turned away (they may be many).
TURNED_AWAY_LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class Limits:
    """What one client may cost the boot server: bytes, seconds and connections."""

    #: The request line and all headers together, in bytes.
    head_bytes: int = 8192
    #: Seconds from the connection's start to the end of its request head.
    head_timeout: float = 10.0
    #: Seconds to receive a (checked, bounded) request body.
    body_timeout: float = 10.0
    #: Seconds one send of an answer (at most 1 MiB of a boot file) may take.
    send_timeout: float = 60.0
    #: Connections served at once (one thread each), and from one peer address.
    connections: int = 256
    per_peer: int = 8


class Provider(Protocol):
    """The answers; each may raise FlightdeckError (NotFound -> 404, PermissionDenied -> 403)."""

    def script(self, mac: str, base_url: str) -> str: ...

    def instructions(self, mac: str, base_url: str) -> str: ...

    def check_report(self, mac: str, peer: str) -> None:
        """Raise unless `peer` may report the install of `mac` (read-only, before any body)."""
        ...

    def complete(self, mac: str, peer: str) -> str: ...

    def boot_file(self, action_id: int, which: str) -> Path: ...

    def frontend_image(self, sha256: str) -> Path: ...

    def frontend_identity(self, mac: str, peer: str) -> bytes: ...

    def check_frontend_report(self, mac: str, peer: str) -> None:
        """Raise unless `peer` may report the image install of `mac` (before any body)."""
        ...

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


class _Refused(Exception):
    """An HTTP-level refusal (framing, size, time): a status and a reason for the log."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Reader:
    """The request's bytes, straight from the socket, each read bounded in size and in time.

    Stands in for the handler's `rfile`: `http.server` reads the request line and headers with
    `readline`, which here fails once the head passes `budget` bytes (431) or its deadline
    (408). A deadline, not a per-read timeout: a client sending one byte every few seconds
    would otherwise keep a thread forever. `read_body` then reads exactly the announced body,
    with a deadline of its own.
    """

    def __init__(self, sock: socket.socket, budget: int, timeout: float) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._budget = budget
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._what = "request head"
        self.closed = False

    def _fill(self) -> bool:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _Refused(408, f"{self._what} not complete within {self._timeout:g} s")
        self._sock.settimeout(remaining)
        try:
            chunk = self._sock.recv(4096)
        except TimeoutError:
            raise _Refused(408, f"{self._what} not complete within {self._timeout:g} s") from None
        if not chunk:
            return False
        self._buf += chunk
        return True

    def readline(self, limit: int = -1) -> bytes:
        """One line of the head (with its newline; shorter at end of stream)."""
        while True:
            end = self._buf.find(b"\n")
            if end >= 0:
                end += 1
                break
            if len(self._buf) > self._budget:
                raise _Refused(431, "request head too long")
            if not self._fill():
                end = len(self._buf)
                break
        line = bytes(self._buf[:end])
        del self._buf[:end]
        self._budget -= len(line)
        if self._budget < 0:
            raise _Refused(431, "request head too long")
        return line

    def read_body(self, length: int, timeout: float) -> bytes:
        """Exactly `length` bytes of body (a 400 if the client closes first)."""
        self._what, self._timeout = "request body", timeout
        self._deadline = time.monotonic() + timeout
        while len(self._buf) < length:
            if not self._fill():
                raise _Refused(400, f"request body ended after {len(self._buf)} of {length} bytes")
        body = bytes(self._buf[:length])
        del self._buf[:length]
        return body

    def close(self) -> None:
        self.closed = True


class BootServer(ThreadingHTTPServer):
    daemon_threads = True
    #: The kernel's accept queue: a rack of nodes powered on together connect at once.
    request_queue_size = 128

    def __init__(
        self,
        listen: tuple[str, int],
        provider: Provider,
        base_url: str,
        limits: Limits | None = None,
        routes: frozenset[str] | None = None,
        log_lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(listen, _Handler)
        self.provider = provider
        self.base_url = base_url
        self.limits = limits or Limits()
        #: The route names this listener answers (None: all).
        self.routes = routes
        self.log_lock = log_lock or threading.Lock()
        self._slots = threading.Lock()
        self._active = 0
        self._per_peer: dict[str, int] = {}
        self._turned_away: dict[str, int] = {}
        self._turned_away_logged = float("-inf")

    def log(self, line: str) -> None:
        """Write one line (already escaped) to the log."""
        with self.log_lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    # Connection slots: taken in the accepting thread, before any thread is started.

    def process_request(self, request: Any, client_address: Any) -> None:
        peer = str(client_address[0])
        with self._slots:
            full = self._active >= self.limits.connections
            crowded = self._per_peer.get(peer, 0) >= self.limits.per_peer
            if not (full or crowded):
                self._active += 1
                self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        if full or crowded:
            self._turn_away(request, peer)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(peer)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(str(client_address[0]))

    def _release(self, peer: str) -> None:
        with self._slots:
            self._active -= 1
            left = self._per_peer.get(peer, 1) - 1
            if left > 0:
                self._per_peer[peer] = left
            else:
                self._per_peer.pop(peer, None)

    def _turn_away(self, request: socket.socket, peer: str) -> None:
        """A 503 without reading anything, never blocking the accepting thread."""
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(
                b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n"
            )
        self.shutdown_request(request)
        now = time.monotonic()
        with self._slots:
            self._turned_away[peer] = self._turned_away.get(peer, 0) + 1
            if now - self._turned_away_logged < TURNED_AWAY_LOG_INTERVAL:
                return
            counts, self._turned_away = self._turned_away, {}
            self._turned_away_logged = now
        when = time.strftime("%Y-%m-%dT%H:%M:%S")
        for who, count in counts.items():
            self.log(
                f"{when} {escape(who)} - - 503 turned away {count} connection(s): at most "
                f"{self.limits.per_peer} per address and {self.limits.connections} in all"
            )


class _Handler(BaseHTTPRequestHandler):
    server: BootServer
    server_version = "flightdeck-boot/1"
    protocol_version = "HTTP/1.0"
    rfile: Any

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        limits = self.server.limits
        self.rfile = _Reader(self.connection, limits.head_bytes, limits.head_timeout)

    def handle(self) -> None:
        self.close_connection = True
        try:
            self.handle_one_request()
        except _Refused as exc:
            self._refuse(exc)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self._log(499, "client went away")

    def log_message(self, format: str, *args: object) -> None:
        return None  # one line per request, written by _log

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (malformed request line, unknown method, bad headers).
        self._log(code, message or "")
        super().send_error(code, message, explain)

    def _log(self, status: int, note: str = "") -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%S")
        path = urllib.parse.unquote(getattr(self, "path", None) or "-")
        method = getattr(self, "command", None) or "-"
        line = f"{when} {escape(self.client_address[0])} {escape(method)} {escape(path)} {status}"
        self.server.log(line + (f" {escape(note)}" if note else ""))

    def _refuse(self, exc: _Refused) -> None:
        """Answer a refusal with the connection's own short timeout, then close it."""
        with contextlib.suppress(OSError):
            self.connection.settimeout(1.0)
            self._log(exc.status, exc.reason)
            reason = self.responses.get(exc.status, ("Refused",))[0]
            body = (exc.reason + "\n").encode()
            self.connection.sendall(
                f"HTTP/1.0 {exc.status} {reason}\r\nContent-Type: text/plain; charset=utf-8"
                f"\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )

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

    def _body_length(self) -> int:
        """The announced body length, after the framing checks (nothing is read here)."""
        encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if encodings and lengths:
            raise _Refused(400, "Content-Length together with Transfer-Encoding (RFC 9112 6.1)")
        if encodings:
            raise _Refused(501, "Transfer-Encoding is not supported: send a Content-Length")
        if not lengths:
            return 0
        if len(lengths) > 1 or not _LENGTH_RE.fullmatch(lengths[0]):
            raise _Refused(400, f"invalid Content-Length {', '.join(lengths)!r}")
        return int(lengths[0])

    def _dispatch(self, method: str) -> None:
        self.connection.settimeout(self.server.limits.send_timeout)
        try:
            length = self._body_length()
        except _Refused as exc:
            self._refuse(exc)
            return
        # iPXE percent-encodes the colons of ${netX/mac}.
        path = urllib.parse.unquote(self.path.split("?", 1)[0])
        for verb, pattern, name in ROUTES:
            m = pattern.match(path)
            if m is None or (self.server.routes is not None and name not in self.server.routes):
                continue
            if verb != method:
                self._log(405)
                self._send(405, b"method not allowed\n")
                return
            try:
                self._route(name, m, length)
            except _Refused as exc:
                self._refuse(exc)
            except FlightdeckError as exc:
                status = _status(exc)
                self._log(status, f"refused: {exc.message}")
                self._send(status, (exc.message + "\n").encode())
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self._log(499, "client went away")
            return
        self._log(404)
        self._send(404, b"not found\n")

    def _route(self, name: str, m: re.Match[str], length: int) -> None:
        p, base, peer = self.server.provider, self.server.base_url, self.client_address[0]
        if name == "script":
            text = p.script(normalize(m.group(1)), base)
            first = next((ln for ln in text.splitlines() if ln.startswith("# ")), "")
            self._log(200, first[2:])
            self._send(200, text.encode())
        elif name == "instructions":
            answer = p.instructions(normalize(m.group(1)), base)
            self._log(200)
            self._send(200, answer.encode())
        elif name == "complete":
            mac = normalize(m.group(1))
            p.check_report(mac, peer)  # the sender first: a stranger's body is never read
            if length > MAX_BODY:
                raise _Refused(413, f"completion body of {length} bytes is longer than {MAX_BODY}")
            body = self.rfile.read_body(length, self.server.limits.body_timeout)
            host = p.complete(mac, peer)
            text = body.decode(errors="replace").strip()
            self._log(200, f"install of {host} complete {text}".rstrip())
            self._send(200, f"ok {host}\n".encode())
        elif name == "identity":
            data = p.frontend_identity(normalize(m.group(1)), peer)
            self._log(200, f"identity, {len(data)} bytes")
            self._send(200, data, "application/x-tar")
        elif name in ("image_done", "image_failed"):
            mac = normalize(m.group(1))
            p.check_frontend_report(mac, peer)  # the sender first, as for install reports
            if length > MAX_BODY:
                raise _Refused(413, f"report body of {length} bytes is longer than {MAX_BODY}")
            body = self.rfile.read_body(length, self.server.limits.body_timeout)
            text = " ".join(body.decode(errors="replace").split())
            if name == "image_done":
                host = p.frontend_done(mac, peer)
                self._log(200, f"image install of {host} complete {text}".rstrip())
                self._send(200, f"ok {host}\n".encode())
            else:
                host = p.frontend_failed(mac, peer)
                self._log(200, f"refused: the installer of {host} refused the image: {text}")
                self._send(200, f"noted {host}\n".encode())
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
                self._log(200, f"{size} bytes")
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(size))
                self.end_headers()
                shutil.copyfileobj(handle, self.wfile, 1 << 20)


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
    servers = [BootServer((listen, port), provider, base, log_lock=lock)]
    if public:
        servers.append(
            BootServer(
                (public, port),
                provider,
                f"http://{public}:{port}",
                routes=PUBLIC_ROUTES,
                log_lock=lock,
            )
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
        write_pid(pid_file, os.getpid())
    for server in servers:
        sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} listening on {server.base_url}\n")
    sys.stderr.flush()
    for server in servers[1:]:
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        ).start()
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
            [*in_netns(netns), "ip", "-o", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return any(f" {ip}/" in line for line in out.splitlines())

