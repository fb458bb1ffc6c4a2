"""`rocks apply cluster file=<spec>`: make a virtual cluster what its spec says, atomically.

1. The spec is read and validated (`model.parse_spec`: line and key of any error), its keys
   parsed, its plugin attributes checked against the installed plugins.
2. The VMs of the cluster that run are asked how they run (`lifecycle.live_info`: state,
   memory, vCPUs, one listing per container), before the write transaction starts.
3. In one write transaction: a cluster that does not exist is created exactly as `add
   cluster` would (`clusters.plan_in` / `write_plan`, the same pure plan), then every VM is
   brought to the spec: computes added (`planner.cluster.plan_more_computes`: the round robin
   and names go on where they stopped) or removed, CPUs and memory, boot actions, CD-ROM,
   attributes and keys set. Each change is a line of the plan.
4. A change that needs a stopped VM (CPUs, memory, removal) for one that runs is refused,
   unless `restart=yes`: then it is stopped (ACPI, then off), redefined and started again.
   These host steps run inside the transaction and are undone (`Reverter`) when a later step
   or the commit fails, so a failure leaves the database and the containers as they were.
5. After the commit, the disk volumes of removed computes are deleted (warnings, not errors:
   a volume left behind does not make the database wrong).

`dry_run` does all of it but the host steps, and rolls the transaction back: the plan printed
is the one that would be applied, refusals included.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import check_plain_name
from flightdeck.db.models import (
    BootAction,
    Cluster,
    Host,
    HostAttr,
    HostBoot,
    Interface,
    Network,
    PublicKey,
)
from flightdeck.errors import Conflict, FlightdeckError, UserError
from flightdeck.planner import defaults
from flightdeck.planner.cluster import (
    COMPUTE,
    ClusterRequest,
    Container,
    GrowRequest,
    NicPlan,
    RandomSource,
    VMPlan,
    plan_more_computes,
)
from flightdeck.planner.disks import DiskSpec, default_disk, parse_disk_spec
from flightdeck.planner.names import validate_host_name, vm_name
from flightdeck.services.base import reading, writing
from flightdeck.services.reverter import Reverter
from flightdeck.services.spec import model as m
from flightdeck.services.spec.state import ClusterState, VMState, cluster_of, load
from flightdeck.virt import hypervisor as hv

#: Seconds a running VM gets to shut down (ACPI) before it is powered off, when a change
#: needs it stopped (attribute `kvm_shutdown_grace` overrides it per VM).
STOP_GRACE = 30.0


@dataclass(frozen=True)
class WantedKey:
    fingerprint: str
    pem: str
    description: str | None


@dataclass
class Applied:
    """What `apply` did (or, with dry_run, would do)."""

    lines: list[str]
    created: bool = False
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.lines)


class _DryRun(Exception):
    """Ends the transaction of a dry run (rolled back) with its plan."""

    def __init__(self, applied: Applied) -> None:
        super().__init__("dry run")
        self.applied = applied


# Before the transaction: keys and plugins ------------------------------------------------------


def _wanted_keys(spec: m.ClusterSpec) -> dict[m.Path, list[WantedKey]]:
    from flightdeck.crypto import keys as ck

    out: dict[m.Path, list[WantedKey]] = {}
    for vm in _items(spec):
        if vm.keys is None:
            continue
        wanted: list[WantedKey] = []
        for i, k in enumerate(vm.keys):
            where = (*vm.path, "keys", i, "key")
            try:
                pub = ck.parse_public_key(k.key, name="the key")
            except UserError as exc:
                raise spec.refuse(where, exc.message) from None
            fp = ck.fingerprint(pub)
            if any(w.fingerprint == fp for w in wanted):
                raise spec.refuse(where, f"key {fp} is listed twice")
            if k.description is not None and any(not c.isprintable() for c in k.description):
                raise spec.refuse((*vm.path, "keys", i, "description"), "printable text only")
            wanted.append(WantedKey(fp, ck.public_key_to_pem(pub), k.description or None))
        out[vm.path] = wanted
    return out


def _check_plugins(spec: m.ClusterSpec) -> None:
    if not any(vm.plugins for vm in _items(spec)):
        return
    from flightdeck.services.spec.report import plugin_attributes

    declared = plugin_attributes()
    owners = set(declared.values())
    for vm in _items(spec):
        for plugin, values in (vm.plugins or {}).items():
            if plugin not in owners:
                raise spec.refuse(
                    (*vm.path, "plugins", plugin),
                    f"no installed plugin {plugin!r} declares attributes"
                    + (f" (plugins: {', '.join(sorted(owners))})" if owners else ""),
                )
            for name in values:
                if declared.get(name) != plugin:
                    raise spec.refuse(
                        (*vm.path, "plugins", plugin, name),
                        f"plugin {plugin} does not declare attribute {name!r}",
                    )


def _items(spec: m.ClusterSpec) -> list[m.VMItem]:
    c = spec.computes
    return [spec.frontend, *((c.nodes or ()) if c is not None else ())]


# Finding the cluster ----------------------------------------------------------------------------


def _find(s: Session, spec: m.ClusterSpec) -> Cluster | None:
    """The cluster the spec names: by its frontend's name, else by its public IP."""
    fe = spec.frontend
    by_ip = s.scalar(
        select(Cluster)
        .join(Interface, Interface.host_id == Cluster.frontend_id)
        .join(Network, Network.id == Interface.network_id)
        .where(Network.name == "public", Interface.ip == fe.ip.strip())
    )
    if fe.name is None:
        return by_ip
    host = s.scalar(select(Host).where(Host.name == fe.name))
    if host is None:
        if by_ip is not None:
            raise spec.refuse(
                ("frontend", "name"),
                f"the cluster at {fe.ip} has frontend {by_ip.frontend.name}, not {fe.name}",
            )
        return None
    cluster = cluster_of(s, host)
    if cluster is None:
        raise spec.refuse(("frontend", "name"), f"host {fe.name} is not a virtual frontend")
    return cluster


