"""`airboss serve` as a child process of a test, and the database reads its tests make.

One way to start the real daemon for the tests that need sockets (tests/airboss/conftest.py's
`site.server()`, the console and browser end-to-end labs): a free loopback port, pid, state and
log files under the test's directory, and the wait until its state file says where it listens.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VENV_BIN = Path(sys.executable).parent


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    pid_file: Path
    log: Path

    @property
    def address(self) -> str:
        return self.url.split("://", 1)[1]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def start_airboss(
    tmp: Path,
    database: str,
    *args: str,
    name: str = "airboss",
    env: Mapping[str, str] | None = None,
    timeout: float = 30,
    prefix: Sequence[str] = (),
) -> Server:
    """`airboss serve --database <database> [args]` on 127.0.0.1 and a free port, once it listens.

    Its files are `<tmp>/<name>.pid`, `.json` (state) and `.log`; `env` replaces the environment
    (None: this process's). An AssertionError with the log when it exits or does not start.
    """
    pid_file = tmp / f"{name}.pid"
    state = pid_file.with_suffix(".json")
    log = pid_file.with_suffix(".log")
    cmd = [*prefix, str(VENV_BIN / "airboss"), "serve", "--listen", "127.0.0.1:0",
           "--database", database, "--pid-file", str(pid_file), *args]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=None if env is None else dict(env)
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists():
            try:
                url = json.loads(state.read_text())["url"]
            except (ValueError, KeyError):
                url = None
            if url:
                return Server(url, proc, pid_file, log)
        if proc.poll() is not None:
            raise AssertionError(f"airboss exited {proc.returncode}: {log.read_text()}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise AssertionError(f"airboss did not start: {log.read_text()}")


def audit_rows(database: str, n: int) -> list[Any]:
    """The last `n` rows of the Airboss's audit log, oldest first."""
    from flightdeck.db.engine import open_database
    from flightdeck.services.airboss.audit import list_audit

    db = open_database(database)
    try:
        return list_audit(db, n)
    finally:
        db.dispose()


def first_macs(database: str, frontend: str) -> dict[str, str]:
    """Node name -> its first MAC, for the virtual cluster of `frontend`."""
    from flightdeck.db.engine import open_database
    from flightdeck.services.clusters import cluster_macs

    db = open_database(database)
    try:
        return {name: macs[0] for macs, name in cluster_macs(db, frontend)}
    finally:
        db.dispose()
