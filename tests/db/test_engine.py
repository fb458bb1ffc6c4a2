"""db/engine.py: SQLite write transactions that were asked not to wait (`WriterBusy`), and the
writer queue processes take turns on (`<db>-writer`).

The Airboss's event loop begins a request's first transaction with `flightdeck_nowait`: it must
never wait there, neither for a thread of its own process (the process's writer lock) nor for
another process (SQLite's write lock), and a refused BEGIN must leave the connection as it was.
Another process is played by a second plain `sqlite3` connection to the same file: SQLite's
locks are per connection, so it is refused the same way. For the writer queue, another process
is played by a second open file description of `<db>-writer`: `flock` locks belong to those.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from flightdeck.db.engine import BUSY_TIMEOUT_MS, Database, WriterBusy, open_database


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = open_database(f"sqlite:///{tmp_path / 'site.db'}", create=True)
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE marks (n INTEGER)"))
    yield db
    db.dispose()


def _nowait(db: Database, n: int) -> None:
    """One write transaction that must not wait: insert `n`."""
    with db.engine.connect() as conn:
        conn.execution_options(flightdeck_write=True, flightdeck_nowait=True)
        with conn.begin():
            conn.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})


def _marks(db: Database) -> list[int]:
    with db.engine.connect() as conn:
        return [n for (n,) in conn.execute(text("SELECT n FROM marks ORDER BY n"))]


def _busy_timeout(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one())


def _writer_thread(db: Database, n: int) -> tuple[threading.Thread, threading.Event]:
    """A started thread making one waiting write transaction (insert `n`); the event is set
    when it has committed."""
    done = threading.Event()

    def writer() -> None:
        with db.transaction(write=True) as s:
            s.execute(text("INSERT INTO marks VALUES (:n)"), {"n": n})
        done.set()

    t = threading.Thread(target=writer)
    t.start()
    return t, done


def test_a_free_write_lock_is_taken_and_the_write_commits(sqlite_db: Database) -> None:
    _nowait(sqlite_db, 1)
    assert _marks(sqlite_db) == [1]


def test_another_process_holding_the_write_lock_is_refused_at_once(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Waiting would take BUSY_TIMEOUT_MS (60 s) and end in OperationalError; `WriterBusy`
    is raised only by the BEGIN that did not wait."""
    other = sqlite3.connect(tmp_path / "site.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(WriterBusy, match="another process"):
            _nowait(sqlite_db, 1)
        # The refused BEGIN gave the process's lock back and the busy timeout its value.
        with sqlite_db.engine.connect() as conn:
            assert _busy_timeout(conn) == BUSY_TIMEOUT_MS
    finally:
        other.execute("COMMIT")
        other.close()
    _nowait(sqlite_db, 2)  # free again: nothing of the refusal is left behind
    with sqlite_db.engine.connect() as conn:
        assert _busy_timeout(conn) == BUSY_TIMEOUT_MS
    assert _marks(sqlite_db) == [2]


def test_a_thread_of_this_process_writing_is_not_waited_for(sqlite_db: Database) -> None:
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with sqlite_db.transaction(write=True) as s:
            s.execute(text("INSERT INTO marks VALUES (7)"))
            holding.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert holding.wait(30)
        with pytest.raises(WriterBusy, match="this process"):
            _nowait(sqlite_db, 1)
    finally:
        release.set()
        t.join(30)
    _nowait(sqlite_db, 8)
    assert _marks(sqlite_db) == [7, 8]


def test_a_waiting_writer_still_waits_for_another_process(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Without `flightdeck_nowait` nothing changed: the writer waits its turn, then writes."""
    other = sqlite3.connect(tmp_path / "site.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    t, done = _writer_thread(sqlite_db, 3)
    assert not done.wait(0.5)  # still waiting for the other connection
    other.execute("COMMIT")
    other.close()
    t.join(30)
    assert done.is_set() and _marks(sqlite_db) == [3]


def _queue_is_free(path: Path) -> bool:
    """Whether another process could take the writer queue `path` now (it is given back)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # the last descriptor of this description: its lock, if any, goes too
    return True


def test_a_write_transaction_holds_the_writer_queue_until_it_ends(
    sqlite_db: Database, tmp_path: Path
) -> None:
    queue = tmp_path / "site.db-writer"
    with sqlite_db.transaction(write=True) as s:
        s.execute(text("INSERT INTO marks VALUES (1)"))
        assert queue.stat().st_mode & 0o777 == 0o600  # as private as the database
        assert not _queue_is_free(queue)
    assert _queue_is_free(queue)
    with pytest.raises(RuntimeError), sqlite_db.transaction(write=True) as s:
        s.execute(text("INSERT INTO marks VALUES (2)"))
        raise RuntimeError("rolled back")
    assert _queue_is_free(queue)
    with sqlite_db.transaction() as s:  # a reader never queues
        s.execute(text("SELECT n FROM marks")).all()
        assert _queue_is_free(queue)
    assert _marks(sqlite_db) == [1]


def test_a_connection_that_only_reads_never_opens_the_writer_queue(
    sqlite_db: Database, tmp_path: Path
) -> None:
    """Read-only commands (and a reader that may not create files there) leave it alone."""
    with sqlite_db.transaction() as s:
        s.execute(text("SELECT n FROM marks")).all()
    assert not (tmp_path / "site.db-writer").exists()
    _nowait(sqlite_db, 1)
    assert (tmp_path / "site.db-writer").exists()


def _hold_queue(tmp_path: Path) -> int:
    fd = os.open(tmp_path / "site.db-writer", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_another_process_in_the_writer_queue_refuses_a_writer_that_must_not_wait(
    sqlite_db: Database, tmp_path: Path
) -> None:
    fd = _hold_queue(tmp_path)
    try:
        with pytest.raises(WriterBusy, match="another process"):
            _nowait(sqlite_db, 1)
    finally:
        os.close(fd)
    _nowait(sqlite_db, 2)  # the refused writer left neither lock behind
    assert _marks(sqlite_db) == [2]


def test_a_waiting_writer_takes_its_turn_when_the_other_process_leaves_the_queue(
    sqlite_db: Database, tmp_path: Path
) -> None:
    fd = _hold_queue(tmp_path)
    t, done = _writer_thread(sqlite_db, 4)
    try:
        assert not done.wait(0.5)  # queued behind the other process: SQLite alone would not wait
    finally:
        os.close(fd)
    t.join(30)
    assert done.is_set() and _marks(sqlite_db) == [4]


def test_a_writer_queue_that_cannot_be_opened_leaves_the_ordering_to_sqlite(
    tmp_path: Path,
) -> None:
    """E.g. a read-only directory or a file of another owner: writes go on through SQLite's
    own lock and busy wait."""
    (tmp_path / "site.db-writer").mkdir()  # os.open of it fails, whoever runs the test
    db = open_database(f"sqlite:///{tmp_path / 'site.db'}", create=True)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE marks (n INTEGER)"))
        _nowait(db, 5)
        with db.transaction(write=True) as s:
            s.execute(text("INSERT INTO marks VALUES (6)"))
        assert _marks(db) == [5, 6]
    finally:
        db.dispose()
