"""The replay cache: every verified signature's nonce, kept in the database until it expires.

In the database, so a replay is refused after a restart and by another Airboss on the same
database (several replicas behind a load balancer share it).
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, text

from flightdeck.db.engine import Database
from flightdeck.db.models import Nonce
from flightdeck.db.prepared import Prepared

#: An insert that does nothing when (keyid, nonce) is there already: the same SQL on SQLite
#: (3.24 on) and PostgreSQL. As text, because SQLAlchemy's dialect-specific `on_conflict_do_
#: nothing()` statements carry no cache key and were compiled anew on every request.
_INSERT = Prepared(
    text(
        f"INSERT INTO {Nonce.__table__.name} (keyid, nonce, expires) "
        "VALUES (:keyid, :nonce, :expires) ON CONFLICT DO NOTHING"
    )
)


def seen(conn: Connection, keyid: str, nonce: str, keep_until: int) -> bool:
    """Record a signature's nonce on `conn`; True when it was recorded before (a replay).

    (keyid, nonce) is the primary key and the insert does nothing on a conflict: of two
    concurrent copies of one request exactly one inserts a row (rowcount 1); the other, in
    this process or another Airboss on the same database, finds it (on PostgreSQL it waits for
    the first transaction to end, then inserts if that one rolled back). The database decides
    the race. The caller commits, before anything the request asks for is done.
    """
    result = _INSERT.execute(conn, {"keyid": keyid, "nonce": nonce, "expires": keep_until})
    return result.rowcount == 0


def purge_nonces(db: Database, now: int) -> int:
    """Forget the nonces of signatures that can no longer be accepted; how many were dropped."""
    with db.engine.begin() as conn:
        result = conn.execute(delete(Nonce).where(Nonce.expires < now))
    return int(result.rowcount or 0)
