"""The console relay: `GET /v1/console?target=<VM>&kind=vnc|serial` as a WebSocket.

The original relayed VNC with `ssh <container> nc` inside its single-threaded daemon, so one
open console blocked every other owner (reference §5). Here every session lives on the event
loop: a VNC session is two asyncio streams (the WebSocket and a TCP connection to the VM's VNC
server), a serial session is the WebSocket and libvirt's console stream (`virt.console.
SerialStream`, read by one thread per session and handed to the loop). Nothing in a session
blocks the loop, so a thousand open consoles do not delay a power request.

Admission goes through the same request gate as every other operation (`airboss.gate`), its
query is parsed as the `CONSOLE` declaration says (`api.operations`), and each refusal is an
HTTP answer to the upgrade request (`{"error": code, "message": text}`, through the ASGI
WebSocket denial response), audited:

1. Headers within bounds; the query: `kind` (vnc or serial), `target`, optionally `token`.
2. Who: EITHER an RFC 9421 signature over the upgrade request (`GET`, path, query, the empty
   body's Content-Digest: the same verification and replay refusal as any request) OR a web
   console token (`airboss.tokens`: single-use, 60 s, bound to key, target and kind). 401.
3. The key's rate limit (429); then the target is looked up and the key's right on it checked
   (403), again for a token (the key may have been removed since).
4. The key's concurrent sessions: at most `console_sessions` (429 `too-many-sessions`).
5. The console itself: the VNC server's port from the running domain (libvirt, on the
   per-container pool) and a TCP connection to it, or the serial console stream (409 when
   the VM is not running, 502 when its container does not answer).
6. An audit row "console <kind>" (accepted), then the WebSocket is accepted.

Bytes are relayed as binary frames both ways (text frames from a viewer are taken as UTF-8).
A session ends, with a WebSocket close code and reason, when the VM's console closes (the VM
stopped or its container went away: 1000), after `console_idle` seconds without a byte
either way (4408), after `console_max` seconds however busy (4410), within `console_recheck`
seconds of its key's removal (or of the key no longer covering the VM, or of its capability
token's revocation: 4401; checked in the database, so any replica or `rocks remove host key`
on any host ends it), or when the viewer leaves; its end is audited as "console <kind> close"
with the bytes each way and the duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send

from flightdeck.airboss.gate import Exchange, Gate, Refusal, failed
from flightdeck.airboss.tokens import TokenRejected, TokenStore
from flightdeck.airboss.workers import Workers
from flightdeck.api import wire
from flightdeck.api.operations import CONSOLE, Call, ConsoleRequest
from flightdeck.errors import FlightdeckError
from flightdeck.services.airboss import access, consoles, revocations
from flightdeck.services.airboss.access import Target
from flightdeck.services.airboss.audit import AuditRecord
from flightdeck.services.airboss.consoles import ConsolePlace

log = logging.getLogger("flightdeck.airboss.console")

PATH = CONSOLE.path
#: Bytes read from the VNC server at once (a full-screen update is a few hundred KiB).
READ_SIZE = 256 * 1024
#: Seconds to connect to a VM's VNC server.
CONNECT_TIMEOUT = 10.0

#: WebSocket close codes of a session's end (RFC 6455 §7.4; 4000-4999 are ours).
CLOSE_NORMAL = 1000  # the VM's console closed: it stopped, or its container went away
CLOSE_GOING_AWAY = 1001  # the Airboss is shutting down
CLOSE_INTERNAL = 1011
CLOSE_IDLE = 4408  # nothing either way for console_idle seconds
CLOSE_REVOKED = 4401  # the key was removed (or no longer covers the VM), or the token revoked
CLOSE_LIFETIME = 4410  # open for console_max seconds


class Upstream(Protocol):
    """The VM side of a session: bytes from the console, bytes to it."""

    async def read(self) -> bytes: ...  # b"" at the end
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...

    @property
    def ended(self) -> str | None: ...


class _Vnc:
    """A TCP connection to a VM's VNC server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ended: str | None = None

    async def read(self) -> bytes:
        try:
            data = await self.reader.read(READ_SIZE)
        except OSError as exc:
            self.ended = f"the VNC connection failed ({exc.strerror or exc})"
            return b""
        if not data:
            self.ended = "the VM's VNC server closed the connection (the VM stopped)"
        return data

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Session:
    """One open console, for the close audit row."""

    keyid: str
    target: Target
    kind: str
    client: str | None
    started: float = field(default_factory=time.monotonic)
    to_viewer: int = 0
    from_viewer: int = 0
    last: float = field(default_factory=time.monotonic)
    #: The revocation ids of the capability token it was opened with (none: a signature).
    token_ids: tuple[str, ...] = ()


