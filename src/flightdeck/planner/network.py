"""The desired network of a VM container (reference §8, the guide §3.6 and Appendix C).

Pure: the service reads the container's interfaces, the networks, the NICs of the VMs placed on
it and its attributes, hands them in as plain values, and gets back a typed description of the
devices the container must have. The renderers (`flightdeck.net.render`) turn it into files and
the applier (`flightdeck.net.apply`) into netlink requests.

The Rocks scheme, and the decisions taken where the original was vague:

- Every Ethernet interface of the container (every database row except `vlan*` rows, `ipmi` and
  InfiniBand `ib*`) is renamed `p<dev>`, as the original's `ifcfg-p<dev>` with `HWADDR=` did,
  whether or not it carries an IP. The NIC is found by its MAC; a row without a MAC can only be
  matched to an existing `p<dev>` (nothing is ever renamed by guessing).
- A bridge named `<dev>` is made when the row has an IP and a netmask (the original's rule: the
  IP lives on the bridge) **or** when a bridged VM NIC attaches to it (the original forgot that
  case and defined VMs on a bridge that did not exist). `p<dev>` is its port.
- `p<dev>` is promiscuous (the guide: "the interface is also put into promiscuous mode") and up
  when its row has a network (the original's `ONBOOT`).
- A cluster VLAN gets an 802.1Q interface `p<dev>.<vlan>` on the container interface of the
  cluster's network, only when a VM of that VLAN is placed on the container. It is up with ARP
  off, as the original's bring-up line did. With container attribute `kvm_vlan_mode=bridge`
  there is also a bridge `vlan<N>` whose port is `p<dev>.<vlan>`; VMs attach to the bridge.
- Appendix C's manual work-arounds are attributes: `bridge_stp_forward_delay` and
  `bridge_hello_time` (seconds, as `brctl setfd` / `sethello` took them) apply to every bridge
  the scheme makes; `tx_offload` (on/off) is the tx-checksumming offload of each bridge `<dev>`
  (the guide's `ethtool -K eth0 tx off`, where `eth0` is the bridge). Unset means "not managed".

Device names must fit the kernel's 15 characters; a device whose name does not is left out and
the plan's `problems` say so (a VM attaching to it cannot start; `ensure` reports it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from flightdeck.attrsubject import Subject, subject
from flightdeck.errors import UserError
from flightdeck.planner.names import host_name_problem

VlanMode = Literal["macvtap", "bridge"]
DeviceKind = Literal["ethernet", "bridge", "vlan", "plain"]

VLAN_MODES: tuple[VlanMode, ...] = ("macvtap", "bridge")
#: Linux's IFNAMSIZ - 1.
MAX_IFNAME = 15
#: Linux's limits for a bridge (br_private.h): forward delay 2-30 s with STP (any value up to
#: 30 s without), hello time 1-10 s.
FORWARD_DELAY_RANGE = (0.0, 30.0)
HELLO_TIME_RANGE = (1.0, 10.0)

_TRUE = frozenset({"on", "yes", "y", "true", "1"})
_FALSE = frozenset({"off", "no", "n", "false", "0"})
_VLAN_DEV_RE = re.compile(r"^p(?P<dev>.+)\.(?P<vlan>[0-9]{1,4})$")
#: What a kernel module name is (modprobe.d: `alias <dev> <module>`); anything else could end the
#: line and start another (`install <module> <command>` runs a command as root).
_MODULE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: What a device name may hold (the same rule as `rocks add host interface`).
_DEVICE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_VLAN_BRIDGE_RE = re.compile(r"^vlan(?P<vlan>[0-9]{1,4})$")


# Inputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkDef:
    """A network of the cluster (`rocks list network`)."""

    name: str
    subnet: str
    netmask: str
    mtu: int | None = None


@dataclass(frozen=True)
class HostInterface:
    """An interface row of the container, in database order."""

    device: str
    mac: str | None = None
    ip: str | None = None
    network: str | None = None
    vlan: int | None = None
    module: str | None = None
    options: str | None = None


@dataclass(frozen=True)
class GuestNic:
    """A NIC of a VM placed on the container.

    `vlan` >= 2 makes it a cluster VLAN NIC (macvtap, or the `vlan<N>` bridge) riding on
    `network` (the cluster's network); otherwise it is bridged to the container's interface on
    `network`. `cluster` names the cluster (its virtual frontend), for listings.
    """

    vm: str
    device: str
    mac: str
    network: str | None
    vlan: int | None = None
    cluster: str | None = None


@dataclass(frozen=True)
class RouteDef:
    """A static route of the container (`routes` rows)."""

    destination: str
    netmask: str
    gateway: str


@dataclass(frozen=True)
class Settings:
    """The container's resolved attributes, as text (the planner validates them)."""

    vlan_mode: str | None = None
    stp_forward_delay: str | None = None
    hello_time: str | None = None
    tx_offload: str | None = None


@dataclass(frozen=True)
class HostNetworkInput:
    host: str
    interfaces: Sequence[HostInterface]
    networks: Sequence[NetworkDef]
    guests: Sequence[GuestNic] = ()
    routes: Sequence[RouteDef] = ()
    settings: Settings = field(default_factory=Settings)
    #: `<name>.<dnszone>`, for the RHEL `/etc/sysconfig/network` HOSTNAME.
    fqdn: str | None = None


# Outputs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    ip: str
    netmask: str

    @property
    def prefixlen(self) -> int:
        return ipaddress.IPv4Network(f"0.0.0.0/{self.netmask}").prefixlen

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefixlen}"

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr, strict=False)


