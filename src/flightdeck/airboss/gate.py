"""The request gate: what every owner request passes, over HTTP or as a WebSocket upgrade.

In this order, cheapest and most decisive first; each step passes or raises `Refusal` (a
stable code, a message for the owner, an HTTP status, a detail for the log):

1. verify  - the RFC 9421 signature over method, raw path, raw query and the body's
             Content-Digest (`crypto.httpsig.verify_request`); the key's registered public
             keys (`services.airboss.keys`) are the first database read. 401.
2. replay  - inside the verification, once the signature holds: its nonce is recorded
             (`services.airboss.nonces`), and a nonce seen before is refused. 401 `replay`.
3. limit   - the verified key's token bucket (`ratelimit`). 429 with Retry-After. (Before
             step 1, the client address's own bucket: `limit_address`.)
4. authorise - the operation's scope rule: the target string checked on its own, then
             resolved ONCE to a `Target` (ids) the key must cover (`services.airboss.access`).
             400 `invalid-target`, 403 `forbidden` (the precise reason goes to the log only).
5. audit   - one row per request, accepted or why not (`services.airboss.audit`); refusals
             before verification beyond `audit_refusals` a minute from one address are
             counted and summed up in one row (`airboss.floods`).

A capability token (`Authorization: Biscuit ...`, `crypto.capability`) replaces steps 1-2 with
its own verification, in the same order (bounds and times, body digest, the key lookup, the
Biscuit's signatures against the registered key, the binding of its last block to this
request, revocation, then its nonce), and adds to step 4: after the key's scope admits the
target, every check of every block of the token must hold for the operation's right, the
target's names (its physical-side name and MACs), the client's address and the time. A token
never reaches past its key: the key's scope is applied first, exactly as for a signature.
Every token decision's audit row names the token's id and its restrictions.

`Exchange` is the audit row of one request, filled in as it goes. Every method here is
synchronous and touches the database: the Airboss calls them from its database threads. Each
takes the request's connection (`conn`): steps 1-4, and the audit row of a request refused
there, are one transaction (`Airboss._front`); without one, a step opens its own.

Replay protection in one transaction: the nonce is inserted only once the signature holds,
and the transaction commits whatever the gate then decides (a refusal after step 2 still
records the nonce with its audit row) and before the operation runs. A transaction that rolls
back (the database failed) did nothing for the request: its copy, replayed, is served at
most once, as its first copy would have been.
`airboss.app` (HTTP) and `airboss.console` (WebSocket) are the gate's two users; a web console
token replaces steps 1-2 with `admit_token` (the token was bought with a signed request).
"""

from __future__ import annotations

import contextlib
import logging
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from flightdeck.airboss.config import Settings
from flightdeck.airboss.floods import FloodAudit
from flightdeck.airboss.ratelimit import RateLimiter
from flightdeck.airboss.sessions import session_ref
from flightdeck.api.operations import Scope
from flightdeck.api.wire import InvalidTarget, check_target
from flightdeck.crypto import capability, sfv
from flightdeck.crypto.httpsig import SignatureRejected, verify_request
from flightdeck.crypto.keys import PublicKey
from flightdeck.db.engine import Database
from flightdeck.errors import FlightdeckError
from flightdeck.services.airboss import access, chain, nonces, revocations
from flightdeck.services.airboss import audit as audit_log
from flightdeck.services.airboss.keys import PublicKeys

log = logging.getLogger("flightdeck.airboss")

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
    "cross-site": 403,
    "session-unknown": 401,
    "session-expired": 401,
    "token-unknown": 401,
    "token-expired": 401,
    "token-mismatch": 401,
    **{reason: 401 for reason in capability.REASONS if reason != "token-denied"},
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