# The transaction -------------------------------------------------------------------------------


@dataclass
class _Work:
    """The plan being made: its lines, the host steps it needs, what is left for after."""

    spec: m.ClusterSpec
    live: Mapping[str, hv.Live]
    restart: bool
    lines: list[str] = field(default_factory=list)
    #: (vm, what) of changes that need a running VM stopped.
    needs_stop: list[tuple[str, str]] = field(default_factory=list)
    #: VMs to stop and start again (after the database steps), by host id.
    restarts: dict[int, str] = field(default_factory=dict)
    #: Removed computes: (name, container name, uri, volume paths).
    removed: list[tuple[str, str, str, list[str]]] = field(default_factory=list)
    #: Names of VMs made by this apply (their settings are part of their `+` line).
    new: set[str] = field(default_factory=set)

    def running(self, name: str) -> hv.Live | None:
        live = self.live.get(name)
        return live if live is not None and live.state in hv.ACTIVE else None


def apply_cluster(
    db: Database,
    text: str,
    source: str = "spec",
    *,
    dry_run: bool = False,
    restart: bool = False,
    rng: RandomSource | None = None,
) -> Applied:
    """Apply the spec `text` (named `source` in errors); see the module's docstring."""
    spec = m.parse_spec(text, source)
    keys = _wanted_keys(spec)
    _check_plugins(spec)
    with reading(db) as s:
        existing = _find(s, spec)
        names = [v.name for v in load(s, existing).vms] if existing is not None else []
    live: dict[str, hv.Live] = {}
    warnings: list[str] = []
    if names:
        from flightdeck.services.lifecycle import live_info

        live, silent = live_info(db, names)
        warnings += [
            f"warning - container {c} does not answer: its VMs are taken as stopped" for c in silent
        ]
    work = _Work(spec, live, restart)
    try:
        with Reverter() as undo, writing(db) as s:
            created = _converge(s, work, keys, rng)
            if work.needs_stop and not restart:
                raise _refusal(work.needs_stop)
            if dry_run:
                raise _DryRun(Applied(work.lines, created, True, warnings))
            _restart_all(s, work, undo)
        undo.success()
    except _DryRun as done:
        return done.applied
    warnings += _delete_volumes(work.removed)
    return Applied(work.lines, created, False, warnings)