@dataclass(frozen=True)
class Device:
    """One device the container must have.

    `kind`: `ethernet` (a NIC renamed `p<dev>`, found by `mac`), `bridge`, `vlan` (802.1Q on
    `parent` with `vlan_id`), `plain` (a NIC configured under its own name: InfiniBand).
    `up` None means "leave as it is". `tx_offload` / `forward_delay_cs` / `hello_time_cs`
    None mean "not managed"; times are in centiseconds (the kernel's clock_t).
    """

    name: str
    kind: DeviceKind
    source: str | None = None
    mac: str | None = None
    parent: str | None = None
    vlan_id: int | None = None
    master: str | None = None
    addresses: tuple[Address, ...] = ()
    dhcp: bool = False
    mtu: int | None = None
    up: bool | None = True
    onboot: bool = True
    promiscuous: bool = False
    arp: bool = True
    forward_delay_cs: int | None = None
    hello_time_cs: int | None = None
    tx_offload: bool | None = None
    module: str | None = None
    module_options: str | None = None
    #: The row has a VLAN id of its own (`VLAN=yes` in the original's ifcfg).
    tagged: bool = False
    network: str | None = None
    #: The VM NICs attached here, as `vm:device`, sorted.
    users: tuple[str, ...] = ()


@dataclass(frozen=True)
class VlanUse:
    """A cluster VLAN the container carries: where its VMs attach, on what, for whom."""

    vlan: int
    attach: str
    interface: str
    parent: str
    network: str
    clusters: tuple[str, ...]
    vms: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    destination: str
    prefixlen: int
    gateway: str
    device: str

    @property
    def cidr(self) -> str:
        return f"{self.destination}/{self.prefixlen}"


