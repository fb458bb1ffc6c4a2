"""The site CA and the Airboss's certificate: a real TLS handshake verifies them."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from flightdeck.crypto import x509 as fx
from flightdeck.errors import Conflict, UserError


def handshake(issued: fx.Issued, server_name: str | None, ip: str = "127.0.0.1") -> str:
    """Serve one TLS connection with the Airboss's certificate; connect verifying with the CA."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(issued.cert, issued.key)
    with socket.socket() as listener:
        listener.bind((ip, 0))
        listener.listen(1)
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass

        worker = threading.Thread(target=serve)
        worker.start()
        client = ssl.create_default_context(cafile=str(issued.ca_cert))
        try:
            with (
                socket.create_connection((ip, port), timeout=10) as raw,
                client.wrap_socket(raw, server_hostname=server_name or ip) as tls,
            ):
                return tls.recv(2).decode()
        finally:
            worker.join(timeout=10)


def test_the_certificate_verifies_by_name_and_by_address(tmp_path: Path) -> None:
    issued = fx.issue(tmp_path, ["fe.example.org"], ["127.0.0.1"])
    assert issued.new_ca
    assert handshake(issued, "fe.example.org") == "ok"
    assert handshake(issued, None) == "ok"  # https://127.0.0.1:8677, as virtual frontends use
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(issued, "other.example.org")
    assert issued.key.stat().st_mode & 0o077 == 0 and issued.ca_key.stat().st_mode & 0o077 == 0


def test_an_existing_ca_signs_and_nothing_is_overwritten(tmp_path: Path) -> None:
    first = fx.issue(tmp_path, ["fe.example.org"], ["127.0.0.1"])
    ca_before = first.ca_cert.read_bytes()
    with pytest.raises(Conflict, match=r"airboss\.crt exists"):
        fx.issue(tmp_path, ["fe.example.org"], ["127.0.0.1"])
    first.cert.unlink()
    first.key.unlink()
    again = fx.issue(tmp_path, ["fe2.example.org"], ["127.0.0.1"])
    assert not again.new_ca and again.ca_cert.read_bytes() == ca_before
    assert handshake(again, "fe2.example.org") == "ok"
    with pytest.raises(UserError, match="is not an IP address"):
        fx.issue(tmp_path / "x", ["a"], ["300.1.1.1"])


def test_the_command_tells_virtual_frontends(espresso: Any, tmp_path: Path) -> None:
    out = espresso.ok("create", "airboss", "certificate", f"dir={tmp_path / 'pki'}")
    assert "made the site CA" in out and "https://137.110.119.117:8677" in out
    url = espresso.ok("list", "attr", "attr=airboss_url", "output-col=value", "output-header=no")
    assert url.strip() == "https://137.110.119.117:8677"
    espresso.refused("create", "airboss", "certificate", f"dir={tmp_path / 'pki'}",
                     says="airboss.crt exists")  # fmt: skip
