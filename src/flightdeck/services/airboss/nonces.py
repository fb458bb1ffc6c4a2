"""The replay cache: every verified signature's nonce, kept in the database until it expires.

In the database, so a replay is refused after a restart and by another Airboss on the same
database (several replicas behind a load balancer share it).
"""

from __future__ import annotations

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from flightdeck.db.engine import Database
from flightdeck.db.models import Nonce

_INSERT = insert(Nonce)


def record_nonce(db: Database, keyid: str, nonce: str, keep_until: int) -> bool:
    """Record a signature's nonce; True when it was recorded before (a replay).

    The insert is its own committed transaction and (keyid, nonce) is the primary key, so of
    two concurrent copies of one request exactly one inserts and the other gets the integrity
    error: the database decides the race, in this process or another Airboss on the same
    database. It is a plain transaction, not `writing()`, on purpose: on PostgreSQL that takes
    the site-wide write lock, and a long `rocks add cluster` must not stall every owner.
    """
    try:
        with db.engine.begin() as conn:
            conn.execute(_INSERT, {"keyid": keyid, "nonce": nonce, "expires": keep_until})
    except IntegrityError:
        return True
    return False


def purge_nonces(db: Database, now: int) -> int:
    """Forget the nonces of signatures that can no longer be accepted; how many were dropped."""
    with db.engine.begin() as conn:
        result = conn.execute(delete(Nonce).where(Nonce.expires < now))
    return int(result.rowcount or 0)