def _refusal(needs: Sequence[tuple[str, str]]) -> UserError:
    vms = list(dict.fromkeys(vm for vm, _what in needs))
    if len(vms) == 1:
        what = ", ".join(w for vm, w in needs if vm == vms[0])
        return UserError(
            f"{vms[0]} is running and {what} needs it stopped: stop it first, or give "
            "restart=yes (it is shut down, changed and started again)"
        )
    shown = ", ".join(vms[:8]) + (f" and {len(vms) - 8} more" if len(vms) > 8 else "")
    return UserError(
        f"{len(vms)} running VMs need a restart for these changes ({shown}): stop them first, "
        "or give restart=yes"
    )


def _converge(
    s: Session, work: _Work, keys: Mapping[m.Path, list[WantedKey]], rng: RandomSource | None
) -> bool:
    spec = work.spec
    cluster = _find(s, spec)
    created = cluster is None
    if cluster is None:
        cluster = _create(s, work, rng)
    st = load(s, cluster)
    if not created:
        from flightdeck.services.allocation import disk_dirs

        _check_fixed(spec, st)
        boxes = [st.frontend.container] if st.frontend.container is not None else []
        _check_place(spec, spec.frontend, st.frontend, disk_dirs(s, boxes))
    _computes(s, work, st, cluster)
    s.flush()
    st = load(s, cluster)
    by_name = {item.name: item for item in _items(spec) if item.name is not None}
    c = spec.computes
    shared_attrs = c.attributes if c is not None else None
    for i, v in enumerate(st.vms):
        is_fe = i == 0
        item: m.VMItem = spec.frontend if is_fe else by_name.get(v.name, m.VMItem(path=()))
        if not is_fe and c is not None and c.nodes is not None and v.name not in by_name:
            continue  # removed above
        _settle(s, work, v, item, is_fe, keys.get(item.path) if item.path else None, shared_attrs)
    return created


# Creating --------------------------------------------------------------------------------------


def _request(spec: m.ClusterSpec, containers: Sequence[str]) -> ClusterRequest:
    fe, c = spec.frontend, spec.computes or m.ComputesItem()
    count = len(c.nodes) if c.nodes is not None else (c.count or 0)
    return ClusterRequest(
        ip=fe.ip,
        num_computes=count,
        cpus_per_compute=c.cpus or defaults.CPUS,
        mem_per_compute=c.memory or defaults.MEM_MB,
        disk_per_compute=c.disk or defaults.DISK_GB,
        disk_per_frontend=fe.disk or defaults.DISK_GB,
        cpus_per_frontend=fe.cpus or defaults.CPUS,
        mem_per_frontend=fe.memory or defaults.MEM_MB,
        container_hosts=tuple(containers),
        vlan=spec.vlan,
        subnet=spec.network or "private",
        gateway=fe.gateway,
        fe_name=fe.name,
        fe_container=fe.container,
        cluster_naming=c.naming == "cluster",
        placement=c.placement or "round-robin",
        fe_fqdn=fe.fqdn,
    )


def _create(s: Session, work: _Work, rng: RandomSource | None) -> Cluster:
    from flightdeck.services.allocation import disk_dirs
    from flightdeck.services.clusters import plan_in, write_plan

    spec = work.spec
    c = spec.computes or m.ComputesItem()
    nodes = c.nodes or ()
    given = [n.container for n in nodes]
    if any(given) and not all(given):
        missing = next(n for n in nodes if not n.container)
        raise spec.refuse(
            (*missing.path, "container"),
            "a new cluster's nodes name a container each, or none do",
        )
    containers = given if nodes and all(given) else list(c.containers or ())
    try:
        planned = plan_in(s, _request(spec, [str(x) for x in containers]), rng)
    except FlightdeckError as exc:
        path = _planner_path(exc.message, bool(nodes and all(given)))
        raise spec.refuse(path, exc.message) from None
    plan = planned.plan
    found = disk_dirs(s, list(planned.hosts.values()))
    dirs = {h.name: found[h.id] for h in planned.hosts.values()}
    fe_plan = plan.frontend
    if spec.frontend.disks is not None:
        fe_plan = replace(fe_plan, disks=_disk_list(spec, spec.frontend))
    computes = list(plan.computes)
    taken = {fe_plan.name}
    for i, node in enumerate(nodes):
        computes[i] = _node_plan(s, spec, node, computes[i], planned.hosts, dirs, taken)
    planned = replace(planned, plan=replace(plan, frontend=fe_plan, computes=tuple(computes)))
    created = write_plan(s, planned)
    work.lines.append(
        f"+ cluster {created.frontend} on {fe_plan.container} (vlan {created.vlan}, "
        f"{spec.frontend.ip.strip()})"
    )
    work.lines += [f"+ {name} on {box}" for name, box in created.computes]
    work.new |= {created.frontend, *(name for name, _box in created.computes)}
    s.flush()
    fe = s.scalar(select(Host).where(Host.name == created.frontend))
    assert fe is not None
    cluster = cluster_of(s, fe)
    assert cluster is not None
    return cluster


