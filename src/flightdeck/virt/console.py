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
"""

from __future__ import annotations

import contextlib
import threading
import time

import libvirt

from flightdeck.errors import NotFound
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
    stream = conn.conn.newStream(0)
    try:
        dom.openConsole(None, stream, libvirt.VIR_DOMAIN_CONSOLE_FORCE)
    except libvirt.libvirtError as exc:
        with contextlib.suppress(libvirt.libvirtError):
            stream.abort()
        raise translate(exc, conn.container, f"opening the serial console of {name}") from None

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
