"""The operations the diff asks for, golden; and, on a model of the kernel, that applying them
converges (a second diff is empty) and that their undo operations restore the snapshot."""

from __future__ import annotations

import dataclasses
import ipaddress
import shlex
from collections.abc import Callable, Sequence

import pytest

from flightdeck.errors import Conflict
from flightdeck.net import diff as d
from flightdeck.net.live import LiveLink, LiveRoute, LiveState
from flightdeck.planner.network import HostNetworkInput, Settings, plan_host_network

GoldenCheck = Callable[[str, str], None]

#: The guide's container before Flightdeck: NICs under their kernel names, the IP on eth0.
FRESH = LiveState(
    links=(
        LiveLink("lo", 1, mac="00:00:00:00:00:00", up=True, mtu=65536),
        LiveLink("eth0", 2, mac="52:54:00:fd:00:01", up=True, addresses=("10.1.255.254/16",)),
        LiveLink("eth1", 3, mac="52:54:00:FD:01:01"),
        LiveLink("eth2", 4, kind="veth", mac="52:54:00:fd:02:01", up=True),
        LiveLink("virbr0", 5, kind="bridge", mac="52:54:00:79:53:c7", up=True),
    ),
    routes=(LiveRoute("0.0.0.0/0", "10.1.1.1", "eth0"),),
)


# A model of the kernel, enough for the operations ----------------------------------------------


def _replace_name(state: LiveState, old: str, new: str) -> LiveState:
    links = []
    for ln in state.links:
        links.append(
            dataclasses.replace(
                ln,
                name=new if ln.name == old else ln.name,
                master=new if ln.master == old else ln.master,
                parent=new if ln.parent == old else ln.parent,
            )
        )
    routes = [dataclasses.replace(r, device=new) if r.device == old else r for r in state.routes]
    return LiveState(tuple(links), tuple(routes))


def simulate(state: LiveState, ops: Sequence[d.Op]) -> LiveState:
    for op in ops:
        links = {ln.name: ln for ln in state.links}
        routes = list(state.routes)

        def put(name: str, **kw: object) -> None:
            links[name] = dataclasses.replace(links[name], **kw)  # type: ignore[arg-type]  # noqa: B023

        if isinstance(op, d.Rename):
            assert op.device in links and op.new not in links and not links[op.device].up
            state = _replace_name(state, op.device, op.new)
            continue
        assert op.device in links or isinstance(op, d.CreateBridge | d.CreateVlan), op
        if isinstance(op, d.SetUp):
            put(op.device, up=op.up)
            if not op.up:
                routes = [r for r in routes if r.device != op.device]
        elif isinstance(op, d.SetMtu):
            put(op.device, mtu=op.mtu)
        elif isinstance(op, d.SetPromisc):
            put(op.device, promiscuous=op.on)
        elif isinstance(op, d.SetArp):
            put(op.device, arp=op.on)
        elif isinstance(op, d.SetMaster):
            assert op.master is None or links[op.master].kind == "bridge"
            put(op.device, master=op.master)
        elif isinstance(op, d.SetBridge):
            if op.forward_delay_cs is not None:
                put(op.device, forward_delay_cs=op.forward_delay_cs)
            if op.hello_time_cs is not None:
                put(op.device, hello_time_cs=op.hello_time_cs)
        elif isinstance(op, d.SetTxOffload):
            put(op.device, tx_offload=op.on)
        elif isinstance(op, d.CreateBridge):
            assert op.device not in links
            links[op.device] = LiveLink(
                op.device, 100, kind="bridge", forward_delay_cs=1500, hello_time_cs=200
            )
        elif isinstance(op, d.CreateVlan):
            assert op.device not in links and op.parent in links
            links[op.device] = LiveLink(op.device, 101, kind="vlan", parent=op.parent,
                                        vlan_id=op.vlan_id)  # fmt: skip
        elif isinstance(op, d.DeleteLink):
            del links[op.device]
            for name, ln in list(links.items()):
                if ln.master == op.device:
                    links[name] = dataclasses.replace(ln, master=None)
            routes = [r for r in routes if r.device != op.device]
        elif isinstance(op, d.AddAddress):
            assert op.cidr not in links[op.device].addresses
            put(op.device, addresses=(*links[op.device].addresses, op.cidr))
        elif isinstance(op, d.DelAddress):
            put(op.device, addresses=tuple(a for a in links[op.device].addresses if a != op.cidr))
            net = ipaddress.IPv4Network(op.cidr, strict=False)
            routes = [
                r
                for r in routes
                if not (r.device == op.device and ipaddress.IPv4Address(r.gateway) in net)
            ]
        elif isinstance(op, d.AddRoute):
            routes = [r for r in routes if r.destination != op.destination]
            routes.append(LiveRoute(op.destination, op.gateway, op.device))
        elif isinstance(op, d.DelRoute):
            routes.remove(LiveRoute(op.destination, op.gateway, op.device))
        state = LiveState(tuple(links.values()), tuple(routes))
    return state


