"""A real `rocksd` process for tests, and `rocks` processes that may be served by it.

The socket lives in a short directory under /tmp of its own (a Unix socket's path is limited to
108 bytes, which pytest's tmp_path can exceed).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


@dataclass
class Rocksd:
    proc: subprocess.Popen[bytes]
    socket: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 20.0, count: int = 1) -> str:
        """The log once it contains `text` `count` times (the server writes a line after the
        client may have returned)."""
        deadline = time.monotonic() + timeout
        while (log := self.log()).count(text) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in rocksd's log:\n{log}")
            time.sleep(0.02)
        return log

    def env(self, base: dict[str, str]) -> dict[str, str]:
        out = dict(base, FLIGHTDECK_RESIDENT_SOCKET=self.socket)
        out.pop("FLIGHTDECK_RESIDENT", None)
        return out


@contextmanager
def rocksd(
    env: dict[str, str],
    *extra: str,
    command: Sequence[str] | None = None,
    sock: str | None = None,
) -> Iterator[Rocksd]:
    """A running `rocksd` (stopped with SIGTERM at the end) once its socket listens (`sock`, or
    one in a new directory)."""
    run_dir = tempfile.mkdtemp(prefix="fdrd", dir="/tmp")
    sock = sock or os.path.join(run_dir, "run", "rocks.sock")
    log_path = Path(run_dir) / "rocksd.log"
    cmd = [*(command or [str(VENV_BIN / "rocksd")]), "--socket", sock, *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    server = Rocksd(proc, sock, log_path)
    try:
        server.wait_log("listening on", timeout=60)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(run_dir, ignore_errors=True)


def rocks(
    argv: Sequence[str], env: dict[str, str], **kw: object
) -> subprocess.CompletedProcess[str]:
    """`rocks argv` as a process, the way a user runs it (the venv's script)."""
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [str(VENV_BIN / "rocks"), *argv], env=env, capture_output=True, text=True, timeout=120, **kw
    )
