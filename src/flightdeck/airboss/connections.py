"""Connection limits of the Airboss's HTTP server: slow clients cannot hold it.

uvicorn's HTTP/1.1 protocol (h11) times out only the wait *between* two requests; a client that
opens a connection and never finishes its request head holds a file descriptor for as long as
it likes, and ~1,000 of them exhausted the default open-file limit: `accept()` then failed in a
loop, owners' requests went unanswered and the log filled with tracebacks. `GuardedH11Protocol`
(uvicorn's protocol, subclassed) and one `ConnectionGuard` per server add what is missing:

- a request deadline: `head_timeout` seconds from the connection's start, or from the end of
  the previous answer, to the end of the request (head and body); a connection that has not
  sent a whole request by then is closed. A request being worked on is never cut.
- at most `max_client_connections` open connections per client address: more are closed at
  once (a client behind one address rarely needs more than a handful);
- at most `max_connections` in all (bounded again by the open-file limit, with room left for
  the database, libvirt and consoles): when full, the oldest connection that is not in the
  middle of being answered (idle, or still sending its request) is closed to make room, so a
  new client, an owner among them, is always heard; only when every open connection is being
  answered is the newcomer turned away.
- resource errors logged at most once per `LOG_EVERY` seconds, with counts, never a traceback
  per event (`throttled_exception_handler` for the event loop's `accept()` failures).

A WebSocket upgrade leaves the guard (the console relay limits sessions per key once the upgrade
is admitted). Everything here runs on the event loop's thread: no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from collections import Counter
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

from flightdeck.logsafe import escape

log = logging.getLogger("flightdeck.airboss")

#: Seconds between two log lines about refused or closed connections (counts in between).
LOG_EVERY = 10.0
#: File descriptors kept for everything but client connections: the database pool, libvirt's
#: sockets, console upstreams, log files (at most a quarter of the limit).
RESERVED_FDS = 256


def open_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft open-file limit towards `wanted` (the hard limit allowing);
    the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else wanted


#: Connections accepted at most per wake-up of the event loop (and the listen backlog).
MAX_BACKLOG = 2048


def accept_backlog(fd_limit: int) -> int:
    """The listen backlog, which is also how many connections asyncio accepts in one go before
    the guard sees any of them: small enough that a burst cannot run out of file descriptors
    (asyncio then stops accepting for a whole second), large enough for a busy site."""
    reserve = min(RESERVED_FDS, fd_limit // 4)
    return max(16, min(MAX_BACKLOG, (fd_limit - reserve) // 4))


def connection_cap(max_connections: int, fd_limit: int) -> int:
    """Client connections allowed at once: the setting, bounded by the open-file limit less
    the reserve and one accept burst."""
    reserve = min(RESERVED_FDS, fd_limit // 4)
    return max(1, min(max_connections, fd_limit - reserve - accept_backlog(fd_limit)))


class Throttled:
    """Counts of one kind of event, logged at most once per `every` seconds."""

    def __init__(self, every: float = LOG_EVERY, clock: Any = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self.last = float("-inf")
        self._later: asyncio.TimerHandle | None = None

    def note(self, what: str) -> None:
        """Count one event; log now if the last report is old enough, else soon (called on the
        event loop's thread)."""
        self.counts[what] += 1
        now = self.clock()
        wait = self.last + self.every - now
        if wait <= 0:
            self.flush(now)
        elif self._later is None:
            with contextlib.suppress(RuntimeError):  # no loop: the next event or stop reports
                self._later = asyncio.get_running_loop().call_later(wait, self.flush)

    def flush(self, now: float | None = None) -> None:
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if self.counts:
            shown = "; ".join(f"{n} x {what}" for what, n in self.counts.most_common(10))
            more = len(self.counts) - 10
            log.warning(
                "connections refused or closed since the last report: %s%s",
                shown, f" (and {more} more kinds)" if more > 0 else "",
            )  # fmt: skip
            self.counts.clear()
        self.last = self.clock() if now is None else now


class ConnectionGuard:
    """The open connections of one server, per client address and in all."""

    def __init__(self, max_connections: int, per_client: int, head_timeout: float) -> None:
        self.max_connections = max_connections
        self.per_client = per_client
        self.head_timeout = head_timeout
        #: Open connections, oldest first (dicts keep insertion order).
        self.open: dict[GuardedH11Protocol, str] = {}
        self.per_address: Counter[str] = Counter()
        self.events = Throttled()

    def admit(self, conn: GuardedH11Protocol, address: str) -> bool:
        if self.per_address[address] >= self.per_client:
            self.events.note(
                f"over {self.per_client} connections from {escape(address, 64)}: refused"
            )
            return False
        if len(self.open) >= self.max_connections and not self._evict():
            self.events.note(f"{self.max_connections} connections all busy: refused")
            return False
        self.open[conn] = address
        self.per_address[address] += 1
        return True

    def _evict(self) -> bool:
        """Close the oldest connection that is not being answered; False if there is none."""
        for conn in self.open:
            if not conn.working:
                self.release(conn)
                conn.transport.abort()
                self.events.note(
                    f"{self.max_connections} connections open: the oldest idle one closed"
                )
                return True
        return False

    def release(self, conn: GuardedH11Protocol) -> None:
        address = self.open.pop(conn, None)
        if address is not None:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def timed_out(self, conn: GuardedH11Protocol) -> None:
        self.events.note(f"no whole request within {self.head_timeout:g} s: closed")


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol under a `ConnectionGuard` (set by `guarded_protocol`)."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline: asyncio.TimerHandle | None = None
        address = self.client[0] if self.client else "local"
        if not self.guard.admit(self, address):
            transport.abort()
            return
        self._arm()

    @property
    def working(self) -> bool:
        """True while a whole request is being answered (never cut by the deadline)."""
        cycle = self.cycle
        return cycle is not None and not cycle.more_body and not cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.guard.head_timeout, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.working or self.transport.is_closing():
            return  # its answer's end arms the next deadline
        self.guard.timed_out(self)
        self.guard.release(self)
        self.transport.abort()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.working:
            self._arm()

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._disarm()
        self.guard.release(self)
        super().handle_websocket_upgrade(event)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            assert self._deadline is not None
            self._deadline.cancel()
            self._deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.release(self)
        super().connection_lost(exc)


def guarded_protocol(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class for uvicorn's `http=` bound to `guard`."""
    return type("AirbossH11Protocol", (GuardedH11Protocol,), {"guard": guard})


def throttled_exception_handler(
    events: Throttled,
) -> Any:
    """An event loop exception handler: `accept()` out of file descriptors (and the like) is
    counted and logged at most once per `LOG_EVERY` seconds; anything else as asyncio would."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if "out of system resource" in message:
            exc = context.get("exception")
            events.note(f"{message} ({getattr(exc, 'strerror', None) or exc})")
            return
        loop.default_exception_handler(context)

    return handler
