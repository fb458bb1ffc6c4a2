"""The planned network of a container as files: RHEL ifcfg (the original's) or systemd-networkd.

ifcfg (reference §8.1), per interface row in database order:
- `/etc/modprobe.d/<dev>.conf` when the row has a module: `alias p<dev> <module>`, then
  `options <module> <opts>` unless it is a bond (and only when there are options);
- `ifcfg-p<dev>` with the keys DEVICE, HWADDR, VLAN, BRIDGE, ONBOOT, BOOTPROTO, MTU in that
  order;
- `ifcfg-<dev>` (TYPE=Bridge) with DEVICE, TYPE, IPADDR, NETMASK, BOOTPROTO, ONBOOT, MTU, then
  the lines the original's interface plugins would add: here Appendix C's settings,
  `BRIDGING_OPTS="forward_delay=<cs> hello_time=<cs>"` and `ETHTOOL_OPTS="-K <dev> tx off"`;
  or, when the row gets no bridge, the removal of `ifcfg-<dev>` (the original's `rm -f`).
- The cluster VLANs go, as in 6.2, into `/etc/libvirt/networking/vlan.conf`, the bring-up lines
  its boot service ran before libvirtd (with `ip link` instead of the retired `vconfig`).
- `/etc/sysconfig/network`: NETWORKING, HOSTNAME, GATEWAY.

networkd (the default): per device a `.link` (renaming the NIC by its permanent MAC; tx offload
of a bridge), `.netdev` (bridges, VLANs) and `.network` (addresses, ports, ARP, promiscuous
mode) under `/etc/systemd/network/`, all named `1x-flightdeck-<device>.*`; files of that
pattern that the plan no longer has are Flightdeck's to delete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flightdeck.planner.network import Device, HostNetwork

FORMATS = ("networkd", "ifcfg")
IFCFG_DIR = "/etc/sysconfig/network-scripts"
NETWORKD_DIR = "/etc/systemd/network"
MODPROBE_DIR = "/etc/modprobe.d"
VLAN_CONF = "/etc/libvirt/networking/vlan.conf"
#: Files Flightdeck owns in NETWORKD_DIR (glob): stale ones are deleted by `files.write`.
NETWORKD_OWNED = ("10-flightdeck-*", "11-flightdeck-*")


@dataclass(frozen=True)
class RenderedFile:
    """A file to write (`content`), or to remove when `content` is None."""

    path: str
    content: str | None
    mode: int = 0o644


@dataclass(frozen=True)
class Rendering:
    files: tuple[RenderedFile, ...]
    #: (directory, glob): files there matching the glob and not in `files` are stale.
    owned: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _seconds(cs: int) -> str:
    return f"{cs / 100:g}"


def _lines(*lines: str | None) -> str:
    return "".join(f"{ln}\n" for ln in lines if ln is not None)


# ifcfg ------------------------------------------------------------------------------------------


def _modprobe(d: Device) -> RenderedFile | None:
    if not d.module or not d.source:
        return None
    lines = [f"alias {d.name} {d.module}"]
    if d.module_options and not d.module.startswith("bond"):
        lines.append(f"options {d.module} {d.module_options}")
    return RenderedFile(f"{MODPROBE_DIR}/{d.source}.conf", _lines(*lines))


def _ifcfg_physical(d: Device) -> str:
    return _lines(
        f"DEVICE={d.name}",
        f"HWADDR={d.mac}" if d.mac else None,
        "VLAN=yes" if d.tagged else None,
        f'BRIDGE="{d.master}"' if d.master else None,
        f"ONBOOT={'yes' if d.onboot else 'no'}",
        "BOOTPROTO=none",
        f"MTU={d.mtu}" if d.mtu else None,
    )


def _ifcfg_bridge(d: Device) -> str:
    addr = d.addresses[0] if d.addresses else None
    opts = []
    if d.forward_delay_cs is not None:
        opts.append(f"forward_delay={d.forward_delay_cs}")
    if d.hello_time_cs is not None:
        opts.append(f"hello_time={d.hello_time_cs}")
    return _lines(
        f"DEVICE={d.name}",
        "TYPE=Bridge",
        f"IPADDR={addr.ip}" if addr else None,
        f"NETMASK={addr.netmask}" if addr else None,
        f"BOOTPROTO={'dhcp' if d.dhcp else 'none'}",
        f"ONBOOT={'yes' if d.onboot else 'no'}",
        f"MTU={d.mtu}" if d.mtu else None,
        f'BRIDGING_OPTS="{" ".join(opts)}"' if opts else None,
        f'ETHTOOL_OPTS="-K {d.name} tx {"on" if d.tx_offload else "off"}"'
        if d.tx_offload is not None
        else None,
    )


def _ifcfg_plain(d: Device) -> str:
    addr = d.addresses[0] if d.addresses else None
    return _lines(
        f"DEVICE={d.name}",
        f"IPADDR={addr.ip}" if addr else None,
        f"NETMASK={addr.netmask}" if addr else None,
        f"BOOTPROTO={'dhcp' if d.dhcp else 'none'}",
        f"ONBOOT={'yes' if d.onboot else 'no'}",
        f"MTU={d.mtu}" if d.mtu else None,
    )


def vlan_script(plan: HostNetwork) -> str:
    """The bring-up lines of the container's cluster VLANs (idempotent shell, as vlan.conf)."""
    out = [f"# Cluster VLANs of {plan.host}, written by Flightdeck; run before libvirtd."]
    if not plan.vlans:
        out.append(f"# no vlan for {plan.host}")
    for use in plan.vlans:
        vlan = plan.device(use.interface)
        clusters = ", ".join(use.clusters) or "no cluster"
        out.append(f"# VLAN {use.vlan} ({clusters}): {', '.join(use.vms)}")
        if use.attach != use.interface:
            bridge = plan.device(use.attach)
            out.append(
                f"ip link show {use.attach} > /dev/null 2>&1 || "
                f"ip link add {use.attach} type bridge"
            )
            settings = _bridge_ip_args(bridge) if bridge else ""
            if settings:
                out.append(f"ip link set dev {use.attach} type bridge{settings}")
            out.append(f"ip link set dev {use.attach} up")
        out.append(
            f"ip link show {use.interface} > /dev/null 2>&1 || "
            f"ip link add link {use.parent} name {use.interface} type vlan id {use.vlan}"
        )
        if vlan is not None and vlan.master:
            out.append(f"ip link set dev {use.interface} master {vlan.master}")
        out.append(f"ip link set dev {use.interface} up")
        if vlan is not None and not vlan.arp:
            out.append(f"ip link set arp off dev {use.interface}")
    return _lines(*out)


