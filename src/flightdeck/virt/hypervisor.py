"""libvirt, and nothing above it: connections to VM containers, domains, storage volumes.

Every libvirt call of the project goes through here. libvirt errors are translated once, by
error code (never by message text), into `DriverError`s that name the container and the
operation. Connections are cached per URI for the life of the process (the Airboss reuses
them; a CLI run opens each container once) and opened with a timeout, so a container that does
not answer costs at most that long.

A container can also stop answering later, in the middle of a call (its libvirtd killed or
frozen, its traffic dropped). Two things bound that: libvirt's keepalive on every remote
connection (a probe every few seconds, driven by libvirt's default event loop on one daemon
thread of ours; unanswered probes close the connection, and the blocked call fails), and
`parallel`, which waits for each container's work at most its timeout and never for a thread
still stuck after it (they are daemon threads: nothing waits for them, not even the exit).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import libvirt

from flightdeck.errors import Conflict, DriverError, FlightdeckError, NotFound

T = TypeVar("T")

#: libvirt state -> the original's vocabulary (reference §10.2).
STATE_WORDS = {
    libvirt.VIR_DOMAIN_NOSTATE: "nostate",
    libvirt.VIR_DOMAIN_RUNNING: "active",
    libvirt.VIR_DOMAIN_BLOCKED: "active",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shutoff",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "paused",
}
STATUS_ERROR = "nostate-error"
#: The states of a domain that runs (has a QEMU process).
ACTIVE = frozenset({"active", "paused", "shutdown"})
DEFAULT_CONNECT_TIMEOUT = 10.0
GB = 1000**3  # disk sizes are in GB of 10^9 bytes, as the original

_UNREACHABLE = {
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_AUTH_FAILED,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_NO_SERVER,
}
_MISSING = {
    libvirt.VIR_ERR_NO_DOMAIN,
    libvirt.VIR_ERR_NO_STORAGE_POOL,
    libvirt.VIR_ERR_NO_STORAGE_VOL,
}

# Clients without a registered event loop print "Unable to register async IO callback"; and
# libvirt prints every error on stderr by default. We report errors ourselves.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


class GuestDidNotStart(DriverError):
    """QEMU itself failed to run the guest (libvirt's internal error: the process died)."""


def _code(exc: libvirt.libvirtError) -> int:
    return int(exc.get_error_code() or 0)


def translate(exc: libvirt.libvirtError, container: str, what: str) -> FlightdeckError:
    """A one-line DriverError for a libvirt failure, chosen by error code."""
    code = _code(exc)
    detail = (exc.get_error_message() or str(exc)).strip().splitlines()[0]
    if code in _UNREACHABLE:
        return DriverError(
            f"container {container} does not answer ({what}): {detail}; "
            f"check that libvirtd runs there and its libvirt_uri attribute"
        )
    if code in _MISSING:
        return NotFound(f"{what} on container {container}: {detail}")
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return Conflict(f"{what} on container {container}: {detail}")
    return DriverError(f"{what} on container {container} failed: {detail}")


_lock = threading.Lock()
_cache: dict[str, libvirt.virConnect] = {}
#: Serialises the storage-pool work of one URI in this process (dict.setdefault is atomic
#: under the GIL): VMs starting at once on one container would otherwise define the same pool
#: twice, or refresh it while a volume is being created ("has asynchronous jobs running").
_storage_locks: dict[str, threading.RLock] = {}
#: Unanswered keepalive probes after which libvirt closes a remote connection (see `connect`).
KEEPALIVE_COUNT = 3
_events_lock = threading.Lock()
_events_started = False
#: The domain type each URI's libvirt offers for x86_64 guests (see `offered_type`).
_offered: dict[str, str | None] = {}


def event_loop() -> None:
    """libvirt's default event loop, registered once per process and run by a daemon thread.

    What keepalive (and domain events) need. Registered before the first connection opens:
    a connection opened earlier gets no keepalive."""
    global _events_started
    with _events_lock:
        if _events_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


def within(fn: Callable[[], T], timeout: float) -> T:
    """`fn()` on a daemon thread: its result or exception, or `TimeoutError` after `timeout`
    seconds. A call still blocked then is left to end on its own; being a daemon thread, it
    never holds up the process's exit (a pool's worker would: Python joins those)."""
    box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()

    def run() -> None:
        try:
            box.put((True, fn()))
        except BaseException as exc:
            box.put((False, exc))

    threading.Thread(target=run, name="libvirt-call", daemon=True).start()
    try:
        ok, value = box.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    if ok:
        return value  # type: ignore[no-any-return]
    raise value


def batch_uri(uri: str) -> str:
    """`uri`, with `no_tty=1` added to an ssh one that does not choose: libvirt then runs
    `ssh -T -o BatchMode=yes`, so a missing key or an unknown host key is an error at once,
    never a password or host-key prompt that waits for a terminal nobody watches."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme.endswith("+ssh"):
        return uri
    if any(k == "no_tty" for k, _v in urllib.parse.parse_qsl(parts.query, True)):
        return uri
    query = f"{parts.query}&no_tty=1" if parts.query else "no_tty=1"
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _open(uri: str, timeout: float) -> libvirt.virConnect:
    """A new connection, with keepalive if it is remote: closed after about `timeout`
    seconds of silence (a probe every timeout/(KEEPALIVE_COUNT+1) s, at least 1 s)."""
    conn = libvirt.open(batch_uri(uri))
    interval = max(1, int(timeout // (KEEPALIVE_COUNT + 1)))
    with contextlib.suppress(libvirt.libvirtError):  # a local driver (test:///) has none
        conn.setKeepAlive(interval, KEEPALIVE_COUNT)
    return conn


def connect(container: str, uri: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> Hypervisor:
    """The (cached) connection to `container` at `uri`, opened within `timeout` seconds."""
    with _lock:
        conn = _cache.get(uri)
    if conn is not None:
        try:
            if conn.isAlive():
                return Hypervisor(container, uri, conn)
        except libvirt.libvirtError:
            pass
        forget(uri)  # closed by keepalive, or its daemon restarted: open a new one
    event_loop()
    try:
        conn = within(partial(_open, uri, timeout), timeout)
    except TimeoutError:
        raise DriverError(
            f"container {container} does not answer: no libvirt connection to "
            f"{uri} within {timeout:g} s"
        ) from None
    except libvirt.libvirtError as exc:
        raise translate(exc, container, f"connecting to {uri}") from None
    with _lock:
        _cache[uri] = conn
    return Hypervisor(container, uri, conn)


def forget(uri: str) -> None:
    """Drop a cached connection (after the daemon behind it went away)."""
    with _lock:
        conn = _cache.pop(uri, None)
        _offered.pop(uri, None)
    if conn is not None:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def parallel(
    jobs: Mapping[str, Callable[[], T]], timeout: float, workers: int = 16
) -> dict[str, T | BaseException]:
    """Run the jobs (one per container), at most `workers` at once; each result, or the
    exception it raised, or a `DriverError` for a job not done `timeout` seconds after it
    started. Returns by then whatever the others do: the workers are daemon threads, and one
    stuck in a call to a dead container is left behind (keepalive ends that call later)."""
    out: dict[str, T | BaseException] = {}
    waiting = iter(list(jobs))
    running: dict[str, float] = {}  # key -> when it started (time.monotonic)
    done: queue.SimpleQueue[tuple[str, T | BaseException]] = queue.SimpleQueue()

    def work(key: str) -> None:
        try:
            result: T | BaseException = jobs[key]()
        except BaseException as exc:
            result = exc
        done.put((key, result))

    def start_more() -> None:
        while len(running) < workers:
            key = next(waiting, None)
            if key is None:
                return
            running[key] = time.monotonic()
            threading.Thread(target=work, args=(key,), name=f"libvirt-{key}", daemon=True).start()

    start_more()
    while running:
        deadline = min(running.values()) + timeout
        try:
            key, result = done.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:  # the oldest job is overdue: given up, its slot to the next
            now = time.monotonic()
            for key, began in list(running.items()):
                if now >= began + timeout:
                    del running[key]
                    out[key] = DriverError(f"container {key} did not answer within {timeout:g} s")
        else:
            if key in running:  # (a job given up on may still answer, late: ignored)
                del running[key]
                out[key] = result
        start_more()
    return out


@dataclass(frozen=True)
class Live:
    """A domain as it runs: its state word, and its memory (MB) and vCPUs when active."""

    state: str
    mem_mb: int | None = None
    cpus: int | None = None


@dataclass
class Hypervisor:
    """One container's libvirt connection, with the operations Flightdeck needs."""

    container: str
    uri: str
    conn: libvirt.virConnect

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except libvirt.libvirtError as exc:
            raise translate(exc, self.container, what) from None

    # Domains -------------------------------------------------------------------------------

    def domain(self, name: str) -> libvirt.virDomain | None:
        try:
            return self.conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise translate(exc, self.container, f"looking up {name}") from None

    def require(self, name: str) -> libvirt.virDomain:
        dom = self.domain(name)
        if dom is None:
            raise NotFound(
                f"VM {name} is not defined on container {self.container}: "
                f"start it with 'rocks start host vm {name}'"
            )
        return dom

    def state(self, name: str) -> str:
        dom = self.domain(name)
        if dom is None:
            return "nostate"
        st = self._call(f"reading the state of {name}", lambda: dom.state()[0])
        return STATE_WORDS.get(st, "nostate")

    def states(self) -> dict[str, str]:
        """Every domain's state on this container, by name (one listing call)."""
        doms = self._call("listing domains", lambda: self.conn.listAllDomains(0))
        return {d.name(): STATE_WORDS.get(d.state()[0], "nostate") for d in doms}

    def live(self) -> dict[str, Live]:
        """Every domain on this container: its state, and the memory (MB) and vCPUs it runs
        with when active (one listing call, then one `info` per domain)."""

        def read() -> dict[str, Live]:
            out = {}
            for d in self.conn.listAllDomains(0):
                state, max_kib, _mem, vcpus, _cpu_ns = d.info()
                word = STATE_WORDS.get(state, "nostate")
                active = word in ACTIVE
                out[d.name()] = Live(
                    word, int(max_kib) // 1024 if active else None, int(vcpus) if active else None
                )
            return out

        return self._call("listing domains", read)

    def definition(self, name: str) -> str:
        """The domain's persistent (inactive) XML: what to define again to undo a change."""
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
        return str(
            self._call(
                f"reading the definition of {name}", lambda: self.require(name).XMLDesc(flags)
            )
        )

    def stop(self, name: str, grace: float, poll: float = 0.5) -> str:
        """Stop a running domain the kind way: ACPI shutdown, then destroy after `grace`
        seconds if it still runs. What happened, in a few words."""
        dom = self.domain(name)
        if dom is None or not self._call(f"reading the state of {name}", dom.isActive):
            return "was not running"
        if grace > 0:
            # No ACPI (paused, or a guest without it): destroyed below.
            with contextlib.suppress(FlightdeckError):
                self._call(f"shutting down {name}", dom.shutdown)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not self._call(f"reading the state of {name}", dom.isActive):
                    return "shut down"
                time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        if not self._call(f"reading the state of {name}", dom.isActive):
            return "shut down"
        self._call(f"stopping {name}", dom.destroy)
        return "powered off" if grace <= 0 else f"powered off after {grace:g} s"

    def agent_answers(self, name: str, timeout: int = 2) -> bool:
        """Whether the QEMU guest agent of running domain `name` answers a ping (`timeout` s).

        False for every failure (no agent channel, agent not started, a driver without agent
        support such as test:///): the caller reads it as "not ready yet".
        """
        import libvirt_qemu  # part of libvirt-python; only this call needs it

        dom = self.domain(name)
        if dom is None:
            return False
        try:
            libvirt_qemu.qemuAgentCommand(dom, '{"execute":"guest-ping"}', timeout, 0)
        except libvirt.libvirtError:
            return False
        return True

    def has_managed_save(self, name: str) -> bool:
        dom = self.domain(name)
        return bool(
            dom is not None
            and self._call(f"checking {name} for a saved state", lambda: dom.hasManagedSaveImage(0))
        )

    def define(self, xml: str) -> libvirt.virDomain:
        """Define a domain, or redefine one that exists, keeping its UUID.

        libvirt knows a domain by its UUID: XML without one gets a fresh random UUID, and
        a name that is already defined under another UUID is refused ("already exists with
        uuid"). The designer writes no UUID, so a VM that was defined before (shut off after
        its install, say) would never start again without this.
        """
        root = ET.fromstring(xml)
        name = root.findtext("name")
        if root.find("uuid") is None and name:
            dom = self.domain(name)
            if dom is not None:
                uuid = ET.Element("uuid")
                uuid.text = self._call(f"reading the UUID of {name}", dom.UUIDString)
                at = next((i for i, el in enumerate(root) if el.tag == "name"), -1)
                root.insert(at + 1, uuid)
                xml = ET.tostring(root, encoding="unicode")
        return self._call("defining the domain", lambda: self.conn.defineXML(xml))

    def start(self, dom: libvirt.virDomain) -> None:
        """Start a defined domain; GuestDidNotStart when QEMU died doing it."""
        name = dom.name()
        try:
            dom.create()
        except libvirt.libvirtError as exc:
            error = translate(exc, self.container, f"starting {name}")
            if _code(exc) == libvirt.VIR_ERR_INTERNAL_ERROR:
                raise GuestDidNotStart(error.message) from None
            raise error from None

    def set_autostart(self, dom: libvirt.virDomain, on: bool) -> None:
        self._call(f"setting autostart of {dom.name()}", lambda: dom.setAutostart(int(on)))

    def autostart(self, dom: libvirt.virDomain) -> bool:
        return bool(self._call(f"reading autostart of {dom.name()}", dom.autostart))

    def destroy(self, name: str) -> bool:
        """Power off hard; False when it was not running."""
        dom = self.domain(name)
        if dom is None or not dom.isActive():
            return False
        self._call(f"stopping {name}", dom.destroy)
        return True

    def shutdown(self, name: str) -> None:
        self._call(f"shutting down {name}", self.require(name).shutdown)

    def reset(self, name: str) -> None:
        self._call(f"resetting {name}", lambda: self.require(name).reset(0))

    def undefine(self, name: str) -> bool:
        dom = self.domain(name)
        if dom is None:
            return False
        flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        self._call(f"undefining {name}", lambda: dom.undefineFlags(flags))
        return True

    def suspend(self, name: str) -> None:
        self._call(f"pausing {name}", self.require(name).suspend)

    def resume(self, name: str) -> None:
        self._call(f"resuming {name}", self.require(name).resume)

    def save(self, name: str, path: str) -> None:
        self._call(f"saving {name} to {path}", lambda: self.require(name).save(path))

    def restore(self, path: str) -> None:
        self._call(f"restoring from {path}", lambda: self.conn.restore(path))

    def managed_save(self, name: str) -> None:
        self._call(f"saving {name}", lambda: self.require(name).managedSave(0))

    def xml(self, name: str) -> str:
        return str(self._call(f"reading the XML of {name}", lambda: self.require(name).XMLDesc(0)))

    def offered_type(self, arch: str = "x86_64") -> str | None:
        """`kvm` when the container's libvirt offers KVM for `arch` guests, else `qemu` (TCG).

        Read from libvirt's domain capabilities (`virsh domcapabilities --virttype kvm`), which
        QEMU's driver refuses when the host has no usable /dev/kvm; None for a driver without
        domain capabilities (libvirt's test driver). Asked once per URI per process.
        """
        with _lock:
            if self.uri in _offered:
                return _offered[self.uri]
        found: str | None = None
        for virttype in ("kvm", "qemu"):
            try:
                self.conn.getDomainCapabilities(None, arch, None, virttype, 0)
                found = virttype
                break
            except libvirt.libvirtError as exc:
                if _code(exc) == libvirt.VIR_ERR_NO_SUPPORT:
                    break
                if virttype == "qemu":
                    what = "reading its domain capabilities"
                    raise translate(exc, self.container, what) from None
        with _lock:
            _offered[self.uri] = found
        return found

    def total_memory_mb(self) -> int:
        info = self._call("reading node info", self.conn.getInfo)
        return int(info[1])

    # Storage ---------------------------------------------------------------------------------

    def pool_for(self, directory: str) -> libvirt.virStoragePool:
        """The directory pool whose target is `directory`, defined and started if missing.

        One caller at a time per URI in this process (see `_storage_locks`).
        """
        with self._storage():
            return self._pool_for(directory)

    def _storage(self) -> threading.RLock:
        return _storage_locks.setdefault(self.uri, threading.RLock())

    def _pool_for(self, directory: str) -> libvirt.virStoragePool:
        directory = os.path.normpath(directory)
        pools = self._call("listing storage pools", lambda: self.conn.listAllStoragePools(0))
        for pool in pools:
            target = ET.fromstring(pool.XMLDesc(0)).findtext("./target/path")
            if target and os.path.normpath(target) == directory:
                return self._usable(pool)
        name = "flightdeck" + directory.replace("/", "-")
        xml = (
            f"<pool type='dir'><name>{_esc(name)}</name>"
            f"<target><path>{_esc(directory)}</path></target></pool>"
        )
        pool = self._call(f"defining pool {name}", lambda: self.conn.storagePoolDefineXML(xml, 0))
        self._call(f"building pool {name}", lambda: pool.build(0))
        self._call(f"starting pool {name}", lambda: pool.create(0))
        self._call(f"setting autostart of pool {name}", lambda: pool.setAutostart(1))
        return pool

    def _usable(self, pool: libvirt.virStoragePool) -> libvirt.virStoragePool:
        """A known pool, started; if its directory went away (wiped by hand), built again.

        libvirt keeps an active pool whose directory was removed, and every refresh of it then
        fails: stop it, build the directory and start it again.
        """
        name = pool.name()
        try:
            if not pool.isActive():
                pool.create(0)
            pool.refresh(0)
            return pool
        except libvirt.libvirtError:
            pass
        with contextlib.suppress(libvirt.libvirtError):
            pool.destroy()
        self._call(f"building pool {name}", partial(pool.build, 0))
        self._call(f"starting pool {name}", partial(pool.create, 0))
        return pool

    def volume(self, path: str) -> libvirt.virStorageVol | None:
        """The volume at `path`, or None. One libvirt already knows, whose file is still there,
        is answered without its pool: finding the pool reads every pool's XML, and a refresh
        probes every file of the directory (two refreshes a start, where a VM's disk exists)."""
        with self._storage():
            known = self._known_volume(path)
            if known is not None:
                return known
            pool = self.pool_for(os.path.dirname(path))
            self._call("refreshing pool", lambda: pool.refresh(0))
            try:
                return pool.storageVolLookupByName(os.path.basename(path))
            except libvirt.libvirtError as exc:
                if _code(exc) == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    return None
                raise translate(exc, self.container, f"looking up volume {path}") from None

    def _known_volume(self, path: str) -> libvirt.virStorageVol | None:
        """The volume libvirt holds at `path`, if its file is still there: reading its info
        refreshes that one volume from the disk, and fails for a file removed behind
        libvirt's back (then the caller refreshes the whole pool)."""
        try:
            vol = self.conn.storageVolLookupByPath(path)
            vol.info()
        except libvirt.libvirtError:
            return None
        return vol

    def create_volume(self, path: str, size_gb: int, fmt: str) -> bool:
        """Create the volume at `path` unless it exists; True when it was created."""
        with self._storage():
            if self.volume(path) is not None:
                return False
            pool = self.pool_for(os.path.dirname(path))
            xml = (
                f"<volume><name>{_esc(os.path.basename(path))}</name>"
                f"<capacity unit='bytes'>{size_gb * GB}</capacity>"
                f"<target><format type='{_esc(fmt)}'/></target></volume>"
            )
            self._call(f"creating volume {path}", lambda: pool.createXML(xml, 0))
            return True

    def delete_volume(self, path: str) -> bool:
        with self._storage():
            vol = self.volume(path)
            if vol is None:
                return False
            self._call(f"deleting volume {path}", lambda: vol.delete(0))
            return True

    def read_volume(self, path: str) -> Iterator[bytes]:
        """The bytes of a volume, streamed through libvirt (works to a remote container)."""
        vol = self.volume(path)
        if vol is None:
            raise NotFound(f"no volume {path} on container {self.container}")
        stream = self.conn.newStream(0)
        self._call(f"downloading {path}", lambda: vol.download(stream, 0, 0, 0))
        try:
            while True:
                chunk = stream.recv(1 << 20)
                if isinstance(chunk, int) or not chunk:
                    break
                yield chunk
            stream.finish()
        except libvirt.libvirtError as exc:
            stream.abort()
            raise translate(exc, self.container, f"downloading {path}") from None

    def write_volume(self, path: str, size_gb: int, fmt: str, chunks: Iterator[bytes]) -> None:
        """Create the volume `path` and fill it from `chunks` (a stream from another container)."""
        self.create_volume(path, size_gb, fmt)
        vol = self.volume(path)
        assert vol is not None
        stream = self.conn.newStream(0)
        self._call(f"uploading {path}", lambda: vol.upload(stream, 0, 0, 0))
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    sent = stream.send(bytes(view))
                    view = view[sent:]
            stream.finish()
        except BaseException:
            stream.abort()
            raise


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
    )


def describe(value: Any) -> str:
    """A short text for an exception collected by `parallel`."""
    return getattr(value, "message", None) or str(value)
