"""The one Airboss client: every owner-side command (`rocks ... key=`, `pilot ...`) uses it.

`call(operation, request)` sends any declared operation (`flightdeck.api.operations`) and
returns its typed answer; `power`, `macs`, `isos`, `cdrom`, `console_token` and
`open_console` are that call with the request spelt out.

Standard library (`http.client`, `ssl`, `json`) plus `flightdeck.crypto` only: a laptop with
`pip install flightdeck` and nothing else can run it (no database, no libvirt, no compiler).

Each request is signed anew (RFC 9421, see `crypto.httpsig`): a fresh nonce, `created` now and
a short lifetime, over the method, the exact path and query string sent, and the body's
digest. A connection is kept per thread (keep-alive), so one client can be shared by worker
threads; a kept connection the server has meanwhile closed is reopened and the request signed
again with a new nonce (a resend of the same signature would be refused as a replay).

Transport: `host:port` (default `localhost:8677`, the end of `ssh -L 8677:localhost:8677
<frontend>`) speaks plain HTTP, and only to a loopback address: anything else must be
`https://host:port`, whose certificate is verified (against `cafile`, the site CA, when given).
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from flightdeck.api import operations as ops
from flightdeck.api import wire
from flightdeck.api.wire import AirbossError as AirbossError
from flightdeck.crypto.httpsig import sign_request
from flightdeck.crypto.keys import PrivateKey, fingerprint
from flightdeck.errors import UserError
from flightdeck.pilot.websocket import WebSocket

if TYPE_CHECKING:
    from flightdeck.crypto.capability import Token

DEFAULT_PORT = 8677
DEFAULT_ADDRESS = f"localhost:{DEFAULT_PORT}"
USER_AGENT = "flightdeck-pilot/1"
#: Largest answer read (a MAC list of a few thousand nodes is far below).
MAX_RESPONSE = 8 * 1024 * 1024
Req = TypeVar("Req", bound=ops.Targeted)
Ans = TypeVar("Ans")


@dataclass(frozen=True)
class Address:
    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str | None) -> Address:
    """`host`, `host:port`, `http://host:port` or `https://host:port` (IPv6 in brackets)."""
    text = (text or DEFAULT_ADDRESS).strip()
    scheme = "http"
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise UserError(f"airboss={scheme}://...: use http:// (loopback) or https://")
        text = text.rstrip("/")
    try:
        parts = urllib.parse.urlsplit(f"//{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        raise UserError(f"airboss={text!r}: give host:port, e.g. {DEFAULT_ADDRESS}") from None
    if not host or parts.path or parts.query or parts.username:
        raise UserError(f"airboss={text!r}: give host:port, e.g. {DEFAULT_ADDRESS}")
    return Address(scheme, host, port or DEFAULT_PORT)


class AirbossClient:
    """Signed requests to one Airboss with one private key, or requests bound to a capability
    token (`token=`: each request appends its own binding block, see `crypto.capability`)."""

    def __init__(
        self,
        key: PrivateKey | None,
        address: str | None = None,
        *,
        cafile: str | None = None,
        timeout: float = 300.0,
        expires_in: int = 60,
        token: Token | None = None,
    ) -> None:
        if (key is None) == (token is None):
            raise UserError("give either key= or token=, not both")
        self.key = key
        self.token = token
        if key is not None:
            self.keyid = fingerprint(key.public_key())
        else:
            assert token is not None
            self.keyid = token.keyid
        self.address = parse_address(address)
        self.timeout = timeout
        self.expires_in = expires_in
        if self.address.scheme == "http" and not _loopback(self.address.host):
            raise UserError(
                f"airboss={self.address.host}: plain HTTP only to this machine; use "
                f"https://{self.address.host}:{self.address.port} or an ssh tunnel "
                f"(ssh -L 8677:localhost:8677 <frontend>, then airboss=localhost:8677)"
            )
        self._ssl: ssl.SSLContext | None = None
        if self.address.scheme == "https":
            self._ssl = ssl.create_default_context(cafile=cafile)
            self._ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self._local = threading.local()

    # Connections -------------------------------------------------------------------------------

    def _new_connection(self) -> http.client.HTTPConnection:
        if self._ssl is not None:
            return http.client.HTTPSConnection(
                self.address.host, self.address.port, timeout=self.timeout, context=self._ssl
            )
        return http.client.HTTPConnection(
            self.address.host, self.address.port, timeout=self.timeout
        )

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        conn = self._new_connection()
        self._local.conn = conn
        return conn, False

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        self._drop()

    # Requests ----------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, query: str, body: bytes, signed: bool
    ) -> tuple[int, Mapping[str, str], bytes]:
        for attempt in (1, 2):
            conn, reused = self._connection()
            headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
            if body:
                headers["Content-Type"] = "application/json"
            if signed:
                headers.update(self.authenticate(method, path, query, body))
            target = f"{path}?{query}" if query else path
            try:
                conn.request(method, target, body=body if body else None, headers=headers)
                resp = conn.getresponse()
                data = resp.read(MAX_RESPONSE + 1)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self._drop()
                if reused and attempt == 1:
                    continue  # the kept connection had been closed: sign again, on a new one
                raise self._unreachable(exc) from None
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise self._unreachable(exc) from None
            if resp.will_close:
                self._drop()
            if len(data) > MAX_RESPONSE:
                self._drop()
                raise AirbossError("bad-response", "the Airboss's answer is too large")
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        raise AssertionError("unreachable")  # pragma: no cover

    def authenticate(self, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        """The headers that prove who asks: a fresh signature, or a fresh token binding."""
        if self.token is not None:
            from flightdeck.crypto.capability import bind

            return bind(self.token, method, path, query, body, expires_in=self.expires_in)
        assert self.key is not None
        # The keyid worked out once (a fingerprint costs ~60 us: a quarter of a signature).
        return sign_request(
            method, path, query, body, self.key, keyid=self.keyid, expires_in=self.expires_in
        )

    def _unreachable(self, exc: BaseException) -> AirbossError:
        if isinstance(exc, ssl.SSLError | ssl.CertificateError):
            why = f"TLS failed ({exc}); give the site CA with ca=<file>"
        elif isinstance(exc, socket.timeout | TimeoutError):
            why = f"no answer within {self.timeout:g} s"
        else:
            why = str(exc) or type(exc).__name__
        hint = ""
        if _loopback(self.address.host):
            hint = "; is the ssh tunnel open (ssh -L 8677:localhost:8677 <physical frontend>)?"
        return AirbossError(
            "unreachable", f"cannot reach the Airboss at {self.address}: {why}{hint}"
        )

    def request(
        self, method: str, path: str, query: Mapping[str, str], body: bytes, *, signed: bool
    ) -> Any:
        """One request; the decoded JSON answer, or `AirbossError` with the Airboss's code."""
        query_text = urllib.parse.urlencode(dict(query), quote_via=urllib.parse.quote)
        status, _headers, data = self._send(method, path, query_text, body, signed)
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        if status == 200 and answer is not None:
            return answer
        raise wire.error_of(status, answer)

    def call(self, op: ops.Operation[Req, Ans], request: Req) -> Ans:
        """Send a declared operation, signed; its typed answer (or `AirbossError`)."""
        if op.method == "GET":
            data = self.request(op.method, op.path, wire.request_query(request), b"", signed=True)
        else:
            data = self.request(op.method, op.path, {}, wire.request_body(request), signed=True)
        return wire.decode(op.answer, data)

    # Operations ------------------------------------------------------------------------------

    def audit_chain(self, target: str, since: int | None = None) -> ops.AuditChain:
        """The audit chain of `target`'s cluster, from entry `since`, with its signed head."""
        return self.call(ops.AUDIT, ops.AuditRequest(target=target, since=str(since or 1)))

    def audit_key(self) -> dict[str, str]:
        """The Airboss's audit key as it publishes it (unauthenticated: pin it)."""
        from flightdeck.crypto.auditchain import HEAD_KEY_PATH

        data = self.request("GET", HEAD_KEY_PATH, {}, b"", signed=False)
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise AirbossError("bad-response", "the Airboss's audit key answer is not one")
        return {k: str(v) for k, v in data.items()}

    def health(self) -> ops.Health:
        return wire.decode(ops.Health, self.request("GET", ops.HEALTH_PATH, {}, b"", signed=False))

    def power(self, target: str, action: str) -> ops.PowerResult:
        """Power `target` (a MAC or a physical-side name) on, off, install, reset, shutdown."""
        return self.call(ops.POWER, ops.PowerRequest(target, action))

    def macs(self, target: str, status: bool = False) -> list[ops.NodeInfo]:
        """The nodes of `target`'s cluster (with `status`, their live state too)."""
        return self.call(ops.MACS, ops.MacsRequest(target, status)).nodes

    def isos(self, target: str) -> list[str]:
        return self.call(ops.ISOS, ops.IsosRequest(target)).images

    def cdrom(self, target: str, cdrom: str) -> ops.CdromResult:
        return self.call(ops.CDROM, ops.CdromRequest(target, cdrom))

    def console_token(self, target: str, kind: str = "vnc") -> ops.ConsoleToken:
        """A web console token for `target` (single-use, 60 s), and the page that uses it.

        The seam for `web=yes`: the browser opens `<airboss URL><path>` and its page connects
        to the console with the token instead of a signature.
        """
        return self.call(ops.CONSOLE_TOKEN, ops.TokenRequest(target, kind))

    def dashboard_link(self, target: str) -> ops.DashboardLink:
        """A one-time link to the dashboard of `target`'s cluster (single-use, 60 s)."""
        return self.call(ops.DASHBOARD, ops.DashboardRequest(target))

    # Consoles --------------------------------------------------------------------------------

    def open_console(self, target: str, kind: str = "vnc") -> WebSocket:
        """A console session: a WebSocket relaying `target`'s VNC (RFB) or serial bytes.

        Its own connection (not the kept one), and the upgrade request is signed like any
        other request: a fresh nonce, so each session needs a new call. `AirbossError` with
        the Airboss's code when it is refused (forbidden, too-many-sessions, conflict...).
        """
        query = urllib.parse.urlencode(
            wire.request_query(ops.ConsoleRequest(target=target, kind=kind)),
            quote_via=urllib.parse.quote,
        )
        path = ops.CONSOLE.path
        headers = {"User-Agent": USER_AGENT}
        headers.update(self.authenticate("GET", path, query, b""))
        return self._websocket(f"{path}?{query}", headers)

    def _websocket(self, target: str, headers: Mapping[str, str]) -> WebSocket:
        try:
            sock = socket.create_connection(
                (self.address.host, self.address.port), timeout=min(self.timeout, 30.0)
            )
        except OSError as exc:
            raise self._unreachable(exc) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.address.host)
            host = f"[{self.address.host}]" if ":" in self.address.host else self.address.host
            ws = WebSocket.handshake(sock, f"{host}:{self.address.port}", target, headers)
        except AirbossError:
            sock.close()
            raise
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise self._unreachable(exc) from None
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)  # a console may be quiet for as long as the owner likes
        return ws
