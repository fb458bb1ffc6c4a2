"""Running the Airboss in the foreground: bind, write the pid file, serve, shut down cleanly.

The socket is bound before anything is announced, so when the pid file (and the state file
next to it, which says where it listens) appear, the Airboss accepts connections. uvicorn
handles SIGTERM and SIGINT: it stops accepting, lets open requests finish, runs the shutdown
of the application, and `serve` returns; the pid and state files are then removed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from flightdeck.airboss.config import Settings, check_transport, is_loopback

if TYPE_CHECKING:
    import uvicorn

    from flightdeck.airboss.connections import ConnectionGuard

log = logging.getLogger("flightdeck.airboss")

#: uvicorn's own limit on a request head (h11). Above the application's `max_header_bytes`, so
#: that oversized headers normally reach the application and are refused *and* logged there;
#: beyond this uvicorn closes the connection itself.
H11_MAX_HEAD = 64 * 1024


def bind(settings: Settings, backlog: int = 1024) -> socket.socket:
    host, port = settings.host, settings.port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
    # protocol says TCP (with proto 0, every keep-alive answer waits 40 ms for a delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # before bind, unlike the original
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        from flightdeck.errors import UserError

        raise UserError(f"cannot listen on {settings.listen}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def state_file_for(pid_file: Path) -> Path:
    return pid_file.with_suffix(".json")


class OneLine(logging.Formatter):
    """Every message on one line, printable (`logsafe.escape`), whoever logs it: uvicorn's
    lines and ours quote what clients send; a traceback (ours, never a client's) stays as is."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        from flightdeck.logsafe import escape

        record.message = escape(record.message, 8192)
        return super().formatMessage(record)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def serve(
    settings: Settings,
    *,
    database_url: str | None = None,
    pid_file: Path | None = None,
    log_level: int = logging.INFO,
) -> None:
    """Serve until SIGTERM / SIGINT. Raises `FlightdeckError` for a refused configuration."""
    import uvicorn

    from flightdeck.airboss.app import create_app
    from flightdeck.airboss.connections import (
        ConnectionGuard,
        accept_backlog,
        connection_cap,
        guarded_protocol,
        open_file_limit,
    )
    from flightdeck.db.engine import open_database

    setup_logging(log_level)
    check_transport(settings)
    fd_limit = open_file_limit()
    guard = ConnectionGuard(
        connection_cap(settings.max_connections, fd_limit),
        settings.max_client_connections,
        settings.head_timeout,
    )
    backlog = accept_backlog(fd_limit)
    db = open_database(database_url)
    sock = bind(settings, backlog)
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.tls else "http"
    shown = f"[{host}]" if ":" in host else host
    url = f"{scheme}://{shown}:{port}"
    app = create_app(db, settings)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the client address in the audit log is the real peer's
        server_header=False,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        h11_max_incomplete_event_size=H11_MAX_HEAD,
        http=guarded_protocol(guard),
        timeout_keep_alive=15,
        backlog=backlog,
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    state_file = state_file_for(pid_file) if pid_file else None
    try:
        if pid_file is not None and state_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(
                state_file,
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "url": url,
                        "listen": f"{shown}:{port}",
                        "tls": settings.tls,
                        "loopback": is_loopback(host),
                    }
                )
                + "\n",
            )
            _write_atomically(pid_file, f"{os.getpid()}\n")
        log.info("airboss %d listening on %s (database %s)", os.getpid(), url, _safe_url(db.url))
        log.info(
            "connections: at most %d (open-file limit %d), %d per client address, a request "
            "within %g s", guard.max_connections, fd_limit, guard.per_client, guard.head_timeout,
        )  # fmt: skip
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the
        # handler it found installed: make that one a clean exit (status 0, files removed).
        signal.signal(signal.SIGTERM, _terminated)
        asyncio.run(_run(server, sock, guard))
    finally:
        for path in (pid_file, state_file):
            if path is not None and _owned(path):
                path.unlink(missing_ok=True)
        sock.close()
        db.dispose()
        log.info("airboss %d stopped", os.getpid())


async def _run(server: uvicorn.Server, sock: socket.socket, guard: ConnectionGuard) -> None:
    """uvicorn's serve, on a loop whose resource errors are logged with counts, not floods."""
    from flightdeck.airboss.connections import throttled_exception_handler

    asyncio.get_running_loop().set_exception_handler(throttled_exception_handler(guard.events))
    try:
        await server.serve(sockets=[sock])
    finally:
        guard.events.flush()


def _terminated(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _owned(path: Path) -> bool:
    """True when the pid or state file is ours (a new Airboss may have replaced it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return False
    if path.suffix == ".json":
        try:
            return bool(json.loads(text).get("pid") == os.getpid())
        except ValueError:
            return False
    return text.strip() == str(os.getpid())


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
