"""Opening the database: engine settings, schema upgrades and transactions.

SQLite is the embedded default. It runs in WAL mode with a long busy timeout, and every write
transaction starts with `BEGIN IMMEDIATE`, so concurrent `rocks` processes queue for the write
lock instead of failing with "database is locked" when a reader tries to upgrade. Threads of one
process queue on a lock of that process first (`WriterConnection`): SQLite's own wait polls
with sleeps of 1 ms growing to 100 ms, which gave the Airboss's database threads a p99 of ~240 ms
under ten clients. Processes then queue on an advisory lock of a file beside the database
(`<db>-writer`, `flock`), polled every 50 us to 1 ms: two Airboss replicas on one SQLite file
had a p99 of ~340 ms through SQLite's wait. On PostgreSQL
a write transaction takes a transaction-level advisory lock for the same effect: allocations
(next MAC, next IP, next VLAN) are read-then-write and must not interleave.

This module must not import `sqlalchemy.orm` at import time: read-only commands open the database
through it and query Core tables (`reading_core`), and the ORM import alone costs them ~70 ms.
`Session` is imported where a session is made.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from flightdeck import config
from flightdeck.errors import DriverError, NotFound

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The Alembic revision this code expects; a database behind it is upgraded when opened.
SCHEMA_HEAD = "0004"
#: How long a writer waits for another writer (milliseconds).
BUSY_TIMEOUT_MS = 60_000
#: Advisory lock key for write transactions on PostgreSQL ("VM" = 86 77, as the Airboss port).
PG_WRITE_LOCK = 8677

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_HAS_VERSION_TABLE = (
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
)


_BEGIN_WRITE = "BEGIN IMMEDIATE"
_BEGIN_READ = "BEGIN DEFERRED"
#: One per process: the write transactions of its threads take turns here, woken at once when
#: the previous one ends; then the process takes its turn among processes (`_open_queue`).
_WRITER = threading.Lock()
#: Polling the other processes' writer: first pause and longest pause (seconds). A write
#: transaction of the Airboss holds the lock ~0.1-0.5 ms; SQLite's own wait starts at 1 ms.
_POLL_FIRST, _POLL_MAX = 50e-6, 1e-3


def _open_queue(path: str) -> BinaryIO | None:
    """The writer-queue file `path` (`<database>-writer`), opened for one connection, or None
    when it cannot be opened for writing (a read-only directory, another owner): SQLite's own
    lock and busy wait still order the writers then, only slower. The lock is only a queue:
    SQLite's lock remains the guard. Each connection has its own open file (a `flock` belongs
    to that): the process's writer lock, taken first, keeps two of them from queueing at once."""
    try:
        return open(  # closed with the connection
            path, "ab", buffering=0,
            opener=lambda name, flags: os.open(name, flags | os.O_CLOEXEC, 0o600),
        )  # fmt: skip
    except OSError:
        return None


def _take_turn(queue: BinaryIO, wait: bool) -> None:
    """Lock the writer-queue file: at once or `WriterBusy` (`wait=False`), else polling
    until BUSY_TIMEOUT_MS has passed. The kernel drops the lock when its process dies."""
    pause = _POLL_FIRST
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not wait:
                raise WriterBusy("another process holds the database's write lock") from None
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(
                    "database is locked (by a writer of another process)"
                ) from None
        time.sleep(pause)
        pause = min(pause * 2, _POLL_MAX)


class WriterBusy(Exception):
    """A write transaction that was asked not to wait found the write lock taken (by a thread
    of this process or by another process): nothing was done, try again where waiting is
    allowed. The Airboss's event loop starts a request's first transaction this way and hands
    it to a database thread only then (`airboss.app`)."""


class WriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose write transactions hold the process's writer lock, and the
    database's writer-queue file lock, from `BEGIN IMMEDIATE` to their commit or rollback (both
    are released after those)."""

    _holds = False
    _queued = False
    #: The writer queue, `<database>-writer`: its path until it is opened, at the first write
    #: transaction (a connection that only reads never touches it); None for an in-memory or
    #: URI database, or once it could not be opened.
    _queue_path: str | None = None
    _queue: BinaryIO | None = None

    def __init__(self, database: str | bytes | os.PathLike[str], *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        path = os.fsdecode(database)
        if not kwargs.get("uri") and path not in ("", ":memory:"):
            self._queue_path = f"{path}-writer"

    def _writer_queue(self) -> BinaryIO | None:
        if self._queue is None and self._queue_path is not None:
            self._queue = _open_queue(self._queue_path)
            if self._queue is None:
                self._queue_path = None  # not tried again for every transaction
        return self._queue

    def begin_write(self, *, wait: bool = True) -> None:
        """`BEGIN IMMEDIATE` behind the process's writer lock, then the writer queue.
        `wait=False`: raise `WriterBusy` at once rather than wait for any of the locks (SQLite's
        busy timeout is 0 for that BEGIN only; once it succeeds, WAL mode has nothing left to
        wait for but a commit's rare checkpoint, which gets the usual timeout back)."""
        if not wait:
            if not _WRITER.acquire(blocking=False):
                raise WriterBusy("a writer of this process holds the write lock")
        elif not _WRITER.acquire(timeout=BUSY_TIMEOUT_MS / 1000):
            raise sqlite3.OperationalError("database is locked (by a writer of this process)")
        self._holds = True
        try:
            queue = self._writer_queue()
            if queue is not None:
                _take_turn(queue, wait)
                self._queued = True
            if wait:
                self.execute(_BEGIN_WRITE)
            else:
                self._begin_at_once()
        except BaseException:
            self._release()
            raise

    def _begin_at_once(self) -> None:
        self.execute("PRAGMA busy_timeout = 0")
        try:
            self.execute(_BEGIN_WRITE)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                raise
            raise WriterBusy("another process holds the database's write lock") from None
        finally:
            self.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _release(self) -> None:
        if self._queued and self._queue is not None:
            self._queued = False
            fcntl.flock(self._queue, fcntl.LOCK_UN)
        if self._holds:
            self._holds = False
            _WRITER.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()
            if self._queue is not None:
                self._queue.close()


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's begin event below.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # On the driver's connection: through `exec_driver_sql` a BEGIN cost ~50 us of
        # SQLAlchemy's statement machinery, for a statement with no parameters and no result.
        # Every connection is a `WriterConnection` (the engine's `factory`, set below).
        driver = conn.connection.driver_connection
        options = conn.get_execution_options()
        if options.get("flightdeck_write"):
            driver.begin_write(wait=not options.get("flightdeck_nowait"))
        else:
            driver.execute(_BEGIN_READ)


class Database:
    """One database: an engine plus the transaction discipline every service uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, Any] = {}
        if self.dialect == "sqlite":
            kwargs["connect_args"] = {
                "timeout": BUSY_TIMEOUT_MS / 1000,
                "factory": WriterConnection,
            }
        self.engine = create_engine(url, **kwargs)
        if self.dialect == "sqlite":
            _sqlite_setup(self.engine)

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        from sqlalchemy.orm import Session

        with self.engine.connect() as conn:
            conn.execution_options(flightdeck_write=write)
            with (
                Session(bind=conn, expire_on_commit=False, autoflush=True) as session,
                session.begin(),
            ):
                if write and self.dialect == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_WRITE_LOCK})
                yield session

    @contextlib.contextmanager
    def reading_core(self) -> Iterator[Connection]:
        """A Core connection in one read transaction, for listings that never load the ORM.

        The same transaction as `transaction(write=False)`: on SQLite a deferred `BEGIN` (one
        snapshot from the first read; the connect event has set the pragmas), on PostgreSQL the
        server's default isolation and no advisory lock. For reads only (nothing enforces it,
        as with `transaction(write=False)`).
        """
        with self.engine.connect() as conn:
            conn.execution_options(flightdeck_write=False)
            with conn.begin():
                yield conn

    def revision(self) -> str | None:
        """The schema revision stored in the database, or None when it has no schema yet."""
        # Ask the catalogue rather than guessing from an error: a database that cannot be read
        # (permissions, locked, server down) must say so, not claim it has no schema.
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                exists = SQLITE_HAS_VERSION_TABLE
                found = conn.execute(text(exists)).first() is not None
            else:
                found = inspect(conn).has_table("alembic_version")
            if not found:
                return None
            row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
        return row[0] if row else None

    def upgrade(self) -> None:
        """Create or upgrade the schema to SCHEMA_HEAD with Alembic (imported only here)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


@contextlib.contextmanager
def core_reads(source: Database | Connection) -> Iterator[Connection]:
    """Reads on a bare Core connection: `source.reading_core()`, or `source` itself when it
    is a connection, i.e. a transaction the caller holds open (the Airboss's request's own),
    so that a request's reads and writes are one transaction. For reads of a few columns,
    where an ORM session would cost more than the queries themselves."""
    if isinstance(source, Connection):
        yield source
        return
    with source.reading_core() as conn:
        yield conn


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _create_private(path: Path) -> None:
    """Create the SQLite file 0600, and each directory it needs 0700, whatever the umask.

    The database holds every tenant's MACs, IPs, keys and audit: only root reads it. SQLite
    gives its -wal and -shm files the database file's own mode, so they follow. A site that
    wants an admin group to read it may `chgrp` and `chmod g+rX` the directory and files; those
    modes are then kept (see docs/provisioning.md, "Threat model").
    """
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    os.chmod(path, 0o600)


def _take_others_out(path: Path) -> None:
    """No access for 'other' on the database, its WAL files, its writer queue and the state
    directory.

    For sites made before Flightdeck created them private (`rocks init frontend` again). Group
    bits are left as the administrator set them.
    """
    files = [path, *(path.with_name(f"{path.name}-{x}") for x in ("wal", "shm", "writer"))]
    if path.parent == config.state_dir():
        files.append(path.parent)
    for f in files:
        try:
            mode = f.stat().st_mode & 0o7777
        except FileNotFoundError:
            continue
        if mode & 0o007:
            os.chmod(f, mode & ~0o007)


def open_database(url: str | None = None, *, create: bool = False) -> Database:
    """Open the site database, upgrading its schema if this code is newer.

    With `create`, a missing SQLite file (and its directory) is created, readable by root only
    (an existing one loses any access by 'other'); otherwise a missing database is a NotFound
    that tells the user to run `rocks init frontend`.
    """
    url = url or config.database_url()
    path = _sqlite_path(url)
    if path is not None and not path.exists():
        if not create:
            raise NotFound(
                f"no Flightdeck database at {path}: run 'rocks init frontend' first "
                "(or set FLIGHTDECK_HOME / FLIGHTDECK_DB)"
            )
        _create_private(path)
    elif path is not None and create:
        _take_others_out(path)
    db = Database(url)
    try:
        current = db.revision()
    except Exception as exc:
        db.dispose()
        # The driver's own message, first line only (SQLAlchemy appends SQL and a help link).
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise DriverError(
            f"cannot open the database {make_url(url).render_as_string()}: "
            f"{detail[0] if detail else type(exc).__name__}"
        ) from exc
    if current != SCHEMA_HEAD:
        if current is None and not create:
            raise NotFound(
                f"the database {make_url(url).render_as_string()} has no Flightdeck schema: "
                "run 'rocks init frontend' first"
            )
        db.upgrade()
    return db