def _planner_path(message: str, by_node: bool) -> m.Path:
    """Which key of the spec a refusal of the cluster's plan is about (for its line)."""
    text = message.lower()
    for words, path in (
        (("vlan",), ("vlan",)),
        (("gateway",), ("frontend", "gateway")),
        (("fe-fqdn",), ("frontend", "fqdn")),
        (("fe-name", "cluster-naming"), ("frontend", "name")),
        (("cpus-per-frontend",), ("frontend", "cpus")),
        (("mem-per-frontend", "the frontend needs"), ("frontend", "memory")),
        (("cpus-per-compute",), ("computes", "cpus")),
        (("mem-per-compute", "compute "), ("computes", "memory")),
        (("ip ", "address"), ("frontend", "ip")),
        (("network",), ("network",)),
        (("container", "cannot host vms", "not found", "no host"),
         ("computes", "nodes") if by_node else ("computes", "containers")),
    ):  # fmt: skip
        if any(w in text for w in words):
            return path
    return ("frontend",)


def _disk_list(spec: m.ClusterSpec, item: m.VMItem) -> tuple[DiskSpec, ...]:
    out = []
    for i, d in enumerate(item.disks or ()):
        try:
            out.append(parse_disk_spec(d.spec, d.size))
        except UserError as exc:
            raise spec.refuse((*item.path, "disks", i, "spec"), exc.message) from None
    return tuple(out)


def _slice_of(name: str, box: Host | Container) -> int:
    """The slice a Rocks name gives on `box` (`hosted-vm-0-1-5` on vm-container-0-1: 5), else
    0 as for `add host vm name=`."""
    prefix = vm_name(COMPUTE, box.rack, box.rank, 0)[:-1]
    tail = name[len(prefix) :] if name.startswith(prefix) else ""
    return int(tail) if tail.isdigit() and len(tail) < 7 else 0


def _node_plan(
    s: Session,
    spec: m.ClusterSpec,
    node: m.VMItem,
    planned: VMPlan,
    hosts: Mapping[str, Host],
    dirs: Mapping[str, str],
    taken: set[str],
) -> VMPlan:
    """A planned compute with what its node says: its name, container, size, disks."""
    name = node.name or planned.name
    box = hosts.get(node.container or planned.container)
    if box is None:  # pragma: no cover - the plan only names hosts it was given
        raise spec.refuse((*node.path, "container"), f"unknown container {node.container}")
    if name != planned.name:
        try:
            validate_host_name(name)
            check_plain_name(s, name)
        except UserError as exc:
            raise spec.refuse((*node.path, "name"), exc.message) from None
        if name in taken or s.scalar(select(Host.id).where(Host.name == name)) is not None:
            raise spec.refuse((*node.path, "name"), f"host {name} is already in the database")
    taken.add(name)
    size = node.disk or (planned.disks[0].size_gb if planned.disks else defaults.DISK_GB)
    disks = (
        _disk_list(spec, node)
        if node.disks is not None
        else (default_disk(name, dirs[box.name], size),)
    )
    return replace(
        planned,
        name=name,
        container=box.name,
        slice=planned.slice if name == planned.name else _slice_of(name, box),
        cpus=node.cpus or planned.cpus,
        mem_mb=node.memory or planned.mem_mb,
        nics=tuple(replace(n, name=name) for n in planned.nics),
        disks=disks,
    )


# What apply does not change ---------------------------------------------------------------------