def comparable(state: LiveState) -> tuple[object, ...]:
    links = sorted(
        (
            ln.name,
            ln.kind,
            ln.master,
            ln.parent,
            ln.vlan_id,
            ln.up,
            ln.promiscuous,
            ln.arp,
            ln.mtu,
            ln.forward_delay_cs,
            ln.hello_time_cs,
            ln.tx_offload,
            tuple(sorted(ln.addresses)),
        )
        for ln in state.links
    )
    return tuple(links), tuple(sorted((r.destination, r.gateway, r.device) for r in state.routes))


def undo_all(state: LiveState, steps: Sequence[d.Step]) -> LiveState:
    for step in reversed(steps):
        state = simulate(state, step.undo)
    return state


def listing(changes: d.ChangeSet) -> str:
    out = []
    for step in changes.steps:
        out.append(f"{step.op.describe()}\n    $ {shlex.join(step.op.argv())}")
        out += [f"    undo: {u.describe()}" for u in step.undo]
    out += [f"warning: {w}" for w in changes.warnings]
    return "\n".join(out) + "\n"


# The tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["macvtap", "bridge"])
def test_fresh_container_converges_and_undoes(
    mode: str, container: HostNetworkInput, golden: GoldenCheck
) -> None:
    settings = Settings(vlan_mode=mode, stp_forward_delay="1", hello_time="1", tx_offload="off")
    plan = plan_host_network(dataclasses.replace(container, settings=settings))
    changes = d.diff(plan, FRESH)
    golden(f"ops-fresh-{mode}.txt", listing(changes))
    after = simulate(FRESH, changes.ops)
    assert d.diff(plan, after).steps == []
    assert comparable(undo_all(after, changes.steps)) == comparable(FRESH)
    links = {ln.name: ln for ln in after.links}
    assert links["peth0"].master == "eth0" and links["eth0"].addresses == ("10.1.255.254/16",)
    assert links["peth0"].addresses == () and links["peth0"].promiscuous
    assert after.routes == (LiveRoute("0.0.0.0/0", "10.1.1.1", "eth0"),)
    assert links["peth2"].up and links["peth2"].master is None  # unmanaged state kept
    assert links["virbr0"] == FRESH.link("virbr0")  # not ours: untouched


def test_stale_vlans_and_bridges_are_removed_unless_in_use(container: HostNetworkInput) -> None:
    plan = plan_host_network(dataclasses.replace(container, guests=()))
    converged = simulate(FRESH, d.diff(plan, FRESH).ops)
    extra = LiveState(
        (
            *converged.links,
            LiveLink("peth0.7", 20, kind="vlan", parent="peth0", vlan_id=7, up=True, arp=False),
            LiveLink("peth0.8", 21, kind="vlan", parent="peth0", vlan_id=8, up=True),
            LiveLink("macvtap0", 22, kind="macvtap", parent="peth0.8", up=True),
            LiveLink("vlan9", 23, kind="bridge", up=True, forward_delay_cs=1500, hello_time_cs=200),
            LiveLink("vlan10", 24, kind="bridge", up=True),
            LiveLink("vnet0", 25, kind="tun", master="vlan10", up=True),
            LiveLink("eth0.5", 26, kind="vlan", parent="peth0", vlan_id=5, up=True),
            LiveLink("br-other", 27, kind="bridge", up=True),
        ),
        converged.routes,
    )
    changes = d.diff(plan, extra)
    assert [op.describe() for op in changes.ops] == ["remove peth0.7", "remove vlan9"]
    assert changes.warnings == [
        "peth0.8 on vm-container-0-0 is no longer needed but macvtap0 still use it (a running "
        "VM?): left",
        "bridge vlan10 on vm-container-0-0 is no longer needed but vnet0 still use it (a running "
        "VM?): left",
    ]
    after = simulate(extra, changes.ops)
    assert d.diff(plan, after).ops == []
    assert comparable(undo_all(after, changes.steps)) == comparable(extra)


