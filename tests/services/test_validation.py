"""Attributes Flightdeck understands are checked when set, with the message they get at use.

Before, `rocks set host attr ... bridge_hello_time 0.5` or a `cpu_mode` with a stray `<` was
stored, and failed at the next `rocks sync host network` or `rocks start host vm`. Each case
here is refused by `set attr`, `set appliance attr` and `set host attr` with nothing stored, and
the message is the one the same value gets at use (the designer, the network planner).
"""

from __future__ import annotations

from typing import Any

import pytest

from flightdeck.errors import UserError
from flightdeck.planner.network import HostNetworkInput, Settings, plan_host_network
from flightdeck.services import validation
from flightdeck.virt.designer import VMSpec, design

C0 = "vm-container-0-0"

#: (attribute, bad value, what the message says)
BAD = [
    ("cpu_mode", "exact:<model>core2duo</mod>", "is not valid XML"),
    ("cpu_mode", "turbo", "use host-model, host-passthrough"),
    ("cpu_mode", "host-model:<topology sockets='0'/>", "give a whole number of at least 1"),
    ("kvm_cpu_pinning", "<vcpupin vcpu='0' cpuset='1'/>", "must hold a single <cputune>"),
    ("kvm_device_0", "<hostdev mode='subsystem'><source>", "is not valid XML"),
    ("kvm_device_12", "<watchdog", "is not valid XML"),
    ("HVM_Features", "<acpi/> apic", "is outside any element"),
    ("kvm_domain_type", "xen", "use kvm, or qemu"),
    ("kvm_memballoon", "balloon", "use virtio"),
    ("kvm_vlan_mode", "ovs", "give macvtap or bridge"),
    ("bridge_hello_time", "0.5", "give seconds from 1 to 10"),
    ("bridge_stp_forward_delay", "31", "give seconds from 0 to 30"),
    ("tx_offload", "maybe", "give on or off"),
    ("kvm_network_format", "netplan", "give one of"),
    ("kvm_connect_timeout", "soon", "give seconds"),
    ("kvm_mem_mb", "lots", "give the memory for VMs in MB"),
    ("kvm_mem_overcommit", "-1", "give a ratio above 0"),
    ("kvm_power_parallel", "0", "give a whole number from 1 to 64"),
    ("kvm_shutdown_grace", "-5", "give seconds, e.g. 30"),
    ("kvm_frontend_ready_timeout", "soon", "give seconds, e.g. 900"),
    ("airboss_audit_days", "-1", "give whole days, 0 to keep the audit log forever"),
]


@pytest.mark.parametrize(("attribute", "value", "says"), BAD, ids=[f"{a}={v}" for a, v, _ in BAD])
def test_a_bad_value_is_refused_at_every_level(
    espresso: Any, attribute: str, value: str, says: str
) -> None:
    line = espresso.refused("set", "host", "attr", C0, attribute, value, says=says)
    assert f"attribute {attribute} of host {C0}" in line
    line = espresso.refused("set", "appliance", "attr", "compute", attribute, value, says=says)
    assert f"attribute {attribute} of appliance compute" in line
    line = espresso.refused("set", "attr", attribute, value, says=says)
    assert f"global attribute {attribute}" in line


def _at_use(attribute: str, value: str, host: str) -> str:
    """The message the value gets when it is used for `host`."""
    with pytest.raises(UserError) as info:
        if attribute in ("kvm_vlan_mode", "bridge_hello_time", "bridge_stp_forward_delay",
                         "tx_offload"):  # fmt: skip
            field = {
                "kvm_vlan_mode": "vlan_mode",
                "bridge_hello_time": "hello_time",
                "bridge_stp_forward_delay": "stp_forward_delay",
                "tx_offload": "tx_offload",
            }[attribute]
            plan_host_network(HostNetworkInput(host, [], [], settings=Settings(**{field: value})))
        else:
            design(VMSpec(name=host, vcpus=1, mem_mb=256, attrs={attribute: value}))
    return info.value.message


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("cpu_mode", "exact:<model>core2duo</mod>"),
        ("kvm_device_0", "<hostdev mode='subsystem'><source>"),
        ("HVM_Features", "<acpi/> apic"),
        ("kvm_cpu_pinning", "<cputune><vcpupin vcpu='0' cpuset='1'/>"),
        ("kvm_domain_type", "xen"),
        ("bridge_hello_time", "0.5"),
        ("tx_offload", "maybe"),
        ("kvm_vlan_mode", "ovs"),
    ],
)
def test_the_message_at_set_is_the_message_at_use(
    espresso: Any, attribute: str, value: str
) -> None:
    line = espresso.refused("set", "host", "attr", C0, attribute, value, says=attribute)
    assert line == f"error - {_at_use(attribute, value, C0)}"


def test_the_guides_values_are_accepted_as_written(espresso: Any) -> None:
    """Seed 002/003: the line continuations and nested quotes of the guide's commands."""
    guide = {
        "kvm_cpu_pinning": '<cputune>\\\n <vcpupin vcpu="0" cpuset="4"/>\\\n </cputune>',
        "kvm_device_0": "<hostdev mode=subsystem type=pci managed=yes>\\\n <source>\\\n "
        "<address bus=0x06 slot=0x02 function=0x0/>\\\n </source>\\\n </hostdev>",
        "cpu_mode": "exact: <model fallback='allow'>core2duo</model><vendor>Intel</vendor>"
        "<topology sockets='1' cores='2'/>",
        "bridge_stp_forward_delay": "1.00",
        "bridge_hello_time": "1",
        "tx_offload": "off",
        "kvm_domain_type": "auto",
    }
    for attribute, value in guide.items():
        espresso.ok("set", "host", "attr", C0, attribute, value)
    rows = espresso.ok("list", "host", "attr", C0, "attr=cpu_mode", "output-col=value")
    assert "<topology sockets='1' cores='2'/>" in rows, "stored exactly as given"


def test_attributes_nobody_registered_are_stored_as_given(espresso: Any) -> None:
    espresso.ok("set", "attr", "site_motd", "<not xml at all")
    espresso.ok("set", "host", "attr", C0, "kvm_device_x", "<not checked: not an index")
    assert "site_motd <not xml at all" in espresso.ok("list", "attr", "site_motd")


def test_the_registry_covers_the_attributes_flightdeck_reads() -> None:
    assert {
        "cpu_mode", "kvm_cpu_pinning", "kvm_device_N", "HVM_Features", "bridge_hello_time",
        "bridge_stp_forward_delay", "tx_offload", "kvm_vlan_mode", "kvm_domain_type",
    } <= set(validation.understood())  # fmt: skip
    for module, name in validation.CHECKS.values():
        __import__(module, fromlist=["_"]).__dict__[name]  # each entry names a real function
