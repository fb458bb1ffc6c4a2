"""The Airboss as an ASGI application (Starlette): the owner operations over HTTP.

Order of work for a request, cheapest and most decisive first; each refusal ends it:

1. `/health` and `/openapi.json` are answered first, unauthenticated and unlogged. Then the
   client address's rate (429), headers within bounds (count and bytes), else 431, and never
   both Content-Length and Transfer-Encoding (400, the connection closed).
2. The body, read up to `max_body` bytes, else 413.
3. The request gate (`airboss.gate`): the RFC 9421 signature and its nonce (401), the key's
   rate limit (429).
4. The operation, from the declarations (`api.operations`) by exact (method, raw path):
   anything else is 404 / 405.
5. Its parameters, parsed and checked as its request type declares (`api.wire`): 400.
6. The gate's authorisation: the target string alone (400), then its lookup and the key's
   right on it (403), resolving it once to ids.
7. The operation's service call (`serve`); libvirt work it leaves runs in a thread pool, at
   most `per_container` at once per container, so a slow container delays only its own VMs'
   requests.
8. One audit row, whatever happened, before the answer leaves (its id is `Audit-Id`); past
   `audit_refusals` a minute, an address's refusals before verification are counted into one
   summary row instead (`airboss.floods`), and their answers carry no `Audit-Id`.

Consoles are WebSockets on `/v1/console` (`flightdeck.airboss.console`), admitted by the same
gate; their web tokens are issued by `POST /v1/console/token`. The browser console's page
(`flightdeck.airboss.web`, when present) is served under `/console/`.

Database and crypto work runs in worker threads, never on the event loop, so one slow request
never holds up another. Every answer is JSON; a refusal is `{"error": code, "message": text}`
with a stable code, and a bug answers `internal` (the traceback goes to the log only).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from flightdeck.airboss.config import Settings
from flightdeck.airboss.console import ConsoleRelay
from flightdeck.airboss.dashboard import PREFIX as DASHBOARD_API
from flightdeck.airboss.dashboard import Dashboard, Handler
from flightdeck.airboss.gate import Exchange, Gate, Refusal, failed
from flightdeck.airboss.sessions import DashSession, SessionStore
from flightdeck.airboss.tokens import TokenStore
from flightdeck.airboss.workers import Workers
from flightdeck.api import openapi, wire
from flightdeck.api.operations import (
    HEALTH_PATH,
    OPERATIONS,
    SESSION_OPERATIONS,
    Call,
    Later,
    Operation,
    Stream,
)
from flightdeck.crypto.auditchain import HEAD_KEY_PATH
from flightdeck.db.engine import Database, WriterBusy
from flightdeck.errors import FlightdeckError
from flightdeck.services.airboss import retention
from flightdeck.services.airboss.access import Target
from flightdeck.services.airboss.jobs import Jobs, interrupt_own

log = logging.getLogger("flightdeck.airboss")

#: (method, raw path) -> its declaration. Nothing else is ever dispatched.
ROUTES: dict[tuple[str, str], Operation[Any, Any] | Stream[Any]] = {
    (op.method, op.path): op for op in OPERATIONS
}
_PATHS = {path for _m, path in ROUTES}
#: What a dashboard session may ask for, by (method, path under /dashboard/api).
SESSION_ROUTES: dict[tuple[str, str], Operation[Any, Any] | Stream[Any]] = {
    (op.method, op.path): op for op in SESSION_OPERATIONS
}
OPENAPI_PATH = "/openapi.json"
#: Seconds between two prunings of the audit log by the running Airboss.
PRUNE_EVERY = 3600.0


class Answer(JSONResponse):
    """A JSON answer written by orjson: the same bytes as Starlette's `JSONResponse` (compact,
    UTF-8), ~15x faster (a 51-node MAC list: 3.7 against 55 us here). What orjson does not take
    (an integer beyond 64 bits) is written by the standard library, as before; a NaN, which
    that refused with a 500, is written as null."""

    def render(self, content: Any) -> bytes:
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return super().render(content)


def _error(
    code: str, message: str, status: int, headers: Mapping[str, str] | None = None
) -> Response:
    return Answer(
        {"error": code, "message": message}, status_code=status, headers=dict(headers or {})
    )


class Airboss:
    """The ASGI endpoint: holds the gate, the pools and the per-container limits."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float] = time.time):
        self.db = db
        self.settings = settings
        self.clock = clock
        self.gate = Gate(db, settings, clock)
        #: Web console tokens, in this process's memory only (see `airboss.tokens`).
        self.tokens = TokenStore(clock=clock)
        #: Dashboard sessions, likewise in memory only (`airboss.sessions`).
        self.sessions = SessionStore(
            settings.dashboard_idle,
            settings.dashboard_max,
            settings.dashboard_sessions,
            clock=clock,
        )
        self.workers = Workers(settings)
        #: Cluster power jobs: their own threads, outliving the requests that started them.
        self.jobs = Jobs()
        self.in_db = self.workers.in_db
        self.in_libvirt = self.workers.in_libvirt
        #: The pools (the tests shut them down themselves when they call the app directly).
        self.db_pool = self.workers.db_pool
        self.virt_pool = self.workers.virt_pool
        self.gate_on_loop = settings.gate_on_loop and db.dialect == "sqlite"
        #: The event loop's own connection (`gate_on_loop`): never waited for in the pool,
        #: which the database and libvirt threads may have drained.
        self._loop_conn: Connection | None = None
        self._purger: asyncio.Task[None] | None = None
        self._audit_key: dict[str, str] | None = None
        self.openapi = json.dumps(openapi.document()).encode()

    def audit_key(self) -> dict[str, str]:
        """The public key that signs audit chain heads (published unauthenticated)."""
        if self._audit_key is None:
            from flightdeck.crypto.keys import fingerprint
            from flightdeck.services.airboss import chain

            key = chain.airboss_key()
            self._audit_key = {
                "key": chain.public_pem(key),
                "fingerprint": fingerprint(key.public_key()),
            }
        return self._audit_key

    async def purge_loop(self) -> None:
        """Every `purge_interval` s: expired nonces, the flood summaries of past minutes; about
        once an hour (and at start): the audit rows past their retention (`airboss_audit_days`)."""
        next_prune = time.monotonic()
        while True:
            try:
                dropped = await self.in_db(self.gate.purge)
                if dropped:
                    log.info("forgot %d expired nonce(s)", dropped)
            except Exception:
                log.exception("purging expired nonces failed")
            try:
                await self.in_db(self.gate.write_summaries)
            except Exception:
                log.exception("writing the flood summaries to the audit log failed")
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY
                try:
                    days, pruned = await self.in_db(lambda: retention.prune_by_setting(self.db))
                    if pruned:
                        log.info("pruned %d audit row(s) older than %d days", pruned, days)
                except Exception:
                    log.exception("pruning the audit log failed")
            await asyncio.sleep(self.settings.purge_interval)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._purger = asyncio.create_task(self.purge_loop())
        try:
            left = await self.in_db(lambda: interrupt_own(self.db, dead_only=True))
            if left:
                log.warning("%d job(s) of a stopped Airboss on this host marked interrupted", left)
        except Exception:
            log.exception("checking for jobs left running failed")
        try:
            yield
        finally:
            try:
                await self.in_db(lambda: interrupt_own(self.db, dead_only=False))
            except Exception:
                log.exception("marking this Airboss's running jobs interrupted failed")
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            try:
                await self.in_db(lambda: self.gate.write_summaries(everything=True))
            except Exception:
                log.exception("writing the flood summaries to the audit log failed")
            self.close()

    def close(self) -> None:
        """Stop the worker pools and close the event loop's connection (at shutdown)."""
        self.workers.shutdown()
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None

    # The request ------------------------------------------------------------------------------
    #
    # Threads: the gate, the parameters, the authorisation and the database part of the
    # operation run in one call on the database pool (`_front`); the libvirt work it leaves
    # then runs on the libvirt pool (`in_libvirt`); the audit row is written on the database
    # pool. An operation that needs only the database (the MAC list) is done, audit row
    # included, in that first call: one thread hand-off per request, not four. On SQLite that
    # first transaction runs on the event loop itself when the write lock is free at once
    # (`_front_on_loop`): no hand-off at all for a MAC list.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # an upgrade to anything but the console's path
            await self._no_websocket(scope, receive, send)
            return
        ex = Exchange.of(scope)
        public = self._public(scope, ex.method, ex.path)
        if public is not None:
            await public(scope, receive, send)
            return
        await self.respond(scope, receive, send, ex, self.handle)

    async def respond(
        self, scope: Scope, receive: Receive, send: Send, ex: Exchange, handler: Handler
    ) -> None:
        """Answer with what `handler` makes of the request, or its refusal (or `internal`);
        one audit row either way, written before the answer leaves; one log line."""
        request = Request(scope, receive)
        started = time.perf_counter()
        audited: int | None = None
        try:
            response, audited = await handler(request, scope, ex)
        except Refusal as exc:
            self.gate.refused(ex, exc, request.headers)
            response = _error(exc.code, exc.message, exc.status, exc.headers)
        except Exception as exc:  # a bug: say so, never how
            bug = self.gate.bug(ex, exc)
            response = _error(bug.code, bug.message, bug.status)
        if not ex.audited:
            try:
                audited = await self.in_db(lambda: self.gate.audit(ex))
            except Exception:
                log.exception("could not write the audit log entry")
                response = _error(
                    "internal", "internal error: the audit log cannot be written", 500
                )
        if audited is not None:
            response.headers["Audit-Id"] = str(audited)
        ex.log(response.status_code, started)
        await response(scope, receive, send)

    async def _no_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse, and audit, a WebSocket upgrade on a path that has none."""
        if (await receive())["type"] != "websocket.connect":
            return
        ex = Exchange.of(scope)
        ex.reason = "unknown-operation: no WebSocket here (the console's is /v1/console)"
        try:
            await self.in_db(lambda: self.gate.audit(ex))
        except Exception:
            log.exception("could not write the audit log entry")
        ex.log(403, time.perf_counter())
        await send({"type": "websocket.close", "code": 1008, "reason": "no such operation"})

    def _public(self, scope: Scope, method: str, path: str) -> Response | None:
        if method != "GET" or path not in (HEALTH_PATH, OPENAPI_PATH, HEAD_KEY_PATH):
            return None
        if self.gate.headers_too_large(scope.get("headers") or []):
            return None  # refused, and logged, by the full pipeline
        if path == HEALTH_PATH:
            return JSONResponse({"status": "ok"})
        if path == HEAD_KEY_PATH:
            return JSONResponse(self.audit_key())
        return Response(self.openapi, media_type="application/json")

    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise Refusal("invalid-request", "Content-Length is not a number")
            if int(length) > limit:
                raise Refusal("body-too-large", f"the body is over {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal("body-too-large", f"the body is over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def bounds(self, request: Request, scope: Scope, ex: Exchange) -> None:
        """Step 1: the client address's rate, the headers' bounds, one framing only."""
        self.gate.limit_address(ex)
        self.gate.check_headers(scope.get("headers") or [])
        if "transfer-encoding" in request.headers and "content-length" in request.headers:
            # RFC 9112 §6.1: the two framings disagree on where this request ends; whatever
            # follows it on this connection may be another request hidden in its body.
            raise Refusal(
                "invalid-request",
                "Content-Length with Transfer-Encoding: send one framing; the connection is "
                "closed",
                headers={"Connection": "close"},
            )

    async def handle(
        self,
        request: Request,
        scope: Scope,
        ex: Exchange,
        session: Callable[[], DashSession] | None = None,
    ) -> tuple[Response, int | None]:
        """The answer, and its audit row's id if it was written already. `session` admits a
        dashboard session's request instead of a signature (`airboss.dashboard`)."""
        self.bounds(request, scope, ex)
        found = session() if session is not None else None
        body = await self.read_body(request)
        query = scope.get("query_string", b"").decode("latin-1")
        headers = request.headers
        step = await self._front_on_loop(ex, headers, body, query, found)
        if isinstance(step, Done):
            return step.response, step.audit_id
        try:
            answer = await self.in_libvirt(step.later.container, step.later.work)
        except FlightdeckError as exc:
            raise failed(exc) from None
        if found is not None:
            found.changed.set()  # the page's live updates look at once
        return self._answered(ex, step.op, answer), None

    @staticmethod
    def _answered(ex: Exchange, op: Operation[Any, Any], answer: Any) -> Response:
        ex.accepted = True
        ex.reason = op.reason(answer)
        return Answer(wire.encode(answer))

    # In a database thread (or on the loop: `_front_on_loop`): the gate, the parameters, the DB part

    async def _front_on_loop(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        session: DashSession | None,
    ) -> Done | Pending:
        """`_front`, with its first transaction on the event loop itself when that cannot wait.

        On SQLite the gate's transaction is ~1.3 ms of CPU with nothing to wait for once its
        `BEGIN IMMEDIATE` has the write lock, and handing it to a database thread and back cost
        ~0.5 ms more of CPU (GIL hand-offs): so the loop tries the BEGIN without waiting and runs
        the transaction itself; if a writer holds the lock (`WriterBusy`, nothing done yet), the
        whole step goes to a database thread as before. What follows the first transaction (an
        operation's own writes, its audit row) always runs in a thread. On PostgreSQL every
        statement is a round trip: all of it runs in a thread.
        """
        if self.gate_on_loop:
            try:
                first = self._first(ex, headers, body, query, session, wait=False)
            except WriterBusy:
                pass  # nothing done yet: all of it in a database thread, below
            else:
                if not isinstance(first, Admitted):
                    return first
                return await self.in_db(lambda: self._rest(ex, first, headers))
        return await self.in_db(lambda: self._front(ex, headers, body, query, session))

    def _front(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        session: DashSession | None = None,
    ) -> Done | Pending:
        """Steps 3-6 in one transaction (its nonce, and the audit row of a request refused
        there, committed together), then the operation's database part after that commit; or,
        for an operation that only reads, inside it, with its audit row."""
        first = self._first(ex, headers, body, query, session)
        return self._rest(ex, first, headers) if isinstance(first, Admitted) else first

    def _first(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        session: DashSession | None = None,
        *,
        wait: bool = True,
    ) -> Done | Pending | Admitted:
        """The gate's transaction: a refusal or a read-only operation's answer (`Done`, its
        audit row committed with the nonce), its libvirt work (`Pending`), or the admitted
        request whose operation writes (`Admitted`). `wait=False`: `WriterBusy` rather than
        wait for the write lock, raised before anything is done."""
        try:
            with self._connection(wait) as conn, conn.begin():
                try:
                    keyid, op, request, target = self._admit(
                        ex, headers, body, query, session, conn
                    )
                    reads = conn if op.reads_only else None
                    call = Call(request, keyid, target, self.db, self.tokens, self.jobs, reads)
                    if op.reads_only:  # answered in this transaction, audit row included
                        step = self._serve(ex, op, call, headers)
                        if isinstance(step, Pending):
                            return step
                        return Done(step, self.gate.audit(ex, conn))
                except Exception as exc:
                    return Done(self._refusal(ex, exc, headers), self.gate.audit(ex, conn))
        except Exception:
            ex.audited = False  # not committed: the caller writes it on its own
            raise
        return Admitted(op, call)

    def _connection(self, wait: bool) -> contextlib.AbstractContextManager[Connection]:
        """A connection whose transactions write: on SQLite from their BEGIN (the nonce is
        written after a read: a deferred one could not always upgrade), on PostgreSQL plain
        ones. `wait=False`: the event loop's own, kept open, whose BEGIN never waits."""
        if wait:
            conn = self.db.engine.connect()
            conn.execution_options(flightdeck_write=True)
            return conn
        if self._loop_conn is None:
            self._loop_conn = self.db.engine.connect()
            self._loop_conn.execution_options(flightdeck_write=True, flightdeck_nowait=True)
        return contextlib.nullcontext(self._loop_conn)

    def _rest(self, ex: Exchange, admitted: Admitted, headers: Mapping[str, str]) -> Done | Pending:
        """An admitted operation's database part in its own transactions, then its audit row."""
        step = self._serve(ex, admitted.op, admitted.call, headers)
        if isinstance(step, Pending):
            return step
        return Done(step, self.gate.audit(ex))

    def _serve(
        self, ex: Exchange, op: Operation[Any, Any], call: Call[Any], headers: Mapping[str, str]
    ) -> Response | Pending:
        """The operation's database part: its answer (or refusal), or the work it leaves."""
        try:
            outcome = op.serve(call)
            if isinstance(outcome, Later):
                return Pending(op, outcome)
            return self._answered(ex, op, outcome)
        except Exception as exc:
            return self._refusal(ex, exc, headers)

    def _admit(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        session: DashSession | None,
        conn: Connection,
    ) -> tuple[str, Operation[Any, Any], Any, Target]:
        """Who asks (a signature, a token or a dashboard session), which operation, its
        parameters, and its target resolved and authorised; or a `Refusal`."""
        if session is None:
            keyid = self.gate.admit(ex, headers, body, query, conn)
            op = ROUTES.get((ex.method, ex.path))
        else:
            keyid = self.gate.admit_session(ex, session.keyid, session.id)
            op = SESSION_ROUTES.get((ex.method, ex.path))
        if op is None:
            if ex.path in _PATHS and session is None:
                raise Refusal("method-not-allowed", f"{ex.path} does not take {ex.method}")
            raise Refusal("unknown-operation", "no such operation: see /openapi.json")
        if isinstance(op, Stream):
            raise Refusal(
                "invalid-request",
                "the console is a WebSocket: send this request with Upgrade: websocket",
            )
        try:
            request = wire.decode_request(op.request, ex.method, query, body)
        except wire.BadRequest as exc:
            raise Refusal(exc.code, exc.message) from None
        ex.operation = op.audit(request)
        target = self.gate.authorise(ex, request.target, op.scope, op.right(request), conn)
        if session is not None and not session.covers(target.host_id, target.cluster_id):
            raise Refusal(
                "forbidden",
                f"{request.target} is not a node of this dashboard's cluster ({session.host})",
                detail=f"session-cluster: the session is for {session.host}",
            )
        return keyid, op, request, target

    def _refusal(self, ex: Exchange, exc: Exception, headers: Mapping[str, str]) -> Response:
        """The answer to a request that ends with `exc` (noted on its audit row): a refusal,
        a service's error, or a bug (`internal`, the traceback logged)."""
        if isinstance(exc, FlightdeckError):
            exc = failed(exc)
        if isinstance(exc, Refusal):
            self.gate.refused(ex, exc, headers)
            return _error(exc.code, exc.message, exc.status, exc.headers)
        bug = self.gate.bug(ex, exc)
        return _error(bug.code, bug.message, bug.status)


