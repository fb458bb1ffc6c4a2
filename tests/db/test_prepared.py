"""Statements compiled once: the same rows, counts, keys and types as SQLAlchemy's own path,
on both databases, without the per-call cache key."""

from __future__ import annotations

import datetime as dt
import gc
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from flightdeck.db.prepared import Prepared

META = sa.MetaData()
ITEMS = sa.Table(
    "prepared_items",
    META,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(40), nullable=False),
    sa.Column("on", sa.Boolean, nullable=False),
    sa.Column("at", sa.DateTime(timezone=True)),
)
SELECT = Prepared(
    sa.select(ITEMS.c.id, ITEMS.c.name, ITEMS.c.on, ITEMS.c.at, ITEMS.c.id == sa.bindparam("one"))
    .where(ITEMS.c.name.in_(sa.bindparam("names", expanding=True)))
    .order_by(ITEMS.c.id)
    .limit(5)
)
INSERT = Prepared(sa.insert(ITEMS))
RENAME = Prepared(
    sa.update(ITEMS).where(ITEMS.c.name == sa.bindparam("was")).values(name=sa.bindparam("new"))
)
MOMENT = dt.datetime(2026, 12, 6, 13, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = sa.create_engine(db_url)
    META.create_all(eng)
    try:
        yield eng
    finally:
        eng.dispose()


def _fill(conn: sa.Connection) -> list[int]:
    rows: list[dict[str, Any]] = [
        {"name": "a", "on": True, "at": MOMENT},
        {"name": "b", "on": False},  # no `at`: another set of columns
        {"name": "c", "on": True, "at": None},
    ]
    return [int(INSERT.execute(conn, row).inserted_primary_key[0]) for row in rows]  # type: ignore[index]


def test_rows_and_types_are_sqlalchemys_own(engine: sa.Engine) -> None:
    params: dict[str, Any] = {"names": ["a", "b", "zz"], "one": 1}
    with engine.begin() as conn:
        ids = _fill(conn)
        ours = SELECT.execute(conn, params).all()
        theirs = conn.execute(SELECT.statement, params).all()  # type: ignore[call-overload]
    assert ours == theirs
    assert [(r.name, r.on) for r in ours] == [("a", True), ("b", False)]
    assert ours[0][1:4] == ("a", True, ours[0].at)
    assert ours[0].at.replace(tzinfo=dt.UTC) == MOMENT  # SQLite keeps no zone: the type's own
    assert type(ours[0].on) is bool and type(ours[0][4]) is bool  # result processing kept
    assert ours[0].id == ids[0]


def test_dml_columns_follow_the_parameters_and_rowcount_is_kept(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        _fill(conn)
        assert RENAME.execute(conn, {"was": "a", "new": "x"}).rowcount == 1
        assert RENAME.execute(conn, {"was": "nobody", "new": "y"}).rowcount == 0
        names = conn.execute(sa.select(ITEMS.c.name, ITEMS.c.at).order_by(ITEMS.c.id)).all()
    assert [n for n, _ in names] == ["x", "b", "c"]
    assert names[1].at is None and names[2].at is None
    # The INSERT was compiled once per set of column names it was given (two sets above).
    store = engine.dialect.__dict__["_flightdeck_prepared"]
    assert sorted(len(names) for p, names in store if p is INSERT) == [2, 3]


def test_the_compiled_cache_is_not_consulted_per_call(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The point of it: SQLAlchemy's path looks every call up in its compiled cache."""
    with engine.begin() as conn:
        _fill(conn)
        SELECT.execute(conn, {"names": ["a"], "one": 1}).all()  # compiled here, once
        calls: list[object] = []
        real = sa.sql.ClauseElement._compile_w_cache

        def counted(self: sa.sql.ClauseElement, *args: Any, **kw: Any) -> Any:
            calls.append(self)
            return real(self, *args, **kw)

        monkeypatch.setattr(sa.sql.ClauseElement, "_compile_w_cache", counted)
        assert len(SELECT.execute(conn, {"names": ["b", "c"], "one": 2}).all()) == 2
        assert RENAME.execute(conn, {"was": "b", "new": "d"}).rowcount == 1
        assert calls == []
        conn.execute(SELECT.statement, {"names": ["b"], "one": 2}).all()  # type: ignore[call-overload]
        assert calls == [SELECT.statement], "the test no longer sees SQLAlchemy's own lookup"


def test_a_session_runs_the_statement_itself(engine: sa.Engine) -> None:
    with Session(engine) as s, s.begin():
        _fill(s.connection())
        rows = SELECT.execute(s, {"names": ["c"], "one": 0}).all()
    assert [r.name for r in rows] == ["c"]


def test_a_dropped_engines_compiled_forms_go_with_it(tmp_path: Any) -> None:
    import weakref

    eng = sa.create_engine(f"sqlite:///{tmp_path / 'gone.db'}")
    META.create_all(eng)
    with eng.begin() as conn:
        SELECT.execute(conn, {"names": [], "one": 0}).all()
    gone = weakref.ref(eng.dialect)
    kept = weakref.ref(SELECT.compiled(eng.dialect))
    eng.dispose()
    del eng, conn
    gc.collect()
    assert gone() is None and kept() is None
