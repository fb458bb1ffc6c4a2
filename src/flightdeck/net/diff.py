"""From a planned network and a live snapshot to the operations that make them agree. Pure.

Each operation comes with the operations that undo it, computed from the snapshot, so an
executor can restore the previous state when a later operation fails. The order:

1. physical NICs are found by MAC and renamed `p<dev>` (brought down first; the routes the
   kernel drops with it are carried over);
2. their MTU and promiscuous mode;
3. bridges `<dev>`: created, STP times, MTU, tx offload, up;
4. the NICs join their bridges and come up;
5. addresses: added where the plan wants them, then removed from bridge ports and from
   Flightdeck's bridges where it does not (DHCP bridges are left to their client);
6. routes: the gateway routes the renames and address moves dropped, and the database's;
7. cluster VLANs: `vlan<N>` bridges (bridge mode), `p<dev>.<N>` interfaces, up, ARP off;
8. removals, only of what Flightdeck owns (`HostNetwork.owns`): VLAN interfaces without upper
   devices (a running VM's macvtap), bridges without ports of someone else's.

Anything the plan does not name and does not own is left alone. A second diff after a
successful apply is empty.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field

from flightdeck.errors import Conflict
from flightdeck.net.live import LiveLink, LiveRoute, LiveState
from flightdeck.planner.network import Device, HostNetwork

# Operations -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rename:
    device: str
    new: str

    def describe(self) -> str:
        return f"rename {self.device} to {self.new}"

    def argv(self) -> list[str]:
        return ["ip", "link", "set", "dev", self.device, "name", self.new]


@dataclass(frozen=True)
class SetUp:
    device: str
    up: bool

    def describe(self) -> str:
        return f"set {self.device} {'up' if self.up else 'down'}"

    def argv(self) -> list[str]:
        return ["ip", "link", "set", "dev", self.device, "up" if self.up else "down"]


@dataclass(frozen=True)
class SetMtu:
    device: str
    mtu: int

    def describe(self) -> str:
        return f"set the MTU of {self.device} to {self.mtu}"

    def argv(self) -> list[str]:
        return ["ip", "link", "set", "dev", self.device, "mtu", str(self.mtu)]


@dataclass(frozen=True)
class SetPromisc:
    device: str
    on: bool

    def describe(self) -> str:
        return f"make {self.device} {'' if self.on else 'not '}promiscuous"

    def argv(self) -> list[str]:
        return ["ip", "link", "set", "dev", self.device, "promisc", "on" if self.on else "off"]


@dataclass(frozen=True)
class SetArp:
    device: str
    on: bool

    def describe(self) -> str:
        return f"turn ARP {'on' if self.on else 'off'} on {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "link", "set", "dev", self.device, "arp", "on" if self.on else "off"]


@dataclass(frozen=True)
class SetMaster:
    device: str
    master: str | None

    def describe(self) -> str:
        if self.master is None:
            return f"take {self.device} out of its bridge"
        return f"make {self.device} a port of {self.master}"

    def argv(self) -> list[str]:
        tail = ["nomaster"] if self.master is None else ["master", self.master]
        return ["ip", "link", "set", "dev", self.device, *tail]


@dataclass(frozen=True)
class CreateBridge:
    device: str

    def describe(self) -> str:
        return f"create bridge {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "link", "add", "name", self.device, "type", "bridge"]


@dataclass(frozen=True)
class SetBridge:
    device: str
    forward_delay_cs: int | None = None
    hello_time_cs: int | None = None

    def describe(self) -> str:
        parts = []
        if self.forward_delay_cs is not None:
            parts.append(f"forward delay {self.forward_delay_cs / 100:g} s")
        if self.hello_time_cs is not None:
            parts.append(f"hello time {self.hello_time_cs / 100:g} s")
        return f"set {' and '.join(parts)} on {self.device}"

    def argv(self) -> list[str]:
        out = ["ip", "link", "set", "dev", self.device, "type", "bridge"]
        if self.forward_delay_cs is not None:
            out += ["forward_delay", str(self.forward_delay_cs)]
        if self.hello_time_cs is not None:
            out += ["hello_time", str(self.hello_time_cs)]
        return out


@dataclass(frozen=True)
class CreateVlan:
    device: str
    parent: str
    vlan_id: int

    def describe(self) -> str:
        return f"create VLAN interface {self.device} (VLAN {self.vlan_id} on {self.parent})"

    def argv(self) -> list[str]:
        return [
            "ip", "link", "add", "link", self.parent, "name", self.device,
            "type", "vlan", "id", str(self.vlan_id),
        ]  # fmt: skip


@dataclass(frozen=True)
class DeleteLink:
    device: str

    def describe(self) -> str:
        return f"remove {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "link", "del", "dev", self.device]


@dataclass(frozen=True)
class AddAddress:
    device: str
    cidr: str

    def describe(self) -> str:
        return f"add address {self.cidr} to {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "addr", "add", self.cidr, "brd", "+", "dev", self.device]


@dataclass(frozen=True)
class DelAddress:
    device: str
    cidr: str

    def describe(self) -> str:
        return f"remove address {self.cidr} from {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "addr", "del", self.cidr, "dev", self.device]


@dataclass(frozen=True)
class AddRoute:
    device: str
    destination: str
    gateway: str

    def describe(self) -> str:
        return f"add route {self.destination} via {self.gateway} on {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "route", "replace", self.destination, "via", self.gateway,
                "dev", self.device]  # fmt: skip


@dataclass(frozen=True)
class DelRoute:
    device: str
    destination: str
    gateway: str

    def describe(self) -> str:
        return f"remove route {self.destination} via {self.gateway} on {self.device}"

    def argv(self) -> list[str]:
        return ["ip", "route", "del", self.destination, "via", self.gateway,
                "dev", self.device]  # fmt: skip


@dataclass(frozen=True)
class SetTxOffload:
    device: str
    on: bool

    def describe(self) -> str:
        return f"turn tx checksum offload {'on' if self.on else 'off'} on {self.device}"

    def argv(self) -> list[str]:
        return ["ethtool", "-K", self.device, "tx", "on" if self.on else "off"]


Op = (
    Rename | SetUp | SetMtu | SetPromisc | SetArp | SetMaster | CreateBridge | SetBridge
    | CreateVlan | DeleteLink | AddAddress | DelAddress | AddRoute | DelRoute | SetTxOffload
)  # fmt: skip


@dataclass(frozen=True)
class Step:
    op: Op
    undo: tuple[Op, ...] = ()


@dataclass
class ChangeSet:
    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Devices of the plan that could not be handled (their warning says why).
    skipped: set[str] = field(default_factory=set)

    @property
    def ops(self) -> list[Op]:
        return [s.op for s in self.steps]


# The diff ---------------------------------------------------------------------------------------


def _recreate(link: LiveLink, ports: list[str]) -> list[Op]:
    """The operations that bring back a deleted bridge or VLAN interface as it was."""
    ops: list[Op] = []
    if link.kind == "vlan" and link.parent and link.vlan_id is not None:
        ops.append(CreateVlan(link.name, link.parent, link.vlan_id))
        if not link.arp:
            ops.append(SetArp(link.name, False))
    else:
        ops.append(CreateBridge(link.name))
        if link.forward_delay_cs is not None or link.hello_time_cs is not None:
            ops.append(SetBridge(link.name, link.forward_delay_cs, link.hello_time_cs))
    ops.append(SetMtu(link.name, link.mtu))
    if link.master:
        ops.append(SetMaster(link.name, link.master))
    ops += [AddAddress(link.name, a) for a in link.addresses]
    ops += [SetMaster(p, link.name) for p in ports]
    if link.up:
        ops.append(SetUp(link.name, True))
    return ops


class _Differ:
    def __init__(self, plan: HostNetwork, live: LiveState) -> None:
        self.plan = plan
        self.cur: dict[str, LiveLink] = {ln.name: ln for ln in live.links}
        self.routes: list[LiveRoute] = list(live.routes)
        self.carried: list[LiveRoute] = []
        self.out = ChangeSet()

    # model updates
    def emit(self, op: Op, *undo: Op) -> None:
        self.out.steps.append(Step(op, tuple(undo)))

    def change(self, name: str, **kw: object) -> LiveLink:
        link = dataclasses.replace(self.cur[name], **kw)  # type: ignore[arg-type]
        self.cur[name] = link
        return link

    def drop_routes(self, device: str, net: ipaddress.IPv4Network | None = None) -> list[LiveRoute]:
        """The kernel drops a device's gateway routes when it goes down or loses the address."""
        gone = [
            r
            for r in self.routes
            if r.device == device and (net is None or ipaddress.IPv4Address(r.gateway) in net)
        ]
        self.routes = [r for r in self.routes if r not in gone]
        self.carried += gone
        return gone

    def skip(self, d: Device, why: str) -> None:
        self.out.skipped.add(d.name)
        self.out.warnings.append(why)

    # 1. renames
    def find_nic(self, d: Device) -> LiveLink | None:
        host = self.plan.host
        if d.kind == "plain":
            link = self.cur.get(d.name)
            if link is None:
                self.skip(d, f"{d.name} does not exist on {host}: skipped")
            return link
        if d.mac:
            mac = d.mac.lower()
            link = next(
                (ln for ln in self.cur.values() if ln.physical and (ln.mac or "").lower() == mac),
                None,
            )
            if link is None:
                self.skip(
                    d,
                    f"no NIC with MAC {d.mac} ({d.source}) on {host}: {d.name} and what hangs "
                    f"on it are skipped (check rocks list host interface {host})",
                )
            return link
        link = self.cur.get(d.name)
        if link is None or not link.physical:
            self.skip(
                d,
                f"{d.source} of {host} has no MAC in the database, so no NIC is renamed to "
                f"{d.name}: rocks set host interface mac {host} {d.source} <mac>",
            )
            return None
        return link

    def rename(self, d: Device, link: LiveLink) -> None:
        if link.name == d.name:
            return
        other = self.cur.get(d.name)
        if other is not None:
            raise Conflict(
                f"cannot rename {link.name} (MAC {link.mac}) to {d.name} on {self.plan.host}: "
                f"a {other.kind or 'network'} device {d.name} already exists"
            )
        if link.up:
            routes = [r for r in self.routes if r.device == link.name]
            self.emit(
                SetUp(link.name, False),
                SetUp(link.name, True),
                *(AddRoute(r.device, r.destination, r.gateway) for r in routes),
            )
            self.drop_routes(link.name)
        self.emit(Rename(link.name, d.name), Rename(d.name, link.name))
        del self.cur[link.name]
        self.cur[d.name] = dataclasses.replace(link, name=d.name, up=False)
        self.routes = [
            dataclasses.replace(r, device=d.name) if r.device == link.name else r
            for r in self.routes
        ]

    def nic_settings(self, d: Device) -> None:
        link = self.cur[d.name]
        if d.mtu and link.mtu != d.mtu:
            self.emit(SetMtu(d.name, d.mtu), SetMtu(d.name, link.mtu))
            self.change(d.name, mtu=d.mtu)
        if d.promiscuous and not link.promiscuous:
            self.emit(SetPromisc(d.name, True), SetPromisc(d.name, False))
            self.change(d.name, promiscuous=True)

    def ours(self, name: str) -> bool:
        """Whether a bridge port is Flightdeck's: a managed NIC or an owned VLAN interface."""
        link = self.cur.get(name)
        return self.plan.owns(name, link.kind if link else None) or (
            name.startswith("p") and name[1:] in self.plan.managed
        )

    # 3. bridges
    def bridge(self, d: Device) -> None:
        link = self.cur.get(d.name)
        if link is None:
            self.emit(CreateBridge(d.name), DeleteLink(d.name))
            link = LiveLink(d.name, kind="bridge", forward_delay_cs=1500, hello_time_cs=200)
            self.cur[d.name] = link
        elif link.kind != "bridge":
            raise Conflict(
                f"{d.name} exists on {self.plan.host} and is not a bridge "
                f"({link.kind or 'a NIC'}, MAC {link.mac}): it must make way for the bridge "
                f"{d.name} (is the MAC of {d.source} in the database right?)"
            )
        fd = d.forward_delay_cs if d.forward_delay_cs != link.forward_delay_cs else None
        hello = d.hello_time_cs if d.hello_time_cs != link.hello_time_cs else None
        if fd is not None or hello is not None:
            self.emit(
                SetBridge(d.name, fd, hello),
                SetBridge(
                    d.name,
                    link.forward_delay_cs if fd is not None else None,
                    link.hello_time_cs if hello is not None else None,
                ),
            )
            link = self.change(
                d.name,
                forward_delay_cs=d.forward_delay_cs
                if d.forward_delay_cs is not None
                else link.forward_delay_cs,
                hello_time_cs=d.hello_time_cs
                if d.hello_time_cs is not None
                else link.hello_time_cs,
            )
        if d.mtu and link.mtu != d.mtu:
            self.emit(SetMtu(d.name, d.mtu), SetMtu(d.name, link.mtu))
            link = self.change(d.name, mtu=d.mtu)
        if d.tx_offload is not None and link.tx_offload != d.tx_offload:
            undo = () if link.tx_offload is None else (SetTxOffload(d.name, link.tx_offload),)
            self.emit(SetTxOffload(d.name, d.tx_offload), *undo)
            link = self.change(d.name, tx_offload=d.tx_offload)
        if not link.up:
            self.emit(SetUp(d.name, True), SetUp(d.name, False))
            self.change(d.name, up=True)

    # 4. ports
    def port(self, d: Device, was_up: bool) -> None:
        link = self.cur[d.name]
        if d.master != link.master:
            if d.master is None:
                if link.master and self.plan.owns(link.master, "bridge"):
                    self.emit(SetMaster(d.name, None), SetMaster(d.name, link.master))
                    link = self.change(d.name, master=None)
                elif link.master:
                    self.out.warnings.append(
                        f"{d.name} is a port of {link.master}, which is not Flightdeck's: left"
                    )
            else:
                self.emit(SetMaster(d.name, d.master), SetMaster(d.name, link.master))
                link = self.change(d.name, master=d.master)
        if (d.up or (d.up is None and was_up)) and not link.up:
            self.emit(SetUp(d.name, True), SetUp(d.name, False))
            self.change(d.name, up=True)

    # 5. addresses
    def add_addresses(self, d: Device) -> None:
        if d.dhcp:
            return
        link = self.cur[d.name]
        for a in d.addresses:
            if a.cidr not in link.addresses:
                self.emit(AddAddress(d.name, a.cidr), DelAddress(d.name, a.cidr))
                link = self.change(d.name, addresses=(*link.addresses, a.cidr))

    def remove_addresses(self, d: Device) -> None:
        """Extra IPv4 addresses: off bridge ports, and off Flightdeck's bridges and plain NICs."""
        if d.dhcp:
            return
        if d.kind == "ethernet" and d.master is None:
            return  # an unbridged NIC: its addresses are not the plan's business
        link = self.cur[d.name]
        wanted = {a.cidr for a in d.addresses}
        for cidr in link.addresses:
            if cidr in wanted:
                continue
            net = ipaddress.IPv4Network(cidr, strict=False)
            routes = [
                r
                for r in self.routes
                if r.device == d.name and ipaddress.IPv4Address(r.gateway) in net
            ]
            self.emit(
                DelAddress(d.name, cidr),
                AddAddress(d.name, cidr),
                *(AddRoute(r.device, r.destination, r.gateway) for r in routes),
            )
            self.drop_routes(d.name, net)
            link = self.change(d.name, addresses=tuple(a for a in link.addresses if a != cidr))

    # 6. routes
    def route_to(self, gateway: str) -> str | None:
        gw = ipaddress.IPv4Address(gateway)
        for d in self.plan.devices:
            if d.name in self.out.skipped or d.name not in self.cur:
                continue
            for a in d.addresses:
                if gw in a.network:
                    return d.name
        return None

    def ensure_route(self, destination: str, gateway: str, device: str) -> None:
        if any(
            r.destination == destination and r.gateway == gateway and r.device == device
            for r in self.routes
        ):
            return
        if any(r.destination == destination and r.device != device for r in self.routes):
            return  # a route to there exists through another device: not ours to move
        self.emit(AddRoute(device, destination, gateway), DelRoute(device, destination, gateway))
        self.routes.append(LiveRoute(destination, gateway, device))

    # 7. VLANs
    def vlan(self, d: Device) -> None:
        assert d.parent is not None and d.vlan_id is not None
        link = self.cur.get(d.name)
        if link is not None and (
            link.kind != "vlan" or link.parent != d.parent or link.vlan_id != d.vlan_id
        ):
            uppers = [u for u in self.cur.values() if u.parent == d.name]
            if link.kind != "vlan" or uppers:
                self.skip(
                    d,
                    f"{d.name} on {self.plan.host} is not VLAN {d.vlan_id} on {d.parent} "
                    f"({link.kind or 'a NIC'}{', in use' if uppers else ''}): left as it is",
                )
                return
            self.emit(DeleteLink(d.name), *_recreate(link, []))
            del self.cur[d.name]
            link = None
        if link is None:
            if d.parent not in self.cur or d.parent in self.out.skipped:
                self.skip(
                    d,
                    f"{d.parent} does not exist on {self.plan.host}, so {d.name} cannot be made: "
                    f"rocks sync host network {self.plan.host} apply=yes",
                )
                return
            self.emit(CreateVlan(d.name, d.parent, d.vlan_id), DeleteLink(d.name))
            link = LiveLink(d.name, kind="vlan", parent=d.parent, vlan_id=d.vlan_id)
            self.cur[d.name] = link
        if d.master and link.master != d.master:
            if d.master not in self.cur:
                self.skip(d, f"bridge {d.master} is missing on {self.plan.host}: {d.name} left")
                return
            self.emit(SetMaster(d.name, d.master), SetMaster(d.name, link.master))
            link = self.change(d.name, master=d.master)
        if d.arp != link.arp:
            self.emit(SetArp(d.name, d.arp), SetArp(d.name, link.arp))
            link = self.change(d.name, arp=d.arp)
        if not link.up:
            self.emit(SetUp(d.name, True), SetUp(d.name, False))
            self.change(d.name, up=True)

    # 8. removals
    def removals(self, among: Collection[str] | None = None) -> None:
        wanted = {d.name for d in self.plan.devices}
        stale = [
            ln
            for ln in self.cur.values()
            if ln.name not in wanted
            and self.plan.owns(ln.name, ln.kind)
            and (among is None or ln.name in among)
        ]
        for link in sorted((ln for ln in stale if ln.kind == "vlan"), key=lambda ln: ln.name):
            uppers = sorted(u.name for u in self.cur.values() if u.parent == link.name)
            if uppers:
                self.out.warnings.append(
                    f"{link.name} on {self.plan.host} is no longer needed but {', '.join(uppers)} "
                    "still use it (a running VM?): left"
                )
                continue
            self.emit(DeleteLink(link.name), *_recreate(link, []))
            del self.cur[link.name]
        for link in sorted((ln for ln in stale if ln.kind == "bridge"), key=lambda ln: ln.name):
            ports = sorted(p.name for p in self.cur.values() if p.master == link.name)
            foreign = [p for p in ports if not self.ours(p)]
            if foreign:
                self.out.warnings.append(
                    f"bridge {link.name} on {self.plan.host} is no longer needed but "
                    f"{', '.join(foreign)} still use it (a running VM?): left"
                )
                continue
            self.emit(DeleteLink(link.name), *_recreate(link, ports))
            for p in ports:
                self.change(p, master=None)
            del self.cur[link.name]

    def run(
        self, only: Collection[str] | None, remove: bool, exclude: Collection[str]
    ) -> ChangeSet:
        plan = self.plan
        self.out.skipped.update(exclude)
        devices = [d for d in plan.devices if only is None or d.name in only]
        up_before: dict[str, bool] = {}
        nics = [d for d in devices if d.kind in ("ethernet", "plain")]
        for d in nics:
            link = self.find_nic(d)
            if link is None:
                continue
            up_before[d.name] = link.up
            self.rename(d, link)
        for d in devices:  # what hangs on a skipped NIC is skipped with it
            if d.name in self.out.skipped:
                continue
            src = d.parent or next(
                (n.name for n in nics if n.master == d.name and n.name in self.out.skipped), None
            )
            if src in self.out.skipped:
                self.out.skipped.add(d.name)
        live_nics = [d for d in nics if d.name in up_before]
        for d in live_nics:
            self.nic_settings(d)
        bridges = [d for d in devices if d.kind == "bridge" and d.name not in self.out.skipped]
        for d in bridges:
            if d.source:
                self.bridge(d)
        for d in live_nics:
            if d.kind == "ethernet":
                self.port(d, up_before[d.name])
            elif (d.up or up_before[d.name]) and not self.cur[d.name].up:
                self.emit(SetUp(d.name, True), SetUp(d.name, False))
                self.change(d.name, up=True)
        addressed = [d for d in devices if d.name in self.cur and d.name not in self.out.skipped]
        for d in addressed:
            if d.kind in ("bridge", "plain"):
                self.add_addresses(d)
        for d in addressed:
            if d.kind in ("bridge", "plain", "ethernet"):
                self.remove_addresses(d)
        if only is None:
            for r in self.carried:
                target = self.route_to(r.gateway)
                if target is None:
                    self.out.warnings.append(
                        f"route {r.destination} via {r.gateway} (was on {r.device}) is gone: no "
                        f"interface of {plan.host} is on the gateway's network"
                    )
                    continue
                self.ensure_route(r.destination, r.gateway, target)
            for route in plan.routes:
                if route.device in self.cur and route.device not in self.out.skipped:
                    self.ensure_route(route.cidr, route.gateway, route.device)
        for d in devices:
            if d.name in self.out.skipped:
                continue
            if d.kind == "bridge" and not d.source:
                self.bridge(d)
            elif d.kind == "vlan":
                self.vlan(d)
        if remove and only is None:
            self.removals()
        return self.out


def diff(
    plan: HostNetwork,
    live: LiveState,
    *,
    only: Collection[str] | None = None,
    remove: bool = True,
    exclude: Collection[str] = (),
) -> ChangeSet:
    """The operations that bring `live` to `plan`.

    `only` restricts the work to those planned devices (and nothing is removed): starting a VM
    makes sure of its VLAN devices this way. Raises `Conflict` when a planned name is held by a
    device Flightdeck cannot move aside; nothing has been changed then. `exclude` names planned
    devices to leave out (and never remove): the VLAN interfaces of a kernel without 802.1Q.
    """
    return _Differ(plan, live).run(only, remove, exclude)


def diff_removals(plan: HostNetwork, live: LiveState, names: Collection[str]) -> ChangeSet:
    """Only the removals, and only of the owned devices named (a removed cluster's VLAN)."""
    d = _Differ(plan, live)
    d.removals(names)
    return d.out
