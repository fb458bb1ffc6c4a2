"""The registered public keys of a key id: what signature verification reads first.

Read afresh on every request (a key removed with `rocks remove host key` is refused from the
next request on, by every replica); only the parsing of a stored PEM is cached, per
`PublicKeys` instance (one per Airboss gate), because it costs more than the query. The read
is one indexed SELECT inside the request's own transaction (`in_transaction`), so caching the
rows themselves would save little and would need an invalidation every replica sees. The gate
reads what the key covers in that same statement (`with_scope`): the authorisation later in
the transaction needs no second read of the key's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from sqlalchemy import Connection, bindparam, select

from flightdeck.crypto import keys as ck
from flightdeck.db.engine import Database
from flightdeck.db.models import PublicKey
from flightdeck.errors import UserError
from flightdeck.services.airboss.access import KeyScope, keys_and_scope

_KEYS = select(PublicKey.public_key).where(PublicKey.fingerprint == bindparam("keyid"))


class PublicKeys:
    """`keys(keyid)`: the registered public keys whose fingerprint is `keyid`. Thread-safe."""

    def __init__(self, db: Database, *, max_cached: int = 10_000) -> None:
        self.db = db
        self.max_cached = max_cached
        self._parsed: dict[str, ck.PublicKey] = {}
        self._lock = threading.Lock()

    def __call__(self, keyid: str) -> list[ck.PublicKey]:
        with self.db.engine.connect() as conn, conn.begin():
            return self.in_transaction(conn, keyid)

    def in_transaction(self, conn: Connection, keyid: str) -> list[ck.PublicKey]:
        """`keys(keyid)` read on `conn`, inside the caller's transaction."""
        return self._parsed_all(conn.scalars(_KEYS, {"keyid": keyid}).all())

    def with_scope(self, conn: Connection, keyid: str) -> tuple[list[ck.PublicKey], KeyScope]:
        """`in_transaction`, and what the key covers, in the same one statement."""
        pems, scope = keys_and_scope(conn, keyid)
        return self._parsed_all(pems), scope

    def _parsed_all(self, pems: Sequence[str]) -> list[ck.PublicKey]:
        return [k for k in (self._parse(p) for p in pems) if k is not None]

    def _parse(self, pem: str) -> ck.PublicKey | None:
        """A stored PEM, parsed once (the lookup itself is never cached)."""
        with self._lock:
            key = self._parsed.get(pem)
        if key is None:
            try:
                key = ck.parse_public_key(pem)
            except UserError:
                return None  # a row written by hand that is not a usable key: verifies nothing
            with self._lock:
                if len(self._parsed) >= self.max_cached:
                    self._parsed.clear()
                self._parsed[pem] = key
        return key
