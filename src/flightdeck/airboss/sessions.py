"""Dashboard sessions: what a one-time link becomes in the browser, held by this Airboss.

`pilot open dashboard` (a signed request, `POST /v1/dashboard/link`) buys a link token from the
same store as the web console's tokens (single-use, 60 s, bound to the key and the target). The
page redeems it once for a session:

* a **cookie secret** (32 random bytes) the browser keeps in an HttpOnly, SameSite=Strict
  cookie scoped to `/dashboard/` (and Secure over TLS); this table is keyed by its SHA-256,
  so neither a memory dump of the table nor a timing of the lookup gives a usable cookie;
* a **CSRF secret** (32 random bytes) the page keeps in its memory and sends in a header with
  every request (a synchronizer token: a form or a page of another origin can send neither);
* a public **id** (12 hex digits) that the audit log and the page show (never a credential);
* the key and the VM it was made for, resolved once to the cluster it belongs to: every
  request's target must be of that cluster (a key on two clusters' VMs does not widen it).

A session ends after `dashboard_idle` seconds without a request from its page, `dashboard_max`
seconds after it began, when its page logs out, when a newer session of the same key pushes it
out (at most `dashboard_sessions` per key), and when its key no longer covers its VM (checked
on every request by the gate, and every `console_recheck` seconds for an open page).

Kept in this process's memory only, as the link tokens: a restart ends every session (the
owner asks for a new link), and Airboss replicas do not share them (pin a browser to one).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

#: The cookie's name, and the path it is sent to (the dashboard's page and API only).
COOKIE = "fd_dashboard"
COOKIE_PATH = "/dashboard/"
#: The header that carries a session's CSRF secret.
CSRF_HEADER = "x-flightdeck-csrf"
#: Characters of a cookie or CSRF secret (32 random bytes, URL-safe base64).
SECRET_LENGTH = 43
#: What every refusal of a session tells the page to do.
NEW_LINK = "open a new link (pilot open dashboard host=<frontend>)"


@dataclass(eq=False)
class DashSession:
    """One browser session; `last` and `ended` change, the rest never does."""

    id: str
    keyid: str
    #: The target string of the link (what the page names its cluster by).
    target: str
    #: The VM the link was made for, resolved: its host and its cluster (None: a lone VM).
    host_id: int
    cluster_id: int | None
    host: str
    csrf: str
    started: float
    expires: float
    last: float
    #: SHA-256 of its cookie secret: its key in the store.
    digest: bytes = b""
    ended: str | None = None
    #: Set when an action on the page may have changed a node (the live updates look at once).
    changed: threading.Event = field(default_factory=threading.Event)

    def covers(self, host_id: int, cluster_id: int | None) -> bool:
        """Whether a target resolved to (host_id, cluster_id) is of this session's cluster."""
        if self.cluster_id is None:
            return host_id == self.host_id
        return cluster_id == self.cluster_id

    @property
    def ref(self) -> str:
        """What the audit log's token column says of it: `session:<id>`."""
        return session_ref(self.id)

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionRejected(Exception):
    """No session, or not any more: `code` is stable (answer and audit log)."""

    def __init__(self, code: str, message: str, keyid: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.keyid = keyid


def session_ref(session_id: str) -> str:
    """The audit log's token column for a dashboard session's rows."""
    return f"session:{session_id}"


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class SessionStore:
    """The open dashboard sessions of this process. Thread-safe."""

    def __init__(
        self,
        idle: float,
        lifetime: float,
        per_key: int,
        *,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.idle = idle
        self.lifetime = lifetime
        self.per_key = per_key
        self.max_sessions = max_sessions
        self.clock = clock
        self._by_digest: OrderedDict[bytes, DashSession] = OrderedDict()  # oldest first
        #: Sessions that ended, and why (so that their page is told), the newest `max_sessions`.
        self._ended: OrderedDict[bytes, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_digest)

    def open(
        self, keyid: str, target: str, host_id: int, cluster_id: int | None, host: str
    ) -> tuple[str, DashSession, list[DashSession]]:
        """A new session: its cookie secret, itself, and the sessions it pushed out."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        session = DashSession(
            id=secrets.token_hex(6), keyid=keyid, target=target, host_id=host_id,
            cluster_id=cluster_id, host=host, csrf=secrets.token_urlsafe(32), started=now,
            expires=now + self.lifetime, last=now, digest=_digest(secret),
        )  # fmt: skip
        pushed: list[DashSession] = []
        with self._lock:
            self._drop_expired(now)
            same_key = [d for d, s in self._by_digest.items() if s.keyid == keyid]
            while len(same_key) >= self.per_key:
                pushed.append(self._end(same_key.pop(0), "a newer session of the same key"))
            while len(self._by_digest) >= self.max_sessions:
                pushed.append(self._end(next(iter(self._by_digest)), "too many sessions"))
            self._by_digest[session.digest] = session
        return secret, session, pushed

    def find(self, secret: str | None, *, touch: bool) -> DashSession:
        """The session of a cookie secret; `touch` counts this as activity (a request from the
        page, not its live updates). `SessionRejected` when there is none or it has ended."""
        if not secret or len(secret) != SECRET_LENGTH:
            raise SessionRejected("session-unknown", f"no dashboard session: {NEW_LINK}")
        digest = _digest(secret)
        now = self.clock()
        with self._lock:
            session = self._by_digest.get(digest)
            if session is None and digest in self._ended:
                keyid, ended = self._ended[digest]
                raise SessionRejected(
                    "session-expired", f"this dashboard session ended ({ended}): {NEW_LINK}", keyid
                )
            if session is None:
                raise SessionRejected(
                    "session-unknown",
                    "this dashboard session is not known here (it ended, or the Airboss "
                    f"restarted): {NEW_LINK}",
                )
            why = self._expiry(session, now)
            if why is not None:
                self._end(digest, why)
                raise SessionRejected(
                    "session-expired",
                    f"this dashboard session ended ({why}): {NEW_LINK}",
                    session.keyid,
                )
            if touch:
                session.last = now
            return session

    def check(self, session: DashSession) -> str | None:
        """Why an open page's session has ended (None: it holds); ends it if it just expired."""
        now = self.clock()
        with self._lock:
            if session.ended is not None:
                return session.ended
            why = self._expiry(session, now)
            if why is not None and self._by_digest.get(session.digest) is session:
                self._end(session.digest, why)
            return why

    def end(self, session: DashSession, why: str) -> None:
        """End `session` now (logged out, or its key no longer holds)."""
        with self._lock:
            if self._by_digest.get(session.digest) is session:
                self._end(session.digest, why)
            session.ended = session.ended or why
            session.changed.set()

    def _expiry(self, session: DashSession, now: float) -> str | None:
        if session.ended is not None:
            return session.ended
        if now >= session.expires:
            return f"it lasts {self.lifetime:g} s at most"
        if now - session.last >= self.idle:
            return f"no request for {self.idle:g} s"
        return None

    def _end(self, digest: bytes, why: str) -> DashSession:
        session = self._by_digest.pop(digest)
        session.ended = session.ended or why
        session.changed.set()  # an open page's live updates notice at once
        self._ended[digest] = (session.keyid, session.ended)
        while len(self._ended) > self.max_sessions:
            self._ended.popitem(last=False)
        return session

    def _drop_expired(self, now: float) -> None:
        for digest, session in list(self._by_digest.items()):
            why = self._expiry(session, now)
            if why is not None:
                self._end(digest, why)
