"""Power a virtual cluster in order: the frontend first, its computes once it is ready.

A virtual frontend installs its computes (DHCP, PXE, its boot server on the cluster VLAN), so a
compute started before its frontend is ready PXE-boots into nothing and sits at a boot prompt.
`power_cluster(db, frontend, "on")`:

1. starts the frontend (if it is not running);
2. waits until it is ready: the QEMU guest agent of its image answers (the frontend image
   starts the agent last, after its boot server and `FLIGHTDECK-FRONTEND-READY`), polled
   every `poll` seconds, at most `ready_timeout` seconds; then a clear error and no compute
   is started. `wait=False` skips the wait (a frontend that installs with another installer,
   or one the owner knows is up). The probe is injectable (`probe=`), so the sequence is
   tested without a 4-minute boot;
3. starts every compute, in parallel, at most `max_parallel` at once per container (attribute
   `kvm_power_parallel` of the container, default 4), one result per node as it completes.

`off` is the reverse: the computes first (ACPI shutdown, then powered off after a grace period,
attribute `kvm_shutdown_grace`, default 30 s), the frontend last, and only when every compute
stopped. `install` is `on` with boot action `install` (a running node is powered off first: it
is reinstalled). Nodes already in the wanted state succeed and say so.

Why not the serial console's ready line: reading it needs the console, which only one client
holds at a time, so the sequence would take it from an owner watching the frontend boot. The
agent answers only once the frontend printed that line, so nothing is lost.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from flightdeck.attrsubject import Subject, subject
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import HostIds, host_order, resolve_host
from flightdeck.db.models import VM, Cluster, Host
from flightdeck.errors import FlightdeckError, UserError
from flightdeck.services import lifecycle
from flightdeck.services.base import reading
from flightdeck.services.bootactions import set_host_boot
from flightdeck.services.domains import container_uris
from flightdeck.services.vm_status import check_connect_timeout
from flightdeck.virt import hypervisor as hv

ACTIONS = ("on", "off", "install")
#: Default of `max-parallel=` (attribute `kvm_power_parallel` of a container).
MAX_PARALLEL = 4
#: Default seconds to wait for the frontend (attribute `kvm_frontend_ready_timeout`).
READY_TIMEOUT = 900.0
#: Default ACPI grace, seconds (attribute `kvm_shutdown_grace`).
GRACE = 30.0

Probe = Callable[[str], bool]
Echo = Callable[["NodeResult"], None]


@dataclass(frozen=True)
class NodeResult:
    """One node's outcome: `at` is seconds since the sequence began, `when` Unix time."""

    node: str
    container: str | None
    ok: bool
    message: str
    frontend: bool = False
    already: bool = False
    #: A step of the sequence, not a node's outcome (the frontend found ready).
    step: bool = False
    at: float = 0.0
    when: float = 0.0

    def line(self) -> str:
        return f"{self.node}: {self.message}" if self.ok else f"error - {self.node}: {self.message}"


@dataclass
class PowerRun:
    frontend: str
    action: str
    results: list[NodeResult] = field(default_factory=list)
    #: Unix time the frontend was found ready (None: not waited for, or never).
    ready_at: float | None = None
    #: The frontend was left as it is (`with_frontend=False`).
    frontend_left: bool = False

    @property
    def failed(self) -> list[NodeResult]:
        return [r for r in self.results if not r.ok]

    def summary(self) -> str:
        nodes = [r for r in self.results if not r.step]
        done = [r for r in nodes if r.ok and not r.already]
        already = [r.node for r in nodes if r.already]
        word = {"on": "started", "off": "stopped", "install": "installing"}[self.action]
        text = f"{self.frontend} {self.action}: {len(done)} {word}"
        if already:
            state = "already stopped" if self.action == "off" else "already running"
            text += f", {len(already)} {state} ({_names(already)})"
        if self.failed:
            text += f", {len(self.failed)} failed ({_names([r.node for r in self.failed])})"
        if self.frontend_left:
            text += "; the frontend left as it is"
        return text