def failed(exc: FlightdeckError) -> Refusal:
    """The refusal of an error from a service (its code, if the Airboss knows it)."""
    if isinstance(exc, access.Refused):
        return Refusal("forbidden", exc.message, detail=exc.reason)
    code = exc.code if exc.code in STATUS else "invalid-request"
    return Refusal(code, exc.message)


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
    #: A capability token's request: the verified token (its id and restrictions audited).
    token: capability.VerifiedToken | None = None
    #: A dashboard session's request: the session's public id (`airboss.sessions`).
    session: str | None = None
    #: The audit hash chain of the target (its cluster's), once it is resolved.
    chain: str | None = None
    #: Set once its audit row is written or folded into a flood summary (never twice).
    audited: bool = False
    #: What the verified key covers, read with its public keys in the request's transaction
    #: (`PublicKeys.with_scope`): the key id and the transaction it was read in, so that only
    #: an authorisation in that same transaction uses it.
    scope: tuple[str, object, access.KeyScope] | None = None

    def operation_name(self) -> str:
        return self.operation or f"{self.method} {self.path}"

    @classmethod
    def of(cls, scope: Mapping[str, Any]) -> Exchange:
        """The audit row of a new request (HTTP or a WebSocket upgrade, which is a GET): its
        client address, method and raw path, as the client sent them."""
        raw_path = scope.get("raw_path") or urllib.parse.quote(scope["path"]).encode()
        client = scope.get("client")
        return cls(
            client=client[0] if client else None,
            method=scope.get("method", "GET"),
            path=raw_path.decode("latin-1"),
        )

    def session_ref(self) -> str | None:
        """The audit log's token column for a dashboard session: `session:<id>`."""
        return session_ref(self.session) if self.session else None

    def record(self) -> audit_log.AuditRecord:
        return audit_log.AuditRecord(
            client=self.client,
            keyid=self.keyid,
            operation=self.operation_name(),
            target=self.target,
            accepted=self.accepted,
            reason=self.reason,
            token_id=self.token.id if self.token else self.session_ref(),
            restrictions=self.token.restrictions if self.token else None,
            chain=self.chain,
        )

    def log(self, status: int, started: float) -> None:
        """The one line the Airboss logs per request (the target clipped and escaped)."""
        log.info(
            "%s %s key=%s op=%s target=%s %s %d %.1fms",
            self.client,
            self.method,
            self.keyid if self.verified else "-",
            self.operation_name(),
            audit_log.clip(self.target, 80),
            "accepted" if self.accepted else "refused",
            status,
            (time.perf_counter() - started) * 1000,
        )


