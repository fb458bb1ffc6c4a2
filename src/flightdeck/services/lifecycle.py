"""Running VMs: start, stop, pause, resume, save, restore, move, status, autostart.

Each VM is one unit of work: its database steps are transactions, its libvirt steps are undone
by a `Reverter` if a later step fails. VMs on different containers are handled in parallel, one
connection per container; a container that does not answer fails its own VMs with an error
naming it, and the others go on.

Start, per VM (reference §2.4, with the original's faults fixed):
1. `allocate` plugins, in a write transaction (they may move the VM); committed.
2. The domain XML from the designer, unless a `preboot` plugin returns its own. Its domain type
   is attribute `kvm_domain_type`, else what the container's libvirt offers: `kvm` where it
   has KVM, else `qemu` (TCG), with one warning per container.
3. On the container: refuse a running or paused domain; a domain with a saved state is resumed
   from it; otherwise create missing disk volumes, define the domain, start it, set autostart
   (attribute `kvm_autostart`). Any failure undoes what this start created.
4. A virtual frontend that booted its installer gets boot action `os` (it installs once).

Hosts are named by expressions (the command line) or by `HostIds` (the Airboss, which resolved
its target once); either way they are resolved here once, and every later step of a VM works
on its id and its exact name, never on an expression again.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import HostIds, Hosts, resolve_host, resolve_hosts
from flightdeck.db.models import VM, Host, HostBoot
from flightdeck.errors import Conflict, DriverError, FlightdeckError, UserError
from flightdeck.planner import defaults
from flightdeck.services import frontend_identity as vfid
from flightdeck.services import plugins as plug
from flightdeck.services.base import reading, writing
from flightdeck.services.domains import (
    Placement,
    container_uris,
    frontend_install_due,
    placement,
    vm_row,
    vm_spec,
)
from flightdeck.services.reverter import Reverter

# Read on Core (no ORM) for the status listings; known here too.
from flightdeck.services.vm_status import check_connect_timeout as check_connect_timeout
from flightdeck.services.vm_status import statuses as statuses
from flightdeck.virt import hypervisor as hv
from flightdeck.virt.designer import VMSpec, check_domain_type, design

Echo = Callable[[str], None]
log = logging.getLogger(__name__)
#: What a VM's work returns: its line, or its line and a warning.
Done = str | tuple[str, str | None]


@dataclass(frozen=True)
class Outcome:
    vm: str
    container: str | None
    ok: bool
    message: str
    #: Said once per command (the first VM that met it carries it), on stderr.
    warning: str | None = None


def _timeout(s: Session, host: Host) -> float:
    return check_connect_timeout(attrs.resolve(s, host, "kvm_connect_timeout"), host.name)


def _vm_hosts(s: Session, exprs: Hosts) -> list[Host]:
    hosts = resolve_hosts(s, exprs, default_all=False)
    for h in hosts:
        vm_row(s, h)
    return hosts


def _fan_out(
    groups: dict[str, list[str]], work: Callable[[str, str], Done], timeout: float
) -> list[Outcome]:
    """Run `work(container, vm)` for each VM; containers in parallel, their VMs in order.

    A warning that several VMs met is kept on the first of them only.
    """

    def per_container(container: str) -> list[Outcome]:
        results = []
        for vm in groups[container]:
            try:
                done = work(container, vm)
                line, warning = (done, None) if isinstance(done, str) else done
                results.append(Outcome(vm, container, True, line, warning))
            except FlightdeckError as exc:
                results.append(Outcome(vm, container, False, exc.message))
        return results

    jobs = {c: partial(per_container, c) for c in groups}
    out: list[Outcome] = []
    for container, result in hv.parallel(jobs, timeout=timeout * 4 + 600).items():
        if isinstance(result, BaseException):
            msg = hv.describe(result)
            out += [Outcome(vm, container, False, msg) for vm in groups[container]]
        else:
            out += result
    order = {vm: i for i, vm in enumerate(v for vs in groups.values() for v in vs)}
    seen: set[str] = set()
    final = []
    for o in sorted(out, key=lambda o: order[o.vm]):
        if o.warning is not None and o.warning in seen:
            o = dataclasses.replace(o, warning=None)
        elif o.warning is not None:
            seen.add(o.warning)
        final.append(o)
    return final


@dataclass(frozen=True)
class _Found:
    """The VMs a call names: where each runs, its host id (by name), the connect timeout."""

    where: dict[str, Placement]
    ids: dict[str, int]
    timeout: float


def _find(db: Database, exprs: Hosts) -> _Found:
    with reading(db) as s, attrs.cached(s):
        hosts = _vm_hosts(s, exprs)
        attrs.preload(s, [*hosts, *(c for h in hosts if (c := vm_row(s, h).container))])
        where = {h.name: placement(s, h) for h in hosts}
        timeout = max((_timeout(s, h) for h in hosts), default=hv.DEFAULT_CONNECT_TIMEOUT)
    return _Found(where, {h.name: h.id for h in hosts}, timeout)


def _placements(db: Database, exprs: Hosts) -> tuple[dict[str, Placement], float]:
    found = _find(db, exprs)
    return found.where, found.timeout


def _groups(where: dict[str, Placement]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for p in where.values():
        groups.setdefault(p.container, []).append(p.vm)
    return groups


# Start --------------------------------------------------------------------------------------------


def _allocate(db: Database, host_id: int, vm: str, plugins: list[Any]) -> None:
    if not any(callable(getattr(p, "allocate", None)) for p in plugins):
        return
    with writing(db) as s:
        host = resolve_host(s, HostIds.of(host_id))
        where = vm_row(s, host).container
        plug.run(
            plugins,
            "allocate",
            plug.PluginContext(vm=vm, container=where.name if where else None, session=s),
        )


def _offered(conn: hv.Hypervisor, spec: VMSpec) -> tuple[VMSpec, str | None]:
    """The spec with the domain type the container offers, when the attribute leaves it open.

    Returns the warning to give when the container has no KVM.
    """
    if check_domain_type(spec.attrs.get("kvm_domain_type"), spec.name) is not None:
        return spec, None
    offered = conn.offered_type()
    if offered is None:
        return spec, None
    spec = dataclasses.replace(spec, offered_type=offered)  # type: ignore[arg-type]
    if offered == "kvm":
        return spec, None
    return spec, (
        f"container {conn.container} has no KVM (its libvirt offers only qemu): its VMs run "
        "emulated under TCG, slowly; 'rocks set attr kvm_domain_type qemu' says so and "
        "silences this"
    )


def _start_one(db: Database, host_id: int, vm: str, plugins: list[Any]) -> Done:
    from flightdeck.services.network import vm_links

    _allocate(db, host_id, vm, plugins)
    with reading(db) as s, attrs.cached(s):  # writes nothing: each attribute read once
        host = resolve_host(s, HostIds.of(host_id))
        attrs.preload(s, [host, *filter(None, [vm_row(s, host).container])])
        spec, where = vm_spec(s, host)
        timeout = _timeout(s, host)
        autostart = attrs.is_true(attrs.resolve(s, host, "kvm_autostart"))
        installing = frontend_install_due(s, host)
        image_install = installing and vfid.is_image_install(s, host)
        if image_install:
            # What the installer fetches is what the command line's checksum was made from
            # (same transaction as the spec above).
            vfid.check_ready_to_install(s, host)
            vfid.snapshot_identity(s, host)
        disks = [(d.path, d.format, d.block) for d in spec.disks]
        sizes = {f"{d.prefix}/{d.name}": d.size_gb for d in vm_row(s, host).disks}
        links = vm_links(s, host)  # its VLAN devices (reference §8.2), made below
    design(spec)  # a bad attribute is refused before the container is contacted
    conn = hv.connect(where.container, where.uri, timeout)
    spec, warning = _offered(conn, spec)
    auto_kvm = spec.offered_type == "kvm"
    xml = design(spec).to_xml()
    xml = plug.run(plugins, "preboot", plug.PluginContext(vm, where.container, xml=xml)) or xml
    state = conn.state(vm)
    if state in ("active", "shutdown"):
        raise Conflict(f"the host {vm} is already running on {where.container}")
    if state == "paused":
        raise Conflict(f"the host {vm} is paused: resume it with 'rocks resume host vm {vm}'")
    if links is not None:
        links.ensure()
    if conn.has_managed_save(vm):
        dom = conn.require(vm)
        conn.start(dom)
        return f"resumed {vm} from its saved state on {where.container}", warning
    with Reverter() as undo:
        for path, fmt, block in disks:
            if block:
                continue
            if conn.create_volume(path, sizes.get(path, defaults.DISK_GB), fmt):
                undo.add(f"volume {path}", partial(conn.delete_volume, path))
        existed = conn.domain(vm) is not None
        dom = conn.define(xml)
        if not existed:
            undo.add(f"definition of {vm}", lambda: conn.undefine(vm))
        try:
            conn.start(dom)
        except hv.GuestDidNotStart as exc:
            if not auto_kvm:
                raise
            raise DriverError(
                f"{exc.message} (its domain type is kvm because the libvirt of "
                f"{where.container} offers KVM; where KVM cannot run guests: "
                "rocks set attr kvm_domain_type qemu)"
            ) from None
        undo.add(f"start of {vm}", lambda: conn.destroy(vm))
        conn.set_autostart(dom, autostart)
        if installing and not image_install:
            # The original's installer cannot report: it installs once. An image install
            # becomes `os` when the installer reports success (flightdeck.services.vfrontend).
            with writing(db) as s:
                row = s.get(HostBoot, host_id)
                if row is not None:
                    row.action = "os"
        undo.success()
    how = "installing" if installing else "started"
    return f"{how} {vm} on {where.container}", warning


def start_vms(db: Database, exprs: Hosts) -> list[Outcome]:
    plugins = plug.discover()
    found = _find(db, exprs)
    return _fan_out(
        _groups(found.where),
        lambda _c, vm: _start_one(db, found.ids[vm], vm, plugins),
        found.timeout,
    )


# Stop, pause, resume, save, restore ---------------------------------------------------------------


def _connect(where: dict[str, Placement], vm: str, timeout: float) -> hv.Hypervisor:
    p = where[vm]
    return hv.connect(p.container, p.uri, timeout)


def stop_vms(db: Database, exprs: Hosts, *, terminate: bool = False) -> list[Outcome]:
    """Power off (destroy and undefine), or with `terminate` only run the disallocate plugins."""
    if terminate:
        plugins = plug.discover()
        out = []
        with reading(db) as s:
            hosts = _vm_hosts(s, exprs)
            names = [(h.name, (vm_row(s, h).container or h).name) for h in hosts]
        for vm, container in names:
            plug.run(plugins, "disallocate", plug.PluginContext(vm, container))
            out.append(Outcome(vm, container, True, f"released {vm}"))
        return out
    where, timeout = _placements(db, exprs)

    def stop(_c: str, vm: str) -> str:
        conn = _connect(where, vm, timeout)
        ran = conn.destroy(vm)
        conn.undefine(vm)
        return f"stopped {vm}" if ran else f"{vm} was not running"

    return _fan_out(_groups(where), stop, timeout)


def _simple(
    db: Database, exprs: Hosts, action: Callable[[hv.Hypervisor, str], str]
) -> list[Outcome]:
    where, timeout = _placements(db, exprs)
    return _fan_out(
        _groups(where), lambda _c, vm: action(_connect(where, vm, timeout), vm), timeout
    )


def _one_call(
    call: Callable[[hv.Hypervisor, str], None], done: str
) -> Callable[[hv.Hypervisor, str], str]:
    """An action that is one hypervisor call per VM, reported as `done` (with {vm})."""

    def act(conn: hv.Hypervisor, vm: str) -> str:
        call(conn, vm)
        return done.format(vm=vm)

    return act


def pause_vms(db: Database, exprs: Hosts) -> list[Outcome]:
    return _simple(db, exprs, _one_call(hv.Hypervisor.suspend, "paused {vm}"))


def resume_vms(db: Database, exprs: Hosts) -> list[Outcome]:
    return _simple(db, exprs, _one_call(hv.Hypervisor.resume, "resumed {vm}"))


def reset_vms(db: Database, exprs: Hosts) -> list[Outcome]:
    """Hard reset (the reset button): the guest reboots at once, its definition unchanged."""
    return _simple(db, exprs, _one_call(hv.Hypervisor.reset, "reset {vm}"))


def shutdown_vms(db: Database, exprs: Hosts) -> list[Outcome]:
    """Ask the guests to shut down (ACPI power button); they stop when their OS is done."""
    return _simple(db, exprs, _one_call(hv.Hypervisor.shutdown, "asked {vm} to shut down"))


def _save_path(s: Session, host: Host, given: str | None) -> str:
    if given:
        if not os.path.isabs(given):
            raise UserError(f"file={given}: give an absolute path on the container")
        return given
    vm = vm_row(s, host)
    base = (attrs.resolve(s, vm.container, "kvm_save_directory") if vm.container else None) or (
        attrs.resolve(s, host, "kvm_disk_dir") or "/var/lib/flightdeck/disks"
    )
    return os.path.join(base, f"{host.name}.saved")


def save_vms(db: Database, exprs: Hosts, file: str | None = None) -> list[Outcome]:
    with reading(db) as s:
        hosts = _vm_hosts(s, exprs)
        if file and len(hosts) != 1:
            raise UserError("file= can only be given with one host")
        paths = {h.name: _save_path(s, h, file) for h in hosts}
        chosen = HostIds(tuple(h.id for h in hosts))

    def save(conn: hv.Hypervisor, vm: str) -> str:
        conn.save(vm, paths[vm])
        return f"saved {vm} to {paths[vm]}"

    return _simple(db, chosen, save)


def restore_vms(db: Database, exprs: Hosts, file: str | None = None) -> list[Outcome]:
    with reading(db) as s:
        hosts = _vm_hosts(s, exprs)
        if file and len(hosts) != 1:
            raise UserError("file= can only be given with one host")
        paths = {h.name: _save_path(s, h, file) for h in hosts}
        ids = {h.name: h.id for h in hosts}

    def restore(conn: hv.Hypervisor, vm: str) -> str:
        from flightdeck.services.network import ensure_vm_links

        # As the original ran sync host vlan before a restore.
        ensure_vm_links(db, HostIds.of(ids[vm]))
        conn.restore(paths[vm])
        return f"restored {vm} from {paths[vm]}"

    return _simple(db, HostIds(tuple(ids.values())), restore)


# Status -------------------------------------------------------------------------------------------


def live_info(db: Database, names: Sequence[str]) -> tuple[dict[str, hv.Live], list[str]]:
    """How the VMs named exactly run: state, memory and vCPUs (`rocks apply cluster` compares
    a spec with these for running VMs). One listing per container, in parallel; the second
    value names the containers that did not answer (their VMs are missing from the first)."""
    with reading(db) as s:
        rows: list[tuple[str, int | None]] = []
        for part in (names[i : i + 900] for i in range(0, len(names), 900)):
            rows += s.execute(
                select(Host.name, VM.container_id).join(VM, VM.host_id == Host.id)
                .where(Host.name.in_(list(part)))
            ).tuples().all()  # fmt: skip
        ids = {cid for _n, cid in rows if cid is not None}
        boxes = list(s.scalars(select(Host).where(Host.id.in_(ids)))) if ids else []
        uris = container_uris(s, boxes)
        timeouts = {c.id: _timeout(s, c) for c in boxes}
        cnames = {c.id: c.name for c in boxes}
    wanted: dict[int, list[str]] = {}
    for name, cid in rows:
        if cid is not None:
            wanted.setdefault(cid, []).append(name)

    def listing(cid: int) -> Callable[[], dict[str, hv.Live]]:
        return lambda: hv.connect(cnames[cid], uris[cid], timeouts[cid]).live()

    timeout = max(timeouts.values(), default=hv.DEFAULT_CONNECT_TIMEOUT) + 5
    out: dict[str, hv.Live] = {}
    silent: list[str] = []
    jobs = {str(cid): listing(cid) for cid in wanted}
    for key, found in hv.parallel(jobs, timeout=timeout, workers=32).items():
        if isinstance(found, BaseException):
            silent.append(cnames[int(key)])
            continue
        for name in wanted[int(key)]:
            if name in found:
                out[name] = found[name]
    return out, sorted(silent)


# Config, removal, move, autostart -----------------------------------------------------------------


def domain_xml(db: Database, exprs: Hosts) -> tuple[list[tuple[str, str]], list[str]]:
    """Each VM's domain XML as its next start would define it, and warnings.

    The domain type comes from the container when the attribute leaves it open; a container
    that does not answer is warned about and its VMs get `kvm`.
    """
    with reading(db) as s:
        specs = []
        for h in _vm_hosts(s, exprs):
            spec, where = vm_spec(s, h)
            specs.append((spec, where, _timeout(s, h)))
    out: list[tuple[str, str]] = []
    warnings: list[str] = []
    for spec, where, timeout in specs:
        design(spec)
        if check_domain_type(spec.attrs.get("kvm_domain_type"), spec.name) is None:
            try:
                spec, warning = _offered(hv.connect(where.container, where.uri, timeout), spec)
            except FlightdeckError as exc:
                warning = f"{exc.message}; {spec.name} is shown with domain type kvm"
            if warning is not None and warning not in warnings:
                warnings.append(warning)
        out.append((spec.name, design(spec).to_xml()))
    return out, warnings


def spec_of(db: Database, vm: str) -> VMSpec:
    with reading(db) as s:
        return vm_spec(s, resolve_host(s, vm))[0]


def destroy_for_removal(
    s: Session, hosts: Sequence[Host], *, keep_disks: bool, force: bool = False
) -> list[str]:
    """Destroy and undefine each VM's domain and (unless keep_disks) delete its volumes.

    Called inside the removing transaction, so a container that does not answer aborts the
    removal with nothing changed in the database (unless `force`, which only warns).
    """
    warnings: list[str] = []
    for h in hosts:
        vm = s.scalar(select(VM).where(VM.host_id == h.id))
        if vm is None or vm.container is None:
            continue
        uri = container_uris(s, [vm.container])[vm.container.id]
        try:
            conn = hv.connect(vm.container.name, uri, _timeout(s, vm.container))
            conn.destroy(h.name)
            conn.undefine(h.name)
            if not keep_disks:
                for d in vm.disks:
                    if d.vbd_type != "phy":
                        conn.delete_volume(os.path.join(d.prefix, d.name))
        except FlightdeckError as exc:
            if not force:
                raise FlightdeckError(
                    f"{exc.message} (nothing was removed; add force=yes to remove {h.name} from "
                    "the database anyway)"
                ) from None
            warnings.append(f"warning - {h.name}: {exc.message}")
    return warnings


def move_vm(db: Database, vm: str, target_expr: str) -> str:
    """Cold move: stop, copy its volumes over libvirt streams, re-home, start if it ran.

    As the original (reference §2.4), the volumes go into the target's `kvm_disk_dir` under
    the same file names, and the disks' prefix follows them. When both containers are served
    by the same libvirt URI and the directory does not change, the volume already is where it
    must be: nothing is copied or deleted (copying a file onto itself would destroy it).
    """
    from flightdeck.services.allocation import disk_dir, require_kvm

    with reading(db) as s:
        host = resolve_host(s, vm)
        moving = HostIds.of(host.id)  # from here on the VM is its id, not the expression
        vm = host.name
        row = vm_row(s, host)
        src = placement(s, host)
        target = resolve_host(s, target_expr)
        require_kvm(s, [target])
        if row.container_id == target.id:
            raise UserError(
                f"the source physical host, and the destination host are the same: {target.name}"
            )
        dst_uri = container_uris(s, [target])[target.id]
        dst_dir = disk_dir(s, target)
        timeout = _timeout(s, host)
        disks = [
            _MovedDisk(
                d.id,
                d.prefix,
                os.path.join(d.prefix, d.name),
                d.prefix if d.vbd_type == "phy" else dst_dir,
                os.path.join(d.prefix if d.vbd_type == "phy" else dst_dir, d.name),
                d.size_gb,
                d.vbd_type,
            )
            for d in row.disks
        ]
    same_storage = src.uri == dst_uri
    a = hv.connect(src.container, src.uri, timeout)
    b = hv.connect(target.name, dst_uri, timeout)
    was_running = a.state(vm) in ("active", "paused", "shutdown")
    with Reverter() as undo:
        if was_running:
            a.destroy(vm)
        for d in disks:
            if not d.copied(same_storage):
                continue
            fmt = "qcow2" if d.kind == "qcow2" else "raw"
            if b.volume(d.target) is not None:
                raise Conflict(f"{d.target} already exists on {target.name}: remove it first")
            b.write_volume(d.target, d.size_gb, fmt, a.read_volume(d.source))
            undo.add(f"copy of {d.source} on {target.name}", partial(b.delete_volume, d.target))
        a.undefine(vm)
        with writing(db) as s:
            moved = vm_row(s, resolve_host(s, moving))
            moved.container_id = target.id
            for disk in moved.disks:
                done = next((d for d in disks if d.id == disk.id), None)
                if done is not None:
                    disk.prefix = done.new_prefix
        undo.add("re-homing", lambda: _rehome(db, moving, src.container, disks))
        for d in disks:
            if d.copied(same_storage):
                a.delete_volume(d.source)
        undo.success()
    if was_running:
        start_vms(db, moving)
    return f"moved {vm} from {src.container} to {target.name}"


@dataclass(frozen=True)
class _MovedDisk:
    """A disk on the move: its row, where it is, where it goes."""

    id: int
    prefix: str
    source: str
    new_prefix: str
    target: str
    size_gb: int
    kind: str

    def copied(self, same_storage: bool) -> bool:
        """Whether its bytes must travel (not a block device, not already in place)."""
        return self.kind != "phy" and not (same_storage and self.target == self.source)


def _rehome(db: Database, vm: HostIds, container: str, disks: Sequence[_MovedDisk] = ()) -> None:
    with writing(db) as s:
        row = vm_row(s, resolve_host(s, vm))
        row.container_id = s.scalars(select(Host.id).where(Host.name == container)).one()
        for disk in row.disks:
            old = next((d for d in disks if d.id == disk.id), None)
            if old is not None:
                disk.prefix = old.prefix


def autostart_vms(db: Database, container_expr: str, *, stopping: bool) -> list[Outcome]:
    """What a container runs at shutdown (save autostart VMs) and at boot (restore/boot them)."""
    with reading(db) as s:
        container = resolve_host(s, container_expr)
        hosts = list(
            s.scalars(
                select(Host).join(VM, VM.host_id == Host.id).where(VM.container_id == container.id)
            )
        )
        auto = attrs.resolve_many(s, hosts, "kvm_autostart")
        chosen = HostIds(tuple(h.id for h in hosts if attrs.is_true(auto.get(h.id))))
    if not chosen.ids:
        return []
    if stopping:
        where, timeout = _placements(db, chosen)

        def save(_c: str, vm: str) -> str:
            conn = _connect(where, vm, timeout)
            if conn.state(vm) != "active":
                return f"{vm} is not running"
            conn.managed_save(vm)
            return f"saved {vm}"

        return _fan_out(_groups(where), save, timeout)
    return start_vms(db, chosen)


# After an image install ---------------------------------------------------------------------------


def restart_when_off(db: Database, name: str, wait: float = 180.0) -> None:
    """Wait (in a thread) for the installer to power `name` off, then start it from its disk.

    The guide's frontend "reboots" after its install; here the installer powers off (libvirt
    kernel boot cannot switch to the disk in place) and this starts it again, `wait` seconds at
    most, polling its state once a second.
    """

    def run() -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                state = statuses(db, [name]).get(name)
            except FlightdeckError as exc:
                log.warning("restart of %s: %s", name, exc.message)
                return
            if state in ("shutoff", "nostate"):
                for outcome in start_vms(db, [name]):
                    log.warning("restart of %s: %s", name, outcome.message)
                return
            time.sleep(1.0)
        log.warning("restart of %s: it did not power off within %.0f s", name, wait)

    threading.Thread(target=run, name=f"restart-{name}", daemon=True).start()