def _check_fixed(spec: m.ClusterSpec, st: ClusterState) -> None:
    fe = spec.frontend
    public_ip = st.public.ip if st.public is not None else None
    public_name = st.public.name if st.public is not None else None
    fixed: list[tuple[m.Path, Any, Any]] = [
        (("frontend", "ip"), fe.ip.strip(), public_ip),
        (("frontend", "fqdn"), fe.fqdn, public_name),
        (("frontend", "gateway"), fe.gateway, st.gateway),
        (("vlan",), spec.vlan, st.cluster.vlan),
        (("network",), spec.network, st.network.name),
    ]
    for path, wanted, actual in fixed:
        if wanted is not None and wanted != actual:
            raise spec.refuse(
                path,
                f"{actual} -> {wanted} cannot be changed by apply (it is the cluster's identity "
                "on the network): remove the cluster and apply the spec to make it anew",
            )


def _check_place(spec: m.ClusterSpec, item: m.VMItem, v: VMState, dirs: Mapping[int, str]) -> None:
    """A VM's container and disks stay: they are moved or changed by other commands."""
    actual = v.container.name if v.container is not None else None
    if item.container is not None and item.container != actual:
        raise spec.refuse(
            (*item.path, "container"),
            f"{v.name} is on {actual}, not {item.container}: move it with "
            f"'rocks move host vm {v.name} {item.container}'",
        )
    if item.disks is not None:
        wanted = _disk_list(spec, item)
        if tuple(v.disks) != wanted:
            raise spec.refuse((*item.path, "disks"), _disk_change(v))
    elif item.disk is not None:
        from flightdeck.services.spec.report import default_size

        if default_size(v, dirs.get(v.container.id, "") if v.container else "") != item.disk:
            raise spec.refuse((*item.path, "disk"), _disk_change(v))


def _disk_change(v: VMState) -> str:
    now = ", ".join(f"{d.format()} {d.size_gb} GB" for d in v.disks) or "none"
    return (
        f"the disks of {v.name} ({now}) are not changed by apply: use 'rocks set host vm "
        f"{v.name} disk=... disksize=...' while it is stopped"
    )


# The computes ----------------------------------------------------------------------------------


def _computes(s: Session, work: _Work, st: ClusterState, cluster: Cluster) -> None:
    from flightdeck.services.allocation import disk_dirs

    spec = work.spec
    c = spec.computes
    boxes = {v.container.id: v.container for v in st.vms if v.container is not None}
    dirs = disk_dirs(s, list(boxes.values()))
    if c is None:
        return
    current = st.computes
    if c.nodes is not None:
        wanted = {n.name: n for n in c.nodes}
        keep = [v for v in current if v.name in wanted]
        remove = [v for v in current if v.name not in wanted]
        have = {v.name for v in current}
        for n in c.nodes:
            if n.name not in have and n.name not in work.new:
                clash = s.scalar(select(Host.id).where(Host.name == n.name))
                if clash is not None:
                    raise spec.refuse(
                        (*n.path, "name"),
                        f"host {n.name} is in the database but not in this cluster",
                    )
        for v in keep:
            _check_place(spec, wanted[v.name], v, dirs)
        adding = [n for n in c.nodes if n.name not in have]
    else:
        count = len(current) if c.count is None else c.count
        keep, remove = current[:count], current[count:]
        adding = [m.VMItem(path=("computes", "count"))] * max(0, count - len(current))
    for v in reversed(remove):
        _remove(s, work, v, dirs)
    if adding:
        _grow(s, work, st, cluster, keep, adding)


def _remove(s: Session, work: _Work, v: VMState, dirs: Mapping[int, str]) -> None:
    from flightdeck.services.domains import container_uris

    live = work.running(v.name)
    note = ""
    if live is not None:
        work.needs_stop.append((v.name, "its removal"))
        note = f" (running on {v.container.name if v.container else '?'}: stopped first)"
    work.lines.append(f"- {v.name}{note}")
    if v.container is not None:
        uri = container_uris(s, [v.container])[v.container.id]
        paths = [d.path for d in v.disks if d.vbd_type != "phy"]
        work.removed.append((v.name, v.container.name, uri, paths))
    s.delete(v.host)