def _names(names: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class _Node:
    id: int
    name: str
    container: str | None
    uri: str | None
    parallel: int
    grace: float
    timeout: float


@dataclass(frozen=True)
class _Cluster:
    frontend: _Node
    computes: list[_Node]
    ready_timeout: float


def _seconds(name: str, default: float, value: str | None, who: str | Subject) -> float:
    if value is None or not value.strip():
        return default
    try:
        n = float(value)
    except ValueError:
        n = float("nan")
    if not 0 <= n < float("inf"):
        raise UserError(f"{subject(who).attr(name)} is {value!r}: give seconds, e.g. {default:g}")
    return n


def check_power_parallel(value: str | None, who: str | Subject) -> int:
    """`kvm_power_parallel` of a container: its computes started at once (default 4)."""
    if value is None or not value.strip():
        return MAX_PARALLEL
    text = value.strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 64):
        raise UserError(
            f"{subject(who).attr('kvm_power_parallel')} is {value!r}: give a whole number "
            "from 1 to 64"
        )
    return int(text)


def check_shutdown_grace(value: str | None, who: str | Subject) -> float:
    """`kvm_shutdown_grace`: seconds a VM has to shut down on ACPI before it is powered off
    (cluster power off; default 30, 0 powers it off at once)."""
    return _seconds("kvm_shutdown_grace", GRACE, value, who)


def check_ready_timeout(value: str | None, who: str | Subject) -> float:
    """`kvm_frontend_ready_timeout`: seconds cluster power waits for the frontend to be ready
    (default 900: the frontend image's install and first boot under TCG take ~5 minutes)."""
    return _seconds("kvm_frontend_ready_timeout", READY_TIMEOUT, value, who)


def _load(db: Database, frontend: str | HostIds, max_parallel: int | None) -> _Cluster:
    with reading(db) as s:
        fe = resolve_host(s, frontend)
        cluster = s.scalar(select(Cluster).where(Cluster.frontend_id == fe.id))
        if cluster is None:
            raise UserError(f"host {fe.name} is not a virtual frontend")
        hosts = [fe, *s.scalars(
            select(Host).join(VM, VM.host_id == Host.id)
            .where(VM.cluster_id == cluster.id, Host.id != fe.id).order_by(*host_order())
        )]  # fmt: skip
        vms = {
            v.host_id: v for v in s.scalars(select(VM).where(VM.host_id.in_([h.id for h in hosts])))
        }
        boxes = {v.container.id: v.container for v in vms.values() if v.container is not None}
        uris = container_uris(s, list(boxes.values()))
        parallel = attrs.resolve_many(s, list(boxes.values()), "kvm_power_parallel")
        grace = attrs.resolve_many(s, hosts, "kvm_shutdown_grace")
        timeouts = attrs.resolve_many(s, list(boxes.values()), "kvm_connect_timeout")
        ready = attrs.resolve(s, fe, "kvm_frontend_ready_timeout")

        def node(h: Host) -> _Node:
            box = vms[h.id].container
            width = max_parallel
            if width is None:
                width = (
                    check_power_parallel(parallel.get(box.id), box.name)
                    if box is not None
                    else MAX_PARALLEL
                )
            return _Node(
                h.id,
                h.name,
                box.name if box is not None else None,
                uris.get(box.id) if box is not None else None,
                width,
                check_shutdown_grace(grace.get(h.id), h.name),
                check_connect_timeout(timeouts.get(box.id), box.name)
                if box is not None
                else hv.DEFAULT_CONNECT_TIMEOUT,
            )

        nodes = [node(h) for h in hosts]
        timeout = check_ready_timeout(ready, fe.name)
    return _Cluster(nodes[0], nodes[1:], timeout)


def agent_probe(db: Database) -> Probe:
    """The default readiness: `rocks list host vm status=y` says `ready` (its agent answers)."""
    return lambda name: lifecycle.statuses(db, [name]).get(name) == "ready"


class _Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def result(self, node: _Node, ok: bool, message: str, **kw: bool) -> NodeResult:
        return NodeResult(
            node.name, node.container, ok, message, at=time.monotonic() - self.t0,
            when=time.time(), **kw,
        )  # fmt: skip


def _state(node: _Node) -> str:
    if node.container is None or node.uri is None:
        raise UserError(f"host {node.name} does not have a physical host")
    return hv.connect(node.container, node.uri, node.timeout).state(node.name)


def _start(db: Database, node: _Node, install: bool, clock: _Clock) -> NodeResult:
    try:
        state = _state(node)
        if state in hv.ACTIVE and not install:
            return clock.result(node, True, f"already running on {node.container}", already=True)
        if install:
            set_host_boot(db, HostIds.of(node.id), "install")
            if state in hv.ACTIVE:
                assert node.container is not None and node.uri is not None
                hv.connect(node.container, node.uri, node.timeout).destroy(node.name)
        (outcome,) = lifecycle.start_vms(db, HostIds.of(node.id))
        return clock.result(node, outcome.ok, outcome.message)
    except FlightdeckError as exc:
        return clock.result(node, False, exc.message)


