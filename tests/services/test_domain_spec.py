"""From the database to the domain: NICs that attach somewhere, the boot order by boot action,
what virt-manager shows, and the domain type the container's libvirt offers."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Any

import libvirt
import pytest

C0 = "vm-container-0-0"
NS = {"fd": "urn:flightdeck:domain:1"}


def config(rocks: Any, vm: str) -> ET.Element:
    return ET.fromstring(rocks.ok("report", "host", "vm", "config", vm))


def test_a_hosted_vm_without_a_vlan_gets_a_working_nic_and_a_hint(espresso: Any) -> None:
    r = espresso("add", "host", "vm", C0, "membership=Hosted VM")
    assert r.code == 0 and r.out == f"added VM hosted-vm-0-0-0 on physical node {C0}\n"
    assert r.err.startswith("warning - a Hosted VM belongs on a virtual cluster's VLAN")
    assert "vlan=<id>" in r.err
    (nic,) = config(espresso, "hosted-vm-0-0-0").iter("interface")
    assert nic.get("type") == "bridge"
    assert nic.find("source").get("bridge") == "eth0"  # type: ignore[union-attr]
    # With a VLAN, as rocks add cluster does, no hint.
    r = espresso("add", "host", "vm", C0, "membership=Hosted VM", "vlan=7")
    assert r.code == 0 and r.err == ""


def test_every_nic_of_a_vm_attaches_somewhere(espresso: Any) -> None:
    espresso.ok("add", "host", "vm", C0, "membership=Compute", "num-macs=2")
    nics = list(config(espresso, "compute-0-0-0").iter("interface"))
    assert [n.find("source").get("bridge") for n in nics] == ["eth0", "eth0"]  # type: ignore[union-attr]


def test_an_installed_virtual_frontend_boots_its_disk_only(espresso: Any) -> None:
    """No PXE attempts on its NICs first: nobody answers a virtual frontend's PXE."""
    espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=1", "vlan=2")
    espresso.ok("set", "host", "boot", "frontend-0-0-0", "action=os")
    installed = config(espresso, "frontend-0-0-0")
    assert [b.get("dev") for b in installed.iter("boot")] == ["hd"]


def test_a_node_a_frontend_serves_boots_pxe_first_even_once_installed(espresso: Any) -> None:
    """Its frontend decides (install or localboot), so `rocks set host boot action=install`
    and a reboot from inside reinstalls it, as in Rocks; for a cluster's compute that frontend
    is the virtual one, whose boot actions the physical side does not know."""
    espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=1", "vlan=2")
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    for vm in ("compute-0-0-0", "hosted-vm-0-0-0"):
        espresso.ok("set", "host", "boot", vm, "action=os")
        assert [b.get("dev") for b in config(espresso, vm).iter("boot")] == ["network", "hd"]


def test_what_virt_manager_shows(espresso: Any) -> None:
    espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=1", "vlan=2")
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    hosted = config(espresso, "hosted-vm-0-0-0")
    assert hosted.findtext("title") == "Hosted VM of frontend-0-0-0 (VLAN 2)"
    assert hosted.findtext("metadata/fd:vm/fd:owner", namespaces=NS) == "frontend-0-0-0"
    assert hosted.find("metadata/fd:vm/fd:cluster", NS).get("vlan") == "2"  # type: ignore[union-attr]
    espresso.ok("set", "host", "boot", "frontend-0-0-0", "action=os")  # installed
    frontend = config(espresso, "frontend-0-0-0")
    assert frontend.findtext("title") == "Frontend, VLAN 2"
    assert "owner's frontend: frontend-0-0-0" in (frontend.findtext("description") or "")
    compute = config(espresso, "compute-0-0-0")
    assert compute.findtext("title") == "Compute of frontend-0-0"
    assert compute.findtext("metadata/fd:vm/fd:owner", namespaces=NS) is None
    assert [(i.get("type"), i.get("bus")) for i in compute.iter("input")] == [("tablet", "usb")]


def test_the_test_driver_offers_no_type_so_kvm_stays(espresso: Any) -> None:
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    r = espresso("report", "host", "vm", "config", "compute-0-0-0")
    assert r.code == 0 and r.err == ""
    assert ET.fromstring(r.out).get("type") == "kvm"


def test_the_domain_type_is_what_the_containers_libvirt_offers(espresso: Any) -> None:
    uri = os.environ.get("FLIGHTDECK_TEST_LIBVIRT")
    if not uri:
        pytest.skip("FLIGHTDECK_TEST_LIBVIRT is not set (scripts/test.sh starts libvirtd)")
    espresso.ok("set", "host", "attr", C0, "libvirt_uri", uri)
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    conn = libvirt.open(uri)
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
        offered = "kvm"
    except libvirt.libvirtError:
        offered = "qemu"
    finally:
        conn.close()
    r = espresso("report", "host", "vm", "config", "compute-0-0-0")
    assert r.code == 0
    assert ET.fromstring(r.out).get("type") == offered
    if offered == "qemu":
        assert r.err.startswith(f"warning - container {C0} has no KVM")
    else:
        assert r.err == ""
    # The attribute wins, and says what the site knows: no warning.
    espresso.ok("set", "attr", "kvm_domain_type", "qemu")
    r = espresso("report", "host", "vm", "config", "compute-0-0-0")
    assert (ET.fromstring(r.out).get("type"), r.err) == ("qemu", "")