def test_a_nic_is_found_by_mac_only_and_names_are_never_stolen(
    container: HostNetworkInput,
) -> None:
    plan = plan_host_network(dataclasses.replace(container, guests=()))
    wrong_mac = LiveState(
        (LiveLink("eth0", 2, mac="02:fc:00:00:00:01", up=True, addresses=("192.0.2.2/24",)),)
    )
    changes = d.diff(plan, wrong_mac)
    assert changes.ops == []  # the machine's own eth0 is not the container's NIC: left alone
    assert changes.warnings[0].startswith("no NIC with MAC 52:54:00:fd:00:01 (eth0) on vm-cont")
    assert changes.skipped == {"peth0", "eth0", "peth1", "peth2"}
    taken = LiveState(
        (
            LiveLink("eth0", 2, mac="52:54:00:fd:00:01"),
            LiveLink("peth0", 3, kind="bridge", mac="52:54:00:fd:00:01"),
        )
    )
    with pytest.raises(Conflict, match=r"cannot rename eth0 .* to peth0 .* bridge device peth0"):
        d.diff(plan, taken)
    squatter = LiveState(
        (LiveLink("peth0", 2, mac="52:54:00:fd:00:01"), LiveLink("eth0", 3, kind="veth"))
    )
    with pytest.raises(Conflict, match="eth0 exists on vm-container-0-0 and is not a bridge"):
        d.diff(plan, squatter)


def test_a_row_without_mac_only_matches_an_existing_p_device(container: HostNetworkInput) -> None:
    rows = (dataclasses.replace(container.interfaces[0], mac=None),)
    plan = plan_host_network(dataclasses.replace(container, interfaces=rows, guests=()))
    fresh = d.diff(plan, LiveState((LiveLink("eth0", 2, mac="52:54:00:fd:00:01"),)))
    assert fresh.ops == [] and "has no MAC in the database" in fresh.warnings[0]
    done = d.diff(plan, LiveState((LiveLink("peth0", 2, up=True),)))
    assert [op.describe() for op in done.ops][:2] == [
        "make peth0 promiscuous",
        "create bridge eth0",
    ]


def test_only_makes_sure_of_the_named_devices_and_removes_nothing(
    container: HostNetworkInput,
) -> None:
    plan = plan_host_network(container)
    converged = simulate(FRESH, d.diff(plan, FRESH, exclude=["peth0.2", "peth0.3"]).ops)
    stale = LiveState(
        (*converged.links, LiveLink("peth0.9", 30, kind="vlan", parent="peth0", vlan_id=9)),
        converged.routes,
    )
    changes = d.diff(plan, stale, only=["peth0.2"], remove=False)
    assert [op.describe() for op in changes.ops] == [
        "create VLAN interface peth0.2 (VLAN 2 on peth0)",
        "turn ARP off on peth0.2",
        "set peth0.2 up",
    ]
    missing = d.diff(plan, LiveState(), only=["peth0.3"], remove=False)
    assert missing.ops == [] and missing.skipped == {"peth0.3"}
    assert "peth0 does not exist on vm-container-0-0" in missing.warnings[0]


def test_exclude_leaves_vlans_out_and_removals_only_touch_named_devices(
    container: HostNetworkInput,
) -> None:
    plan = plan_host_network(container)
    changes = d.diff(plan, FRESH, exclude=["peth0.2", "peth0.3"])
    assert not [op for op in changes.ops if isinstance(op, d.CreateVlan)]
    after = simulate(FRESH, changes.ops)
    gone = plan_host_network(dataclasses.replace(container, guests=container.guests[:2]))
    stale = LiveState(
        (
            *after.links,
            LiveLink("peth0.2", 40, kind="vlan", parent="peth0", vlan_id=2, up=True, arp=False),
            LiveLink("peth0.4", 41, kind="vlan", parent="peth0", vlan_id=4, up=True),
        ),
        after.routes,
    )
    removal = d.diff_removals(gone, stale, ["peth0.2", "vlan2"])
    assert [op.describe() for op in removal.ops] == ["remove peth0.2"]
    assert [u.describe() for u in removal.steps[0].undo] == [
        "create VLAN interface peth0.2 (VLAN 2 on peth0)",
        "turn ARP off on peth0.2",
        "set the MTU of peth0.2 to 1500",
        "set peth0.2 up",
    ]
