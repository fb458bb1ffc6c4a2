"""The audit log's retention: export for archiving, pruning by hand and by the Airboss.

Rows are written by the audit service itself, dated in the past, with their hash chains; the
export must keep every chain field so an archive still verifies.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import func, select

from flightdeck.crypto import auditchain
from flightdeck.db.engine import open_database
from flightdeck.db.models import AuditEntry
from flightdeck.services.airboss import retention
from flightdeck.services.airboss.audit import AuditRecord, audit, list_audit


def _rows(rocks: Any, n: int, days_old: int, chain: str = "cluster:1") -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_old)
    db = open_database(rocks.url)
    try:
        for i in range(n):
            audit(db, AuditRecord("192.0.2.9", "SHA256:x", "power on", f"vm-{i}", True, "ok",
                                  at=at, chain=chain))
    finally:
        db.dispose()


def _count(rocks: Any) -> int:
    db = open_database(rocks.url)
    try:
        with db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(AuditEntry)).scalar_one())
    finally:
        db.dispose()


def test_export_then_remove_the_old_rows(espresso: Any) -> None:
    _rows(espresso, 7, days_old=40)
    _rows(espresso, 3, days_old=1)
    lines = espresso.ok("report", "airboss", "log", "older=30").splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 7
    # Each archived entry still verifies against its predecessor's hash.
    prev = auditchain.GENESIS
    for e in entries:
        assert e["prev"] == prev
        assert auditchain.entry_hash(prev, e) == e["hash"]
        prev = e["hash"]
    assert len(espresso.ok("report", "airboss", "log").splitlines()) == 10
    out = espresso.ok("remove", "airboss", "log", "older=30")
    assert out.strip() == "removed 7 audit row(s) older than 30 day(s)"
    assert _count(espresso) == 3
    espresso.refused("remove", "airboss", "log", says="older")


def test_the_airboss_prunes_by_the_global_attribute(espresso: Any) -> None:
    _rows(espresso, 5, days_old=100)
    _rows(espresso, 4, days_old=10)
    db = open_database(espresso.url)
    try:
        assert retention.prune_by_setting(db) == (90, 5)  # the default: 90 days
        espresso.ok("set", "attr", "airboss_audit_days", "5")
        assert retention.prune_by_setting(db) == (5, 4)
        _rows(espresso, 2, days_old=1000)
        espresso.ok("set", "attr", "airboss_audit_days", "0")  # keep everything
        assert retention.prune_by_setting(db) == (0, 0)
        assert len(list_audit(db, None)) == 2
    finally:
        db.dispose()
    espresso.refused("set", "attr", "airboss_audit_days", "ninety", says="give whole days")