def _grow(
    s: Session,
    work: _Work,
    st: ClusterState,
    cluster: Cluster,
    keep: Sequence[VMState],
    adding: Sequence[m.VMItem],
) -> None:
    from flightdeck.services import allocation as al
    from flightdeck.services.clusters import appliance_ids, new_vm
    from flightdeck.services.inventory import find_network

    spec = work.spec
    c = spec.computes or m.ComputesItem()
    names = [str(x) for x in (c.containers or ())]
    if names:
        from flightdeck.db.hostexpr import resolve_hosts

        boxes = []
        for i, name in enumerate(names):
            try:
                boxes += resolve_hosts(s, [name], default_all=False)
            except FlightdeckError as exc:
                raise spec.refuse(("computes", "containers", i), exc.message) from None
    else:
        seen: dict[int, Host] = {}
        for v in keep:
            if v.container is not None:
                seen.setdefault(v.container.id, v.container)
        boxes = list(seen.values())
        if not boxes:
            from flightdeck.services.clusters import _default_containers, _physical_frontend

            boxes = _default_containers(s, _physical_frontend(s))
    # Nodes that name their container go there; the others by the round robin.
    extra = {n.container for n in adding if n.container}
    named = {}
    for cname in sorted(x for x in extra if x is not None):
        h = s.scalar(select(Host).where(Host.name == cname))
        if h is None:
            node = next(n for n in adding if n.container == cname)
            raise spec.refuse((*node.path, "container"), f"unknown host {cname}")
        named[cname] = h
    everyone = {h.id: h for h in [*boxes, *named.values()]}
    dirs = al.disk_dirs(s, list(everyone.values()))
    kvm = {h.id for h in al.kvm_hosts(s, list(everyone.values()))}
    slices = al.max_slices(s)
    capacity = {}
    if c.placement == "capacity":
        capacity = {x.name: x for x in al.container_capacity(s, list(everyone.values()))}

    def box(h: Host) -> Container:
        return Container(
            h.name, h.rack, h.rank, h.id in kvm, dirs[h.id], slices.get(h.id, 0),
            capacity.get(h.name),
        )  # fmt: skip

    fe_name = st.frontend.name
    naming = c.naming or ("cluster" if _cluster_named(st) else "rocks")
    base, mask = al.mac_space(s)
    grow = GrowRequest(
        count=len(adding),
        existing=len(keep),
        vlan=cluster.vlan,
        cpus=c.cpus or defaults.CPUS,
        mem_mb=c.memory or defaults.MEM_MB,
        disk_gb=c.disk or defaults.DISK_GB,
        placement=c.placement or "round-robin",
        cluster_naming=fe_name if naming == "cluster" else None,
    )
    try:
        plans = plan_more_computes(
            grow,
            [box(h) for h in boxes],
            frozenset(al.host_names(s)),
            frozenset(al.used_macs(s)),
            base,
            mask,
        )
    except FlightdeckError as exc:
        raise spec.refuse(("computes",), exc.message) from None
    hosts = {h.name: h for h in everyone.values()}
    by_name = {h.name: dirs[h.id] for h in everyone.values()}
    taken: set[str] = set()
    final = []
    for node, plan in zip(adding, plans, strict=True):
        if node.container and node.container in named and named[node.container].id not in kvm:
            raise spec.refuse(
                (*node.path, "container"),
                f"host {node.container} cannot host VMs: its attribute kvm is not true",
            )
        final.append(_node_plan(s, spec, node, plan, hosts, by_name, taken) if node.name else plan)
    apps = appliance_ids(s)
    private = find_network(s, st.network.name)
    new = []
    for p in final:
        # A cluster's computes have one network: its private one.
        new.append(new_vm(p, apps, hosts[p.container], lambda _n: private.id, cluster.id))
        work.lines.append(f"+ {p.name} on {p.container}")
        work.new.add(p.name)
    al.insert_vms(s, new)


def _cluster_named(st: ClusterState) -> bool:
    from flightdeck.planner.names import cluster_compute_name

    return bool(st.computes) and all(
        v.name == cluster_compute_name(st.frontend.name, i) for i, v in enumerate(st.computes)
    )


_ = NicPlan  # the planner's NIC type, carried by the plans above


# Settling one VM -------------------------------------------------------------------------------


