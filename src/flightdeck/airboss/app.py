"""The Airboss as an ASGI application (Starlette), one pipeline for every request.

Order of work for a request, cheapest and most decisive first; each refusal ends it:

1. Headers within bounds (count and bytes), else 431. `/health` and `/openapi.json` are
   answered here, unauthenticated and unlogged.
2. The body, read up to `max_body` bytes, else 413.
3. The RFC 9421 signature over method, raw path, raw query and the body's Content-Digest
   (`crypto.httpsig.verify_request`): the key's registered public keys and the replay cache
   are the only database reads before it has verified. 401 with the reason as the code.
4. The key's rate limit (429).
5. The operation, from an allowlist of (method, path); anything else is 404 / 405.
6. Its parameters, then the target string on its own (length, characters): 400.
7. Only now the target is looked up and the key's right on it checked (403).
8. The operation itself, libvirt calls in a thread pool, at most `per_container` at once per
   container, so a slow container delays only its own VMs' requests.
9. One audit row, whatever happened, before the answer leaves (its id is `Audit-Id`).

Consoles are WebSockets on `/v1/console` (`flightdeck.airboss.console`), admitted in the same
order; their web tokens are issued by `POST /v1/console/token` (`flightdeck.airboss.tokens`).
The browser console's page (`flightdeck.airboss.web`, when present) is served under `/console/`.

Database and crypto work runs in worker threads, never on the event loop, so one slow request
never holds up another. Every answer is JSON; a refusal is `{"error": code, "message": text}`
with a stable code, and a bug answers `internal` (the traceback goes to the log only).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import inspect
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from flightdeck.airboss.config import Settings
from flightdeck.airboss.openapi import DOCUMENT
from flightdeck.airboss.ratelimit import RateLimiter
from flightdeck.airboss.tokens import TokenStore
from flightdeck.crypto import sfv
from flightdeck.crypto.httpsig import SignatureRejected, verify_request
from flightdeck.db.engine import Database
from flightdeck.errors import FlightdeckError
from flightdeck.services import airboss as svc
from flightdeck.services.airboss import AuditRecord, Refused, Target

log = logging.getLogger("flightdeck.airboss")
T = TypeVar("T")

#: (method, raw path) -> operation name. Nothing else is ever dispatched.
OPERATIONS: dict[tuple[str, str], str] = {
    ("POST", "/v1/power"): "power",
    ("GET", "/v1/macs"): "macs",
    ("GET", "/v1/isos"): "isos",
    ("POST", "/v1/cdrom"): "cdrom",
    ("POST", "/v1/console/token"): "console_token",
    # The console itself is a WebSocket (flightdeck.airboss.console); a plain GET is told so.
    ("GET", "/v1/console"): "console",
}
_PATHS = {path for _m, path in OPERATIONS}
_TRUE = {"yes", "y", "true", "on", "1"}
_FALSE = {"no", "n", "false", "off", "0"}

#: HTTP status of each stable error code.
STATUS: dict[str, int] = {
    "invalid-target": 400,
    "invalid-request": 400,
    "invalid": 400,
    "unsatisfiable": 400,
    "usage": 400,
    "forbidden": 403,
    "unknown-operation": 404,
    "not-found": 404,
    "method-not-allowed": 405,
    "action-failed": 409,
    "conflict": 409,
    "body-too-large": 413,
    "rate-limited": 429,
    "too-many-sessions": 429,
    "token-unknown": 401,
    "token-expired": 401,
    "token-mismatch": 401,
    "headers-too-large": 431,
    "internal": 500,
    "driver": 502,
    "timeout": 504,
}


class Refusal(Exception):
    """End the request with a JSON error (`code`, `message`), logged with `detail`."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)
        self.detail = detail
        self.headers = dict(headers or {})


@dataclass
class Exchange:
    """What the audit row of one request says, filled in as the request goes on."""

    client: str | None
    method: str
    path: str
    keyid: str | None = None
    verified: bool = False
    operation: str | None = None
    target: str | None = None
    accepted: bool = False
    reason: str | None = None

    def operation_name(self) -> str:
        return self.operation or f"{self.method} {self.path}"


def _error(
    code: str, message: str, status: int, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers=dict(headers or {})
    )


