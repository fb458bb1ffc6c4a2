"""A VM's serial console, read through libvirt's console stream.

The designer gives every domain a serial port on a pty with a console on it. libvirt hands that
pty out as a stream over the same connection as everything else, so this works on a remote
container too (qemu+ssh, qemu+tls) without ssh or access to the container's files: the end-to-end
tests read boot markers with it, and the Airboss will relay consoles to owners with it.

A stream on a client without a registered libvirt event loop is read with blocking `recv`;
that runs in a worker thread so the caller keeps a deadline. At the deadline (or once the
wanted text arrived) the stream is aborted, which also ends the blocked `recv`.

A pty drops what the guest writes while nobody is attached: open the console soon after the
domain starts (a TCG guest needs ~3 s to get from `create()` to its first line of user space).

For the Airboss's console relay there is `SerialStream` (the same stream, read by one thread per
session that hands the bytes to an asyncio queue, so the event loop never blocks on libvirt) and
`vnc_port` (where a running domain's VNC server listens).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
import xml.etree.ElementTree as ET

import libvirt

from flightdeck.errors import Conflict, DriverError, NotFound
from flightdeck.virt.domxml import graphics_ports
from flightdeck.virt.hypervisor import Hypervisor, translate

CHUNK = 4096


def read_serial(conn: Hypervisor, name: str, until: bytes, timeout: float) -> bytes:
    """What domain `name` writes on its serial console, through the line that contains `until`.

    Reading stops at the end of the first line containing `until` (so a marker's values on that
    line are complete), when the console closes (the domain stopped) or after `timeout`
    seconds, whichever comes first. The bytes read so far are returned: the caller checks
    `until in result`, and can show what the guest did say when it is missing.
    `VIR_DOMAIN_CONSOLE_FORCE` takes the console over from another reader (only one client
    may hold it at a time).
    """
    dom = conn.domain(name)
    if dom is None:
        raise NotFound(f"VM {name} is not defined on container {conn.container}")
    opened_by = time.monotonic() + timeout
    while True:
        stream = conn.conn.newStream(0)
        try:
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
            break
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            # A domain that has just started may not have its PTY yet: libvirt says so, and it
            # comes within moments; anything else, or past the timeout, is the caller's error.
            if "not yet assigned" not in str(exc) or time.monotonic() >= opened_by:
                raise translate(
                    exc, conn.container, f"opening the serial console of {name}"
                ) from None
            time.sleep(0.5)

    buf = bytearray()
    lock = threading.Lock()
    finished = threading.Event()

    def pump() -> None:
        found = -1
        try:
            while True:
                chunk = stream.recv(CHUNK)
                if isinstance(chunk, int) or not chunk:
                    return  # -2 would mean "try again" (non-blocking only); b"" is end of stream
                with lock:
                    start = max(0, len(buf) - len(until))
                    buf.extend(chunk)
                    if until and found < 0:
                        at = buf.find(until, start)
                        found = at if at >= 0 else -1
                    if found >= 0 and buf.find(b"\n", found) >= 0:
                        return
        except libvirt.libvirtError:
            return  # aborted by us at the deadline, or the domain went away
        finally:
            finished.set()

    worker = threading.Thread(target=pump, name=f"console-{name}", daemon=True)
    worker.start()
    finished.wait(max(0.0, timeout))
    with contextlib.suppress(libvirt.libvirtError):
        stream.abort()
    worker.join(5)
    with lock:
        return bytes(buf)


def wait_for_state(
    conn: Hypervisor, name: str, states: set[str] | frozenset[str], timeout: float
) -> str:
    """Poll the domain's state until it is one of `states` or `timeout` passes; the last state."""
    deadline = time.monotonic() + timeout
    state = conn.state(name)
    while state not in states and time.monotonic() < deadline:
        time.sleep(0.2)
        state = conn.state(name)
    return state