def _settle(
    s: Session,
    work: _Work,
    v: VMState,
    item: m.VMItem,
    is_frontend: bool,
    keys: Sequence[WantedKey] | None,
    shared_attrs: Mapping[str, str] | None,
) -> None:
    """Bring one VM's settings to the spec: each difference a line and a database step."""
    spec = work.spec
    c = spec.computes
    quiet = v.name in work.new
    live = work.running(v.name)
    say: Callable[[str], None] = (lambda _t: None) if quiet else work.lines.append
    cpus = item.cpus if (is_frontend or item.cpus) else (c.cpus if c else None)
    memory = item.memory if (is_frontend or item.memory) else (c.memory if c else None)
    for what, wanted, stored, running in (
        ("cpus", cpus, v.host.cpus, live.cpus if live else None),
        ("memory", memory, v.vm.mem_mb, live.mem_mb if live else None),
    ):
        if wanted is None:
            continue
        now = running if running is not None else stored
        if wanted != now:
            note = " (needs a restart)" if live is not None else ""
            say(f"~ {v.name} {what} {now} -> {wanted}{note}")
            if live is not None:
                work.needs_stop.append((v.name, f"{what} {now} -> {wanted}"))
                work.restarts[v.host.id] = v.name
        if wanted != stored:
            if what == "cpus":
                v.host.cpus = wanted
            else:
                v.vm.mem_mb = wanted
    _boot(s, work, v, item, say)
    if item.cdrom_given:
        wanted_cd = _cdrom(spec, item)
        if wanted_cd != v.vm.cdrom_path:
            note = " (at its next start)" if live is not None else ""
            say(f"~ {v.name} cdrom {v.vm.cdrom_path or 'none'} -> {wanted_cd or 'none'}{note}")
            v.vm.cdrom_path = wanted_cd
    _attributes(s, work, v, item, shared_attrs if not is_frontend else None, say)
    if keys is not None:
        _keys(s, v, keys, say)


def _boot(s: Session, work: _Work, v: VMState, item: m.VMItem, say: Callable[[str], None]) -> None:
    spec = work.spec
    for key, field_name in (("install-action", "install_action"), ("run-action", "run_action")):
        wanted = getattr(item, field_name)
        actual = getattr(v.host, field_name)
        if wanted is None or wanted == actual:
            continue
        if s.scalar(select(BootAction.id).where(BootAction.name == wanted)) is None:
            raise spec.refuse(
                (*item.path, key), f"no boot action {wanted!r}: see rocks list bootaction"
            )
        say(f"~ {v.name} {key} {actual} -> {wanted}")
        setattr(v.host, field_name, wanted)
    if item.boot is not None and item.boot != v.boot:
        say(f"~ {v.name} boot {v.boot or 'none'} -> {item.boot}")
        row = s.get(HostBoot, v.host.id)
        if row is None:
            s.add(HostBoot(host_id=v.host.id, action=item.boot))
        else:
            row.action = item.boot


def _cdrom(spec: m.ClusterSpec, item: m.VMItem) -> str | None:
    import posixpath

    path = (item.cdrom or "").strip()
    if not path or path.lower() == "none":
        return None
    where = (*item.path, "cdrom")
    if not posixpath.isabs(path):
        raise spec.refuse(where, f"{path!r}: an absolute path of an ISO on the container")
    if ".." in path.split("/") or any(ch in path for ch in "\n\r\x00"):
        raise spec.refuse(where, f"{path!r}: no '..' or control characters")
    return posixpath.normpath(path)


def _attributes(
    s: Session,
    work: _Work,
    v: VMState,
    item: m.VMItem,
    shared: Mapping[str, str] | None,
    say: Callable[[str], None],
) -> None:
    """Attributes said (the computes' shared ones, the node's, its plugins') are exact."""
    if item.attributes is None and item.plugins is None and shared is None:
        return
    wanted: dict[str, str] = dict(shared or {})
    managed: set[str] | None = set()  # None: every attribute of the host is said
    if item.attributes is not None or shared is not None:
        managed = None
        wanted.update(item.attributes or {})
    for values in (item.plugins or {}).values():
        wanted.update(values)
        if managed is not None:
            managed |= set(values)
    current = v.attributes
    gone = [k for k in current if k not in wanted and (managed is None or k in managed)]
    for name in sorted(gone):
        say(f"~ {v.name} attribute {name} removed (was {current[name]!r})")
    if gone:
        s.execute(delete(HostAttr).where(HostAttr.host_id == v.host.id, HostAttr.name.in_(gone)))
    for name, value in wanted.items():
        if current.get(name) == value:
            continue
        if name in current:
            say(f"~ {v.name} attribute {name} {current[name]!r} -> {value!r}")
        else:
            say(f"~ {v.name} attribute {name} = {value!r}")
        row = s.get(HostAttr, (v.host.id, name))
        if row is None:
            s.add(HostAttr(host_id=v.host.id, name=name, value=value))
        else:
            row.value = value