def _claimed_keyid(headers: Mapping[str, str]) -> str | None:
    """The keyid a refused request *claims* (for the audit log; never trusted)."""
    text = headers.get("signature-input")
    if not text or len(text) > 8192:
        return None
    try:
        inputs = sfv.parse_dictionary(text)
    except sfv.SFVError:
        return None
    for member in inputs.values():
        if isinstance(member, sfv.InnerList):
            keyid = member.params.get("keyid")
            if isinstance(keyid, str):
                return keyid
    return None


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise Refusal("invalid-request", f"{name}={value!r}: use yes or no")


def _query(raw: str, allowed: set[str], required: set[str]) -> dict[str, str]:
    try:
        pairs = urllib.parse.parse_qsl(
            raw, keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=16
        )
    except ValueError:
        raise Refusal("invalid-request", "the query string is malformed") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            raise Refusal("invalid-request", f"unknown query parameter {name[:40]!r}")
        if name in out:
            raise Refusal("invalid-request", f"query parameter {name!r} is given twice")
        out[name] = value
    missing = sorted(required - set(out))
    if missing:
        raise Refusal("invalid-request", f"the query needs {missing[0]}=")
    return out


def _body(raw: bytes, allowed: set[str], required: set[str]) -> dict[str, str]:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refusal("invalid-request", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise Refusal("invalid-request", "the body must be a JSON object")
    unknown = sorted(str(k) for k in set(data) - allowed)
    if unknown:
        raise Refusal("invalid-request", f"unknown field {unknown[0][:40]!r}")
    missing = sorted(required - set(data))
    if missing:
        raise Refusal("invalid-request", f"the body needs the field {missing[0]!r}")
    for name, value in data.items():
        if not isinstance(value, str):
            raise Refusal("invalid-request", f"field {name!r} must be a string")
    return data


class Airboss:
    """The ASGI endpoint: holds the database, the settings, the pools and the limits."""

    def __init__(self, db: Database, settings: Settings, clock: Callable[[], float] = time.time):
        self.db = db
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(settings.rate, settings.burst)
        #: Web console tokens, in this process's memory only (see `airboss.tokens`).
        self.tokens = TokenStore(clock=clock)
        self.db_pool = concurrent.futures.ThreadPoolExecutor(
            settings.workers, thread_name_prefix="airboss-db"
        )
        self.virt_pool = concurrent.futures.ThreadPoolExecutor(
            settings.libvirt_workers, thread_name_prefix="airboss-virt"
        )
        self._per_container: dict[str, asyncio.Semaphore] = {}
        self._purger: asyncio.Task[None] | None = None
        self.openapi = json.dumps(DOCUMENT).encode()

    # Plumbing ---------------------------------------------------------------------------------

    async def _db(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.db_pool, fn)

    async def _virt(self, container: str | None, fn: Callable[[], T]) -> T:
        """Run a libvirt-bound call, at most `per_container` at once on one container.

        `container=None` is for calls that span containers (a cluster's states, which
        `statuses` fetches one connection per container itself): only the pool bounds them.
        """
        loop = asyncio.get_running_loop()
        sem: asyncio.Semaphore | None = None
        if container is not None:
            sem = self._per_container.setdefault(
                container, asyncio.Semaphore(self.settings.per_container)
            )
            await sem.acquire()
        try:
            fut = loop.run_in_executor(self.virt_pool, fn)
        except BaseException:
            if sem is not None:
                sem.release()
            raise
        if sem is not None:
            # The slot is given back when the call ends, even if we stopped waiting for it.
            fut.add_done_callback(lambda _f: sem.release())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.settings.action_timeout)
        except TimeoutError:
            raise Refusal(
                "timeout",
                f"container {container} did not finish within {self.settings.action_timeout:g} s",
            ) from None

    async def purge_loop(self) -> None:
        while True:
            try:
                dropped = await self._db(lambda: svc.purge_nonces(self.db, int(self.clock())))
                if dropped:
                    log.info("forgot %d expired nonce(s)", dropped)
            except Exception:
                log.exception("purging expired nonces failed")
            await asyncio.sleep(self.settings.purge_interval)

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._purger = asyncio.create_task(self.purge_loop())
        try:
            yield
        finally:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self.db_pool.shutdown(wait=True, cancel_futures=True)
            self.virt_pool.shutdown(wait=False, cancel_futures=True)

    # The request ------------------------------------------------------------------------------
    #
    # Threads: the signature, the parameters and the authorisation run in one call on the
    # database pool (`_front`); an operation that needs libvirt then runs on the libvirt pool
    # (`_virt`); the audit row is written on the database pool. An operation that needs only
    # the database (the MAC list) is done, audit row included, in that first call: one thread
    # hand-off per request, not four.

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        raw_path = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()
        path = raw_path.decode("latin-1")
        method = scope["method"]
        client = scope.get("client")
        ex = Exchange(client=client[0] if client else None, method=method, path=path)

        public = self._public(scope, method, path)
        if public is not None:
            await public(scope, receive, send)
            return

        started = time.perf_counter()
        audited: int | None = None
        try:
            response, audited = await self._handle(request, scope, ex)
        except Refusal as exc:
            response = self._refused(ex, exc, request.headers)
        except Exception as exc:  # a bug: say so, never how
            response = self._bug(ex, exc)
        if audited is None:
            try:
                audited = await self._db(lambda: svc.audit(self.db, self._record(ex)))
            except Exception:
                log.exception("could not write the audit log entry")
                response = _error(
                    "internal", "internal error: the audit log cannot be written", 500
                )
        if audited is not None:
            response.headers["Audit-Id"] = str(audited)
        log.info(
            "%s %s key=%s op=%s target=%s %s %d %.1fms",
            ex.client,
            method,
            ex.keyid if ex.verified else "-",
            ex.operation_name(),
            svc.clip(ex.target, 80),
            "accepted" if ex.accepted else "refused",
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        await response(scope, receive, send)

    @staticmethod
    def _refused(ex: Exchange, exc: Refusal, headers: Mapping[str, str]) -> Response:
        ex.accepted = False
        ex.reason = f"{exc.code}: {exc.detail or exc.message}"
        if not ex.verified:
            ex.keyid = _claimed_keyid(headers)
        return _error(exc.code, exc.message, exc.status, exc.headers)

    @staticmethod
    def _bug(ex: Exchange, exc: Exception) -> Response:
        log.error("internal error on %s %s", ex.method, ex.path[:200], exc_info=exc)
        ex.accepted = False
        ex.reason = f"internal: {type(exc).__name__}: {exc}"
        return _error("internal", "internal error: see the Airboss log", 500)

    def _public(self, scope: Scope, method: str, path: str) -> Response | None:
        if method != "GET" or path not in ("/health", "/openapi.json"):
            return None
        if self._headers_too_large(scope):
            return None  # refused, and logged, by the full pipeline
        if path == "/health":
            return JSONResponse({"status": "ok"})
        return Response(self.openapi, media_type="application/json")

    def _headers_too_large(self, scope: Scope) -> bool:
        headers = scope.get("headers") or []
        size = sum(len(k) + len(v) + 4 for k, v in headers)
        return len(headers) > self.settings.max_headers or size > self.settings.max_header_bytes

    def _record(self, ex: Exchange) -> AuditRecord:
        return AuditRecord(
            client=ex.client,
            keyid=ex.keyid,
            operation=ex.operation_name(),
            target=ex.target,
            accepted=ex.accepted,
            reason=ex.reason,
        )

    async def _read_body(self, request: Request) -> bytes:
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

    async def _handle(
        self, request: Request, scope: Scope, ex: Exchange
    ) -> tuple[Response, int | None]:
        """The answer, and its audit row's id if it was written already."""
        if self._headers_too_large(scope):
            raise Refusal(
                "headers-too-large",
                f"the request headers are over {self.settings.max_headers} lines or "
                f"{self.settings.max_header_bytes} bytes",
            )
        body = await self._read_body(request)
        query = scope.get("query_string", b"").decode("latin-1")
        headers = request.headers
        step = await self._db(lambda: self._front(ex, headers, body, query))
        if isinstance(step, Done):
            return step.response, step.audit_id
        try:
            result = await self._virt(step.container, step.work)
        except Refused as exc:
            raise Refusal("forbidden", exc.message, detail=exc.reason) from None
        except FlightdeckError as exc:
            raise self._failed(exc) from None
        response = step.answer(result)
        ex.accepted = True
        return response, None

    # In a database thread: signature, limits, operation, parameters, authorisation ------------

    def _front(
        self, ex: Exchange, headers: Mapping[str, str], body: bytes, query: str
    ) -> Done | Next:
        try:
            self._verify(ex, headers, body, query)
            name = OPERATIONS.get((ex.method, ex.path))
            if name is None:
                if ex.path in _PATHS:
                    raise Refusal("method-not-allowed", f"{ex.path} does not take {ex.method}")
                raise Refusal("unknown-operation", "no such operation: see /openapi.json")
            ex.operation = name
            step: Done | Next | Response = getattr(self, f"_op_{name}")(ex, query, body)
        except Refusal as exc:
            response = self._refused(ex, exc, headers)
        except Refused as exc:
            response = self._refused(
                ex, Refusal("forbidden", exc.message, detail=exc.reason), headers
            )
        except FlightdeckError as exc:
            response = self._refused(ex, self._failed(exc), headers)
        except Exception as exc:
            response = self._bug(ex, exc)
        else:
            if isinstance(step, Next):
                return step
            assert isinstance(step, Response)
            ex.accepted = True
            response = step
        return Done(response, svc.audit(self.db, self._record(ex)))

    def _verify(self, ex: Exchange, headers: Mapping[str, str], body: bytes, query: str) -> None:
        try:
            verified = verify_request(
                ex.method,
                ex.path,
                query,
                headers,
                body,
                lambda keyid: svc.public_keys(self.db, keyid),
                now=int(self.clock()),
                max_skew=self.settings.max_skew,
                seen_nonce=lambda k, n, until: svc.record_nonce(self.db, k, n, until),
            )
        except SignatureRejected as exc:
            raise Refusal(exc.reason, exc.message, status=401) from None
        ex.keyid = verified.keyid
        ex.verified = True
        wait = self.limiter.allow(verified.keyid)
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
            raise Refusal(
                "rate-limited",
                f"too many requests with this key: try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )

    def _authorise(self, ex: Exchange, target: str) -> Target:
        ex.target = target
        self._check_target(target)
        assert ex.keyid is not None
        return svc.authorise(self.db, ex.keyid, target)

    @staticmethod
    def _check_target(target: str) -> None:
        try:
            svc.check_target(target)
        except svc.InvalidTarget as exc:
            raise Refusal("invalid-target", exc.message) from None

    @staticmethod
    def _failed(exc: FlightdeckError) -> Refusal:
        code = exc.code if exc.code in STATUS else "invalid-request"
        return Refusal(code, exc.message)

    # The operations: each returns the answer (database only) or the libvirt step to run ----------

    def _op_power(self, ex: Exchange, _query: str, body: bytes) -> Next:
        params = _body(body, {"target", "action"}, {"target", "action"})
        action = params["action"]
        if action not in svc.POWER_ACTIONS:
            raise Refusal(
                "invalid-request", f"action must be one of {', '.join(svc.POWER_ACTIONS)}"
            )
        ex.operation = f"power {action}"
        target = self._authorise(ex, params["target"])

        def answer(result: str) -> Response:
            ex.reason = result
            return JSONResponse(
                {"target": target.given, "host": target.name, "action": action, "result": result}
            )

        return Next(target.container, lambda: svc.power(self.db, target, action), answer)

    def _op_macs(self, ex: Exchange, query: str, body: bytes) -> Next | Response:
        if body:
            raise Refusal("invalid-request", "this operation takes no body")
        params = _query(query, {"target", "status"}, {"target"})
        status = _flag(params.get("status"), "status")
        ex.operation = "macs+status" if status else "macs"
        ex.target = target = params["target"]
        self._check_target(target)
        assert ex.keyid is not None
        _found, nodes = svc.cluster_nodes(self.db, ex.keyid, target)

        def answer(listed: list[svc.Node]) -> Response:
            ex.reason = f"{len(listed)} node(s)"
            return JSONResponse(
                {
                    "nodes": [
                        {"host": n.name, "macs": n.macs, "frontend": n.frontend,
                         "status": n.status}
                        for n in listed
                    ]
                }
            )

        if status:
            return Next(None, lambda: svc.with_states(self.db, nodes), answer)
        return answer(nodes)

    def _op_isos(self, ex: Exchange, query: str, body: bytes) -> Next:
        if body:
            raise Refusal("invalid-request", "this operation takes no body")
        params = _query(query, {"target"}, {"target"})
        target = self._authorise(ex, params["target"])

        def answer(images: list[str]) -> Response:
            ex.reason = f"{len(images)} image(s)"
            return JSONResponse({"images": images})

        return Next(target.container, lambda: svc.iso_images(self.db, target), answer)

    def _op_cdrom(self, ex: Exchange, _query: str, body: bytes) -> Next:
        params = _body(body, {"target", "cdrom"}, {"target", "cdrom"})
        cdrom = params["cdrom"]
        clear = cdrom.strip().lower() == "none"
        ex.operation = "cdrom clear" if clear else "cdrom set"
        target = self._authorise(ex, params["target"])
        keyid = ex.keyid
        assert keyid is not None

        def answer(path: str | None) -> Response:
            ex.reason = f"cdrom {path}" if path else "cdrom cleared"
            return JSONResponse({"target": target.given, "host": target.name, "cdrom": path})

        return Next(target.container, lambda: svc.set_iso(self.db, keyid, target, cdrom), answer)

    def _op_console_token(self, ex: Exchange, _query: str, body: bytes) -> Response:
        params = _body(body, {"target", "kind"}, {"target", "kind"})
        kind = params["kind"]
        if kind not in svc.CONSOLE_KINDS:
            raise Refusal(
                "invalid-request", f"kind must be one of {', '.join(svc.CONSOLE_KINDS)}"
            )
        ex.operation = f"console token {kind}"
        target = self._authorise(ex, params["target"])
        assert ex.keyid is not None
        token, grant = self.tokens.issue(ex.keyid, target.given, kind)
        ex.reason = f"web token valid until {int(grant.expires)}"
        query = urllib.parse.urlencode({"token": token, "kind": kind})
        return JSONResponse(
            {"token": token, "expires": int(grant.expires), "path": f"/console/?{query}"}
        )

    def _op_console(self, _ex: Exchange, _query: str, _body: bytes) -> Response:
        raise Refusal(
            "invalid-request",
            "the console is a WebSocket: send this request with Upgrade: websocket",
        )


@dataclass(frozen=True)
class Done:
    """A request answered in the database thread, its audit row written."""

    response: Response
    audit_id: int


@dataclass(frozen=True)
class Next:
    """What is left: `work` on the libvirt pool (bounded per `container`), then `answer`."""

    container: str | None
    work: Callable[[], Any]
    answer: Callable[[Any], Response]


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return _error("unknown-operation", "no such operation: see /openapi.json", 404)


async def _internal(_request: Request, exc: Exception) -> Response:
    log.error("unhandled error: %s: %s", type(exc).__name__, exc)
    return _error("internal", "internal error: see the Airboss log", 500)


def create_app(
    db: Database, settings: Settings, clock: Callable[[], float] = time.time
) -> Starlette:
    """The ASGI application: every path and method goes through one `Airboss` pipeline."""
    from flightdeck.airboss.console import PATH, ConsoleRelay

    airboss = Airboss(db, settings, clock)
    relay = ConsoleRelay(airboss)
    app = Starlette(
        routes=[
            WebSocketRoute(PATH, endpoint=relay),
            *_page_routes(settings),
            Route("/{path:path}", endpoint=airboss),
        ],
        exception_handlers={404: _not_found, 405: _not_found, Exception: _internal},
        lifespan=airboss.lifespan,
    )
    app.state.airboss = airboss
    app.state.console = relay
    return app


def _page_routes(settings: Settings) -> list[BaseRoute]:
    """The browser console's page under `/console/`, if `flightdeck.airboss.web` is installed.

    Imported lazily: without the module there is simply no page (the WebSocket and the token
    operation work the same; `pilot open host console` needs neither).
    """
    try:
        web = importlib.import_module("flightdeck.airboss.web")
    except ModuleNotFoundError as exc:
        if exc.name != "flightdeck.airboss.web":
            raise
        return []
    routes = web.routes
    if inspect.signature(routes).parameters:
        return list(routes(settings.web_dir))
    return list(routes())
