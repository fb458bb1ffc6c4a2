"""Constant statements compiled once per database dialect, for the Airboss's hot path.

SQLAlchemy finds every statement it executes in its compiled cache again on every call: it
hashes and compares the statement's cache key (a nested tuple as large as the statement) and
binds the values it extracted from it anew. Measured here on SQLite (`bench/airboss_cpu.py`
and a per-statement timing, one core): 9 us of 30 for the gate's key-and-scope SELECT, 11 of
35 for the target's, 13-18 of 130 for a cluster's members. A signed request runs six.

A `Prepared` statement is a module constant that never changes, so it is compiled once per
dialect (and, for an INSERT or UPDATE that takes its columns from the parameters, once per set
of parameter names) and that compiled form is executed: SQLAlchemy's own path for a `Compiled`,
with the same SQL, bind and result type processing, `rowcount`, `inserted_primary_key` and
RETURNING as its cached one; only the lookup is skipped. A `Session` (the ORM) runs the
statement itself, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import Compiled
from sqlalchemy.sql.dml import ValuesBase

#: Where a dialect keeps the statements compiled for it: on the dialect itself, so that they go
#: when its engine goes (a compiled statement refers to its dialect, so a cache outside it,
#: even a weak one, would keep every engine's dialect alive).
_STORE = "_flightdeck_prepared"


class Prepared:
    """One constant statement, compiled on first use with each dialect (thread-safe: two
    threads may both compile it once, and either result is the same)."""

    __slots__ = ("_dml", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        #: An INSERT or UPDATE may take its columns from the parameters' names.
        self._dml = isinstance(statement, ValuesBase)

    def execute(self, conn: Any, params: Mapping[str, Any] | None = None) -> CursorResult[Any]:
        """Run it on `conn` (a `Connection`; a `Session` runs the statement as such)."""
        if not isinstance(conn, Connection):
            return cast("CursorResult[Any]", conn.execute(self.statement, params))
        names = tuple(sorted(params)) if self._dml and params else ()
        compiled = self.compiled(conn.dialect, names)
        # A `Compiled` runs as its statement would (`Connection._execute_compiled`), without
        # the cache key; it is not typed as an `Executable`.
        return conn.execute(cast(Any, compiled), params)

    def compiled(self, dialect: Dialect, names: tuple[str, ...] = ()) -> Compiled:
        """Its compiled form for `dialect` (and an INSERT's or UPDATE's column `names`)."""
        store: dict[tuple[Prepared, tuple[str, ...]], Compiled]
        store = dialect.__dict__.setdefault(_STORE, {})
        found = store.get((self, names))
        if found is None:
            found = store[(self, names)] = self.statement.compile(  # type: ignore[attr-defined]
                dialect=dialect, column_keys=list(names) if names else None
            )
        return cast(Compiled, found)
