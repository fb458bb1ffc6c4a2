"""The Airboss as a process: uvicorn on 127.0.0.1 and a free port, sockets and signals.

`airboss serve` in its own process (the `site.server()` fixture), or the daemon of
`rocks start service airboss`. Clients are the pilot client library and raw `http.client`
connections (for what a well-behaved client never sends).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from flightdeck.pilot.client import AirbossClient, AirbossError


def client(site: Any, srv: Any, owner: Any, **kw: Any) -> AirbossClient:
    return AirbossClient(owner.key, srv.address, **kw)


def test_serves_then_stops_cleanly_on_sigterm(site: Any, alice: Any) -> None:
    srv = site.server()
    c = client(site, srv, alice)
    assert c.health().status == "ok"
    nodes = c.macs(site.mac(site.cluster_a[0]))
    assert [n.host for n in nodes] == site.cluster_a
    assert srv.pid_file.read_text().strip() == str(srv.process.pid)
    state = json.loads(srv.pid_file.with_suffix(".json").read_text())
    assert state["pid"] == srv.process.pid and state["loopback"] is True
    # A request in flight when SIGTERM arrives is answered before the process ends.
    slow = c.power(site.cluster_a[1], "on")
    assert slow.result.startswith("started")
    assert srv.stop() == 0
    assert not srv.pid_file.exists() and not srv.pid_file.with_suffix(".json").exists()
    log = srv.log.read_text()
    assert "listening on http://127.0.0.1:" in log and "stopped" in log
    assert "Traceback" not in log


def test_set_gives_any_setting_and_the_named_options_win(site: Any, alice: Any) -> None:
    """`--set rate=...` once crashed with a traceback (the option `--rate` was passed too)."""
    srv = site.server("--set", "rate=0.5", "--set", "burst=1", "--burst", "2")
    c = client(site, srv, alice)
    fe = site.mac(site.cluster_a[0])
    c.macs(fe)
    c.macs(fe)  # burst 2 (the option), not 1 (--set)
    with pytest.raises(Exception, match="too many requests with this key"):
        c.macs(fe)
    assert "Traceback" not in srv.log.read_text()


@pytest.fixture
def airboss_bin() -> str:
    import sys

    return str(Path(sys.executable).parent / "airboss")


def test_non_loopback_listen_needs_tls(site: Any, airboss_bin: str) -> None:
    for listen in ("0.0.0.0:0", "192.0.2.1:8677", "[::]:0", "espresso.example.org:8677"):
        done = subprocess.run(
            [airboss_bin, "serve", "--listen", listen, "--database", site.url],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "FLIGHTDECK_HOME": str(site.tmp)},
        )
        assert done.returncode == 1, done.stderr
        assert "refusing to listen on" in done.stderr and "without TLS" in done.stderr
        assert "Traceback" not in done.stderr


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp / "airboss.crt", tmp / "airboss.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls_with_the_site_certificate(site: Any, alice: Any) -> None:
    cert, key = _self_signed(site.tmp)
    srv = site.server("--tls-cert", str(cert), "--tls-key", str(key))
    assert srv.url.startswith("https://127.0.0.1:")
    port = srv.url.rsplit(":", 1)[1]
    good = AirbossClient(alice.key, f"https://localhost:{port}", cafile=str(cert))
    assert [n.host for n in good.macs(site.cluster_a[0])] == site.cluster_a
    # Without the site CA the certificate is not trusted, and nothing is sent.
    bad = AirbossClient(alice.key, f"https://localhost:{port}")
    with pytest.raises(AirbossError) as err:
        bad.macs(site.cluster_a[0])
    assert err.value.code == "unreachable" and "TLS" in err.value.message
    # Plain HTTP to a TLS port gets nowhere either.
    plain = AirbossClient(alice.key, f"127.0.0.1:{port}")
    with pytest.raises(AirbossError):
        plain.macs(site.cluster_a[0])


def test_client_refuses_plain_http_beyond_loopback(alice: Any) -> None:
    from flightdeck.errors import UserError

    with pytest.raises(UserError, match="plain HTTP only to this machine"):
        AirbossClient(alice.key, "espresso.example.org:8677")


def test_slow_clients_do_not_block_anyone(site: Any, alice: Any) -> None:
    srv = site.server()
    host, port = srv.address.rsplit(":", 1)
    stalled = []
    for i in range(20):
        s = socket.create_connection((host, int(port)))
        if i % 2:
            s.sendall(b"POST /v1/power HTTP/1.1\r\nHost: x\r\n")  # headers never finish
        else:
            s.sendall(b"POST /v1/power HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        stalled.append(s)
    try:
        c = client(site, srv, alice)
        t0 = time.monotonic()
        for _ in range(5):
            assert len(c.macs(site.cluster_a[0])) == 3
        assert time.monotonic() - t0 < 5
    finally:
        for s in stalled:
            s.close()


def _stall(address: str, source: str, head: bytes = b"GET /v1/macs HTTP/1.1\r\nHost: x\r\n"
           ) -> socket.socket:
    """A connection from `source` (a loopback address) whose request head never ends."""
    host, port = address.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(10)
    s.connect((host, int(port)))
    s.sendall(head)
    return s


def _closed_by_server(s: socket.socket, wait: float) -> bool:
    """True if the server closes `s` within `wait` seconds (EOF or reset)."""
    s.settimeout(wait)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_half_open_connections_beyond_the_file_limit_do_not_starve_an_owner(
    site: Any, alice: Any
) -> None:
    """The audit's attack: 1,100 half-open connections (request heads that never end, from 20
    addresses) against the default open-file limit of 1,024. Before: accept() failed in a
    loop, the owner's request was never answered and each failure logged a traceback. Now the
    oldest idle
    connections make room, the owner is answered while the attack holds, the stalled ones are
    closed at the request deadline, and the log has a few counted lines, no tracebacks."""
    srv = site.server("--set", "head_timeout=4", prefix=("prlimit", "--nofile=1024:1024", "--"))
    stalled = [_stall(srv.address, f"127.0.0.{2 + i % 20}") for i in range(1100)]
    try:
        c = client(site, srv, alice, timeout=10)
        time.sleep(0.5)  # the last of them accepted (the deadline, 4 s, is still far)
        t0 = time.monotonic()
        assert len(c.macs(site.cluster_a[0])) == 3
        answered = time.monotonic() - t0
        print(f"\nowner answered in {answered * 1000:.0f} ms under 1100 half-open connections")
        # The bound (measured here: 55-90 ms; before, never: accept() had failed and
        # asyncio stopped accepting, for a second after each failure).
        assert answered < 1.0
        # Every stalled connection is closed by the server: evicted, or at its deadline.
        assert all(_closed_by_server(s, 10) for s in stalled)
    finally:
        for s in stalled:
            s.close()
    assert srv.stop() == 0  # its last counts are logged as it stops
    text = srv.log.read_text()
    assert "Traceback" not in text
    assert "out of system resource" not in text  # the guard keeps accept() within the limit
    assert "no whole request within 4 s: closed" in text or "oldest idle one closed" in text
    assert text.count("connections refused or closed since the last report") <= 5


def test_connections_per_client_address_are_capped(site: Any, alice: Any) -> None:
    srv = site.server("--set", "max_client_connections=8", "--set", "head_timeout=30")
    held = [_stall(srv.address, "127.0.0.3") for _ in range(8)]
    extra = [_stall(srv.address, "127.0.0.3") for _ in range(4)]
    try:
        assert all(_closed_by_server(s, 5) for s in extra)  # over the cap: closed at once
        assert not any(_closed_by_server(s, 0.2) for s in held)  # within it: still open
        # Another address (the owner's) is not affected.
        assert len(client(site, srv, alice, timeout=10).macs(site.cluster_a[0])) == 3
    finally:
        for s in held + extra:
            s.close()


def test_a_body_that_never_ends_is_cut_at_the_deadline(site: Any, alice: Any) -> None:
    srv = site.server("--set", "head_timeout=2")
    s = _stall(srv.address, "127.0.0.4",
               b"POST /v1/power HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        assert _closed_by_server(s, 10)
    finally:
        s.close()
    # A keep-alive connection idle past the deadline is closed too; a prompt one is served.
    assert client(site, srv, alice, timeout=10).health().status == "ok"


def _exchange(address: str, data: bytes, wait: float = 5) -> bytes:
    """Send raw bytes, read everything until the server closes (or `wait` s of silence)."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except TimeoutError:
            pass
    return got


