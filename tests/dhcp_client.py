"""A DHCP and TFTP client for tests: real packets, any field a client controls, in a netns.

The tests need a PXE client they can steer byte by byte (a vendor class holding a forged log
line, a 7-octet hardware address, a TFTP file name that reads like a log line), which no
packaged client offers; so this module builds the packets itself (RFC 2131, RFC 1350) and
sends them from whatever network namespace it runs in:

    ip netns exec <ns> python tests/dhcp_client.py '<json list of requests>'

prints one JSON result per request. `run_in(netns, requests)` does that from a test.
"""

from __future__ import annotations

import json
import os
import random
import socket
import struct
import subprocess
import sys
import time
from typing import Any

MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, ACK = 1, 2, 3, 5
#: What a PXE ROM says in option 60 (and iPXE adds option 175).
PXE_VENDOR = "PXEClient:Arch:00000:UNDI:002001"


def _option(code: int, data: bytes) -> bytes:
    if len(data) > 255:
        raise ValueError(f"option {code} is longer than 255 bytes")
    return bytes([code, len(data)]) + data


def packet(kind: int, chaddr: bytes, xid: int, *, htype: int = 1, options: bytes = b"") -> bytes:
    """A BOOTREQUEST: the hardware length is `len(chaddr)`, the broadcast flag is set."""
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, htype, len(chaddr), 0, xid, 0, 0x8000,
        bytes(4), bytes(4), bytes(4), bytes(4), chaddr.ljust(16, b"\0"), b"", b"",
    )  # fmt: skip
    return head + MAGIC + _option(53, bytes([kind])) + options + b"\xff"


def parse(data: bytes) -> dict[str, Any]:
    """The fields of a BOOTREPLY the tests look at."""
    options: dict[int, bytes] = {}
    rest, i = data[240:], 0
    while i < len(rest) and rest[i] != 255:
        if rest[i] == 0:
            i += 1
            continue
        options[rest[i]] = rest[i + 2 : i + 2 + rest[i + 1]]
        i += 2 + rest[i + 1]
    return {
        "xid": struct.unpack("!I", data[4:8])[0],
        "ip": socket.inet_ntoa(data[16:20]),
        "type": options.get(53, b"\0")[0],
        "server": socket.inet_ntoa(options[54]) if 54 in options else None,
        "file": data[108:236].rstrip(b"\0").decode(errors="replace"),
    }


def _options(req: dict[str, Any]) -> bytes:
    out = b""
    if req.get("pxe", True):
        out += _option(60, PXE_VENDOR.encode()) + _option(175, b"\x13\x01\x01")
    if "vendor" in req:
        out += _option(60, req["vendor"].encode())
    if "hostname" in req:
        out += _option(12, req["hostname"].encode())
    if "user_class" in req:
        data = req["user_class"].encode()
        out += _option(77, bytes([len(data)]) + data)
    return out


def dhcp(req: dict[str, Any]) -> dict[str, Any]:
    """DISCOVER (retried) then, on an OFFER, REQUEST; what came back."""
    chaddr = bytes.fromhex(req["chaddr"].replace(":", ""))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, req["dev"].encode())
    sock.bind(("0.0.0.0", 68))
    sock.settimeout(ANSWER_WAIT)
    xid = random.getrandbits(32)
    extra, htype = _options(req), int(req.get("htype", 1))
    result: dict[str, Any] = {"offer": None, "ack": None}
    try:
        for _ in range(int(req.get("tries", 2))):
            sock.sendto(
                packet(DISCOVER, chaddr, xid, htype=htype, options=extra), ("255.255.255.255", 67)
            )
            offer = _wait(sock, xid, OFFER)
            if offer is None:
                continue
            result["offer"] = offer
            ask = extra + _option(50, socket.inet_aton(offer["ip"]))
            ask += _option(54, socket.inet_aton(offer["server"]))
            sock.sendto(
                packet(REQUEST, chaddr, xid, htype=htype, options=ask), ("255.255.255.255", 67)
            )
            result["ack"] = _wait(sock, xid, ACK)
            break
    finally:
        sock.close()
    return result


#: Seconds to wait for an answer: dnsmasq pings an address (up to 3 s) before it lends it.
ANSWER_WAIT = 5.0


def _wait(sock: socket.socket, xid: int, kind: int) -> dict[str, Any] | None:
    deadline = time.monotonic() + ANSWER_WAIT
    while time.monotonic() < deadline:
        try:
            got = parse(sock.recv(2048))
        except TimeoutError:
            return None
        if got["xid"] == xid and got["type"] == kind:
            return got
    return None


def relay(req: dict[str, Any]) -> dict[str, Any]:
    """A DISCOVER and a REQUEST posing as a relay agent (giaddr set), from any local port."""
    chaddr = bytes.fromhex(req["chaddr"].replace(":", ""))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(ANSWER_WAIT)
    try:
        xid = random.getrandbits(32)
        for kind in (DISCOVER, REQUEST):
            data = bytearray(packet(kind, chaddr, xid, options=_options(req)))
            data[24:28] = socket.inet_aton(req["giaddr"])
            sock.sendto(bytes(data), (req["server"], 67))
        try:
            return {"answer": parse(sock.recv(2048))}
        except TimeoutError:
            return {"answer": None}
    finally:
        sock.close()


def tftp(req: dict[str, Any]) -> dict[str, Any]:
    """One read request (RRQ) for `file`; the server's first answer (an error, for a bad name)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2.0)
    try:
        name = req["file"].encode()
        sock.sendto(b"\x00\x01" + name + b"\x00octet\x00", (req["server"], 69))
        try:
            data = sock.recv(2048)
        except TimeoutError:
            return {"answer": None}
        return {"answer": data[:2].hex(), "text": data[4:].rstrip(b"\0").decode(errors="replace")}
    finally:
        sock.close()


def run_in(netns: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run `requests` (kind "dhcp", "relay" or "tftp") in `netns`; one result each."""
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, os.path.abspath(__file__),
         json.dumps(requests)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def main() -> None:
    requests = json.loads(sys.argv[1])
    kinds = {"dhcp": dhcp, "relay": relay, "tftp": tftp}
    out = [kinds[r.get("kind", "dhcp")](r) for r in requests]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
