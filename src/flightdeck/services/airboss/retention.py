"""How long the audit log is kept, its export for archiving, and its pruning.

The Airboss writes a row per decision (and one per flood minute, `airboss.floods`); a busy site
accumulates millions. Rows older than the global attribute `airboss_audit_days` (default 90;
0 keeps everything) are deleted by the running Airboss about once an hour, in batches, so a
prune never holds the database for long. `rocks report airboss log` exports rows first (JSON
Lines with their hash-chain fields, so an archive can still be verified: each entry's `prev` is
the hash of the one before it in its chain); `rocks remove airboss log` prunes by hand.

Pruning does not break the owners' hash chains (`crypto.auditchain`): before a chain's old
entries are deleted, the last of them (its seq and hash) is stored as the chain's checkpoint,
signed by the Airboss's audit key; `pilot verify audit` checks that signature and verifies what
is left from it, and a chain whose first entries are missing without a checkpoint that covers
them is reported. Entries older than the retention are in the administrator's archive, if it
was made.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

from sqlalchemy import ColumnElement, and_, delete, func, select

from flightdeck.attrsubject import Subject, subject
from flightdeck.crypto import auditchain
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.models import AuditEntry
from flightdeck.errors import UserError
from flightdeck.services.airboss import chain
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
    """Delete the audit rows decided before `before`, in batches; how many.

    A hash chain is cut at its last entry decided before `before` (by seq, so it stays one
    unbroken run): that entry's seq and hash are first stored as the chain's checkpoint, signed
    by the Airboss's audit key, then it and everything before it are deleted. A prune that
    stops halfway leaves rows the checkpoint already covers, which verification skips.
    """
    with db.engine.connect() as conn:
        ends = conn.execute(
            select(AuditEntry.chain, func.max(AuditEntry.seq))
            .where(AuditEntry.at < before, AuditEntry.chain.is_not(None))
            .group_by(AuditEntry.chain)
        ).all()  # fmt: skip
    total = 0
    if ends:
        key = chain.airboss_key()
        for name, last in ends:
            with db.engine.begin() as conn:
                digest = conn.scalar(
                    select(AuditEntry.hash).where(AuditEntry.chain == name, AuditEntry.seq == last)
                )
                chain.checkpoint(conn, key, chain.Head(name, last, str(digest)))
            total += _delete(db, and_(AuditEntry.chain == name, AuditEntry.seq <= last))
    return total + _delete(db, and_(AuditEntry.chain.is_(None), AuditEntry.at < before))


def _delete(db: Database, where: ColumnElement[bool]) -> int:
    total = 0
    while True:
        with db.engine.begin() as conn:
            ids = conn.scalars(
                select(AuditEntry.id).where(where).order_by(AuditEntry.id).limit(BATCH)
            ).all()
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
