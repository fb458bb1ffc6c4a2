"""The dashboard's API: `/dashboard/api/...`, a browser session in place of a signature.

A browser holds no key. `pilot open dashboard` signs one request for a one-time link
(`POST /v1/dashboard/link`); the page redeems it for a session (`airboss.sessions`) and then
asks for exactly the operations the owner API declares (`api.operations.SESSION_OPERATIONS`),
under `/dashboard/api/v1/...`, through the same pipeline as signed requests (`airboss.app`): the
session stands in for steps 1-2 of the gate (who), then the key's rate, the parameters, the
target checked and resolved once, the key's scope on it, one audit row naming the session.

Every request here, in this order (each refusal audited, as any request's):

1. The client address's rate and the headers' bounds, as for any request.
2. Fetch metadata: `Sec-Fetch-Site`, when the browser sends it, must be `same-origin`; `Origin`,
   when sent, must be this page's own; a request that changes anything (any method but GET)
   must send `Origin` and a JSON body (`Content-Type: application/json`): a form of another
   site can do neither. 403 `cross-site`.
3. The session: its cookie (HttpOnly, SameSite=Strict, path `/dashboard/`) names a session
   that has not ended (401 `session-unknown`, `session-expired`); the request carries that
   session's CSRF secret in `X-Flightdeck-CSRF` (403 `cross-site`). Only the page itself,
   which got the secret in a same-origin answer, can send it.
4. For an operation: the gate, and the target must be a node of the session's cluster (403).

Endpoints besides the operations: `POST session` (redeem a link: sets the cookie, answers the
CSRF secret), `GET session` (the page reloaded: the CSRF secret again, same-origin only),
`POST logout`, and `GET events`: the page's live updates as server-sent events (the nodes with
their states whenever they change, the cluster's new audit entries, and `end` when the session
ends), read by the page with `fetch` so that it carries the CSRF header like every request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from flightdeck.airboss.config import Settings
from flightdeck.airboss.gate import Exchange, Gate, Refusal
from flightdeck.airboss.sessions import (
    COOKIE,
    COOKIE_PATH,
    CSRF_HEADER,
    DashSession,
    SessionRejected,
    SessionStore,
)
from flightdeck.airboss.tokens import TokenRejected, TokenStore
from flightdeck.api import wire
from flightdeck.api.operations import (
    DASHBOARD_KIND,
    NODES,
    Call,
    Later,
    NodesRequest,
    NodesResult,
)
from flightdeck.api.operations import Scope as Rule
from flightdeck.db.engine import Database
from flightdeck.services.airboss import access, chain
from flightdeck.services.airboss.audit import AuditRecord

log = logging.getLogger("flightdeck.airboss.dashboard")

T = TypeVar("T")
#: What answers one request: (request, scope, its audit row) -> (answer, audit row id if
#: written already). `Airboss.handle` for signed requests; the dashboard's own for its own.
Handler = Callable[[Request, Scope, Exchange], Awaitable[tuple[Response, "int | None"]]]


class Pipeline(Protocol):
    """What the dashboard uses of the Airboss (`airboss.app.Airboss`): its request pipeline,
    its pools and stores. Declared here so that the two modules do not import each other."""

    db: Database
    settings: Settings
    gate: Gate
    tokens: TokenStore
    sessions: SessionStore
    db_pool: concurrent.futures.ThreadPoolExecutor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...
    async def respond(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, handler: Handler
    ) -> None: ...
    def bounds(self, request: Request, scope: Scope, ex: Exchange) -> None: ...
    async def read_body(self, request: Request) -> bytes: ...
    async def handle(
        self,
        request: Request,
        scope: Scope,
        ex: Exchange,
        session: Callable[[], DashSession] | None = None,
    ) -> tuple[Response, int | None]: ...
    async def in_db(self, fn: Callable[[], T]) -> T: ...
    async def in_libvirt(self, container: str | None, fn: Callable[[], T]) -> T: ...

PREFIX = "/dashboard/api"
#: Audit entries an opening page gets (then each new one).
RECENT = 30
#: Why a session ends when its key is removed, or no longer covers the session's VM.
KEY_GONE = "its key no longer covers its cluster"
#: Seconds between two keep-alive comments on a quiet event stream.
KEEPALIVE = 15.0

LINK_REFUSALS = {
    "token-unknown": "this dashboard link is not valid or was used already (a link works "
    "once): ask for a new one (pilot open dashboard host=<frontend>)",
    "token-expired": "this dashboard link has expired (it works for 60 s): ask for a new one "
    "(pilot open dashboard host=<frontend>)",
    "token-mismatch": "this is not a dashboard link: ask for one (pilot open dashboard "
    "host=<frontend>)",
}


def _event(name: str, data: Any) -> bytes:
    """One server-sent event (its JSON on one line: no field can break the framing)."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Dashboard:
    """The ASGI endpoint of `/dashboard/api/...`; one per Airboss."""

    def __init__(self, airboss: Pipeline) -> None:
        self.airboss = airboss
        self.gate = airboss.gate
        self.sessions = airboss.sessions
        self.settings = airboss.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.airboss(scope, receive, send)  # refused and audited there
            return
        ex = Exchange.of(scope)
        where = ex.path[len(PREFIX) :]
        handler = {
            ("POST", "/session"): self._open,
            ("GET", "/session"): self._resume,
            ("POST", "/logout"): self._logout,
            ("GET", "/events"): self._events,
        }.get((ex.method, where))
        if handler is None and where.startswith("/v1/"):
            ex.path = where  # the operation's own path: routed and audited as any
            handler = self._operation
        if handler is None:
            handler = self._unknown
        await self.airboss.respond(scope, receive, send, ex, handler)

    # The checks ------------------------------------------------------------------------------

    @staticmethod
    def same_origin(request: Request, *, changes: bool) -> None:
        """Step 2: nothing from another site (fetch metadata, Origin; JSON to change)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site != "same-origin":
            raise Refusal("cross-site", f"a dashboard request from another site ({site})")
        origin = request.headers.get("origin")
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and origin != own:
            raise Refusal("cross-site", "a dashboard request from another origin")
        if changes:
            if origin is None:
                raise Refusal("cross-site", "a dashboard request that changes something must "
                                            "say its Origin")  # fmt: skip
            ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                raise Refusal("cross-site", "a dashboard request must send JSON")

    def session(self, request: Request, ex: Exchange, *, csrf: bool, touch: bool) -> DashSession:
        """Steps 2-3: the session of this request's cookie, and its CSRF secret if `csrf`."""
        self.same_origin(request, changes=request.method != "GET")
        try:
            found = self.sessions.find(request.cookies.get(COOKIE), touch=touch)
        except SessionRejected as exc:
            ex.keyid = exc.keyid
            raise Refusal(exc.code, exc.message) from None
        ex.keyid, ex.session = found.keyid, found.id
        if csrf and not found.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise Refusal("cross-site", "this request does not carry the page's CSRF token",
                          detail="csrf: missing or wrong")  # fmt: skip
        return found

    def _cookie(self, request: Request, response: Response, secret: str | None) -> None:
        response.set_cookie(
            COOKIE,
            secret or "",
            max_age=int(self.settings.dashboard_max) if secret else 0,
            path=COOKIE_PATH,
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )

    def describe(self, session: DashSession) -> dict[str, Any]:
        """What the page is told about its session (and its CSRF secret)."""
        return {
            "session": session.id,
            "csrf": session.csrf,
            "target": session.target,
            "host": session.host,
            "expires": int(session.expires),
            "idle": self.settings.dashboard_idle,
            "poll": self.settings.dashboard_poll,
        }

    # The endpoints ---------------------------------------------------------------------------

    async def _open(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        """Redeem a one-time link for a session: its cookie, and the page's CSRF secret."""
        self.airboss.bounds(request, scope, ex)
        self.same_origin(request, changes=True)
        ex.operation = "dashboard open"
        body = await self.airboss.read_body(request)
        try:
            link = wire.parse_body(body, ["link"], ["link"])["link"]
        except wire.BadRequest as exc:
            raise Refusal(exc.code, exc.message) from None

        def work() -> tuple[str, DashSession]:
            try:
                grant = self.airboss.tokens.redeem(link, None, DASHBOARD_KIND)
            except TokenRejected as exc:
                ex.keyid = exc.keyid
                raise Refusal(exc.code, LINK_REFUSALS.get(exc.code, exc.message)) from None
            self.gate.admit_token(ex, grant.keyid)
            target = self.gate.authorise(ex, grant.target, Rule.VM)
            secret, session, pushed = self.sessions.open(
                grant.keyid, grant.target, target.host_id, target.cluster_id, target.name
            )
            for old in pushed:
                self._audit_end(ex, old)
            ex.session, ex.accepted = session.id, True
            ex.reason = f"session {session.id} until {int(session.expires)}"
            return secret, session

        secret, session = await self.airboss.in_db(work)
        response = JSONResponse(self.describe(session))
        self._cookie(request, response, secret)
        return response, None

    async def _resume(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        """The page reloaded: its session's CSRF secret again (a same-origin read only)."""
        self.airboss.bounds(request, scope, ex)
        ex.operation = "dashboard resume"
        session = self.session(request, ex, csrf=False, touch=True)
        await self._authorise(ex, session)
        ex.accepted, ex.reason = True, f"session {session.id}"
        return JSONResponse(self.describe(session)), None

    async def _logout(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        self.airboss.bounds(request, scope, ex)
        ex.operation = "dashboard close"
        session = self.session(request, ex, csrf=True, touch=False)
        self.gate.admit_session(ex, session.keyid, session.id)
        self.sessions.end(session, "logged out")
        ex.target, ex.accepted = session.target, True
        ex.chain = chain.chain_of(session.host_id, session.cluster_id)
        ex.reason = f"session {session.id} logged out"
        response = JSONResponse({"session": session.id, "ended": "logged out"})
        self._cookie(request, response, None)
        return response, None

    async def _operation(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        return await self.airboss.handle(
            request, scope, ex, lambda: self.session(request, ex, csrf=True, touch=True)
        )

    async def _unknown(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        self.airboss.bounds(request, scope, ex)
        raise Refusal("unknown-operation", "no such dashboard request")

    # Live updates ----------------------------------------------------------------------------

    async def _authorise(self, ex: Exchange, session: DashSession) -> access.Target:
        """The session's own VM, authorised again for its key (removed keys end here)."""

        def work() -> access.Target:
            self.gate.admit_session(ex, session.keyid, session.id)
            try:
                return self.gate.authorise(ex, session.target, Rule.VM)
            except Refusal:
                self.sessions.end(session, KEY_GONE)
                raise

        return await self.airboss.in_db(work)

    async def _events(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        self.airboss.bounds(request, scope, ex)
        ex.operation = "dashboard events"
        session = self.session(request, ex, csrf=True, touch=False)
        target = await self._authorise(ex, session)
        ex.accepted, ex.reason = True, "live updates"
        stream = self._stream(ex, session, target)
        return (
            StreamingResponse(
                stream,
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            ),
            None,
        )

    def _still_holds(self, session: DashSession) -> str | None:
        """Why the session's key no longer covers its VM (None: it does)."""
        try:
            found = access.authorise(self.airboss.db, session.keyid, session.target)
        except access.Refused as exc:
            return f"{KEY_GONE} ({exc.reason})"
        if not session.covers(found.host_id, found.cluster_id):
            return KEY_GONE
        return None

    def _nodes(self, session: DashSession, target: access.Target) -> Later[NodesResult]:
        """The NODES operation's database part, for the session's own VM (authorised)."""
        later = NODES.serve(
            Call(NodesRequest(session.target), session.keyid, target, self.airboss.db,
                 self.airboss.tokens)
        )  # fmt: skip
        if not isinstance(later, Later):  # pragma: no cover - NODES always leaves libvirt work
            raise TypeError("NODES answered without libvirt work")
        return later

    async def _stream(
        self, ex: Exchange, session: DashSession, target: access.Target
    ) -> AsyncIterator[bytes]:
        """Nodes when they change, new audit entries, keep-alives; `end` when it ends."""
        name = chain.chain_of(session.host_id, session.cluster_id)
        db = self.airboss.db
        poll = self.settings.dashboard_poll
        recheck = self.settings.console_recheck
        last_nodes: Any = None
        seq = 0
        first = True
        next_check = time.monotonic() + recheck
        quiet_since = time.monotonic()
        why: str | None = None
        try:
            yield f"retry: {int(poll * 1000)}\n\n".encode()
            while True:
                why = self.sessions.check(session)
                if why is None and time.monotonic() >= next_check:
                    why = await self.airboss.in_db(lambda: self._still_holds(session))
                    next_check = time.monotonic() + recheck
                    if why is not None:
                        self.sessions.end(session, why)
                if why is not None:
                    yield _event("end", {"reason": why})
                    return
                session.changed.clear()
                later = await self.airboss.in_db(lambda: self._nodes(session, target))
                answer = await self.airboss.in_libvirt(None, later.work)
                nodes = wire.encode(answer)["nodes"]
                sent = False
                if nodes != last_nodes:
                    last_nodes = nodes
                    yield _event("nodes", {"nodes": nodes, "at": time.time()})
                    sent = True
                entries = await self.airboss.in_db(
                    functools.partial(chain.tail, db, name, seq, RECENT if first else 200)
                )
                first = False
                if entries:
                    seq = entries[-1]["seq"]
                    yield _event("audit", {"entries": entries})
                    sent = True
                if sent:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= KEEPALIVE:
                    yield b": keep-alive\n\n"
                    quiet_since = time.monotonic()
                deadline = time.monotonic() + poll
                while not session.changed.is_set() and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        finally:
            self._audit_later(ex, session, why or "the page left")

    @staticmethod
    def _record(client: str | None, session: DashSession, operation: str, reason: str
                ) -> AuditRecord:
        """An audit row about a session that no request of its own is making (its end)."""
        return AuditRecord(
            client=client, keyid=session.keyid, operation=operation, target=session.target,
            accepted=True, reason=reason, token_id=session.ref,
            chain=chain.chain_of(session.host_id, session.cluster_id),
        )  # fmt: skip

    def _audit_end(self, ex: Exchange, session: DashSession) -> None:
        """The audit row of a session pushed out by a newer one (in a database thread)."""
        self.gate.audit_record(
            self._record(ex.client, session, "dashboard close",
                         f"session {session.id} ended: {session.ended}")
        )  # fmt: skip

    def _audit_later(self, ex: Exchange, session: DashSession, why: str) -> None:
        """Audit the end of an event stream without awaiting (it may be being cancelled)."""
        record = self._record(ex.client, session, "dashboard events close",
                              f"live updates ended: {why}")  # fmt: skip

        def write() -> None:
            try:
                self.gate.audit_record(record)
            except Exception:
                log.exception("could not write the audit log entry")

        with contextlib.suppress(RuntimeError):  # the pool is shut down: the Airboss stops
            self.airboss.db_pool.submit(write)