@dataclass(frozen=True)
class Done:
    """A request answered in the database thread, its audit row written."""

    response: Response
    #: None: a refusal folded into a flood summary (`airboss.floods`).
    audit_id: int | None


@dataclass(frozen=True)
class Admitted:
    """A request through the gate whose operation writes: its database part comes next, in
    transactions of its own."""

    op: Operation[Any, Any]
    call: Call[Any]


@dataclass(frozen=True)
class Pending:
    """What is left of a request: its operation's libvirt work, then the answer."""

    op: Operation[Any, Any]
    later: Later[Any]


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return _error("unknown-operation", "no such operation: see /openapi.json", 404)


async def _internal(_request: Request, exc: Exception) -> Response:
    log.error("unhandled error: %s: %s", type(exc).__name__, exc)
    return _error("internal", "internal error: see the Airboss log", 500)


def create_app(
    db: Database, settings: Settings, clock: Callable[[], float] = time.time
) -> Starlette:
    """The ASGI application: the console's WebSocket, its page, and every other path and
    method through one `Airboss` pipeline."""
    airboss = Airboss(db, settings, clock)
    relay = ConsoleRelay(airboss.gate, airboss.workers, airboss.tokens)
    dashboard = Dashboard(airboss)
    app = Starlette(
        routes=[
            WebSocketRoute(relay.path, endpoint=relay),
            Route(DASHBOARD_API + "/{path:path}", endpoint=dashboard),
            *_page_routes(settings),
            Route("/{path:path}", endpoint=airboss),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal},
        lifespan=airboss.lifespan,
    )
    # Whatever no route matches (`OPTIONS *`, an absolute-form target, a path with a newline,
    # an upgrade elsewhere) goes through the same pipeline: refused, audited, with Audit-Id.
    app.router.default = airboss
    app.state.airboss = airboss
    app.state.console = relay
    app.state.dashboard = dashboard
    return app


def _page_routes(settings: Settings) -> list[BaseRoute]:
    """The browser console's page under `/console/`, if `flightdeck.airboss.web` is installed.

    Imported by name: without the module there is simply no page (the WebSocket and the token
    operation work the same; `pilot open host console` needs neither).
    """
    try:
        web = importlib.import_module("flightdeck.airboss.web")
    except ModuleNotFoundError as exc:
        if exc.name != "flightdeck.airboss.web":
            raise
        return []
    return list(web.routes(settings.web_dir))
