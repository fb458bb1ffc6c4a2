"""db/tables.py: the one schema definition, the ORM mapped onto it, and a Core read path.

The schema's own integrity (constraints, cascades, migration == metadata) is tested in
test_schema.py; here: the models take their tables from `tables` instead of defining their own,
the Core modules import no ORM, and `reading_core` is the same transaction as `reading`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flightdeck.db import tables
from flightdeck.db.engine import Database, open_database


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url, create=True)
    yield database
    database.dispose()


def test_every_model_is_mapped_onto_a_table_of_tables_and_every_table_has_a_model() -> None:
    from flightdeck.db import models

    assert models.Base.metadata is tables.metadata
    mapped = {m.class_.__name__: m.local_table for m in models.Base.registry.mappers}
    assert set(mapped.values()) == set(tables.metadata.tables.values())
    for name, table in mapped.items():
        assert table is getattr(tables, table.name), f"{name} defines its own table"


def test_model_attributes_are_the_table_columns() -> None:
    from flightdeck.db import models

    for mapper in models.Base.registry.mappers:
        assert set(mapper.columns.keys()) == set(mapper.local_table.columns.keys()), mapper
        for column in mapper.local_table.columns:
            # An attribute that is not the column itself would mean a second definition.
            assert mapper.columns[column.key] is column


def test_python_side_defaults_still_fill_orm_inserts(db: Database) -> None:
    """Defaults live on the Core columns now; a host added through the ORM still gets them."""
    from flightdeck.db.models import Appliance, Host

    with db.transaction(write=True) as s:
        app = Appliance(name="compute", membership="Compute")
        s.add(app)
        s.flush()
        host = Host(name="c", appliance_id=app.id)
        s.add(host)
        s.flush()
        assert (host.rack, host.rank, host.cpus, host.os, app.public) == (0, 0, 1, "linux", False)
        assert (host.run_action, host.install_action) == ("os", "install")


CORE_MODULES = (
    "flightdeck.db.tables",
    "flightdeck.db.engine",
    "flightdeck.db.hostexpr",
    "flightdeck.services.base",
    "flightdeck.services.listings",
    "flightdeck.services.network_read",
    "flightdeck.db.attrcore",
)


def _imported_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


@pytest.mark.parametrize("module", CORE_MODULES)
def test_the_core_read_path_imports_no_orm(module: str) -> None:
    loaded = _imported_after(module)
    assert module in loaded
    assert "sqlalchemy.orm" not in loaded
    assert "flightdeck.db.models" not in loaded


def test_the_orm_check_sees_the_orm_when_it_is_imported() -> None:
    """The check above can fail: a module that needs the models shows both."""
    loaded = _imported_after("flightdeck.services.inventory")
    assert {"sqlalchemy.orm", "flightdeck.db.models"} <= loaded


# reading_core: the same read transaction as reading() -----------------------------------------


def _add_network(db: Database, name: str) -> None:
    with db.engine.begin() as c:
        c.execute(
            tables.networks.insert().values(
                name=name, subnet="10.9.0.0", netmask="255.255.0.0", mtu=1500
            )
        )


def _two_reads_around_a_write(db: Database, core: bool) -> tuple[int, int]:
    """Count networks, let another connection commit one, count again in the same block."""
    query = sa.select(sa.func.count()).select_from(tables.networks)
    ctx = db.reading_core() if core else db.transaction(write=False)
    with ctx as conn:
        first = int(conn.execute(query).scalar_one())
        _add_network(db, f"n{first}-{core}")
        second = int(conn.execute(query).scalar_one())
    return first, second


def test_reading_core_sees_what_reading_sees_around_a_concurrent_write(db: Database) -> None:
    # SQLite: one snapshot from the first read (WAL), so the second count is unchanged.
    # PostgreSQL: READ COMMITTED, so it moves. Either way Core and ORM reads must agree.
    orm = _two_reads_around_a_write(db, core=False)
    core = _two_reads_around_a_write(db, core=True)
    assert core[1] - core[0] == orm[1] - orm[0]
    assert core[0] == orm[0] + 1
    if db.dialect == "sqlite":
        assert core[0] == core[1]


def test_reading_core_is_one_transaction_with_the_sqlite_pragmas(db: Database) -> None:
    with db.reading_core() as conn:
        assert conn.in_transaction()
        if db.dialect == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000


def test_an_error_inside_reading_core_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError), db.reading_core() as conn:
        conn.execute(
            tables.networks.insert().values(
                name="x", subnet="10.9.0.0", netmask="255.255.0.0", mtu=1500
            )
        )
        raise RuntimeError("boom")
    with db.reading_core() as conn:
        assert conn.execute(sa.select(tables.networks.c.name)).all() == []
