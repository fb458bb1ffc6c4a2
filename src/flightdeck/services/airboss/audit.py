"""The audit log: one row per decision of the Airboss, and its listing for the administrator."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import Connection, insert

from flightdeck.db.engine import Database
from flightdeck.db.models import AuditEntry
from flightdeck.db.prepared import Prepared
from flightdeck.services.listings import AuditRow as AuditRow
from flightdeck.services.listings import list_audit as list_audit

#: Characters kept of each column (the schema's sizes).
LIMITS = {
    "client": 255,
    "keyid": 128,
    "operation": 64,
    "target": 255,
    "reason": 1024,
    "token_id": 128,
    "restrictions": 1024,
}
_INSERT = Prepared(insert(AuditEntry))


def clip(text: str | None, limit: int) -> str | None:
    """Printable, bounded text for the audit log (a 10,000-character target is not stored)."""
    if text is None:
        return None
    if len(text) <= limit and text.isprintable():
        return text
    shown = "".join(c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}" for c in text[:limit])
    if len(text) <= limit and len(shown) <= limit:
        return shown
    suffix = f"... ({len(text)} characters)"
    return shown[: max(0, limit - len(suffix))] + suffix


@dataclass(frozen=True)
class AuditRecord:
    """One decision: who (client address, key), what (operation, target), and the outcome."""

    client: str | None
    keyid: str | None
    operation: str | None
    target: str | None
    accepted: bool
    reason: str | None
    at: dt.datetime | None = None
    #: A token request's token id and restrictions (None for a signed request).
    token_id: str | None = None
    restrictions: str | None = None
    #: The hash chain it goes in (`services.airboss.chain`; None: the site's).
    chain: str | None = None


def audit(db: Database, record: AuditRecord) -> int:
    """Append one decision to the audit log; returns its id.

    A plain committed transaction (not the site-wide write lock), like the nonce insert.
    """
    with db.engine.begin() as conn:
        return audit_in(conn, record)


def audit_in(conn: Connection, record: AuditRecord) -> int:
    """`audit` inside the caller's transaction (it is in the log once that commits)."""
    values = {
        "at": record.at or dt.datetime.now(dt.UTC),
        "client": clip(record.client, LIMITS["client"]),
        "keyid": clip(record.keyid, LIMITS["keyid"]),
        "operation": clip(record.operation, LIMITS["operation"]),
        "target": clip(record.target, LIMITS["target"]),
        "accepted": record.accepted,
        "reason": clip(record.reason, LIMITS["reason"]),
        "token_id": clip(record.token_id, LIMITS["token_id"]),
        "restrictions": clip(record.restrictions, LIMITS["restrictions"]),
    }
    from flightdeck.services.airboss import chain

    chain.link(conn, values, record.chain or chain.SITE)
    result = _INSERT.execute(conn, values)
    return int(result.inserted_primary_key[0])  # type: ignore[index]


