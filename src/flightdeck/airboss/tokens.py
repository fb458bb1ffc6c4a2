"""Web console tokens: a browser holds no key, so a signed request buys it one short-lived token.

`POST /v1/console/token` (signed, authorised like any operation) issues a token bound to
(key id, target, console kind); the browser page then opens `/v1/console?token=...` with it.
A token is

* single-use: `redeem` removes it under a lock, so of two concurrent uses exactly one wins;
* short-lived: valid `TOKEN_LIFETIME` (60) seconds from issue;
* bound: redeemed only for the same target (the string the token was issued for) and kind.

Tokens are kept **in the memory of the Airboss process only**, never in the database: a restart
forgets them all (the owner asks for a new one; it costs one signed request), and several
Airboss processes on one database do not share them (a token works only on the Airboss that
issued it). 32 random bytes each (`secrets.token_urlsafe`), so they cannot be guessed; the
table is bounded (`max_tokens`) and expired entries are dropped as new ones are issued.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

#: Seconds a web console token stays valid.
TOKEN_LIFETIME = 60
#: Characters of a token (32 random bytes, URL-safe base64); anything else is refused unread.
TOKEN_LENGTH = 43


@dataclass(frozen=True)
class Grant:
    """What a token stands for: who asked for it, for which VM and console, until when."""

    keyid: str
    target: str
    kind: str
    expires: float


class TokenRejected(Exception):
    """A token was refused; `code` is stable (for the answer and the audit log)."""

    def __init__(self, code: str, message: str, keyid: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        #: The key the token had been issued to, when it was found (for the audit log).
        self.keyid = keyid


class TokenStore:
    """The issued, unused tokens of this process. Thread-safe."""

    def __init__(
        self,
        lifetime: float = TOKEN_LIFETIME,
        *,
        max_tokens: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lifetime = lifetime
        self.max_tokens = max_tokens
        self.clock = clock
        self._tokens: OrderedDict[str, Grant] = OrderedDict()  # oldest first
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tokens)

    def issue(self, keyid: str, target: str, kind: str) -> tuple[str, Grant]:
        """A new token for (keyid, target, kind), and what it grants."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        grant = Grant(keyid, target, kind, now + self.lifetime)
        with self._lock:
            self._purge(now)
            while len(self._tokens) >= self.max_tokens:
                self._tokens.popitem(last=False)
            self._tokens[token] = grant
        return token, grant

    def redeem(self, token: str, target: str | None, kind: str) -> Grant:
        """Use `token` for a console of `kind` on `target` (None: the token's own target).

        The token is gone after this call whatever the outcome (a token that was tried for
        the wrong VM is burnt too). `TokenRejected` with code `token-unknown` (never issued
        here, already used, or forgotten), `token-expired` or `token-mismatch`.
        """
        if len(token) != TOKEN_LENGTH:
            raise TokenRejected("token-unknown", "this console token is not valid")
        now = self.clock()
        with self._lock:
            grant = self._tokens.pop(token, None)
        if grant is None:
            raise TokenRejected(
                "token-unknown", "this console token is not valid or was used already: "
                "ask for a new one"
            )
        if now > grant.expires:
            raise TokenRejected(
                "token-expired",
                f"this console token expired ({self.lifetime:g} s after it was issued): ask "
                "for a new one",
                grant.keyid,
            )
        if (target is not None and target != grant.target) or kind != grant.kind:
            raise TokenRejected(
                "token-mismatch",
                f"this console token is for the {grant.kind} console of {grant.target}",
                grant.keyid,
            )
        return grant

    def _purge(self, now: float) -> None:
        while self._tokens:
            oldest = next(iter(self._tokens.values()))
            if oldest.expires >= now:
                return
            self._tokens.popitem(last=False)
