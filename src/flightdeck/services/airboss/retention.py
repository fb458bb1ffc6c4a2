"""How long the audit log is kept, its export for archiving, and its pruning.

The Airboss writes a row per decision (and one per flood minute, `airboss.floods`); a busy site
accumulates millions. Rows older than the global attribute `airboss_audit_days` (default 90;
0 keeps everything) are deleted by the running Airboss about once an hour, in batches, so a
prune never holds the database for long. `rocks report airboss log` exports rows first (JSON
Lines with their hash-chain fields, so an archive can still be verified: each entry's `prev` is
the hash of the one before it in its chain); `rocks remove airboss log` prunes by hand.

Pruning does not break the owners' hash chains (`crypto.auditchain`): the chain heads are kept,
and the oldest remaining entry of a chain still names its predecessor's hash, so an owner who
kept an earlier signed head (`pilot verify audit`) verifies from what is left; entries older
than the retention are in the administrator's archive, if it was made.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

from sqlalchemy import delete, select

from flightdeck.attrsubject import Subject, subject
from flightdeck.crypto import auditchain
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.models import AuditEntry
from flightdeck.errors import UserError
from flightdeck.services.base import reading

ATTRIBUTE = "airboss_audit_days"
#: Days an audit row is kept when the attribute is not set.
DEFAULT_DAYS = 90
#: Rows deleted per transaction (a short write lock each on SQLite).
BATCH = 10_000
#: Rows read per query while exporting.
PAGE = 5_000


def check_days(value: str | None, who: str | Subject) -> int:
    """`airboss_audit_days`: whole days from 0 (keep everything) to 36500."""
    if value is None or not value.strip():
        return DEFAULT_DAYS
    text = value.strip()
    if not (text.isascii() and text.isdigit() and int(text) <= 36500):
        raise UserError(
            f"{subject(who).attr(ATTRIBUTE)} is {value!r}: give whole days, 0 to keep the "
            f"audit log forever (default {DEFAULT_DAYS})"
        )
    return int(text)


def retention_days(db: Database) -> int:
    with reading(db) as s:
        return check_days(attrs.global_value(s, ATTRIBUTE), Subject("global", ""))


def cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=days)


def prune(db: Database, before: dt.datetime) -> int:
    """Delete the audit rows decided before `before`, in batches; how many."""
    total = 0
    while True:
        with db.engine.begin() as conn:
            ids = conn.scalars(
                select(AuditEntry.id).where(AuditEntry.at < before).order_by(AuditEntry.id)
                .limit(BATCH)
            ).all()  # fmt: skip
            if not ids:
                return total
            conn.execute(delete(AuditEntry).where(AuditEntry.id.in_(ids)))
        total += len(ids)


def prune_by_setting(db: Database) -> tuple[int, int]:
    """What the Airboss runs: (days kept, rows deleted); (0, 0) when kept forever."""
    days = retention_days(db)
    if days == 0:
        return 0, 0
    return days, prune(db, cutoff(days))


def export(db: Database, before: dt.datetime | None = None) -> Iterator[str]:
    """The audit rows (those decided before `before`, or all), oldest first, as JSON Lines."""
    columns = [AuditEntry.id, *(getattr(AuditEntry, f) for f in auditchain.FIELDS)]
    columns += [AuditEntry.prev, AuditEntry.hash]
    names = ["id", *auditchain.FIELDS, "prev", "hash"]
    last = 0
    while True:
        q = select(*columns).where(AuditEntry.id > last)
        if before is not None:
            q = q.where(AuditEntry.at < before)
        with db.engine.connect() as conn:
            rows = conn.execute(q.order_by(AuditEntry.id).limit(PAGE)).all()
        if not rows:
            return
        for row in rows:
            entry = dict(zip(names, row, strict=True))
            entry["at"] = auditchain.moment(entry["at"])
            yield json.dumps(entry, ensure_ascii=True, separators=(",", ":"))
        last = rows[-1][0]