def _bridge_ip_args(d: Device) -> str:
    args = ""
    if d.forward_delay_cs is not None:
        args += f" forward_delay {d.forward_delay_cs}"
    if d.hello_time_cs is not None:
        args += f" hello_time {d.hello_time_cs}"
    return args


def _sysconfig_network(plan: HostNetwork) -> str:
    return _lines(
        "NETWORKING=yes",
        f"HOSTNAME={plan.fqdn or plan.host}",
        f"GATEWAY={plan.gateway}" if plan.gateway else None,
    )


def _route_files(plan: HostNetwork) -> Iterable[RenderedFile]:
    by_dev: dict[str, list[str]] = {}
    for r in plan.routes:
        if r.prefixlen == 0:
            continue  # the default route is GATEWAY= in /etc/sysconfig/network
        n = len(by_dev.setdefault(r.device, [])) // 3
        mask = _netmask(r.prefixlen)
        by_dev[r.device] += [
            f"ADDRESS{n}={r.destination}",
            f"NETMASK{n}={mask}",
            f"GATEWAY{n}={r.gateway}",
        ]
    for dev, lines in by_dev.items():
        yield RenderedFile(f"{IFCFG_DIR}/route-{dev}", _lines(*lines))


def _netmask(prefixlen: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def render_ifcfg(plan: HostNetwork) -> Rendering:
    files: list[RenderedFile] = []
    for d in plan.devices:
        if d.kind == "ethernet":
            mod = _modprobe(d)
            if mod:
                files.append(mod)
            files.append(RenderedFile(f"{IFCFG_DIR}/ifcfg-{d.name}", _ifcfg_physical(d)))
            bridge = plan.device(d.master) if d.master else None
            if bridge is None and d.source:
                files.append(RenderedFile(f"{IFCFG_DIR}/ifcfg-{d.source}", None))
        elif d.kind == "bridge" and d.source:
            files.append(RenderedFile(f"{IFCFG_DIR}/ifcfg-{d.name}", _ifcfg_bridge(d)))
        elif d.kind == "plain":
            files.append(RenderedFile(f"{IFCFG_DIR}/ifcfg-{d.name}", _ifcfg_plain(d)))
    files.append(RenderedFile(VLAN_CONF, vlan_script(plan), 0o755))
    files.append(RenderedFile("/etc/sysconfig/network", _sysconfig_network(plan)))
    files.extend(_route_files(plan))
    return Rendering(tuple(files))


# systemd-networkd -------------------------------------------------------------------------------


def _header(plan: HostNetwork) -> str:
    return (
        f"# Written by Flightdeck (rocks sync host network {plan.host}); "
        "local changes are overwritten.\n"
    )


def _section(name: str, *lines: str | None) -> str:
    body = [ln for ln in lines if ln is not None]
    return f"\n[{name}]\n" + "".join(f"{ln}\n" for ln in body) if body else ""


def _unit(plan: HostNetwork, *sections: str) -> str:
    return _header(plan) + "".join(sections)


def _nd(name: str, prefix: str = "10") -> str:
    return f"{NETWORKD_DIR}/{prefix}-flightdeck-{name}"


def _routes_of(plan: HostNetwork, device: str) -> list[str]:
    out = []
    for r in plan.routes:
        if r.device != device:
            continue
        if r.prefixlen == 0:
            out.append(_section("Route", f"Gateway={r.gateway}"))
        else:
            out.append(_section("Route", f"Destination={r.cidr}", f"Gateway={r.gateway}"))
    return out


def render_networkd(plan: HostNetwork) -> Rendering:
    files: list[RenderedFile] = []
    vlans_on: dict[str, list[str]] = {}
    for d in plan.devices:
        if d.kind == "vlan" and d.parent:
            vlans_on.setdefault(d.parent, []).append(d.name)
    for d in plan.devices:
        mod = _modprobe(d) if d.kind == "ethernet" else None
        if mod:
            files.append(mod)
        if d.kind == "ethernet":
            if d.mac:
                files.append(
                    RenderedFile(
                        _nd(f"{d.name}.link"),
                        _unit(
                            plan,
                            _section("Match", f"PermanentMACAddress={d.mac}"),
                            _section("Link", f"Name={d.name}"),
                        ),
                    )
                )
            files.append(
                RenderedFile(
                    _nd(f"{d.name}.network"),
                    _unit(
                        plan,
                        _section("Match", f"Name={d.name}"),
                        _section(
                            "Link",
                            f"MTUBytes={d.mtu}" if d.mtu else None,
                            "Promiscuous=yes" if d.promiscuous else None,
                            None if d.onboot else "ActivationPolicy=manual",
                        ),
                        _section(
                            "Network",
                            f"Bridge={d.master}" if d.master else None,
                            *(f"VLAN={v}" for v in vlans_on.get(d.name, ())),
                            "LinkLocalAddressing=no",
                            "ConfigureWithoutCarrier=yes",
                        ),
                    ),
                )
            )
        elif d.kind == "bridge":
            if d.tx_offload is not None:
                files.append(
                    RenderedFile(
                        _nd(f"{d.name}.link", "11"),
                        _unit(
                            plan,
                            _section("Match", f"OriginalName={d.name}", "Kind=bridge"),
                            _section(
                                "Link",
                                f"TransmitChecksumOffload={'yes' if d.tx_offload else 'no'}",
                            ),
                        ),
                    )
                )
            files.append(
                RenderedFile(
                    _nd(f"{d.name}.netdev"),
                    _unit(
                        plan,
                        _section(
                            "NetDev",
                            f"Name={d.name}",
                            "Kind=bridge",
                            f"MTUBytes={d.mtu}" if d.mtu else None,
                        ),
                        _section(
                            "Bridge",
                            f"ForwardDelaySec={_seconds(d.forward_delay_cs)}"
                            if d.forward_delay_cs is not None
                            else None,
                            f"HelloTimeSec={_seconds(d.hello_time_cs)}"
                            if d.hello_time_cs is not None
                            else None,
                        ),
                    ),
                )
            )
            files.append(RenderedFile(_nd(f"{d.name}.network"), _network_unit(plan, d)))
        elif d.kind == "vlan":
            files.append(
                RenderedFile(
                    _nd(f"{d.name}.netdev"),
                    _unit(
                        plan,
                        _section("NetDev", f"Name={d.name}", "Kind=vlan"),
                        _section("VLAN", f"Id={d.vlan_id}"),
                    ),
                )
            )
            files.append(
                RenderedFile(
                    _nd(f"{d.name}.network"),
                    _unit(
                        plan,
                        _section("Match", f"Name={d.name}"),
                        _section("Link", None if d.arp else "ARP=no"),
                        _section(
                            "Network",
                            f"Bridge={d.master}" if d.master else None,
                            "LinkLocalAddressing=no",
                            "ConfigureWithoutCarrier=yes",
                        ),
                    ),
                )
            )
        elif d.kind == "plain":
            files.append(RenderedFile(_nd(f"{d.name}.network"), _network_unit(plan, d)))
    return Rendering(tuple(files), tuple((NETWORKD_DIR, g) for g in NETWORKD_OWNED))


def _network_unit(plan: HostNetwork, d: Device) -> str:
    addressed = bool(d.addresses) or d.dhcp
    return _unit(
        plan,
        _section("Match", f"Name={d.name}"),
        _section(
            "Link",
            f"MTUBytes={d.mtu}" if d.mtu else None,
            None if d.onboot else "ActivationPolicy=manual",
        ),
        _section(
            "Network",
            "DHCP=ipv4" if d.dhcp else None,
            *(f"Address={a.cidr}" for a in ([] if d.dhcp else d.addresses)),
            None if addressed else "LinkLocalAddressing=no",
            "ConfigureWithoutCarrier=yes",
        ),
        *_routes_of(plan, d.name),
    )


def render(plan: HostNetwork, fmt: str = "networkd") -> Rendering:
    if fmt == "ifcfg":
        return render_ifcfg(plan)
    if fmt == "networkd":
        return render_networkd(plan)
    from flightdeck.errors import UserError

    raise UserError(f"format={fmt}: give one of {', '.join(FORMATS)}")


def as_text(rendering: Rendering) -> str:
    """What `rocks report host network` prints: a header line per file, then its content."""
    out = []
    for f in rendering.files:
        if f.content is None:
            out.append(f"# remove {f.path}\n")
        else:
            out.append(f"# file {f.path}\n{f.content}")
    return "".join(out)