def _stop(node: _Node, clock: _Clock, grace: float | None) -> NodeResult:
    try:
        if node.container is None or node.uri is None:
            raise UserError(f"host {node.name} does not have a physical host")
        conn = hv.connect(node.container, node.uri, node.timeout)
        if conn.state(node.name) not in hv.ACTIVE:
            return clock.result(node, True, "already stopped", already=True)
        how = conn.stop(node.name, node.grace if grace is None else grace)
        conn.undefine(node.name)
        return clock.result(node, True, f"{how} on {node.container}")
    except FlightdeckError as exc:
        return clock.result(node, False, exc.message)


def _fan_out(
    nodes: Sequence[_Node], work: Callable[[_Node], NodeResult], echo: Echo
) -> list[NodeResult]:
    """Every node at once, at most `node.parallel` at once on its container; each result is
    echoed as it completes."""
    if not nodes:
        return []
    gates: dict[str | None, threading.BoundedSemaphore] = {}
    for n in nodes:
        gates.setdefault(n.container, threading.BoundedSemaphore(n.parallel))
    workers = min(len(nodes), sum(n.parallel for n in {x.container: x for x in nodes}.values()))
    lock = threading.Lock()

    def one(node: _Node) -> NodeResult:
        with gates[node.container]:
            result = work(node)
        with lock:
            echo(result)
        return result

    with concurrent.futures.ThreadPoolExecutor(max(1, min(workers, 64))) as pool:
        return list(pool.map(one, nodes))


def power_cluster(
    db: Database,
    frontend: str | HostIds,
    action: str,
    *,
    wait: bool = True,
    ready_timeout: float | None = None,
    max_parallel: int | None = None,
    grace: float | None = None,
    probe: Probe | None = None,
    poll: float = 2.0,
    echo: Echo = lambda _r: None,
    with_frontend: bool = True,
) -> PowerRun:
    """Power the cluster of `frontend` in order; see the module's docstring.

    `with_frontend=False` leaves the frontend as it is and powers its computes only (no wait):
    the owner's command run on the virtual frontend itself, which must not stop or reinstall
    the machine it runs on (the original skipped "the local frontend" likewise).
    """
    action = action.strip().lower()
    if action not in ACTIONS:
        raise UserError(f"action={action!r}: use on, off or install")
    if max_parallel is not None and max_parallel < 1:
        raise UserError(f"max-parallel={max_parallel} must be 1 or more")
    c = _load(db, frontend, max_parallel)
    run = PowerRun(c.frontend.name, action)
    clock = _Clock()

    def note(r: NodeResult) -> None:
        run.results.append(r)
        echo(r)

    if not with_frontend:
        run.frontend_left = True
        work = (
            (lambda n: _stop(n, clock, grace))
            if action == "off"
            else (lambda n: _start(db, n, action == "install", clock))
        )
        run.results += _fan_out(c.computes, work, echo)
        return run
    if action == "off":
        results = _fan_out(c.computes, lambda n: _stop(n, clock, grace), echo)
        run.results += results
        if any(not r.ok for r in results):
            note(clock.result(c.frontend, False, "left running: not every compute stopped",
                              frontend=True))  # fmt: skip
        else:
            fe = _stop(c.frontend, clock, grace)
            note(NodeResult(**{**fe.__dict__, "frontend": True}))
        return run

    fe = _start(db, c.frontend, action == "install", clock)
    note(NodeResult(**{**fe.__dict__, "frontend": True}))
    if not fe.ok:
        for n in c.computes:
            note(clock.result(n, False, f"not started: the frontend {c.frontend.name} failed"))
        return run
    if wait:
        probe = probe or agent_probe(db)
        timeout = c.ready_timeout if ready_timeout is None else ready_timeout
        deadline = time.monotonic() + timeout
        while not probe(c.frontend.name):
            if time.monotonic() >= deadline:
                why = (
                    f"not ready within {timeout:g} s (its guest agent does not answer: is it "
                    "still installing?); its computes were not started: try again later, or "
                    "give wait=no"
                )
                note(clock.result(c.frontend, False, why, frontend=True))
                return run
            time.sleep(poll)
        run.ready_at = time.time()
        note(clock.result(c.frontend, True, f"ready after {time.monotonic() - clock.t0:.1f} s",
                          frontend=True, step=True))  # fmt: skip
    run.results += _fan_out(c.computes, lambda n: _start(db, n, action == "install", clock), echo)
    return run
