"""The network of VM containers: report, sync (files and live), VLAN lifecycle. What the
database says of a container's network, and `rocks list host vlan`, are read in `network_read`
(Core, no ORM).

The database is read in one transaction into the planner's plain inputs (a handful of queries
whatever the number of VMs); the plan is rendered (`net.render`) and applied (`net.apply`)
outside any transaction. Where the work happens:

- `local=yes`: this machine, in-process (netlink), in the network namespace `netns=` when
  given; files under `root=` (default `/`).
- otherwise: over ssh to the container (`ssh -o BatchMode=yes root@<host>`, or the user and
  host of a `qemu+ssh://user@host/...` libvirt URI), with iproute2 commands.

Starting a VM makes sure of its cluster VLAN devices on its container (`ensure_vm_links`):
in-process when the container's libvirt URI is local (`qemu:///system`: this machine is the
container; attribute `kvm_netns` names the namespace libvirtd runs in, for labs), over ssh when
it is remote, as the original did on every start; nothing for libvirt's `test:` driver, or when
the container's attribute `kvm_vlan_sync` is false. Removing a cluster removes its VLAN
devices from the containers that carried them (`release_cluster_links`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from flightdeck.attrsubject import Subject, subject
from flightdeck.db import attrs
from flightdeck.db.engine import Database
from flightdeck.db.hostexpr import HostIds, resolve_host, resolve_hosts
from flightdeck.db.models import VM, Cluster, Host, Interface
from flightdeck.errors import DriverError, FlightdeckError, UsageError, UserError
from flightdeck.planner.network import (
    HostNetwork,
    HostNetworkInput,
    plan_host_network,
    vlan_devices,
)
from flightdeck.services import network_read
from flightdeck.services.base import reading
from flightdeck.services.network_read import Reach

#: Attribute names (host > appliance > global).
ATTR_FORMAT = "kvm_network_format"
ATTR_VLAN_SYNC = "kvm_vlan_sync"


# From the database to the planner -------------------------------------------------------------


def _require_container(s: Session, hosts: Sequence[Host]) -> None:
    kvm = attrs.resolve_many(s, hosts, "kvm")
    for h in hosts:
        if not attrs.is_true(kvm.get(h.id)):
            raise UserError(
                f"host {h.name} is not a VM container (its attribute kvm is not true): "
                "Flightdeck manages the network of VM containers only"
            )


def network_input(
    s: Session, host: Host, *, vm_host_ids: Sequence[int] | None = None
) -> HostNetworkInput:
    """The planner's input for `host` (`network_read.network_input`, in this session)."""
    s.flush()  # the Core statements there do not autoflush
    values = attrs.values_of(s, host)
    return network_read.network_input(s, host.id, host.name, values, vm_host_ids=vm_host_ids)


def plan_for(s: Session, host: Host, *, vm_host_ids: Sequence[int] | None = None) -> HostNetwork:
    return plan_host_network(network_input(s, host, vm_host_ids=vm_host_ids))


def check_network_format(value: str | None, who: str | Subject) -> str:
    """`kvm_network_format`: the files `rocks report/sync host network` write (networkd)."""
    from flightdeck.net.render import FORMATS

    fmt = (value or "networkd").strip().lower()
    if fmt not in FORMATS:
        raise UserError(f"{subject(who).attr(ATTR_FORMAT)} is {fmt!r}: give one of "
                        f"{', '.join(FORMATS)}")  # fmt: skip
    return fmt


def _format(s: Session, host: Host, given: str | None) -> str:
    from flightdeck.net.render import FORMATS

    if given:
        fmt = given.strip().lower()
        if fmt not in FORMATS:
            raise UserError(f"format={fmt!r}: give one of {', '.join(FORMATS)}")
        return fmt
    return check_network_format(attrs.resolve(s, host, ATTR_FORMAT), host.name)


# Where a container's network is reached ------------------------------------------------------


def reach_of(s: Session, host: Host) -> Reach:
    """From the container's libvirt URI (`network_read.reach`)."""
    return network_read.reach(host.name, attrs.values_of(s, host))


def _ssh_reach(s: Session, host: Host) -> Reach:
    """Over ssh: to the user and host of a remote libvirt URI, else root@<host name>."""
    reach = reach_of(s, host)
    if reach.where == "remote":
        return reach
    return Reach("remote", host.name, ssh_target=f"root@{host.name}")


# report host network --------------------------------------------------------------------------


