"""Linking audit rows into their chain: one statement when this process wrote the head last,
and never a fork when someone else did, or when a link of ours was rolled back.

On both databases: the remembered head is only a guess, checked by the statement that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event, select

from flightdeck.crypto import auditchain
from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import AuditEntry
from flightdeck.services.airboss import chain
from flightdeck.services.airboss.audit import AuditRecord, audit, audit_in

CHAIN = "cluster:7"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url, create=True)
    try:
        yield database
    finally:
        database.dispose()


def _record(target: str) -> AuditRecord:
    return AuditRecord("192.0.2.9", "SHA256:k", "power on", target, True, "ok", chain=CHAIN)


def _verified_seqs(db: Database) -> list[int]:
    """The chain's entries in order, each checked against its predecessor's hash."""
    with db.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry).where(AuditEntry.chain == CHAIN).order_by(AuditEntry.seq)
        ).all()
    prev = auditchain.GENESIS
    for r in rows:
        entry = {f: getattr(r, f) for f in auditchain.FIELDS}
        entry["at"] = auditchain.moment(r.at)
        assert r.prev == prev and auditchain.entry_hash(prev, entry) == r.hash, r.seq
        prev = r.hash
    return [r.seq for r in rows]


def _statements(db: Database) -> tuple[list[str], Any]:
    seen: list[str] = []

    def note(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement.split()[0].upper())

    event.listen(db.engine, "before_cursor_execute", note)
    return seen, note


def test_after_its_own_link_a_process_links_in_one_statement(db: Database) -> None:
    audit(db, _record("vm-1"))
    seen, note = _statements(db)
    try:
        audit(db, _record("vm-2"))
    finally:
        event.remove(db.engine, "before_cursor_execute", note)
    assert seen == ["UPDATE", "INSERT"]  # the head moved on from the one remembered; the row
    assert _verified_seqs(db) == [1, 2]


def test_an_append_by_someone_else_is_linked_after_never_over(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit(db, _record("vm-1"))
    # Another process (its own memory of heads) appends twice; ours still remembers seq 1.
    with monkeypatch.context() as other:
        other.setattr(chain, "_HEADS", chain._Heads())
        audit(db, _record("vm-2"))
        audit(db, _record("vm-3"))
    audit(db, _record("vm-4"))
    assert _verified_seqs(db) == [1, 2, 3, 4]


def test_a_rolled_back_link_leaves_the_chain_whole(db: Database) -> None:
    audit(db, _record("vm-1"))
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        audit_in(conn, _record("vm-never"))  # remembered as seq 2, then rolled back
        raise RuntimeError("the request's transaction fails")
    audit(db, _record("vm-2"))
    audit(db, _record("vm-3"))
    assert _verified_seqs(db) == [1, 2, 3]


def test_a_head_changed_at_the_same_seq_is_not_trusted(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our link at seq 2 rolled back, and another writer then made its own seq 2: the guess
    has the right seq and the wrong hash, and must not be used."""
    audit(db, _record("vm-1"))
    with pytest.raises(RuntimeError), db.engine.begin() as conn:
        audit_in(conn, _record("vm-never"))
        raise RuntimeError("rolled back")
    with monkeypatch.context() as other:
        other.setattr(chain, "_HEADS", chain._Heads())
        audit(db, _record("vm-2"))
    audit(db, _record("vm-3"))
    assert _verified_seqs(db) == [1, 2, 3]
