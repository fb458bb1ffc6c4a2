"""The console client's pieces: the WebSocket framing (against a socket pair), viewers, kinds."""

from __future__ import annotations

import os
import socket
import struct
import threading

import pytest

from flightdeck.errors import UserError
from flightdeck.pilot import console as pc
from flightdeck.pilot.websocket import Closed, WebSocket, accept_value, mask


def test_accept_value_is_rfc_6455s_example() -> None:
    assert accept_value("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_masking_is_its_own_inverse_and_matches_bytewise_xor() -> None:
    key = b"\x01\x02\x03\x04"
    data = os.urandom(1001)
    masked = mask(data, key)
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert mask(masked, key) == data and mask(b"", key) == b""


def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes([first, n]) + payload
    if n < 1 << 16:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def _read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    def read(n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += sock.recv(n - len(out))
        return out

    b0, b1 = read(2)
    assert b1 & 0x80, "a client frame must be masked"
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", read(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", read(8))
    key = read(4)
    return b0 & 0x0F, mask(read(n), key)


def test_frames_both_ways_fragments_ping_and_close() -> None:
    client_sock, server = socket.socketpair()
    ws = WebSocket(client_sock)
    big = os.urandom(70_000)
    ws.send(big)
    assert _read_client_frame(server) == (2, big)
    server.sendall(_server_frame(0x2, b"RFB ", fin=False) + _server_frame(0x9, b"hi")
                   + _server_frame(0x0, b"003.008\n"))
    assert ws.recv() == b"RFB 003.008\n"
    assert _read_client_frame(server) == (0xA, b"hi")  # the ping was answered
    server.sendall(_server_frame(0x2, big))
    assert ws.recv() == big
    server.sendall(_server_frame(0x8, struct.pack("!H", 4408) + b"idle for 3 s"))
    assert ws.recv() == Closed(4408, "idle for 3 s")
    assert _read_client_frame(server)[0] == 0x8  # answered
    server.close()


def test_relay_copies_tcp_to_the_websocket_and_back_until_closed() -> None:
    ws_client, ws_server = socket.socketpair()
    tcp_local, tcp_viewer = socket.socketpair()
    ws = WebSocket(ws_client)
    done: list[Closed | None] = []
    t = threading.Thread(target=lambda: done.append(pc.relay(tcp_local, ws)))
    t.start()
    tcp_viewer.sendall(b"RFB 003.008\n")
    assert _read_client_frame(ws_server) == (2, b"RFB 003.008\n")
    ws_server.sendall(_server_frame(0x2, b"\x01\x01"))
    assert tcp_viewer.recv(10) == b"\x01\x01"
    ws_server.sendall(_server_frame(0x8, struct.pack("!H", 1000) + b"the VM stopped"))
    t.join(10)
    assert done == [Closed(1000, "the VM stopped")]
    assert tcp_viewer.recv(10) == b""  # the viewer's connection is closed too


def test_viewers_kinds_and_ports() -> None:
    assert pc.find_viewer("none") is None
    with pytest.raises(UserError, match="is not installed"):
        pc.find_viewer("no-such-viewer-here")
    assert pc.viewer_argv("/usr/bin/vncviewer", 5901) == ["/usr/bin/vncviewer", "127.0.0.1::5901"]
    assert pc.viewer_argv("/usr/bin/remote-viewer", 5901)[1] == "vnc://127.0.0.1:5901"
    assert pc.check_kind("SERIAL") == "serial"
    with pytest.raises(UserError, match='console must be "vnc" or "serial"'):
        pc.check_kind("spice")


def test_pilot_parses_open_host_console() -> None:
    from flightdeck.pilot.main import parse

    command, params = parse(["open", "host", "console", "host=52:54:00:00:00:01",
                             "console=serial", "viewer=none", "port=0"])
    assert command == "open host console" and params["console"] == "serial"