def _limit(limiter: RateLimiter, key: str, what: str) -> None:
    """429 `rate-limited` with Retry-After (whole seconds) when `key` is over its rate."""
    wait = limiter.allow(key)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        raise Refusal(
            "rate-limited",
            f"{what}: try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )


def claimed_keyid(headers: Mapping[str, str]) -> str | None:
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


class Gate:
    """The steps, over one database, one key table, one rate limit per key."""

    def __init__(
        self, db: Database, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.limiter = RateLimiter(settings.rate, settings.burst)
        #: Per client address, before anything is verified or read (`limit_address`).
        self.by_address = RateLimiter(settings.client_rate, settings.client_burst)
        self.floods = FloodAudit(settings.audit_refusals, clock=clock)
        self.keys = PublicKeys(db)

    # 0. Bounds, before anything is read ---------------------------------------------------------

    def headers_too_large(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        listed = list(headers)
        size = sum(len(k) + len(v) + 4 for k, v in listed)
        return len(listed) > self.settings.max_headers or size > self.settings.max_header_bytes

    def check_headers(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        if self.headers_too_large(headers):
            raise Refusal(
                "headers-too-large",
                f"the request headers are over {self.settings.max_headers} lines or "
                f"{self.settings.max_header_bytes} bytes",
            )

    def limit_address(self, ex: Exchange) -> None:
        """Step 0 as well: the client address's rate, before a signature is looked at (junk
        from one address cannot keep the verifier and the audit log busy)."""
        _limit(self.by_address, ex.client or "-", f"too many requests from {ex.client}")

    # 1-3. Who: a signature (verified, not replayed) or a token; then the key's rate -------------

    @contextlib.contextmanager
    def _on(self, conn: Connection | None) -> Iterator[Connection]:
        """The request's connection, or a transaction of the step's own: a write one from its
        BEGIN on SQLite (a step reads, then may write: a deferred transaction could not always
        upgrade, SQLite refusing at once when another writer committed since its read)."""
        if conn is not None:
            yield conn
            return
        with self.db.engine.connect() as own:
            own.execution_options(flightdeck_write=True)
            with own.begin():
                yield own

    def admit(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        conn: Connection | None = None,
    ) -> str:
        """Verify the signature or the capability token (and refuse a replay), then count the
        key's rate; its key id (a token's: the key it is rooted in)."""
        if capability.presented(headers):
            return self.admit_capability(ex, headers, body, query, conn)
        try:
            with self._on(conn) as c:
                verified = verify_request(
                    ex.method,
                    ex.path,
                    query,
                    headers,
                    body,
                    self._lookup(ex, c, conn),
                    now=int(self.clock()),
                    max_skew=self.settings.max_skew,
                    seen_nonce=lambda k, n, until: nonces.seen(c, k, n, until),
                )
        except SignatureRejected as exc:
            raise Refusal(exc.reason, exc.message, status=401) from None
        ex.keyid = verified.keyid
        ex.verified = True
        self.limit(verified.keyid)
        return verified.keyid

    def admit_capability(
        self,
        ex: Exchange,
        headers: Mapping[str, str],
        body: bytes,
        query: str,
        conn: Connection | None = None,
    ) -> str:
        """Steps 1-2 for a capability token; the authorisation of its checks comes in 4."""
        try:
            with self._on(conn) as c:
                token = capability.verify(
                    ex.method,
                    ex.path,
                    query,
                    headers,
                    body,
                    self._lookup(ex, c, conn),
                    now=int(self.clock()),
                    max_skew=self.settings.max_skew,
                    revoked=lambda ids: revocations.first_revoked_in(c, ids),
                    seen_nonce=lambda k, n, until: nonces.seen(c, k, n, until),
                )
        except capability.TokenRejected as exc:
            raise Refusal(exc.reason, exc.message, status=401, detail=exc.detail) from None
        ex.keyid, ex.verified, ex.token = token.keyid, True, token
        self.limit(token.keyid)
        return token.keyid

    def _lookup(
        self, ex: Exchange, c: Connection, conn: Connection | None
    ) -> Callable[[str], list[PublicKey]]:
        """The key lookup of a verification on `c`. In the request's transaction (`conn`), it
        reads what the key covers in the same statement and keeps it on `ex` for `authorise`
        in that transaction; in a step's own transaction, only the keys."""
        if conn is None:
            return lambda keyid: self.keys.in_transaction(c, keyid)

        def lookup(keyid: str) -> list[PublicKey]:
            keys, scope = self.keys.with_scope(conn, keyid)
            ex.scope = (keyid, conn.get_transaction(), scope)
            return keys

        return lookup

    def admit_token(self, ex: Exchange, keyid: str) -> str:
        """A web console token's key (the token was redeemed already); count its rate."""
        ex.keyid, ex.verified = keyid, True
        self.limit(keyid)
        return keyid

    def admit_session(self, ex: Exchange, keyid: str, session_id: str) -> str:
        """A dashboard session's key (its cookie and CSRF secret were checked already, by
        `airboss.dashboard`); count its rate. The audit row names the session."""
        ex.session = session_id
        return self.admit_token(ex, keyid)

    def limit(self, keyid: str) -> None:
        _limit(self.limiter, keyid, "too many requests with this key")

    # 4. What: the target, resolved once ----------------------------------------------------------

    def authorise(
        self,
        ex: Exchange,
        target: str | None,
        scope: Scope,
        right: str | None = None,
        conn: Connection | None = None,
    ) -> access.Target:
        """The VM `target` names, if the verified key may act on it under `scope`, and, for a
        capability token, if the token allows `right` on it (None: keys only)."""
        ex.target = target
        assert ex.keyid is not None and ex.verified, "authorise only a verified request"
        with self._on(conn) as c:
            try:
                if scope is Scope.VM:
                    found = access.authorise_in(
                        c, ex.keyid, check_target(target), self._scope_read(ex, c)
                    )
                elif scope is Scope.KEY:
                    found = access.key_home_in(c, ex.keyid)
                else:  # pragma: no cover
                    raise AssertionError(f"no rule for scope {scope}")
            except InvalidTarget as exc:
                raise Refusal("invalid-target", exc.message) from None
            except access.Refused as exc:
                raise failed(exc) from None
            ex.chain = chain.chain_of(found.host_id, found.cluster_id)
            if ex.token is not None:
                self.authorise_token(ex, ex.token, found, right, c)
        return found

    @staticmethod
    def _scope_read(ex: Exchange, c: Connection) -> access.KeyScope | None:
        """The verified key's scope if it was read in this same transaction, else None."""
        if ex.scope is None:
            return None
        keyid, read_in, scope = ex.scope
        same = read_in is not None and c.get_transaction() is read_in
        return scope if same and keyid == ex.keyid else None

    def authorise_token(
        self,
        ex: Exchange,
        token: capability.VerifiedToken,
        found: access.Target,
        right: str | None,
        conn: Connection,
    ) -> None:
        if right is None:
            raise Refusal(
                "forbidden",
                "a capability token may not do this: sign the request with your key",
                detail="token-denied: keys only",
            )
        names = access.target_names_in(conn, found)
        try:
            token.authorize(right, names, ex.client, self.clock())
        except capability.TokenRejected as exc:
            raise Refusal(
                "forbidden",
                f"your token does not allow {right} on {found.given}",
                detail=f"token-denied: {exc.detail}",
            ) from None

    # 5. The record -------------------------------------------------------------------------------

    def audit(self, ex: Exchange, conn: Connection | None = None) -> int | None:
        """Its audit row's id; None when it is a refusal before verification folded into its
        address's flood summary (`airboss.floods`). On `conn`, the row is in the log once the
        caller commits."""
        assert not ex.audited, "one audit row per request"
        if not ex.verified and not ex.accepted:
            code = (ex.reason or "refused").split(":", 1)[0]
            if not self.floods.own_row(ex.client, code):
                ex.audited = True
                return None
        with self._on(conn) as c:
            row = audit_log.audit_in(c, ex.record())
        ex.audited = True  # only once written: a failed write is tried again by the caller
        return row

    def write_summaries(self, everything: bool = False) -> int:
        """Write the flood summaries of the minutes that are over; how many rows."""
        rows = self.floods.flush(everything=everything)
        for record in rows:
            audit_log.audit(self.db, record)
        return len(rows)

    def audit_record(self, record: audit_log.AuditRecord) -> int:
        return audit_log.audit(self.db, record)

    @staticmethod
    def refused(ex: Exchange, exc: Refusal, headers: Mapping[str, str]) -> None:
        """Note a refusal on the request's audit row (and the key it only claimed)."""
        ex.accepted = False
        ex.reason = f"{exc.code}: {exc.detail or exc.message}"
        if not ex.verified:  # a dashboard session's key, found before the refusal, stays
            ex.keyid = claimed_keyid(headers) or ex.keyid

    @staticmethod
    def bug(ex: Exchange, exc: BaseException) -> Refusal:
        """A bug: logged with its traceback, answered `internal` (never how)."""
        log.error("internal error on %s %s", ex.method, ex.path[:200], exc_info=exc)
        ex.accepted = False
        ex.reason = f"internal: {type(exc).__name__}: {exc}"
        return Refusal("internal", "internal error: see the Airboss log", status=500)

    def purge(self) -> int:
        """Forget expired nonces; how many."""
        return nonces.purge_nonces(self.db, int(self.clock()))
