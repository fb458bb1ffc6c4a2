"""Bring a host's live network to its plan, undoing everything if a step fails; probe VLANs.

`converge(plan, target)` observes the live devices, diffs them with the plan, and carries out
the steps through the target (`netlink.NetlinkHost` in-process, `shell.ShellHost` through
iproute2 commands locally or over ssh). When a step fails, the steps already done are undone in
reverse order and the error says so (and what could not be undone, if anything). A converged
host gives no steps: "no change".
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from flightdeck.errors import DriverError, FlightdeckError
from flightdeck.net.diff import ChangeSet, CreateVlan, Op, Step, diff
from flightdeck.net.live import LiveState
from flightdeck.planner.network import HostNetwork


class Target(Protocol):
    host: str

    def observe(self, tx_devices: Collection[str] = ()) -> LiveState: ...

    def apply(self, steps: Sequence[Step]) -> list[str]: ...

    def vlan_support(self) -> tuple[bool, str]: ...

    def close(self) -> None: ...


@dataclass
class ApplyResult:
    host: str
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    skipped: set[str] = field(default_factory=set)


def run_steps(run: Callable[[Op], None], steps: Sequence[Step]) -> list[str]:
    """Run each step; on a failure undo the done ones (reverse order) and raise DriverError.

    The Reverter idiom of services/reverter.py, inlined: drivers do not import services.
    """
    done: list[Step] = []
    try:
        for step in steps:
            run(step.op)
            done.append(step)
    except FlightdeckError as exc:
        failures: list[str] = []
        for step in reversed(done):
            try:
                for op in step.undo:
                    run(op)
            except FlightdeckError as undo_exc:
                failures.append(f"could not undo '{step.op.describe()}': {undo_exc.message}")
        raise DriverError(undone_message(exc.message, len(done), failures)) from None
    return [s.op.describe() for s in done]


def undone_message(message: str, done: int, failures: Sequence[str]) -> str:
    if not done:
        return f"{message} (nothing had been changed)"
    if failures:
        return f"{message}; undoing the {done} change(s) before it left: {'; '.join(failures)}"
    return f"{message}; the {done} change(s) made before it were undone"


def plan_changes(
    plan: HostNetwork,
    target: Target,
    *,
    only: Collection[str] | None = None,
    remove: bool = True,
    exclude: Collection[str] = (),
) -> ChangeSet:
    tx = [d.name for d in plan.devices if d.tx_offload is not None]
    return diff(plan, target.observe(tx), only=only, remove=remove, exclude=exclude)


def converge(
    plan: HostNetwork, target: Target, *, only: Collection[str] | None = None, remove: bool = True
) -> ApplyResult:
    """Bring the target to the plan (only the devices named in `only`, if given).

    A kernel without 802.1Q cannot have the cluster VLAN interfaces: they are left out with a
    warning naming the reason and the VLANs whose VMs cannot start there; the rest is applied.
    """
    changes = plan_changes(plan, target, only=only, remove=remove)
    warnings: list[str] = []
    wanted = [op for op in changes.ops if isinstance(op, CreateVlan)]
    if wanted:
        ok, reason = target.vlan_support()
        if not ok:
            names = sorted({op.device for op in wanted})
            ids = sorted({op.vlan_id for op in wanted})
            warnings.append(
                f"{reason}: {', '.join(names)} not made on {plan.host}; VMs on VLAN "
                f"{', '.join(map(str, ids))} cannot start there"
            )
            changes = plan_changes(plan, target, only=only, remove=remove, exclude=names)
    done = target.apply(changes.steps) if changes.steps else []
    return ApplyResult(plan.host, done, warnings + changes.warnings, changes.skipped)


# The 802.1Q probe -------------------------------------------------------------------------------


def kernel_config(option: str) -> str | None:
    """`y`, `m` or a value when /proc/config.gz sets it, "" when unset, None when unknown."""
    try:
        with gzip.open("/proc/config.gz", "rt", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(f"{option}="):
                    return line.split("=", 1)[1].strip()
                if line.startswith(f"# {option} is not set"):
                    return ""
    except OSError:
        return None
    return ""


@lru_cache(maxsize=8)
def vlan_supported(netns: str | None = None) -> tuple[bool, str]:
    """Whether 802.1Q VLAN interfaces can be made here, and why (cached per process).

    Creates a scratch veth in `netns` (in a scratch namespace when None) and a VLAN on it, then
    removes both; the kernel's CONFIG_VLAN_8021Q is read from /proc/config.gz for the reason.
    """
    from pyroute2 import IPRoute
    from pyroute2 import netns as pnetns
    from pyroute2.netlink.exceptions import NetlinkError

    config = kernel_config("CONFIG_VLAN_8021Q")
    config_text = {
        None: "/proc/config.gz is not readable",
        "": "CONFIG_VLAN_8021Q is not set in /proc/config.gz",
    }.get(config, f"CONFIG_VLAN_8021Q={config}")
    token = secrets.token_hex(3)
    scratch = None
    if netns is None:
        scratch = f"fdvlanprobe-{os.getpid()}-{token}"
        pnetns.create(scratch)
    where = netns or scratch
    try:
        with IPRoute(netns=where, flags=0) as ipr:
            a, b = f"fdpa{token}", f"fdpb{token}"
            ipr.link("add", ifname=a, kind="veth", peer={"ifname": b})
            try:
                index = ipr.link_lookup(ifname=a)[0]
                try:
                    ipr.link("add", ifname=f"{a}.2", kind="vlan", link=index, vlan_id=2)
                except NetlinkError as exc:
                    if exc.code == errno.EOPNOTSUPP:
                        return False, (
                            f"this kernel has no 802.1Q VLAN support: {config_text}, and creating "
                            "a VLAN interface gives EOPNOTSUPP"
                        )
                    return False, f"creating a VLAN interface failed: {os.strerror(exc.code)}"
                return True, f"802.1Q VLAN interfaces work ({config_text})"
            finally:
                with contextlib.suppress(NetlinkError):
                    ipr.link("del", ifname=a)  # takes its VLAN and its peer with it
    finally:
        if scratch is not None:
            pnetns.remove(scratch)
