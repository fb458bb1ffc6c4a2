"""The desired network of a VM container: the Rocks scheme, VLANs, Appendix C settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from flightdeck.errors import UserError
from flightdeck.planner.network import (
    Device,
    GuestNic,
    HostInterface,
    HostNetwork,
    HostNetworkInput,
    NetworkDef,
    RouteDef,
    Settings,
    plan_host_network,
    vlan_devices,
)

GOLDEN = Path(__file__).parent / "golden"

NETWORKS = (
    NetworkDef("private", "10.1.0.0", "255.255.0.0", 1500),
    NetworkDef("public", "137.110.119.0", "255.255.255.0", 1500),
    NetworkDef("lab", "10.50.0.0", "255.255.255.0", 9000),
)

#: vm-container-0-0 of the guide, carrying a bridged physical-cluster VM and two clusters' VMs.
CONTAINER = HostNetworkInput(
    host="vm-container-0-0",
    interfaces=(
        HostInterface("eth0", "52:54:00:fd:00:01", "10.1.255.254", "private"),
        HostInterface("eth1", "52:54:00:fd:01:01", None, "lab", module="e1000e", options="debug=2"),
        HostInterface("eth2", "52:54:00:fd:02:01"),
        HostInterface("vlan2", None, None, "private", vlan=2),
        HostInterface("ipmi", "52:54:00:fd:03:01", "10.1.254.254", "private"),
    ),
    networks=NETWORKS,
    guests=(
        GuestNic("hosted-vm-0-0-1", "eth0", "76:77:6e:40:00:05", "private", 3, "frontend-0-0-1"),
        GuestNic("compute-0-0-0", "eth0", "76:77:6e:40:00:04", "private", None),
        GuestNic("hosted-vm-0-0-0", "eth0", "76:77:6e:40:00:02", "private", 2, "frontend-0-0-0"),
        GuestNic("lab-vm-0-0-0", "eth0", "76:77:6e:40:00:06", "lab", 0),
        GuestNic("frontend-0-0-0", "eth0", "76:77:6e:40:00:00", "private", 2, "frontend-0-0-0"),
    ),
    routes=(RouteDef("0.0.0.0", "0.0.0.0", "10.1.1.1"),),
    fqdn="vm-container-0-0.local",
)


def plan_text(plan: HostNetwork) -> str:
    """Every device with the fields that differ from the defaults, then VLANs, routes, problems."""
    defaults = Device(name="", kind="plain")
    lines = [f"host {plan.host} mode={plan.vlan_mode} fqdn={plan.fqdn} gateway={plan.gateway}"]
    for d in plan.devices:
        fields = [
            f"{f.name}={getattr(d, f.name)}"
            for f in dataclasses.fields(d)
            if f.name not in ("name", "kind") and getattr(d, f.name) != getattr(defaults, f.name)
        ]
        lines.append(f"{d.kind} {d.name} " + " ".join(fields))
    lines += [f"vlan {u}" for u in plan.vlans]
    lines += [f"route {r}" for r in plan.routes]
    lines += [f"managed {list(plan.managed)}"]
    lines += [f"problem {p}" for p in plan.problems]
    return "\n".join(lines) + "\n"


@pytest.fixture
def golden(regenerate_golden: bool) -> Callable[[str, str], None]:
    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if regenerate_golden or not path.exists():
            GOLDEN.mkdir(exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if not regenerate_golden:
                pytest.fail(f"golden file {path} was missing and has been written; review it")
            return
        assert text == path.read_text(encoding="utf-8"), f"differs from {path}"

    return check


def test_the_guides_container(golden: Callable[[str, str], None]) -> None:
    golden("network-container.txt", plan_text(plan_host_network(CONTAINER)))


def test_bridge_mode_and_appendix_c(golden: Callable[[str, str], None]) -> None:
    settings = Settings(
        vlan_mode="bridge", stp_forward_delay="1.00", hello_time="1", tx_offload="off"
    )
    plan = plan_host_network(dataclasses.replace(CONTAINER, settings=settings))
    golden("network-container-bridge-mode.txt", plan_text(plan))


def test_every_ethernet_renamed_bridge_only_with_ip_or_bridged_vms() -> None:
    plan = plan_host_network(CONTAINER)
    kinds = {d.name: d.kind for d in plan.devices}
    assert kinds["peth0"] == kinds["peth1"] == kinds["peth2"] == "ethernet"
    assert kinds["eth0"] == "bridge"  # has the IP
    assert kinds["eth1"] == "bridge"  # no IP, but lab-vm's NIC attaches to it
    assert "eth2" not in kinds  # neither: renamed, not bridged
    eth0 = plan.device("eth0")
    assert eth0 is not None and [a.cidr for a in eth0.addresses] == ["10.1.255.254/16"]
    eth1 = plan.device("eth1")
    assert eth1 is not None and eth1.addresses == () and eth1.mtu == 9000
    peth0 = plan.device("peth0")
    assert peth0 is not None and peth0.master == "eth0" and peth0.promiscuous and peth0.up
    peth2 = plan.device("peth2")
    assert peth2 is not None and peth2.master is None and peth2.up is None
    assert not peth2.onboot and not peth2.promiscuous
    assert plan.managed == ("eth0", "eth1", "eth2")


def test_vlan_interfaces_only_for_vlans_with_vms_here() -> None:
    plan = plan_host_network(CONTAINER)
    assert [(u.vlan, u.attach, u.clusters, u.vms) for u in plan.vlans] == [
        (2, "peth0.2", ("frontend-0-0-0",), ("frontend-0-0-0", "hosted-vm-0-0-0")),
        (3, "peth0.3", ("frontend-0-0-1",), ("hosted-vm-0-0-1",)),
    ]
    vlan = plan.device("peth0.2")
    assert vlan is not None and (vlan.parent, vlan.vlan_id, vlan.arp) == ("peth0", 2, False)
    alone = dataclasses.replace(CONTAINER, guests=())
    empty = plan_host_network(alone)
    assert empty.vlans == () and not [d for d in empty.devices if d.kind == "vlan"]
    # with no bridged VM and no IP, eth1 gets no bridge either
    assert empty.device("eth1") is None and empty.device("eth0") is not None


def test_bridge_mode_attaches_to_vlan_bridges_with_the_vlan_interface_as_port() -> None:
    plan = plan_host_network(dataclasses.replace(CONTAINER, settings=Settings(vlan_mode="Bridge")))
    assert plan.vlan_mode == "bridge"
    br = plan.device("vlan2")
    port = plan.device("peth0.2")
    assert br is not None and br.kind == "bridge" and br.source is None
    assert port is not None and port.master == "vlan2" and port.arp
    assert vlan_devices(plan, [2, 7]) == (["vlan2"], ["peth0.2"])
    macvtap = plan_host_network(CONTAINER)
    assert vlan_devices(macvtap, [3]) == (["peth0.3"], [])


def test_appendix_c_attributes_apply_to_every_bridge() -> None:
    s = Settings(vlan_mode="bridge", stp_forward_delay="1.00", hello_time="2", tx_offload="off")
    plan = plan_host_network(dataclasses.replace(CONTAINER, settings=s))
    bridges = [d for d in plan.devices if d.kind == "bridge"]
    assert {d.name for d in bridges} == {"eth0", "eth1", "vlan2", "vlan3"}
    assert {(d.forward_delay_cs, d.hello_time_cs) for d in bridges} == {(100, 200)}
    assert {d.name: d.tx_offload for d in bridges} == {
        "eth0": False,
        "eth1": False,
        "vlan2": None,
        "vlan3": None,
    }
    default = plan_host_network(CONTAINER)
    assert {(d.forward_delay_cs, d.hello_time_cs, d.tx_offload) for d in default.devices} == {
        (None, None, None)
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (Settings(hello_time="0.5"), "bridge_hello_time of host vm-container-0-0 is '0.5': give "
         "seconds from 1 to 10"),
        (Settings(stp_forward_delay="31"), "bridge_stp_forward_delay of host vm-container-0-0 is "
         "'31': give seconds from 0 to 30"),
        (Settings(stp_forward_delay="soon"), "give seconds"),
        (Settings(stp_forward_delay="nan"), "give seconds"),
        (Settings(tx_offload="maybe"), "tx_offload of host vm-container-0-0 is 'maybe': give on "
         "or off"),
        (Settings(vlan_mode="ovs"), "kvm_vlan_mode of host vm-container-0-0 is 'ovs': give "
         "macvtap or bridge"),
    ],
)  # fmt: skip
def test_bad_attributes_are_clear_errors(settings: Settings, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        plan_host_network(dataclasses.replace(CONTAINER, settings=settings))


def test_attribute_values_parse() -> None:
    s = Settings(stp_forward_delay=" 0 ", hello_time="10", tx_offload="Yes")
    plan = plan_host_network(dataclasses.replace(CONTAINER, settings=s))
    eth0 = plan.device("eth0")
    assert eth0 is not None
    assert (eth0.forward_delay_cs, eth0.hello_time_cs, eth0.tx_offload) == (0, 1000, True)


def test_the_plan_does_not_depend_on_the_order_of_the_vms() -> None:
    shuffled = dataclasses.replace(CONTAINER, guests=tuple(reversed(CONTAINER.guests)))
    assert plan_host_network(shuffled) == plan_host_network(CONTAINER)


def test_names_too_long_for_linux_are_left_out_with_a_problem() -> None:
    inp = HostNetworkInput(
        host="c",
        interfaces=(HostInterface("enp129s0f0np0", "52:54:00:00:00:01", None, "private"),),
        networks=NETWORKS,
        guests=(GuestNic("vm", "eth0", "76:77:6e:00:00:01", "private", 4000, "fe"),),
    )
    plan = plan_host_network(inp)
    assert plan.device("penp129s0f0np0") is not None
    assert plan.device("penp129s0f0np0.4000") is None
    assert [u.attach for u in plan.vlans] == ["penp129s0f0np0.4000"]
    assert any("penp129s0f0np0.4000" in p and "Linux allows 15" in p for p in plan.problems)
    bridge = plan_host_network(dataclasses.replace(inp, settings=Settings(vlan_mode="bridge")))
    assert bridge.device("vlan4000") is not None and bridge.device("penp129s0f0np0.4000") is None


def test_unresolvable_guest_nics_and_odd_rows_are_problems_not_errors() -> None:
    inp = HostNetworkInput(
        host="c",
        interfaces=(
            HostInterface("eth0", "52:54:00:00:00:01", "10.1.0.9", None),
            HostInterface("ib0", None, "10.60.0.5", "ib"),
        ),
        networks=(*NETWORKS, NetworkDef("ib", "10.60.0.0", "255.255.0.0", 65520)),
        guests=(
            GuestNic("vm-a", "eth0", "76:77:6e:00:00:01", "public"),
            GuestNic("vm-b", "eth1", "76:77:6e:00:00:02", "ib"),
        ),
        routes=(RouteDef("10.99.0.0", "255.255.0.0", "10.60.0.1"),),
    )
    plan = plan_host_network(inp)
    assert plan.problems == (
        "vm-a eth0 needs an interface of c on network public: rocks add host interface c "
        "<iface> subnet=public",
        "vm-b eth1 would attach to c ib0, which is not an Ethernet interface: it is not "
        "configured for VMs",
        "c eth0 has IP 10.1.0.9 but no network: it gets no bridge address (rocks set host "
        "interface subnet c eth0 <network>)",
    )
    ib = plan.device("ib0")
    assert ib is not None and ib.kind == "plain" and ib.mtu == 65520
    assert [r.cidr for r in plan.routes] == ["10.99.0.0/16"] and plan.routes[0].device == "ib0"


def test_ownership_is_limited_to_flightdecks_patterns() -> None:
    plan = plan_host_network(CONTAINER)
    assert plan.owns("peth0.9", "vlan") and plan.owns("peth2.4094", "vlan")
    assert not plan.owns("eth0.9", "vlan") and not plan.owns("pwlan0.9", "vlan")
    assert plan.owns("vlan77", "bridge") and plan.owns("eth1", "bridge")
    assert not plan.owns("virbr0", "bridge") and not plan.owns("eth0", None)
    assert not plan.owns("peth0", "veth") and not plan.owns("vlan77", "vlan")


def test_dhcp_options_and_routes() -> None:
    inp = dataclasses.replace(
        CONTAINER,
        interfaces=(
            HostInterface("eth0", "52:54:00:fd:00:01", "10.1.255.254", "private", options="DHCP"),
        ),
        guests=(),
        routes=(
            RouteDef("0.0.0.0", "0.0.0.0", "10.1.1.1"),
            RouteDef("192.168.0.0", "255.255.0.0", "10.1.1.2"),
            RouteDef("0.0.0.0", "0.0.0.0", "172.16.0.1"),
        ),
    )
    plan = plan_host_network(inp)
    eth0 = plan.device("eth0")
    assert eth0 is not None and eth0.dhcp
    assert [(r.cidr, r.gateway, r.device) for r in plan.routes] == [
        ("0.0.0.0/0", "10.1.1.1", "eth0"),
        ("192.168.0.0/16", "10.1.1.2", "eth0"),
    ]
    assert plan.gateway == "10.1.1.1"
    assert plan.problems == (
        "vm-container-0-0 route 0.0.0.0/0 via 172.16.0.1: no interface of vm-container-0-0 is on "
        "the gateway's network",
    )