def report_network(
    db: Database, exprs: Sequence[str], fmt: str | None = None
) -> list[tuple[str, str, list[str]]]:
    """(host, text of its files, problems) for each container."""
    from flightdeck.net.render import as_text, render

    with reading(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        _require_container(s, hosts)
        out = []
        for h in hosts:
            plan = plan_for(s, h)
            out.append((h.name, as_text(render(plan, _format(s, h, fmt))), list(plan.problems)))
        return out


# sync host network ----------------------------------------------------------------------------


@dataclass
class SyncOutcome:
    host: str
    ok: bool = True
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def sync_network(
    db: Database,
    exprs: Sequence[str],
    *,
    apply: bool = False,
    local: bool = False,
    root: str | None = None,
    netns: str | None = None,
    fmt: str | None = None,
) -> list[SyncOutcome]:
    """Write each container's files (and with `apply`, bring its live network to the plan)."""
    from flightdeck.net.render import render

    if netns and not local:
        raise UsageError("netns= applies to this machine: give local=yes as well")
    with reading(db) as s:
        hosts = resolve_hosts(s, exprs, default_all=False)
        if not hosts:
            raise UserError("must supply at least one VM container")
        if local and len(hosts) > 1:
            raise UsageError(
                "local=yes configures this machine as one container: give one host, not "
                + ", ".join(h.name for h in hosts)
            )
        _require_container(s, hosts)
        jobs = []
        for h in hosts:
            plan = plan_for(s, h)
            reach = Reach("local", h.name, netns=netns) if local else _ssh_reach(s, h)
            jobs.append((plan, render(plan, _format(s, h, fmt)), reach))

    def one(plan: HostNetwork, rendering: object, reach: Reach) -> SyncOutcome:
        from flightdeck.net.apply import converge
        from flightdeck.net.files import Backup, restore, write_local
        from flightdeck.net.render import Rendering
        from flightdeck.net.shell import ShellHost

        assert isinstance(rendering, Rendering)
        out = SyncOutcome(plan.host, warnings=list(plan.problems))
        backup: Backup = {}
        try:
            target = network_read.target(reach) if (apply or reach.where == "remote") else None
            try:
                if isinstance(target, ShellHost):
                    out.changes += target.write(rendering, root or "/")
                else:
                    out.changes += write_local(rendering, root or "/", backup)
                if apply:
                    assert target is not None
                    try:
                        result = converge(plan, target)
                    except FlightdeckError as exc:
                        problems = restore(backup)
                        kept = "; ".join(problems) or (
                            "the files written before were restored" if backup else ""
                        )
                        raise DriverError(f"{exc.message}{'; ' + kept if kept else ''}") from None
                    out.changes += result.changes
                    out.warnings += result.warnings
            finally:
                if target is not None:
                    target.close()
        except FlightdeckError as exc:
            out.ok, out.error = False, exc.message
        return out

    if len(jobs) == 1:
        return [one(*jobs[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        return list(pool.map(lambda j: one(*j), jobs))


# VLAN lifecycle -------------------------------------------------------------------------------


def ensure_vm_links(db: Database, vm: str | HostIds) -> list[str]:
    """Make sure the cluster VLAN devices `vm` attaches to exist and are up on its container.

    Called when a VM resumes from a saved state or is restored (a start reads `vm_links` in
    its own transaction), before its domain is defined. Returns what was changed; warnings (a
    bridge-mode VLAN without its uplink) are logged, unless every container of those VLANs is
    this machine: then no uplink is needed. Raises DriverError when a device the VM's NICs
    need cannot be made (nothing the VM does not need is changed, and nothing is ever removed
    here).
    """
    with reading(db) as s, attrs.cached(s):
        links = vm_links(s, resolve_host(s, vm))
    return links.ensure() if links is not None else []


@dataclass(frozen=True)
class VMLinks:
    """The VLAN devices one VM needs on its container, as read from the database: `ensure`
    makes them (the part that touches the container, outside any transaction)."""

    plan: HostNetwork
    vlans: list[int]
    reach: Reach
    vm: str
    local: bool

    def ensure(self) -> list[str]:
        """Make the devices that are missing; what was changed (see `ensure_vm_links`)."""
        return _ensure(self.plan, self.vlans, self.reach, self.vm, quiet_uplinks=self.local)


def vm_links(s: Session, host: Host) -> VMLinks | None:
    """What `host` (a VM) needs of its container's VLAN devices, or None when nothing: no
    container, no cluster VLAN, VLAN sync off for the container, or a container whose
    network is not ours to change."""
    from flightdeck.services.domains import vm_row

    container = vm_row(s, host).container
    if container is None:
        return None
    vlans = sorted(
        {
            i.vlan
            for i in host.interfaces
            if i.vlan is not None and i.vlan >= 2 and i.mac and not i.disable_kvm
        }
    )
    if not vlans:
        return None
    if not attrs.is_true(attrs.resolve(s, container, ATTR_VLAN_SYNC) or "yes"):
        return None
    reach = reach_of(s, container)
    if reach.where == "none":
        return None
    plan = plan_for(s, container, vm_host_ids=[host.id])
    return VMLinks(plan, vlans, reach, host.name, vlans_stay_on(s, reach, vlans))


def _machine(reach: Reach) -> tuple[str, str, str]:
    """Which machine (and network namespace) a container's network is."""
    return (reach.where, reach.ssh_target or "", reach.netns or "")


def vlans_stay_on(s: Session, reach: Reach, vlans: Sequence[int]) -> bool:
    """Whether every container with a VM on these VLANs is the machine `reach` names.

    Then the VLANs need no uplink to the wire (a one-machine site, as the demo's frontend and
    container, both qemu:///system): their bridges already join all their VMs.
    """
    containers = s.scalars(
        select(Host)
        .join(VM, VM.container_id == Host.id)
        .join(Interface, Interface.host_id == VM.host_id)
        .where(Interface.vlan.in_(list(vlans)))
        .distinct()
    )
    here = _machine(reach)
    return all(_machine(reach_of(s, c)) == here for c in containers)


def _ensure(
    plan: HostNetwork, vlans: Sequence[int], reach: Reach, vm: str, *, quiet_uplinks: bool = False
) -> list[str]:
    from flightdeck.net.apply import converge

    required, uplinks = vlan_devices(plan, vlans)
    planned = {d.name for d in plan.devices}
    missing = [name for name in required if name not in planned]
    if missing:
        why = "; ".join(plan.problems) or "it is not in the container's plan"
        raise DriverError(f"{vm} needs {', '.join(missing)} on {plan.host}: {why}")
    target = network_read.target(reach)
    try:
        result = converge(plan, target, only=required, remove=False)
        lacking = [name for name in required if name in result.skipped]
        if lacking:
            raise DriverError(
                f"{vm} needs {', '.join(lacking)} on {plan.host}: " + "; ".join(result.warnings)
            )
        changes = list(result.changes)
        for uplink in uplinks:
            if uplink not in planned:
                problems = [p for p in plan.problems if uplink in p] or [f"{uplink} is not planned"]
            else:
                try:
                    up = converge(plan, target, only=[uplink], remove=False)
                    changes += up.changes
                    problems = up.warnings
                except FlightdeckError as exc:
                    problems = [exc.message]
            for text in problems if not quiet_uplinks else ():
                import logging

                logging.getLogger("flightdeck.network").warning(
                    "warning - %s: the VLAN stays local to %s until its uplink exists: %s",
                    vm,
                    plan.host,
                    text,
                )
    finally:
        target.close()
    return [f"{plan.host}: {c}" for c in changes]


def cluster_containers(s: Session, cluster_id: int) -> list[str]:
    """The containers that carry VMs of a cluster (its frontend included), by name."""
    c = s.get(Cluster, cluster_id)
    members = select(VM.container_id).where(VM.cluster_id == cluster_id)
    ids = set(s.scalars(members))
    if c is not None:
        ids |= set(s.scalars(select(VM.container_id).where(VM.host_id == c.frontend_id)))
    ids.discard(None)
    return sorted(s.scalars(select(Host.name).where(Host.id.in_(list(ids)))))


def release_cluster_links(db: Database, vlan: int, containers: Sequence[str]) -> list[str]:
    """Remove a removed cluster's VLAN devices (`p<dev>.<vlan>`, bridge `vlan<vlan>`) from
    the containers that carried it; call after the removal is committed.

    A container where another VM still uses that VLAN keeps it; devices still in use live (a
    VM's macvtap, a bridge with a VM's tap) are left with a warning. Never raises: the lines
    returned say what was removed and what could not be (`warning - ...`).
    """
    from flightdeck.net.diff import diff_removals

    with reading(db) as s:
        work = []
        for name in containers:
            host = s.scalar(select(Host).where(Host.name == name))
            if host is None:
                continue
            reach = reach_of(s, host)
            if reach.where == "none":
                continue
            work.append((plan_for(s, host), reach))
    lines: list[str] = []
    for plan, reach in work:
        if any(use.vlan == vlan for use in plan.vlans):
            continue
        names = [f"p{dev}.{vlan}" for dev in plan.managed] + [f"vlan{vlan}"]
        try:
            target = network_read.target(reach)
            try:
                changes = diff_removals(plan, target.observe(), names)
                done = target.apply(changes.steps) if changes.steps else []
            finally:
                target.close()
            lines += [f"{plan.host}: {c}" for c in done]
            lines += [f"warning - {w}" for w in changes.warnings]
        except FlightdeckError as exc:
            lines.append(f"warning - {plan.host}: VLAN {vlan} devices not removed: {exc.message}")
    return lines