def vnc_port(conn: Hypervisor, name: str) -> int:
    """The TCP port of the VNC server of running domain `name` (libvirt's autoport choice).

    `Conflict` when the domain is not running (or not defined: a stopped VM of Flightdeck's
    is undefined) or has no VNC graphics.
    """
    dom = conn.domain(name)
    if dom is None or not conn._call(f"reading the state of {name}", dom.isActive):
        raise Conflict(f"VM {name} is not running: power it on first")
    xml = conn._call(f"reading the XML of {name}", lambda: dom.XMLDesc(0))
    try:
        ports = [p.port for p in graphics_ports(xml) if p.type == "vnc"]
    except ET.ParseError as exc:
        raise DriverError(f"the XML of {name} from {conn.container} is malformed: {exc}") from None
    if not ports:
        raise Conflict(f"VM {name} has no VNC console (no <graphics type='vnc'> in its XML)")
    return ports[0]


class SerialStream:
    """A running domain's serial console as a byte stream for asyncio.

    libvirt's stream is blocking on a client without a libvirt event loop (and registering one
    would change every connection of the process), so each open console has one reader thread:
    it `recv`s and hands each chunk to an asyncio queue of at most `QUEUE` chunks, waiting when
    that is full (backpressure: a slow viewer slows the reading, nothing is dropped or buffered
    without bound). Writes (keystrokes: a few bytes) run in the loop's default executor.
    `close()` aborts the stream, which also ends a `recv` blocked in the reader thread.

    Open it with `SerialStream.open(conn, name)` in a worker thread (it talks to libvirt), then
    `start(loop)` on the event loop.
    """

    #: Chunks queued between the reader thread and the event loop (at most QUEUE * CHUNK bytes).
    QUEUE = 16

    def __init__(self, stream: libvirt.virStream, name: str, container: str) -> None:
        self._stream = stream
        self.name = name
        self.container = container
        self._queue: asyncio.Queue[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        #: Why the stream ended, once it has (for the close reason and the audit log).
        self.ended: str | None = None

    @classmethod
    def open(cls, conn: Hypervisor, name: str) -> SerialStream:
        """Attach to the serial console of running domain `name` (blocking: a worker thread).

        `VIR_DOMAIN_CONSOLE_FORCE`: a new session takes the console over from an older one,
        as `virsh console --force` (only one client may hold a pty console).
        """
        dom = conn.domain(name)
        if dom is None or not conn._call(f"reading the state of {name}", dom.isActive):
            raise Conflict(f"VM {name} is not running: power it on first")
        stream = conn.conn.newStream(0)
        try:
            dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            raise translate(exc, conn.container, f"opening the serial console of {name}") from None
        return cls(stream, name, conn.container)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the reader thread; chunks arrive through `read()` on `loop`."""
        self._loop = loop
        self._queue = asyncio.Queue(self.QUEUE)
        self._thread = threading.Thread(
            target=self._pump, name=f"serial-{self.name}", daemon=True
        )
        self._thread.start()

    def _pump(self) -> None:
        assert self._loop is not None and self._queue is not None
        queue, loop = self._queue, self._loop
        why = "the console closed (the VM stopped)"
        try:
            while not self._closed.is_set():
                chunk = self._stream.recv(CHUNK)
                if isinstance(chunk, int) or not chunk:
                    break  # -2 is "try again" (non-blocking streams only); b"" is the end
                asyncio.run_coroutine_threadsafe(queue.put(bytes(chunk)), loop).result()
        except libvirt.libvirtError:
            why = "the console stream failed (the VM or its container went away)"
        except (RuntimeError, concurrent.futures.CancelledError):
            return  # the event loop has gone away: nobody listens any more
        self.ended = self.ended or why
        if self._closed.is_set():
            return  # closed by the session: it reads no more
        with contextlib.suppress(RuntimeError, concurrent.futures.CancelledError):
            asyncio.run_coroutine_threadsafe(queue.put(b""), loop).result()

    async def read(self) -> bytes:
        """The next chunk the guest wrote; b"" once the console has ended."""
        assert self._queue is not None
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        """Send `data` (keystrokes) to the guest."""
        if self._closed.is_set():
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._send_all, data)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view and not self._closed.is_set():
                sent = self._stream.send(bytes(view))
                if sent < 0:
                    time.sleep(0.01)  # -2: try again
                    continue
                view = view[sent:]
        except libvirt.libvirtError:
            return  # the reader thread sees the end too and says why

    def close(self) -> None:
        """Abort the stream (idempotent); the reader thread ends by itself."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(libvirt.libvirtError):
            self._stream.abort()
        if self._queue is not None:  # a reader thread waiting on a full queue goes on, and ends
            while not self._queue.empty():
                self._queue.get_nowait()