@dataclass(frozen=True)
class HostNetwork:
    """The desired network of one container, devices in the order they must be created."""

    host: str
    vlan_mode: VlanMode
    devices: tuple[Device, ...]
    vlans: tuple[VlanUse, ...] = ()
    routes: tuple[Route, ...] = ()
    #: The database devices whose `p<dev>`, `<dev>` and `p<dev>.<N>` names Flightdeck owns.
    managed: tuple[str, ...] = ()
    #: Things the plan could not do, each a sentence naming the thing and the fix.
    problems: tuple[str, ...] = ()
    fqdn: str | None = None
    gateway: str | None = None

    def device(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def owns(self, name: str, kind: str | None) -> bool:
        """Whether a live device of that name and kind is Flightdeck's to remove.

        Owned: 802.1Q interfaces `p<dev>.<N>` on a managed device, bridges `vlan<N>`, and
        bridges `<dev>` named after a managed device. Nothing else is ever removed.
        """
        if kind == "vlan":
            m = _VLAN_DEV_RE.match(name)
            return bool(m and m.group("dev") in self.managed)
        if kind == "bridge":
            return bool(_VLAN_BRIDGE_RE.match(name)) or name in self.managed
        return False


# Parsing the attributes -------------------------------------------------------------------------


# Each takes the value and whose it is (a host name, or a Subject when `rocks set ... attr` checks
# a value before storing it): the same message at either time.


def _seconds(
    text: str | None, attr: str, who: str | Subject, bounds: tuple[float, float]
) -> int | None:
    if text is None or not text.strip():
        return None
    low, high = bounds
    try:
        value = float(text.strip())
    except ValueError:
        value = float("nan")
    if not low <= value <= high:  # also refuses nan
        owner = subject(who)
        raise UserError(
            f"{owner.attr(attr)} is {text!r}: give seconds from {low:g} to {high:g} "
            f"(Linux refuses other values), e.g. {owner.fix(attr, f'{max(low, 1.0):g}')}"
        )
    return round(value * 100)


def check_forward_delay(text: str | None, who: str | Subject) -> int | None:
    """`bridge_stp_forward_delay` in seconds, as centiseconds; None when unset."""
    return _seconds(text, "bridge_stp_forward_delay", who, FORWARD_DELAY_RANGE)


def check_hello_time(text: str | None, who: str | Subject) -> int | None:
    """`bridge_hello_time` in seconds (1 to 10: the guide's 0.5 is refused by Linux), as cs."""
    return _seconds(text, "bridge_hello_time", who, HELLO_TIME_RANGE)


def check_tx_offload(text: str | None, who: str | Subject) -> bool | None:
    """`tx_offload`: on or off; None when unset (not managed)."""
    if text is None or not text.strip():
        return None
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise UserError(f"{subject(who).attr('tx_offload')} is {text!r}: give on or off")


def check_vlan_mode(text: str | None, who: str | Subject) -> VlanMode:
    """`kvm_vlan_mode`: macvtap (the default) or bridge."""
    word = (text or "macvtap").strip().lower()
    for mode in VLAN_MODES:
        if word == mode:
            return mode
    raise UserError(f"{subject(who).attr('kvm_vlan_mode')} is {text!r}: give macvtap or bridge")


def check_module(module: str, where: str = "") -> str:
    """A kernel module name for modprobe.d, or a UserError naming it (and `where` it is)."""
    if not _MODULE_RE.match(module):
        raise UserError(
            f"{where}invalid kernel module name {module!r}: letters, digits, '_' and '-' "
            "(e.g. e1000e)"
        )
    return module


def check_module_options(options: str, where: str = "") -> str:
    """Module options for modprobe.d's `options` line: one line, so no control characters."""
    m = _CONTROL_RE.search(options)
    if m is not None:
        raise UserError(
            f"{where}module options {options!r} hold the control character {m.group()!r}: "
            "give them on one line, e.g. debug=1 mode=4"
        )
    return options


def _check_strings(inp: HostNetworkInput) -> None:
    """Every database string the files will hold, checked again here, at render."""
    host = inp.host
    for row in inp.interfaces:
        if not _DEVICE_RE.match(row.device):
            raise UserError(f"{host}: invalid interface name {row.device!r} in the database")
        if row.module is not None:
            check_module(row.module, f"{host} {row.device}: ")
        if row.options is not None:
            check_module_options(row.options, f"{host} {row.device}: ")
    if inp.fqdn is not None:
        problem = host_name_problem(inp.fqdn)
        if problem is not None:
            raise UserError(
                f"{host}: host name {inp.fqdn!r} cannot go into a network file: {problem}; fix "
                "the DNS zone of its primary network (rocks list network)"
            )


def _fits(name: str, what: str, host: str, problems: list[str]) -> bool:
    if len(name) <= MAX_IFNAME:
        return True
    problems.append(
        f"{host}: interface name {name} ({what}) is {len(name)} characters long and Linux allows "
        f"{MAX_IFNAME}, so it is not made: give the container's interface a shorter name"
    )
    return False


def _address(
    row: HostInterface, nets: dict[str, NetworkDef], host: str, problems: list[str]
) -> Address | None:
    if not row.ip:
        return None
    net = nets.get(row.network or "")
    if net is None:
        problems.append(
            f"{host} {row.device} has IP {row.ip} but no network: it gets no bridge address "
            f"(rocks set host interface subnet {host} {row.device} <network>)"
        )
        return None
    try:
        ipaddress.IPv4Address(row.ip)
        ipaddress.IPv4Network(f"0.0.0.0/{net.netmask}")
    except ValueError:
        raise UserError(
            f"{host} {row.device}: {row.ip}/{net.netmask} is not an IPv4 address and netmask"
        ) from None
    return Address(row.ip, net.netmask)


# The plan ---------------------------------------------------------------------------------------


def _kind_of(device: str) -> Literal["skip-vlan", "skip-ipmi", "plain", "ethernet"]:
    if device.startswith("vlan"):
        return "skip-vlan"
    if device == "ipmi":
        return "skip-ipmi"
    if device.startswith("ib"):
        return "plain"
    return "ethernet"


def plan_host_network(inp: HostNetworkInput) -> HostNetwork:
    """The devices, VLANs and routes `inp.host` must have; deterministic for its inputs."""
    _check_strings(inp)
    host = inp.host
    settings = inp.settings
    mode = check_vlan_mode(settings.vlan_mode, host)
    fd = check_forward_delay(settings.stp_forward_delay, host)
    hello = check_hello_time(settings.hello_time, host)
    tx = check_tx_offload(settings.tx_offload, host)
    nets = {n.name: n for n in inp.networks}
    problems: list[str] = []

    # Which container interface each network's VMs attach to: the first row on that network,
    # in database order (as services/domains.py resolves a VM's NICs).
    ports: dict[str, HostInterface] = {}
    for row in inp.interfaces:
        if _kind_of(row.device) == "skip-vlan" or row.network is None:
            continue
        ports.setdefault(row.network, row)

    bridged: dict[str, list[str]] = {}
    vlan_users: dict[tuple[str, int], list[GuestNic]] = {}
    for nic in inp.guests:
        port = ports.get(nic.network or "")
        label = f"{nic.vm}:{nic.device}"
        if port is None:
            problems.append(
                f"{nic.vm} {nic.device} needs an interface of {host} on network "
                f"{nic.network or '(none)'}: rocks add host interface {host} <iface> "
                f"subnet={nic.network or 'private'}"
            )
            continue
        if _kind_of(port.device) != "ethernet":
            problems.append(
                f"{nic.vm} {nic.device} would attach to {host} {port.device}, which is not an "
                "Ethernet interface: it is not configured for VMs"
            )
            continue
        if nic.vlan is not None and nic.vlan >= 2:
            vlan_users.setdefault((port.device, nic.vlan), []).append(nic)
        else:
            bridged.setdefault(port.device, []).append(label)

    devices: list[Device] = []
    managed: list[str] = []
    routes_on: list[tuple[ipaddress.IPv4Network, str]] = []
    for row in inp.interfaces:
        kind = _kind_of(row.device)
        if kind == "skip-vlan":
            continue
        if kind == "skip-ipmi":
            problems.append(f"{host} ipmi is configured by the IPMI tools, not by Flightdeck")
            continue
        net = nets.get(row.network or "")
        mtu = net.mtu if net else None
        address = _address(row, nets, host, problems)
        dhcp = (row.options or "").strip().lower().startswith("dhcp")
        if kind == "plain":
            if not _fits(row.device, "InfiniBand interface", host, problems):
                continue
            devices.append(
                Device(
                    name=row.device,
                    kind="plain",
                    source=row.device,
                    mac=row.mac,
                    addresses=(address,) if address else (),
                    dhcp=dhcp,
                    mtu=mtu,
                    up=True if net else None,
                    onboot=net is not None,
                    network=row.network,
                )
            )
            if address:
                routes_on.append((address.network, row.device))
            continue
        phys = f"p{row.device}"
        if not _fits(phys, f"the NIC of {row.device}", host, problems):
            continue
        managed.append(row.device)
        users = tuple(sorted(bridged.get(row.device, ())))
        has_bridge = address is not None or bool(users)
        devices.append(
            Device(
                name=phys,
                kind="ethernet",
                source=row.device,
                mac=row.mac,
                master=row.device if has_bridge else None,
                mtu=mtu,
                up=True if net else None,
                onboot=net is not None,
                promiscuous=net is not None,
                module=row.module,
                module_options=row.options if row.module else None,
                tagged=bool(row.vlan),
                network=row.network,
            )
        )
        if has_bridge:
            devices.append(
                Device(
                    name=row.device,
                    kind="bridge",
                    source=row.device,
                    addresses=(address,) if address else (),
                    dhcp=dhcp,
                    mtu=mtu,
                    onboot=net is not None,
                    forward_delay_cs=fd,
                    hello_time_cs=hello,
                    tx_offload=tx,
                    network=row.network,
                    users=users,
                )
            )
            if address:
                routes_on.append((address.network, row.device))

    vlans: list[VlanUse] = []
    for (dev, vlan), nics in sorted(vlan_users.items()):
        parent = f"p{dev}"
        iface = f"{parent}.{vlan}"
        iface_ok = dev in managed and _fits(iface, f"VLAN {vlan} on {parent}", host, problems)
        users = tuple(sorted({f"{n.vm}:{n.device}" for n in nics}))
        clusters = tuple(sorted({n.cluster for n in nics if n.cluster}))
        vms = tuple(sorted({n.vm for n in nics}))
        network = ports[nics[0].network or ""].network or ""
        if mode == "bridge":
            bridge = f"vlan{vlan}"
            devices.append(
                Device(
                    name=bridge,
                    kind="bridge",
                    forward_delay_cs=fd,
                    hello_time_cs=hello,
                    network=network,
                    users=users,
                )
            )
            if iface_ok:
                devices.append(
                    Device(
                        name=iface,
                        kind="vlan",
                        source=dev,
                        parent=parent,
                        vlan_id=vlan,
                        master=bridge,
                        network=network,
                    )
                )
            attach = bridge
        elif iface_ok:
            devices.append(
                Device(
                    name=iface,
                    kind="vlan",
                    source=dev,
                    parent=parent,
                    vlan_id=vlan,
                    arp=False,
                    network=network,
                    users=users,
                )
            )
            attach = iface
        else:
            attach = iface
        vlans.append(VlanUse(vlan, attach, iface, parent, network, clusters, vms))

    routes: list[Route] = []
    gateway = None
    for r in inp.routes:
        try:
            dest = ipaddress.IPv4Network(f"{r.destination}/{r.netmask}")
            gw = ipaddress.IPv4Address(r.gateway)
        except ValueError:
            problems.append(f"{host} route {r.destination}/{r.netmask} via {r.gateway} is invalid")
            continue
        device = next((d for n, d in routes_on if gw in n), None)
        if device is None:
            problems.append(
                f"{host} route {dest} via {gw}: no interface of {host} is on the gateway's network"
            )
            continue
        routes.append(Route(str(dest.network_address), dest.prefixlen, str(gw), device))
        if dest.prefixlen == 0:
            gateway = str(gw)

    return HostNetwork(
        host=host,
        vlan_mode=mode,
        devices=tuple(devices),
        vlans=tuple(vlans),
        routes=tuple(routes),
        managed=tuple(managed),
        problems=tuple(problems),
        fqdn=inp.fqdn,
        gateway=gateway,
    )


def vlan_devices(plan: HostNetwork, vlans: Sequence[int]) -> tuple[list[str], list[str]]:
    """For VMs starting on the container: the devices their VLANs need, (required, uplinks).

    Required: what the VM NICs attach to (`p<dev>.<N>` in macvtap mode, `vlan<N>` in bridge
    mode). Uplinks: in bridge mode, the `p<dev>.<N>` port that joins the bridge to the wire;
    without it the VLAN still works between the VMs of this container.
    """
    wanted = set(vlans)
    required: list[str] = []
    uplinks: list[str] = []
    for use in plan.vlans:
        if use.vlan not in wanted:
            continue
        required.append(use.attach)
        if use.attach != use.interface:
            uplinks.append(use.interface)
    return required, uplinks