def _keys(s: Session, v: VMState, wanted: Sequence[WantedKey], say: Callable[[str], None]) -> None:
    current = {k.fingerprint: k for k in v.keys}
    want = {k.fingerprint: k for k in wanted}
    for fp, k in current.items():
        if fp not in want:
            say(f"~ {v.name} key - {fp}")
            s.execute(delete(PublicKey).where(PublicKey.id == k.id))
    for fp, w in want.items():
        have = current.get(fp)
        if have is None:
            say(f"~ {v.name} key + {fp}" + (f" ({w.description})" if w.description else ""))
            s.add(
                PublicKey(
                    host_id=v.host.id, fingerprint=fp, public_key=w.pem, description=w.description
                )
            )
        elif (have.description or None) != w.description:
            say(f"~ {v.name} key {fp} description {have.description!r} -> {w.description!r}")
            row = s.get(PublicKey, have.id)
            if row is not None:
                row.description = w.description


# Host steps ------------------------------------------------------------------------------------


def _restart_all(s: Session, work: _Work, undo: Reverter) -> None:
    """Stop the running computes being removed, and restart the changed running VMs, each
    step undone if a later one (or the commit) fails."""
    s.flush()
    for name, container, uri, _paths in work.removed:
        conn = hv.connect(container, uri)
        if conn.domain(name) is None:
            continue
        old = conn.definition(name)
        was = conn.state(name) in hv.ACTIVE
        if was:
            conn.stop(name, _grace(s, name))
            undo.add(f"stop of {name}", partial(_start_again, conn, old))
        conn.undefine(name)
        undo.add(f"undefinition of {name}", partial(conn.define, old))
    for host_id, name in work.restarts.items():
        work.lines.append(_restart(s, host_id, name, undo))


def _grace(s: Session, name: str) -> float:
    from flightdeck.db import attrs

    host = s.scalar(select(Host).where(Host.name == name))
    value = attrs.resolve(s, host, "kvm_shutdown_grace") if host is not None else None
    try:
        return float(value) if value else STOP_GRACE
    except ValueError:
        raise UserError(
            f"attribute kvm_shutdown_grace of {name} is {value!r}: give seconds, e.g. 30"
        ) from None


def _start_again(conn: hv.Hypervisor, xml: str) -> None:
    conn.start(conn.define(xml))


def _restart(s: Session, host_id: int, name: str, undo: Reverter) -> str:
    from flightdeck.services import plugins as plug
    from flightdeck.services.domains import frontend_install_due, vm_spec
    from flightdeck.virt.designer import design

    host = s.get(Host, host_id)
    assert host is not None
    if frontend_install_due(s, host):
        raise UserError(
            f"{name} is due to install (boot action install): apply the change while it is "
            "stopped, then install it with 'rocks set cluster power ... action=install'"
        )
    spec, where = vm_spec(s, host)
    xml = design(spec).to_xml()
    plugins = plug.discover()
    xml = plug.run(plugins, "preboot", plug.PluginContext(name, where.container, xml=xml)) or xml
    conn = hv.connect(where.container, where.uri)
    old = conn.definition(name)
    conn.stop(name, _grace(s, name))
    undo.add(f"stop of {name}", partial(_start_again, conn, old))
    dom = conn.define(xml)
    undo.add(f"new definition of {name}", partial(conn.define, old))
    conn.start(dom)
    undo.add(f"start of {name}", partial(conn.destroy, name))
    return f"  restarted {name} on {where.container}"


def _delete_volumes(removed: Sequence[tuple[str, str, str, list[str]]]) -> list[str]:
    warnings = []
    for name, container, uri, paths in removed:
        for path in paths:
            try:
                hv.connect(container, uri).delete_volume(path)
            except FlightdeckError as exc:
                warnings.append(
                    f"warning - {name}: its volume {os.path.basename(path)} stays on "
                    f"{container}: {exc.message}"
                )
    return warnings


__all__ = ["Applied", "Conflict", "apply_cluster"]
