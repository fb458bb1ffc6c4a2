"""Observe and change network devices through netlink (pyroute2), in a namespace or the host's.

`NetlinkHost(netns)` is one rtnetlink socket in that network namespace (the process's own when
None). A namespace that does not exist is an error, never created. The tx-checksum offload is
read and set with the ethtool ioctl from a short-lived thread that enters the namespace.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import threading
from collections.abc import Callable, Collection, Sequence
from types import TracebackType
from typing import Any, TypeVar

from flightdeck.errors import DriverError, NotFound
from flightdeck.net.diff import (
    AddAddress,
    AddRoute,
    CreateBridge,
    CreateVlan,
    DelAddress,
    DeleteLink,
    DelRoute,
    Op,
    Rename,
    SetArp,
    SetBridge,
    SetMaster,
    SetMtu,
    SetPromisc,
    SetTxOffload,
    SetUp,
    Step,
)
from flightdeck.net.live import LiveLink, LiveRoute, LiveState

T = TypeVar("T")

IFF_UP = 0x1
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
RT_TABLE_MAIN = 254
NETNS_DIR = "/run/netns"
TX_FLAG = "tx-checksumming"


def check_netns(netns: str | None) -> None:
    if netns is None:
        return
    if "/" in netns or netns in ("", ".", "..") or not os.path.exists(f"{NETNS_DIR}/{netns}"):
        raise NotFound(f"network namespace {netns} does not exist (ip netns list)")


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """Run `fn` in a thread that has entered `netns` (directly when None)."""
    if netns is None:
        return fn()
    check_netns(netns)
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            from pyroute2 import netns as pnetns

            pnetns.setns(netns, flags=0)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    t = threading.Thread(target=target, name=f"netns-{netns}", daemon=True)
    t.start()
    t.join()
    if failure:
        raise failure[0]
    return result[0]


def _ethtool_get(names: Collection[str]) -> dict[str, bool]:
    from pyroute2.ethtool.ioctl import IoctlEthtool

    out: dict[str, bool] = {}
    eth = IoctlEthtool()
    try:
        for name in names:
            try:
                eth.change_ifname(name)
                out[name] = bool(eth.get_offload_flags()[TX_FLAG])
            except Exception:  # a device that went away or has no offloads
                continue
    finally:
        eth.close()
    return out


def _ethtool_set(name: str, on: bool) -> None:
    from pyroute2.ethtool.ioctl import IoctlEthtool

    eth = IoctlEthtool(name)
    try:
        eth.set_offload_flag(TX_FLAG, 1 if on else 0)
    finally:
        eth.close()


def _attr(msg: Any, name: str) -> Any:
    return msg.get_attr(name)


class NetlinkHost:
    """One host's (or namespace's) links, addresses and routes, read and changed."""

    def __init__(self, host: str, netns: str | None = None) -> None:
        from pyroute2 import IPRoute

        check_netns(netns)
        self.host = host
        self.netns = netns
        try:
            self.ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        except OSError as exc:
            raise DriverError(f"cannot open netlink{self._where()}: {exc.strerror}") from None

    def _where(self) -> str:
        return f" in network namespace {self.netns}" if self.netns else f" on {self.host}"

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> NetlinkHost:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # Reading ----------------------------------------------------------------------------------

    def observe(self, tx_devices: Collection[str] = ()) -> LiveState:
        links = list(self.ipr.get_links())
        names = {int(m["index"]): str(_attr(m, "IFLA_IFNAME")) for m in links}
        addrs: dict[int, list[str]] = {}
        for a in self.ipr.get_addr(family=socket.AF_INET):
            ip = _attr(a, "IFA_ADDRESS") or _attr(a, "IFA_LOCAL")
            if ip:
                addrs.setdefault(int(a["index"]), []).append(f"{ip}/{a['prefixlen']}")
        tx = in_netns(self.netns, lambda: _ethtool_get(tx_devices)) if tx_devices else {}
        out: list[LiveLink] = []
        for m in links:
            index = int(m["index"])
            info = _attr(m, "IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            data = info.get_attr("IFLA_INFO_DATA") if info is not None else None
            parent = None
            if kind in ("vlan", "macvlan", "macvtap", "ipvlan") and not _attr(
                m, "IFLA_LINK_NETNSID"
            ):
                parent = names.get(int(_attr(m, "IFLA_LINK") or 0))
            vlan_id = fd = hello = None
            if data is not None and kind == "vlan":
                vlan_id = data.get_attr("IFLA_VLAN_ID")
            if data is not None and kind == "bridge":
                fd = data.get_attr("IFLA_BR_FORWARD_DELAY")
                hello = data.get_attr("IFLA_BR_HELLO_TIME")
            flags = int(m["flags"])
            name = names[index]
            out.append(
                LiveLink(
                    name=name,
                    index=index,
                    kind=kind,
                    mac=_attr(m, "IFLA_ADDRESS"),
                    master=names.get(int(_attr(m, "IFLA_MASTER") or 0)),
                    parent=parent,
                    vlan_id=vlan_id,
                    up=bool(flags & IFF_UP),
                    promiscuous=bool(flags & IFF_PROMISC),
                    arp=not flags & IFF_NOARP,
                    mtu=int(_attr(m, "IFLA_MTU") or 0),
                    forward_delay_cs=fd,
                    hello_time_cs=hello,
                    tx_offload=tx.get(name),
                    addresses=tuple(addrs.get(index, ())),
                )
            )
        routes = []
        for r in self.ipr.get_routes(family=socket.AF_INET, table=RT_TABLE_MAIN):
            gw = _attr(r, "RTA_GATEWAY")
            oif = _attr(r, "RTA_OIF")
            if not gw or oif is None or oif not in names:
                continue
            dst = _attr(r, "RTA_DST") or "0.0.0.0"
            net = ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
            routes.append(LiveRoute(str(net), gw, names[oif]))
        return LiveState(tuple(out), tuple(routes))

    def vlan_support(self) -> tuple[bool, str]:
        from flightdeck.net.apply import vlan_supported

        return vlan_supported(self.netns)

    # Changing ---------------------------------------------------------------------------------

    def apply(self, steps: Sequence[Step]) -> list[str]:
        """Carry out the steps; a failure undoes the done ones and raises DriverError."""
        from flightdeck.net.apply import run_steps

        return run_steps(self.run, steps)

    def _index(self, name: str) -> int:
        found = self.ipr.link_lookup(ifname=name)
        if not found:
            raise NotFound(f"{name} does not exist{self._where()}")
        return int(found[0])

    def run(self, op: Op) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        try:
            self._run(op)
        except NetlinkError as exc:
            raise DriverError(self._explain(op, exc.code)) from None
        except OSError as exc:
            raise DriverError(self._explain(op, exc.errno or 0)) from None

    def _explain(self, op: Op, code: int) -> str:
        what = f"could not {op.describe()}{self._where()}"
        if isinstance(op, CreateVlan) and code == errno.EOPNOTSUPP:
            return (
                f"{what}: this kernel has no 802.1Q VLAN support (CONFIG_VLAN_8021Q); cluster "
                "VLANs need it on every VM container"
            )
        return f"{what}: {os.strerror(code) if code else 'failed'}"

    def _run(self, op: Op) -> None:
        ipr = self.ipr
        if isinstance(op, Rename):
            ipr.link("set", index=self._index(op.device), ifname=op.new)
        elif isinstance(op, SetUp):
            ipr.link("set", index=self._index(op.device), state="up" if op.up else "down")
        elif isinstance(op, SetMtu):
            ipr.link("set", index=self._index(op.device), mtu=op.mtu)
        elif isinstance(op, SetPromisc):
            flags = IFF_PROMISC if op.on else 0
            ipr.link("set", index=self._index(op.device), flags=flags, change=IFF_PROMISC)
        elif isinstance(op, SetArp):
            flags = 0 if op.on else IFF_NOARP
            ipr.link("set", index=self._index(op.device), flags=flags, change=IFF_NOARP)
        elif isinstance(op, SetMaster):
            master = self._index(op.master) if op.master else 0
            ipr.link("set", index=self._index(op.device), master=master)
        elif isinstance(op, CreateBridge):
            ipr.link("add", ifname=op.device, kind="bridge")
        elif isinstance(op, SetBridge):
            kw: dict[str, int] = {}
            if op.forward_delay_cs is not None:
                kw["br_forward_delay"] = op.forward_delay_cs
            if op.hello_time_cs is not None:
                kw["br_hello_time"] = op.hello_time_cs
            ipr.link("set", index=self._index(op.device), kind="bridge", **kw)
        elif isinstance(op, CreateVlan):
            ipr.link(
                "add",
                ifname=op.device,
                kind="vlan",
                link=self._index(op.parent),
                vlan_id=op.vlan_id,
            )
        elif isinstance(op, DeleteLink):
            ipr.link("del", index=self._index(op.device))
        elif isinstance(op, AddAddress | DelAddress):
            iface = ipaddress.IPv4Interface(op.cidr)
            kw2: dict[str, Any] = {
                "index": self._index(op.device),
                "address": str(iface.ip),
                "prefixlen": iface.network.prefixlen,
            }
            if isinstance(op, AddAddress):
                if iface.network.prefixlen < 31:
                    kw2["broadcast"] = str(iface.network.broadcast_address)
                ipr.addr("add", **kw2)
            else:
                ipr.addr("del", **kw2)
        elif isinstance(op, AddRoute):
            ipr.route("replace", dst=op.destination, gateway=op.gateway, oif=self._index(op.device))
        elif isinstance(op, DelRoute):
            ipr.route("del", dst=op.destination, gateway=op.gateway, oif=self._index(op.device))
        elif isinstance(op, SetTxOffload):
            self._index(op.device)
            in_netns(self.netns, lambda: _ethtool_set(op.device, op.on))
        else:  # pragma: no cover - the Op union is closed
            raise AssertionError(op)