class ConsoleRelay:
    """The ASGI WebSocket endpoint of `/v1/console`; one instance per Airboss."""

    path = PATH

    def __init__(self, gate: Gate, workers: Workers, tokens: TokenStore) -> None:
        self.gate = gate
        self.workers = workers
        self.tokens = tokens
        self.settings = gate.settings
        #: Open sessions per key id (the per-key limit), and all of them.
        self.per_key: dict[str, int] = {}
        self.sessions: set[Session] = set()

    @property
    def open_sessions(self) -> int:
        return len(self.sessions)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        ex = Exchange.of(scope)
        t0 = time.perf_counter()
        reserved: str | None = None
        upstream: Upstream | None = None
        try:
            kind, target, upstream, reserved = await self._admit(scope, ex)
        except Refusal as exc:
            self.gate.refused(ex, exc, Headers(scope=scope))
            await self._deny(scope, send, ex, exc)
            ex.log(exc.status, t0)
            return
        except Exception as exc:  # a bug: say so, never how
            bug = self.gate.bug(ex, exc)
            await self._deny(scope, send, ex, Refusal(bug.code, "internal error: see the log"))
            return
        assert ex.keyid is not None
        session = Session(
            ex.keyid, target, kind, ex.client, token_ids=tuple(ex.token.ids) if ex.token else ()
        )
        try:
            ex.accepted = True
            ex.reason = "session open"
            try:
                await self.workers.in_db(lambda: self.gate.audit(ex))
            except Exception:
                log.exception("could not write the audit log entry")
                await self._deny(
                    scope, send, ex,
                    Refusal("internal", "internal error: the audit log cannot be written"),
                    audit=False,
                )
                return
            await send({"type": "websocket.accept"})
            ex.log(101, t0)
            self.sessions.add(session)
            why, code = await self._relay(session, upstream, receive, send)
        finally:
            upstream.close()
            self.sessions.discard(session)
            self.per_key[reserved] -= 1
            if not self.per_key[reserved]:
                del self.per_key[reserved]
        # On record before the viewer hears of it: whoever sees the close can read its row.
        await self._closed(session, ex, why, code)
        if code is not None:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": why[:120]})

    # Admission -------------------------------------------------------------------------------

    async def _admit(self, scope: Scope, ex: Exchange) -> tuple[str, Target, Upstream, str]:
        self.gate.limit_address(ex)
        self.gate.check_headers(scope.get("headers") or [])
        headers = Headers(scope=scope)
        query = scope.get("query_string", b"").decode("latin-1")
        if _token_of(query) is None:
            # Signed: verify before reading the query's meaning (verify-before-lookup).
            kind, target, place = await self.workers.in_db(
                lambda: self._front_signed(ex, headers, query)
            )
        else:
            request = _request(query)
            kind = request.kind
            ex.operation = CONSOLE.audit(request)
            ex.target = request.target
            assert request.token is not None
            try:
                grant = self.tokens.redeem(request.token, request.target, kind)
            except TokenRejected as exc:
                ex.keyid = exc.keyid
                ex.verified = exc.keyid is not None
                raise Refusal(exc.code, exc.message, status=401) from None
            ex.operation = f"{CONSOLE.audit(request)} (web)"
            self.gate.admit_token(ex, grant.keyid)
            target, place = await self.workers.in_db(
                lambda: self._place(ex, request, grant.keyid, grant.target)
            )
        keyid = ex.keyid
        assert keyid is not None
        limit = self.settings.console_sessions
        if self.per_key.get(keyid, 0) >= limit:
            raise Refusal(
                "too-many-sessions",
                f"this key has {limit} console session(s) open already: close one first",
                status=429,
            )
        self.per_key[keyid] = self.per_key.get(keyid, 0) + 1
        try:
            upstream = await self._open(kind, target, place)
        except BaseException:
            self.per_key[keyid] -= 1
            if not self.per_key[keyid]:
                del self.per_key[keyid]
            raise
        return kind, target, upstream, keyid

    def _front_signed(
        self, ex: Exchange, headers: Mapping[str, str], query: str
    ) -> tuple[str, Target, ConsolePlace]:
        """In a database thread: signature, rate limit, parameters, authorisation, place."""
        keyid = self.gate.admit(ex, headers, b"", query)
        request = _request(query)
        if request.token is not None:  # spelt so that only the full parse sees it
            raise Refusal("invalid-request", "unknown query parameter 'token'")
        if request.target is None:
            raise Refusal("invalid-request", "the query needs target=")
        ex.operation = CONSOLE.audit(request)
        target, place = self._place(ex, request, keyid, request.target)
        return request.kind, target, place

    def _place(
        self, ex: Exchange, request: ConsoleRequest, keyid: str, target: str
    ) -> tuple[Target, ConsolePlace]:
        found = self.gate.authorise(ex, target, CONSOLE.scope, CONSOLE.right(request))
        try:
            place = CONSOLE.place(Call(request, keyid, found, self.gate.db, self.tokens))
        except FlightdeckError as exc:
            raise failed(exc) from None
        assert isinstance(place, ConsolePlace)
        return found, place

    async def _open(self, kind: str, target: Target, place: ConsolePlace) -> Upstream:
        libvirt = self.workers.in_libvirt
        try:
            if kind == "serial":
                stream = await libvirt(place.container, lambda: consoles.open_serial(place))
                stream.start(asyncio.get_running_loop())
                return stream
            host, port = await libvirt(place.container, lambda: consoles.vnc_endpoint(place))
        except FlightdeckError as exc:
            raise failed(exc) from None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_SIZE), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as exc:
            raise Refusal(
                "driver",
                f"cannot reach the VNC console of {target.name} at {host}:{port}: "
                f"{getattr(exc, 'strerror', None) or type(exc).__name__}",
            ) from None
        return _Vnc(reader, writer)

    async def _deny(
        self, scope: Scope, send: Send, ex: Exchange, exc: Refusal, *, audit: bool = True
    ) -> None:
        """Audit the refusal, then answer the upgrade request with it (HTTP, JSON)."""
        audit_id: int | None = None
        if audit:
            try:
                audit_id = await self.workers.in_db(lambda: self.gate.audit(ex))
            except Exception:
                log.exception("could not write the audit log entry")
        body = json.dumps({"error": exc.code, "message": exc.message}).encode()
        if "websocket.http.response" in (scope.get("extensions") or {}):
            headers = [(b"content-type", b"application/json"),
                       (b"content-length", str(len(body)).encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
            if audit_id is not None:
                headers.append((b"audit-id", str(audit_id).encode()))
            await send({"type": "websocket.http.response.start", "status": exc.status,
                        "headers": headers})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # a server without the denial extension: a plain 403 to the upgrade
            await send({"type": "websocket.close", "code": 1008,
                        "reason": f"{exc.code}: {exc.message}"[:120]})

    # The session -----------------------------------------------------------------------------

    async def _relay(
        self, session: Session, upstream: Upstream, receive: Receive, send: Send
    ) -> tuple[str, int | None]:
        """Relay until one side ends; (why, the close code to send or None)."""
        idle = self.settings.console_idle

        async def down() -> tuple[str, int | None]:
            while True:
                data = await upstream.read()
                if not data:
                    return upstream.ended or "the VM's console closed", CLOSE_NORMAL
                session.to_viewer += len(data)
                session.last = time.monotonic()
                await send({"type": "websocket.send", "bytes": data})

        async def up() -> tuple[str, int | None]:
            while True:
                message: Message = await receive()
                kind = message["type"]
                if kind == "websocket.disconnect":
                    return f"the viewer closed ({message.get('code', 1005)})", None
                if kind != "websocket.receive":
                    continue
                data = message.get("bytes")
                if data is None:
                    data = (message.get("text") or "").encode()
                if data:
                    session.from_viewer += len(data)
                    session.last = time.monotonic()
                    await upstream.write(data)

        longest = self.settings.console_max
        every = self.settings.console_recheck

        async def watch() -> tuple[str, int | None]:
            """Idle, too old, or no longer allowed (checked every `console_recheck` s)."""
            end = session.started + longest
            check = time.monotonic() + every
            while True:
                now = time.monotonic()
                if session.last + idle <= now:
                    return f"idle for {idle:g} s", CLOSE_IDLE
                if end <= now:
                    return f"open for {longest:g} s, the longest a session may last", (
                        CLOSE_LIFETIME
                    )
                if check <= now:
                    why = await self.workers.in_db(lambda: self._revoked(session))
                    if why is not None:
                        return why, CLOSE_REVOKED
                    check = time.monotonic() + every
                await asyncio.sleep(max(0.0, min(session.last + idle, end, check) - now))

        tasks = [asyncio.ensure_future(c()) for c in (down, up, watch)]
        try:
            done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = next(t for t in tasks if t in done)
            try:
                why, code = first.result()
            except (OSError, ConnectionError) as exc:
                why, code = f"the relay failed: {exc}", CLOSE_INTERNAL
            except Exception as exc:  # uvicorn's disconnect errors and the like
                why, code = f"the relay ended: {type(exc).__name__}", None
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
        return why, code

    def _revoked(self, session: Session) -> str | None:
        """Why `session` may not go on (its key removed or no longer covering the VM, its
        token revoked), or None; in a database thread."""
        try:
            with self.gate.db.reading_core() as conn:
                access.recheck(conn, session.keyid, session.target)
        except access.Refused as exc:
            return f"the key no longer covers {session.target.name} ({exc.reason})"
        revoked = revocations.first_revoked(self.gate.db, session.token_ids)
        if revoked is not None:
            return f"its capability token was revoked ({revoked})"
        return None

    async def _closed(self, session: Session, ex: Exchange, why: str, code: int | None) -> None:
        seconds = time.monotonic() - session.started
        record = AuditRecord(
            client=session.client,
            keyid=session.keyid,
            operation=f"console {session.kind} close",
            target=ex.target,
            accepted=True,
            reason=f"{why}; {session.to_viewer} bytes to the viewer, {session.from_viewer} "
            f"from it, {seconds:.1f} s" + (f", close code {code}" if code else ""),
        )
        try:
            await self.workers.in_db(lambda: self.gate.audit_record(record))
        except Exception:
            log.exception("could not write the audit log entry of a console's close")
        log.info(
            "%s console %s of %s closed: %s (%d/%d bytes, %.1f s)", session.client,
            session.kind, session.target.name, why, session.to_viewer, session.from_viewer,
            seconds,
        )


def _token_of(query: str) -> str | None:
    """The `token=` of a query (None: a signed request); parsed fully later."""
    for part in query.split("&"):
        name, _eq, value = part.partition("=")
        if name == "token":
            return urllib.parse.unquote(value)
    return None


def _request(query: str) -> ConsoleRequest:
    """The console's query, as `CONSOLE` declares it (400 `invalid-request` otherwise)."""
    try:
        return wire.decode_request(ConsoleRequest, "GET", query, b"")
    except wire.BadRequest as exc:
        raise Refusal(exc.code, exc.message) from None
