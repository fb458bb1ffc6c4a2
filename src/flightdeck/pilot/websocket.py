"""A minimal RFC 6455 WebSocket client on a blocking socket (standard library only).

What the console clients need and nothing more: the opening handshake over an existing TCP
(or TLS) connection, with extra headers (the RFC 9421 signature of the upgrade request);
binary and text frames, masked as a client must (§5.3); fragmented messages; ping answered
with pong; close with a code and a reason. No extensions (no compression) are offered.

A refused handshake is read as the Airboss's JSON error and raised as `AirbossError` with its
stable code. One thread may `recv` while another `send`s (a lock keeps frames whole).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from flightdeck.api.wire import AirbossError, error_of
from flightdeck.errors import FlightdeckError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: Largest message accepted from the server, in bytes.
MAX_MESSAGE = 64 * 1024 * 1024
#: Largest handshake answer head, in bytes.
MAX_HEAD = 64 * 1024


class WebSocketError(FlightdeckError):
    """The connection broke or the peer broke the protocol."""

    code = "websocket"


@dataclass(frozen=True)
class Closed:
    """The server closed the session: its close code (1005: none given) and reason."""

    code: int
    reason: str


def accept_value(key: str) -> str:
    """The `Sec-WebSocket-Accept` a server must answer to `Sec-WebSocket-Key` `key`.

    SHA-1 because RFC 6455 §4.2.2 says so: it proves the server speaks WebSocket, it
    authenticates nothing (the signature over the upgrade request does that).
    """
    digest = hashlib.sha1(key.encode() + GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode()


def mask(data: bytes, key: bytes) -> bytes:
    """XOR `data` with the 4-byte `key` repeated (§5.3), as one big-integer operation."""
    if not data:
        return data
    n = len(data)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        n, "little"
    )


class WebSocket:
    """An open client WebSocket on `sock`."""

    def __init__(self, sock: socket.socket, buffered: bytes = b"") -> None:
        self.sock = sock
        self._buf = bytearray(buffered)
        self._send_lock = threading.Lock()
        self.closed: Closed | None = None
        self._close_sent = False

    @classmethod
    def handshake(
        cls,
        sock: socket.socket,
        host: str,
        target: str,
        headers: Mapping[str, str],
    ) -> WebSocket:
        """Upgrade the connection `sock` with `GET target` (path and query) and `headers`.

        Raises `AirbossError` (the server's code) when the server answers anything but 101.
        """
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = bytearray()
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                raise WebSocketError("the server closed the connection during the handshake")
            data += chunk
            if len(data) > MAX_HEAD:
                raise WebSocketError("the server's handshake answer is too large")
        head, _sep, rest = bytes(data).partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        got = {}
        for line in header_lines:
            name, _c, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        if status != 101:
            length = int(got.get("content-length", "0") or 0)
            body = bytearray(rest)
            while len(body) < min(length, MAX_HEAD):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                body += chunk
            try:
                answer = json.loads(bytes(body)) if body else None
            except ValueError:
                answer = None
            if isinstance(answer, dict) and isinstance(answer.get("error"), str):
                raise error_of(status, answer)
            raise AirbossError(
                "bad-response", f"the Airboss refused the console (HTTP {status})", status
            )
        if got.get("sec-websocket-accept") != accept_value(key):
            raise WebSocketError("the server's Sec-WebSocket-Accept does not match")
        return cls(sock, rest)

    # Sending ------------------------------------------------------------------------------------

    def _frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head += struct.pack("!BH", 0x80 | 126, n)
        else:
            head += struct.pack("!BQ", 0x80 | 127, n)
        key = os.urandom(4)
        with self._send_lock:
            self.sock.sendall(bytes(head) + key + mask(payload, key))

    def send(self, data: bytes) -> None:
        """One binary message."""
        try:
            self._frame(OP_BINARY, data)
        except OSError as exc:
            raise WebSocketError(f"the console connection broke: {exc}") from None

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once), then shut the socket down."""
        if not self._close_sent:
            self._close_sent = True
            with contextlib.suppress(OSError):
                self._frame(OP_CLOSE, struct.pack("!H", code) + reason.encode()[:120])
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    # Receiving ----------------------------------------------------------------------------------

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise WebSocketError("the console connection closed without a close frame")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _next_frame(self) -> tuple[bool, int, bytes]:
        b0, b1 = self._read(2)
        fin, opcode, masked, n = bool(b0 & 0x80), b0 & 0x0F, bool(b1 & 0x80), b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", self._read(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", self._read(8))
        if n > MAX_MESSAGE:
            raise WebSocketError(f"a frame of {n} bytes is over the {MAX_MESSAGE}-byte limit")
        key = self._read(4) if masked else b""
        payload = self._read(n)
        return fin, opcode, mask(payload, key) if masked else payload

    def recv(self) -> bytes | Closed:
        """The next data message (text as its UTF-8 bytes), or `Closed` once the server closed.

        Pings are answered on the way; a close frame is answered and ends the session.
        """
        if self.closed is not None:
            return self.closed
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                fin, opcode, payload = self._next_frame()
                if opcode == OP_PING:
                    with contextlib.suppress(OSError):
                        self._frame(OP_PONG, payload)
                    continue
                if opcode == OP_PONG:
                    continue
                if opcode == OP_CLOSE:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    reason = payload[2:].decode("utf-8", "replace")
                    self.closed = Closed(code, reason)
                    self.close(code if code != 1005 else 1000)
                    return self.closed
                if opcode not in (OP_CONT, OP_TEXT, OP_BINARY):
                    raise WebSocketError(f"unknown WebSocket opcode {opcode}")
                parts.append(payload)
                size += len(payload)
                if size > MAX_MESSAGE:
                    raise WebSocketError(f"a message is over the {MAX_MESSAGE}-byte limit")
                if fin:
                    return b"".join(parts)
        except OSError as exc:
            raise WebSocketError(f"the console connection broke: {exc}") from None

