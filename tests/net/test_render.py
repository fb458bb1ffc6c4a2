"""The rendered files: RHEL ifcfg exactly as the original wrote them, and systemd-networkd."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import pytest

from flightdeck.errors import UserError
from flightdeck.net.render import as_text, render, vlan_script
from flightdeck.planner.network import (
    HostInterface,
    HostNetworkInput,
    NetworkDef,
    Settings,
    plan_host_network,
)

GoldenCheck = Callable[[str, str], None]
APPENDIX_C = Settings(
    vlan_mode="bridge", stp_forward_delay="1.00", hello_time="1", tx_offload="off"
)


@pytest.mark.parametrize("fmt", ["ifcfg", "networkd"])
def test_guides_container(fmt: str, golden: GoldenCheck, container: HostNetworkInput) -> None:
    golden(f"container.{fmt}", as_text(render(plan_host_network(container), fmt)))


@pytest.mark.parametrize("fmt", ["ifcfg", "networkd"])
def test_bridge_mode_with_appendix_c(
    fmt: str, golden: GoldenCheck, container: HostNetworkInput
) -> None:
    plan = plan_host_network(dataclasses.replace(container, settings=APPENDIX_C))
    golden(f"container-bridge-mode.{fmt}", as_text(render(plan, fmt)))


def test_ifcfg_keys_in_the_originals_order(container: HostNetworkInput) -> None:
    files = {f.path: f.content for f in render(plan_host_network(container), "ifcfg").files}
    phys = files["/etc/sysconfig/network-scripts/ifcfg-peth0"]
    assert phys is not None
    keys = [ln.split("=")[0] for ln in phys.splitlines()]
    assert keys == ["DEVICE", "HWADDR", "BRIDGE", "ONBOOT", "BOOTPROTO", "MTU"]
    bridge = files["/etc/sysconfig/network-scripts/ifcfg-eth0"]
    assert bridge is not None
    assert [ln.split("=")[0] for ln in bridge.splitlines()] == [
        "DEVICE", "TYPE", "IPADDR", "NETMASK", "BOOTPROTO", "ONBOOT", "MTU",
    ]  # fmt: skip
    assert bridge.splitlines()[1] == "TYPE=Bridge"
    # The IP-less, VM-less eth2: renamed (ONBOOT=no, no network) and no bridge file at all.
    assert files["/etc/sysconfig/network-scripts/ifcfg-peth2"] == (
        "DEVICE=peth2\nHWADDR=52:54:00:fd:02:01\nONBOOT=no\nBOOTPROTO=none\n"
    )
    assert files["/etc/sysconfig/network-scripts/ifcfg-eth2"] is None
    assert files["/etc/modprobe.d/eth1.conf"] == "alias peth1 e1000e\noptions e1000e debug=2\n"


def test_ifcfg_vlan_row_dhcp_and_bond() -> None:
    inp = HostNetworkInput(
        host="c",
        interfaces=(
            HostInterface(
                "eth0",
                "52:54:00:00:00:01",
                "10.1.0.9",
                "private",
                vlan=5,
                module="bonding",
                options="dhcp mode=1",
            ),
        ),
        networks=(NetworkDef("private", "10.1.0.0", "255.255.0.0", 1500),),
    )
    files = {f.path: f.content for f in render(plan_host_network(inp), "ifcfg").files}
    assert files["/etc/sysconfig/network-scripts/ifcfg-peth0"] == (
        'DEVICE=peth0\nHWADDR=52:54:00:00:00:01\nVLAN=yes\nBRIDGE="eth0"\nONBOOT=yes\n'
        "BOOTPROTO=none\nMTU=1500\n"
    )
    bridge = files["/etc/sysconfig/network-scripts/ifcfg-eth0"]
    assert bridge is not None and "BOOTPROTO=dhcp\n" in bridge
    assert files["/etc/modprobe.d/eth0.conf"] == "alias peth0 bonding\n"


def test_networkd_files_are_owned_by_pattern_and_marked(container: HostNetworkInput) -> None:
    rendering = render(plan_host_network(container), "networkd")
    assert rendering.owned == (
        ("/etc/systemd/network", "10-flightdeck-*"),
        ("/etc/systemd/network", "11-flightdeck-*"),
    )
    for f in rendering.files:
        if f.path.startswith("/etc/systemd/network/"):
            assert re.match(r"/etc/systemd/network/1[01]-flightdeck-", f.path)
            assert f.content is not None and f.content.startswith("# Written by Flightdeck")


def test_vlan_script_without_vlans_and_unknown_format(container: HostNetworkInput) -> None:
    plan = plan_host_network(dataclasses.replace(container, guests=()))
    assert vlan_script(plan).endswith("# no vlan for vm-container-0-0\n")
    with pytest.raises(UserError, match="format=yaml: give one of networkd, ifcfg"):
        render(plan, "yaml")