def test_content_length_with_chunked_closes_the_connection(site: Any) -> None:
    """RFC 9112 §6.1: a request with both framings is refused and its connection closed, so a
    request hidden behind the other framing is never served."""
    srv = site.server()
    smuggled = (b"POST /v1/power HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = _exchange(srv.address, smuggled)
    assert got.count(b"HTTP/1.1 ") == 1, got
    assert got.startswith(b"HTTP/1.1 400 "), got
    assert b"connection: close" in got.lower()
    assert b"Transfer-Encoding" in got  # the message says why
    assert site.last().reason.startswith("invalid-request: Content-Length with Transfer-Encoding")


@pytest.mark.parametrize("line", [b"OPTIONS * HTTP/1.1", b"GET http://127.0.0.1/v1/macs HTTP/1.1",
                                  b"GET //v1/macs HTTP/1.1"])
def test_requests_that_match_no_route_are_audited(site: Any, line: bytes) -> None:
    srv = site.server()
    got = _exchange(srv.address, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = got.split(b"\r\n\r\n", 1)[0].decode().lower()
    assert head.startswith("http/1.1 40"), got
    audit_id = next(v for k, _, v in (h.partition(": ") for h in head.split("\r\n"))
                    if k == "audit-id")
    assert site.last().id == int(audit_id)
    assert not site.last().accepted


def test_client_strings_never_forge_log_lines(site: Any) -> None:
    """A newline (raw or %0a) in a path, a header or a WebSocket upgrade's path stays inside
    one escaped log line: no line of the Airboss's log starts with the forged text."""
    srv = site.server()
    forged = b"2026-01-01 00:00:00,000 INFO flightdeck.airboss: FORGED"
    _exchange(srv.address, b"GET /v1/macs%0a" + forged.replace(b" ", b"%20")
              + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    _exchange(srv.address, b"GET /v1/console%0a" + forged.replace(b" ", b"%20")
              + b"?kind=vnc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade"
              b"\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
              b"\r\n\r\n")
    _exchange(srv.address, b"GET /v1/macs?target=%0a" + forged.replace(b" ", b"%20")
              + b" HTTP/1.1\r\nHost: x\r\nSignature-Input: sig=();keyid=\"a\\nFORGED\"\r\n"
              b"Connection: close\r\n\r\n")
    # Raw control bytes h11 lets through in a request target (ESC: terminal escapes).
    _exchange(srv.address, b"GET /v1/macs\x1b[2J\x1b]0;owned\x07 HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
    assert srv.stop() == 0
    raw = srv.log.read_bytes()
    assert b"\x1b" not in raw and b"\x07" not in raw
    lines = raw.splitlines()
    assert not [line for line in lines if line.startswith(forged[:23]) and b"FORGED" in line[:80]]
    assert any(b"FORGED" in line for line in lines)  # it was logged, escaped, inside a line


def _junk(address: str, source: str, n: int) -> list[int]:
    """`n` unsigned requests from `source` on one keep-alive connection; their statuses."""
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    try:
        return [_send(conn, "GET", "/v1/macs", "target=x", {}) for _ in range(n)]
    finally:
        conn.close()


def _accounted(rows: list[Any], client: str) -> tuple[int, int, int]:
    """(own rows, summary rows, refusals the summaries count) of `client` in the audit log."""
    own = [r for r in rows if r.client == client and r.operation != "refusals"]
    summaries = [r for r in rows if r.client == client and r.operation == "refusals"]
    folded = sum(int(r.reason.split()[1]) for r in summaries)
    return len(own), len(summaries), folded


def test_junk_from_one_address_is_rate_limited_before_verification(site: Any, alice: Any
                                                                    ) -> None:
    srv = site.server("--set", "client_rate=2", "--set", "client_burst=10")
    statuses = _junk(srv.address, "127.0.0.6", 40)
    assert statuses[:10] == [401] * 10
    assert statuses.count(429) >= 25, statuses
    # The owner, from another address, is not slowed down by it.
    assert len(client(site, srv, alice, timeout=10).macs(site.cluster_a[0])) == 3


def test_a_refused_flood_is_summed_up_in_the_audit_log(site: Any, alice: Any) -> None:
    """The audit: 2,000 unsigned requests were 2,000 audit rows. Now an address's first
    `audit_refusals` refusals before verification per minute have their own rows, the rest are
    counted and written as one summary row per minute; verified requests are all recorded."""
    srv = site.server("--set", "audit_refusals=5", "--set", "client_rate=100000",
                      "--set", "client_burst=100000")
    assert set(_junk(srv.address, "127.0.0.7", 300)) == {401}
    assert len(client(site, srv, alice, timeout=10).macs(site.cluster_a[0])) == 3
    assert srv.stop() == 0  # the last minute's summary is written as it stops
    rows = site.audit(1000)
    own, summaries, folded = _accounted(rows, "127.0.0.7")
    assert own + folded == 300
    assert own <= 5 * summaries + 5 and 1 <= summaries <= 2, (own, summaries)
    summary = next(r for r in rows if r.operation == "refusals")
    assert not summary.accepted and "missing-signature" in summary.reason
    assert [r for r in rows if r.client == "127.0.0.1"][-1].accepted


def _raw(address: str) -> http.client.HTTPConnection:
    host, port = address.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port), timeout=60)


def _send(conn: http.client.HTTPConnection, method: str, path: str, query: str,
          headers: dict[str, str], body: bytes = b"") -> int:
    url = f"{path}?{query}" if query else path
    conn.request(method, url, body=body or None, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


@pytest.mark.slow
def test_flood_of_5000_requests_from_50_clients(site: Any, alice: Any, bob: Any,
                                                 mallory: Any) -> None:
    """No forgery is ever accepted, every request is answered, and it ends in bounded time."""
    srv = site.server("--rate", "100000", "--burst", "100000", "--set", "client_rate=100000",
                      "--set", "client_burst=100000")
    mine = f"target={site.mac(site.cluster_a[0])}"
    theirs = f"target={site.mac(site.cluster_b[0])}"
    captured = alice.sign("GET", "/v1/macs", mine)
    conn = _raw(srv.address)
    assert _send(conn, "GET", "/v1/macs", mine, captured) == 200
    conn.close()

    kinds = ["valid", "valid", "valid", "valid", "replay", "tampered", "unknown-key",
             "other-cluster", "unsigned", "bad-digest"]
    expected = {"valid": {200}, "replay": {401}, "tampered": {401}, "unknown-key": {401},
                "other-cluster": {403}, "unsigned": {401}, "bad-digest": {401}}
    seen: dict[str, list[int]] = {k: [] for k in expected}
    lock = threading.Lock()

    def one_client(n: int) -> None:
        conn = _raw(srv.address)
        try:
            for i in range(100):
                kind = kinds[(n + i) % len(kinds)]
                query = mine
                if kind == "valid":
                    headers = alice.sign("GET", "/v1/macs", mine)
                elif kind == "replay":
                    headers = captured
                elif kind == "tampered":
                    headers, query = alice.sign("GET", "/v1/macs", mine), theirs
                elif kind == "unknown-key":
                    headers = mallory.sign("GET", "/v1/macs", mine)
                elif kind == "other-cluster":
                    headers = bob.sign("GET", "/v1/macs", mine)
                elif kind == "bad-digest":
                    headers = {**alice.sign("GET", "/v1/macs", mine),
                               "Content-Digest": "sha-256=:AAAA:"}
                else:
                    headers = {}
                status = _send(conn, "GET", "/v1/macs", query, headers)
                with lock:
                    seen[kind].append(status)
        finally:
            conn.close()

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        for f in [pool.submit(one_client, n) for n in range(50)]:
            f.result(timeout=600)
    elapsed = time.monotonic() - t0
    assert sum(len(v) for v in seen.values()) == 5000
    for kind, statuses in seen.items():
        assert set(statuses) <= expected[kind], (kind, sorted(set(statuses)))
    assert elapsed < 300, f"5,000 requests took {elapsed:.0f} s"
    # Still answering, at once.
    t1 = time.monotonic()
    assert client(site, srv, alice).health().status == "ok"
    assert client(site, srv, alice).macs(site.cluster_a[0])
    assert time.monotonic() - t1 < 2
    # Every one of them is in the audit log (a row each, or counted in a flood summary: the
    # refusals before verification), and only the valid ones were accepted.
    assert srv.stop() == 0
    rows = site.audit(None)
    own, _summaries, folded = _accounted(rows, "127.0.0.1")
    assert own + folded == 5000 + 1 + 1
    assert sum(r.accepted for r in rows) == len(seen["valid"]) + 1 + 1
    verified = len(seen["valid"]) + len(seen["other-cluster"]) + 1 + 1
    assert own >= verified  # no verified request is ever folded
    print(f"\nflood: 5000 requests, 50 clients, {elapsed:.1f} s, {5000 / elapsed:.0f} req/s")


def test_daemon_start_report_stop(site: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
                                  ) -> None:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(site.tmp))
    rocks = site.rocks
    r = rocks("report", "service", "airboss")
    assert r.code == 3 and "not running" in r.err
    out = rocks.ok("start", "service", "airboss", "listen=127.0.0.1:0")
    assert out.startswith("airboss started (pid ")
    pid = int(out.split("(pid ", 1)[1].split(")", 1)[0])
    try:
        url = out.split(" on ", 1)[1].split(";", 1)[0]
        assert rocks.ok("report", "service", "airboss").startswith(
            f"airboss is running (pid {pid}) on {url}")
        again = rocks("start", "service", "airboss", "listen=127.0.0.1:0")
        assert again.code == 1 and "already running" in again.err
        c = AirbossClient(alice.key, url.split("://", 1)[1])
        assert len(c.macs(site.cluster_a[0])) == 3
        # It belongs to no terminal: a session of its own, not ours.
        assert os.getsid(pid) != os.getsid(0)
    finally:
        out = rocks("stop", "service", "airboss")
    assert out.code == 0 and out.out == f"airboss stopped (pid {pid})\n"
    assert not (site.tmp / "airboss.pid").exists()
    log = (site.tmp / "airboss.log").read_text()
    assert f"airboss {pid} listening" in log and f"airboss {pid} stopped" in log
    r = rocks("stop", "service", "airboss")  # a second stop: not an error (issue 15)
    assert (r.code, r.out, r.err) == (0, "airboss was not running\n", "")


def test_daemon_that_cannot_start_says_why(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(site.tmp))
    r = site.rocks("start", "service", "airboss", "listen=0.0.0.0:0")
    assert r.code == 1 and "without TLS" in r.err


def test_stale_pid_file_is_not_trusted(site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pid file naming some other live process must not get that process killed."""
    monkeypatch.setenv("FLIGHTDECK_HOME", str(site.tmp))
    (site.tmp / "airboss.pid").write_text(f"{os.getpid()}\n")
    r = site.rocks("stop", "service", "airboss")
    assert (r.code, r.out) == (0, "airboss was not running\n")
    assert not (site.tmp / "airboss.pid").exists()


def test_sigterm_with_open_keepalive_connections(site: Any, alice: Any) -> None:
    srv = site.server()
    c = client(site, srv, alice)
    c.macs(site.cluster_a[0])  # leaves a kept-alive connection open
    t0 = time.monotonic()
    srv.process.send_signal(signal.SIGTERM)
    assert srv.process.wait(timeout=40) == 0
    assert time.monotonic() - t0 < 20


def test_expired_nonces_are_purged_by_the_running_airboss(site: Any, alice: Any) -> None:
    from sqlalchemy import func, insert, select

    from flightdeck.db.models import Nonce

    settings = site.tmp / "airboss.toml"
    settings.write_text("purge_interval = 0.2\n")
    with site.db.engine.begin() as conn:
        conn.execute(insert(Nonce).values(keyid="k", nonce="old-nonce-0123456789", expires=1))
    srv = site.server("--config", str(settings))
    client(site, srv, alice).macs(site.cluster_a[0])  # one live nonce

    def nonces() -> list[str]:
        with site.db.engine.connect() as conn:
            return list(conn.scalars(select(Nonce.nonce)))

    deadline = time.monotonic() + 10
    while "old-nonce-0123456789" in nonces() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(nonces()) == 1 and "old-nonce-0123456789" not in nonces()
    with site.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Nonce)).scalar_one() == 1


def test_a_write_lock_held_elsewhere_neither_blocks_the_loop_nor_loses_a_request(
    site: Any, alice: Any
) -> None:
    """SQLite: the gate's transaction runs on the event loop only if the write lock is free at
    once. While another process (here a plain sqlite3 connection) holds it, signed requests
    wait in database threads, the loop still answers, and each request is answered and
    audited once the lock is free; a replay of one of them is still refused."""
    if not site.url.startswith("sqlite"):
        pytest.skip("the loop's first transaction is a SQLite path (PostgreSQL uses threads)")
    srv = site.server()
    c = client(site, srv, alice)
    mac = site.mac(site.cluster_a[0])
    assert len(c.macs(mac)) == 3  # on the loop: the lock is free
    before = site.last().id
    other = sqlite3.connect(site.url.removeprefix("sqlite:///"), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            waiting = [pool.submit(c.macs, mac) for _ in range(3)]
            time.sleep(0.5)  # let them reach the server and queue for the lock
            assert not any(f.done() for f in waiting)
            for _ in range(5):  # the loop is free: unsigned requests answered meanwhile
                assert c.health().status == "ok"
            assert not any(f.done() for f in waiting)
            other.execute("COMMIT")
            assert [len(f.result(timeout=60)) for f in waiting] == [3, 3, 3]
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    rows = [r for r in site.audit(10) if r.id > before]
    assert [(r.operation, r.accepted) for r in rows] == [("macs", True)] * 3
    # A signed request accepted after the wait is as single-use as any other.
    headers = alice.sign("GET", "/v1/macs", f"target={mac}")
    host, port = srv.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    for status in (200, 401):
        conn.request("GET", f"/v1/macs?target={mac}", headers=headers)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == status
    conn.close()
    assert site.last().reason.startswith("replay: ")
