"""A snapshot of a host's live network devices, whoever took it (netlink or `ip -j`).

Plain values only, so the diff that compares it with the plan is pure and testable without a
kernel. Addresses and routes are IPv4 only: IPv6 (link-local and the rest) is never managed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Link kinds that are never a physical NIC, even when they share its MAC (a bridge takes the
#: MAC of its first port).
VIRTUAL_KINDS = frozenset(
    {
        "bridge",
        "vlan",
        "macvlan",
        "macvtap",
        "tun",
        "vxlan",
        "ipvlan",
        "bond",
        "team",
        "openvswitch",
        "ifb",
        "gre",
        "gretap",
        "ipip",
        "sit",
        "wireguard",
    }
)


@dataclass(frozen=True)
class LiveLink:
    name: str
    index: int = 0
    kind: str | None = None
    mac: str | None = None
    master: str | None = None
    #: The lower device of a vlan/macvlan/macvtap in the same namespace.
    parent: str | None = None
    vlan_id: int | None = None
    up: bool = False
    promiscuous: bool = False
    arp: bool = True
    mtu: int = 1500
    forward_delay_cs: int | None = None
    hello_time_cs: int | None = None
    #: Only read for the devices whose offload the plan manages.
    tx_offload: bool | None = None
    #: IPv4 addresses as `ip/prefixlen`.
    addresses: tuple[str, ...] = ()

    @property
    def physical(self) -> bool:
        return self.kind not in VIRTUAL_KINDS


@dataclass(frozen=True)
class LiveRoute:
    """An IPv4 route of the main table through a gateway (`destination` as `net/prefixlen`)."""

    destination: str
    gateway: str
    device: str


@dataclass(frozen=True)
class LiveState:
    links: tuple[LiveLink, ...] = ()
    routes: tuple[LiveRoute, ...] = ()
    _by_name: dict[str, LiveLink] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({link.name: link for link in self.links})

    def link(self, name: str) -> LiveLink | None:
        return self._by_name.get(name)

    def by_mac(self, mac: str) -> LiveLink | None:
        mac = mac.lower()
        return next(
            (ln for ln in self.links if ln.physical and (ln.mac or "").lower() == mac), None
        )

    def ports(self, bridge: str) -> list[str]:
        return sorted(ln.name for ln in self.links if ln.master == bridge)

    def uppers(self, name: str) -> list[str]:
        return sorted(ln.name for ln in self.links if ln.parent == name)
