"""The boot server over real HTTP on loopback, answering from a real database.

The private network here is 127.0.0.0/8, so a client can speak from the node's own address
(127.0.0.5) or from another one (127.0.0.9) and the address check is exercised for real.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from flightdeck.db.engine import open_database
from flightdeck.db.tables import boot_actions, networks
from flightdeck.pxe.bootserver import BootServer, Limits
from flightdeck.services.provisioning import BootAnswers

NODE = "127.0.0.5"
MAC = "52:54:00:00:05:05"


@pytest.fixture
def site(rocks: Any, tmp_path: Path) -> Any:
    rocks.ok(
        "init", "frontend", "name=fe.example.org", "public-ip=192.0.2.10",
        "public-netmask=255.255.255.0", "private-ip=127.0.0.1", "private-netmask=255.0.0.0",
    )  # fmt: skip
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.gz"
    kernel.write_bytes(b"K" * 70000)
    initrd.write_bytes(b"I" * 1000)
    rocks.ok("set", "bootaction", "action=install", f"kernel={kernel}", f"ramdisk={initrd}",
             "args=console=ttyS0 fd.stamp=1")  # fmt: skip
    rocks.ok("add", "host", "compute-0-0", "membership=Compute")
    rocks.ok("add", "host", "interface", "compute-0-0", "eth0", f"mac={MAC}", f"ip={NODE}",
             "subnet=private")  # fmt: skip
    rocks.ok("set", "host", "boot", "compute-0-0", "action=install")
    return rocks


@pytest.fixture
def server(site: Any) -> Iterator[tuple[int, Any]]:
    db = open_database(site.url)
    srv = BootServer(("127.0.0.1", 0), BootAnswers(db), "")
    port = srv.server_address[1]
    srv.base_url = f"http://127.0.0.1:{port}"
    worker = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    worker.start()
    try:
        yield port, site
    finally:
        srv.shutdown()
        srv.server_close()
        worker.join()
        db.dispose()


def fetch(port: int, method: str, path: str, source: str = NODE, body: bytes | None = None
          ) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def boot(rocks: Any) -> str:
    return rocks.ok("list", "host", "boot", "compute-0-0", "output-header=no").split()[-1]


def test_install_script_files_and_instructions(server: tuple[int, Any]) -> None:
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    status, body = fetch(port, "GET", "/ipxe/52%3A54%3A00%3A00%3A05%3A05")  # as iPXE asks
    text = body.decode()
    assert status == 200 and text.startswith("#!ipxe\n# compute-0-0 (52:54:00:00:05:05)")
    kernel = next(ln for ln in text.splitlines() if ln.startswith("kernel "))
    action_id = kernel.split()[1].split("/")[-2]
    assert kernel.split()[1] == f"{base}/files/{action_id}/vmlinuz"
    assert f"fd.report={base}/install/{MAC}/done" in kernel
    assert fetch(port, "GET", f"/files/{action_id}/vmlinuz") == (200, b"K" * 70000)
    assert fetch(port, "GET", f"/files/{action_id}/initrd.gz") == (200, b"I" * 1000)
    assert fetch(port, "GET", "/files/9999/vmlinuz")[0] == 404
    assert fetch(port, "GET", f"/files/{action_id}/../../etc/passwd")[0] == 404
    status, body = fetch(port, "GET", f"/install/{MAC}")
    assert status == 200 and body.decode().startswith(f"host=compute-0-0\nmac={MAC}\nip={NODE}\n")
    unknown = fetch(port, "GET", "/ipxe/52:54:00:99:99:99")[1].decode()
    assert "52:54:00:99:99:99 is not in the database: run insert-ethers" in unknown
    assert unknown.endswith("exit\n")
    assert fetch(port, "GET", f"/install/{MAC}/done")[0] == 405


def test_completion_only_from_the_nodes_own_address(
    server: tuple[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    port, rocks = server
    status, body = fetch(port, "POST", f"/install/{MAC}/done", source="127.0.0.9", body=b"x")
    assert status == 403
    assert body.decode().strip() == (
        f"install report for compute-0-0 ({MAC}) came from 127.0.0.9, not from its address {NODE}"
    )
    assert boot(rocks) == "install"
    assert "127.0.0.9 POST /install/52:54:00:00:05:05/done 403 refused:" in capsys.readouterr().err
    assert fetch(port, "POST", f"/install/{MAC}/done", body=b"x" * 5000)[0] == 413
    assert fetch(port, "POST", "/install/52:54:00:99:99:99/done")[0] == 404
    assert boot(rocks) == "install"

    assert fetch(port, "POST", f"/install/{MAC}/done", body=b"host=compute-0-0") == (
        200, b"ok compute-0-0\n",
    )  # fmt: skip
    assert boot(rocks) == "os"
    status, body = fetch(port, "GET", f"/ipxe/{MAC}")
    assert body.decode().splitlines()[-1] == "exit"
    assert "boot action 'os' -> local disk" in body.decode()


# Attacks (issue 14): each one performed against the real server on loopback. ------------------

ATTACKER = "127.0.0.9"


def raw(port: int, data: bytes, source: str = NODE, timeout: float = 5.0) -> bytes:
    """Send `data` on one connection and read until the server closes it.

    The client never closes its side first: a server that waits for more (a body it should
    not read) leaves this read hanging, and the `timeout` turns that into a failure.
    """
    with socket.create_connection(("127.0.0.1", port), timeout, (source, 0)) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                pytest.fail(f"no answer within {timeout:g} s; got {b''.join(chunks)!r}")
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_negative_content_length_is_refused_before_any_read(server: tuple[int, Any]) -> None:
    """`Content-Length: -1` once made the server read until the client closed (200 MiB)."""
    port, rocks = server
    for source in (ATTACKER, NODE):
        head = f"POST /install/{MAC}/done HTTP/1.0\r\nContent-Length: -1\r\n\r\n".encode()
        assert status_of(raw(port, head, source)) in (400, 403)
    for bad in ("1e3", "+5", "0x10", "5, 5", " "):
        head = f"POST /install/{MAC}/done HTTP/1.0\r\nContent-Length: {bad}\r\n\r\n".encode()
        assert status_of(raw(port, head)) == 400, bad
    assert boot(rocks) == "install"


def test_the_sender_is_checked_before_the_body_is_read(server: tuple[int, Any]) -> None:
    """A stranger announcing a body it never sends gets its 403 at once, nothing is read."""
    port, rocks = server
    head = f"POST /install/{MAC}/done HTTP/1.0\r\nContent-Length: 4000\r\n\r\n".encode()
    answer = raw(port, head, ATTACKER)
    assert status_of(answer) == 403 and b"came from 127.0.0.9" in answer
    huge = f"POST /install/{MAC}/done HTTP/1.0\r\nContent-Length: {200 << 20}\r\n\r\n".encode()
    assert status_of(raw(port, huge, ATTACKER)) == 403
    assert status_of(raw(port, huge, NODE)) == 413  # the node itself: too long, unread
    assert boot(rocks) == "install"


def test_content_length_with_chunked_is_refused_and_the_connection_closed(
    server: tuple[int, Any],
) -> None:
    """RFC 9112 6.1: both framings at once is a smuggling attempt; answer 400 and close."""
    port, rocks = server
    hidden = f"GET /ipxe/{MAC} HTTP/1.1\r\nHost: x\r\n\r\n"
    body = f"0\r\n\r\n{hidden}"
    request = (
        f"POST /install/{MAC}/done HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        f"Transfer-Encoding: chunked\r\n\r\n{body}"
    ).encode()
    answer = raw(port, request, NODE)
    assert status_of(answer) == 400
    assert answer.count(b"HTTP/1.") == 1  # the hidden request got no answer
    assert boot(rocks) == "install"
    chunked = f"POST /install/{MAC}/done HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert status_of(raw(port, chunked.encode(), NODE)) in (400, 501)
    assert boot(rocks) == "install"


def test_idle_half_requests_hold_no_threads_and_the_node_is_still_served(
    server: tuple[int, Any],
) -> None:
    """300 connections that never finish their request line once held 301 threads."""
    port, _ = server
    before = threading.active_count()
    idle = []
    try:
        for _ in range(300):
            s = socket.create_connection(("127.0.0.1", port), 5, (ATTACKER, 0))
            s.sendall(b"GET /ipxe/")
            idle.append(s)
        status, body = fetch(port, "GET", f"/ipxe/{MAC}")
        assert status == 200 and body.startswith(b"#!ipxe")
        assert threading.active_count() - before <= 16
        # All but a few were answered 503 at once, by the accepting thread.
        ready, _, _ = select.select(idle, [], [], 0)
        assert len(ready) >= 300 - 16
        assert ready[0].recv(64).startswith(b"HTTP/1.0 503")
    finally:
        for s in idle:
            s.close()


def test_a_trickled_request_head_is_timed_out(site: Any) -> None:
    """A client that sends its request line a byte at a time is cut off at the head timeout."""
    db = open_database(site.url)
    srv = BootServer(("127.0.0.1", 0), BootAnswers(db), "", Limits(head_timeout=1.0))
    worker = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    worker.start()
    try:
        port = srv.server_address[1]
        with socket.create_connection(("127.0.0.1", port), 5, (ATTACKER, 0)) as s:
            closed = False
            for byte in f"GET /ipxe/{MAC} HTTP/1.0\r\n\r\n".encode():
                try:
                    s.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                ready, _, _ = select.select([s], [], [], 0.2)
                if ready:
                    closed = True
                    break
            assert closed, "the server waited for the whole trickled head"
            assert s.recv(4096).startswith(b"HTTP/1.0 408")
    finally:
        srv.shutdown()
        srv.server_close()
        worker.join()
        db.dispose()


def test_no_client_string_forges_a_log_line(
    server: tuple[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """%0a in a path and a newline in a completion body once wrote lines of their own."""
    port, rocks = server
    forged = f"2030-01-01T00:00:00 {NODE} POST /install/{MAC}/done 200 install of x complete"
    capsys.readouterr()
    fetch(port, "GET", "/ipxe/x%0a" + urllib.parse.quote(forged) + "%0d%1b[2J")
    raw(port, b"GET /\x1b[2J\r HTTP/1.0\r\n\r\n")
    status, _ = fetch(port, "POST", f"/install/{MAC}/done", body=f"ok\n{forged}\n".encode())
    assert status == 200 and boot(rocks) == "os"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3, lines
    assert not any(ln.startswith("2030-") for ln in lines)
    assert not any(c in ln for ln in lines for c in "\r\x1b\x85\u2028")
    assert "\\x0a2030-01-01T00:00:00" in lines[0]
    assert lines[2].endswith(f"install of compute-0-0 complete ok\\x0a{forged}")


def test_a_boot_action_row_holding_ipxe_syntax_is_not_served(
    server: tuple[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A row written past the commands (an older version, SQL) still cannot chain a shell."""
    port, rocks = server
    engine = sqlalchemy.create_engine(rocks.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                boot_actions.update()
                .where(boot_actions.c.name == "install")
                .values(args="console=ttyS0 && shell")
            )
    finally:
        engine.dispose()
    status, body = fetch(port, "GET", f"/ipxe/{MAC}")
    assert status == 400
    assert not any(ln.startswith("kernel") for ln in body.decode().splitlines())
    # The same for the install instructions: a zone with a newline would add a key.
    engine = sqlalchemy.create_engine(rocks.url)
    try:
        with engine.begin() as conn:
            conn.execute(
                networks.update()
                .where(networks.c.name == "private")
                .values(dnszone="local\nreport=http://evil/")
            )
    finally:
        engine.dispose()
    status, body = fetch(port, "GET", f"/install/{MAC}")
    assert status == 400 and body.startswith(b"domain 'local\\nreport=http://evil/' of compute-0-0")
    assert "GET /ipxe/52:54:00:00:05:05 400 refused: boot action 'install' of compute-0-0: " in (
        capsys.readouterr().err
    )
