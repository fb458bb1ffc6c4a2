"""Suite-wide pytest options and fixtures."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regenerate-golden",
        action="store_true",
        default=False,
        help="rewrite golden files from the current output instead of comparing with them",
    )


# The exit guard (tests/exit_guard.py): a run that hangs after its summary says what hung and
# exits 1 instead of hanging CI. Its hooks, imported here, are pytest's for this conftest.
from exit_guard import pytest_configure, pytest_sessionfinish  # noqa: E402, F401


@pytest.fixture
def regenerate_golden(request: pytest.FixtureRequest) -> bool:
    """True when the run was asked to rewrite golden files (`--regenerate-golden`)."""
    return bool(request.config.getoption("--regenerate-golden"))


# Databases ----------------------------------------------------------------------------------
#
# Every database test runs twice: on a fresh SQLite file and on a fresh schema of the real
# PostgreSQL server named by FLIGHTDECK_TEST_PG_URL (scripts/test.sh starts one). Without that
# variable the PostgreSQL half is skipped with the reason; in CI it is always set.

import io  # noqa: E402
import os  # noqa: E402
import secrets  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

PG_ENV = "FLIGHTDECK_TEST_PG_URL"
VENV_BIN = Path(sys.executable).parent


def _pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database: an SQLite file, or a new schema on the PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'flightdeck.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: scripts/test.sh must start PostgreSQL")
        pytest.skip(f"{PG_ENV} is not set (scripts/test.sh starts a PostgreSQL server)")
    import sqlalchemy

    schema = f"fd_{secrets.token_hex(6)}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield _pg_schema_url(base, schema)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def rocks(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RocksRunner]:
    """Run `rocks` commands in this process against `db_url` (fast, same code path as main)."""
    monkeypatch.setenv("FLIGHTDECK_DB", db_url)
    monkeypatch.delenv("FLIGHTDECK_DEBUG", raising=False)
    runner = RocksRunner(db_url)
    yield runner
    runner.close()


class RocksRunner:
    def __init__(self, url: str) -> None:
        self.url = url

    def __call__(self, *argv: str) -> Result:
        from flightdeck.cli.command import Context
        from flightdeck.cli.main import run

        out, err = io.StringIO(), io.StringIO()
        ctx = Context(out=out, err=err)
        try:
            code = run(list(argv), ctx)
        finally:
            if ctx._db is not None:
                ctx._db.dispose()  # type: ignore[attr-defined]
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *argv: str) -> str:
        """Run and insist on success; returns stdout."""
        r = self(*argv)
        assert r.code == 0, f"rocks {' '.join(argv)} failed ({r.code}): {r.err}"
        return r.out

    def refused(self, *argv: str, says: str) -> str:
        """Run a command that must fail: one `error - ` line naming `says`, a non-zero exit,
        no traceback, nothing on stdout, and not one row of the database changed."""
        before = self.dump()
        r = self(*argv)
        assert r.code in (1, 2), (r.code, r.err)
        assert r.out == ""
        lines = r.err.splitlines()
        assert len(lines) == 1, r.err
        assert lines[0].startswith("error - "), r.err
        assert "Traceback" not in r.err and "internal error" not in r.err
        assert says in lines[0], lines[0]
        assert self.dump() == before
        return lines[0]

    def process(self, argv: Sequence[str], **kw: object) -> subprocess.CompletedProcess[str]:
        """Run the real `rocks` executable of this virtualenv as a separate process."""
        env = dict(os.environ, FLIGHTDECK_DB=self.url)
        env.pop("FLIGHTDECK_DEBUG", None)
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            [str(VENV_BIN / "rocks"), *argv], env=env, capture_output=True, text=True, **kw
        )

    def store_host_attr(self, host: str, name: str, value: str) -> None:
        """Store a host attribute as it is, unchecked: a value `rocks set host attr` would
        refuse, as a database from before it checked values may hold (to test its use)."""
        from sqlalchemy import select

        from flightdeck.db import attrs
        from flightdeck.db.engine import open_database
        from flightdeck.db.models import Host

        db = open_database(self.url)
        try:
            with db.transaction(write=True) as s:
                found = s.scalars(select(Host).where(Host.name == host)).one()
                attrs.set_host(s, found, name, value)
        finally:
            db.dispose()

    def dump(self) -> dict[str, list[tuple[object, ...]]]:
        """Every row of every table, to prove a failed command changed nothing."""
        import sqlalchemy

        from flightdeck.db.models import Base

        engine = sqlalchemy.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return {
                    name: sorted(
                        (tuple(r) for r in conn.execute(table.select())),
                        key=repr,
                    )
                    for name, table in Base.metadata.tables.items()
                }
        finally:
            engine.dispose()

    def close(self) -> None:
        return None


#: The guide's VM server (espresso, public IP 137.110.119.117).
ESPRESSO = (
    "init",
    "frontend",
    "name=espresso.rocksclusters.org",
    "public-ip=137.110.119.117",
    "public-netmask=255.255.255.0",
    "private-ip=10.1.1.1",
    "private-netmask=255.255.0.0",
)


@pytest.fixture
def espresso(rocks: RocksRunner, tmp_path: Path) -> RocksRunner:
    """The guide's physical cluster: espresso plus vm-container-0-0 and vm-container-0-1.

    Each of the three hosts' libvirt is a private libvirt test driver (a `test:///` node file
    of this test), so commands that reach the hypervisor (remove, start, status) work without
    a daemon and never see another test's domains.
    """
    rocks.ok(*ESPRESSO)
    rocks.ok(
        "set", "host", "attr", "frontend-0-0", "libvirt_uri", _test_uri(tmp_path, "frontend-0-0")
    )
    for rank in (0, 1):
        name = f"vm-container-0-{rank}"
        rocks.ok("add", "host", name, "membership=VM Container", "rack=0", f"rank={rank}")
        rocks.ok(
            "add",
            "host",
            "interface",
            name,
            "eth0",
            f"mac=52:54:00:fd:00:0{rank + 1}",
            "ip=auto",
            "subnet=private",
        )
        rocks.ok("set", "host", "attr", name, "libvirt_uri", _test_uri(tmp_path, name))
    return rocks


def _test_uri(tmp_path: Path, name: str) -> str:
    node = tmp_path / f"{name}.xml"
    if not node.exists():
        node.write_text("<node/>\n")
    return f"test://{node}"
