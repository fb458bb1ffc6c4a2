"""The designer's policy, one golden domain per attribute and boot mode.

Every golden is also defined, started, destroyed and undefined on libvirt's test driver, so
each is XML libvirt accepts. Regenerate on purpose with `pytest --regenerate-golden`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import UserError
from flightdeck.virt.designer import DiskSpec, KernelBoot, Labels, NicSpec, VMSpec, design

GOLDEN = Path(__file__).parent / "golden" / "designer"

DISK = DiskSpec(path="/var/lib/flightdeck/disks/{name}.vda", device="vda", bus="virtio")
GUIDE_HOSTDEV = (
    "<hostdev mode=subsystem type=pci managed=yes>\\\n <source>\\\n "
    "<address bus=0x06 slot=0x02 function=0x0/>\\\n </source>\\\n </hostdev>"
)
GUIDE_PINNING = (
    '<cputune>\\\n <vcpupin vcpu="0" cpuset="4"/>\\\n <vcpupin vcpu="1" cpuset="5"/>\\\n '
    '<vcpupin vcpu="2" cpuset="6"/>\\\n <vcpupin vcpu="3" cpuset="7"/>\\\n </cputune>'
)


def spec(name: str, **kw: Any) -> VMSpec:
    base: dict[str, Any] = {
        "name": name,
        "vcpus": 1,
        "mem_mb": 1024,
        "nics": [NicSpec("76:77:6e:40:00:04", "bridge", "eth0")],
        "disks": [DiskSpec(DISK.path.format(name=name), "vda", "virtio")],
    }
    base.update(kw)
    return VMSpec(**base)


CASES: dict[str, Callable[[], VMSpec]] = {
    "pxe-kvm-default": lambda: spec("fd-des-pxe"),
    "tcg-no-cpu": lambda: spec("fd-des-tcg", attrs={"kvm_domain_type": "qemu"}),
    "frontend-install": lambda: spec(
        "fd-des-fe",
        nics=[
            NicSpec("76:77:6e:40:00:01", "bridge", "eth1"),
            NicSpec("76:77:6e:40:00:00", "direct", "peth0.2"),
        ],
        kernel_boot=KernelBoot(
            "/boot/flightdeck/vmlinuz",
            "/boot/flightdeck/initrd.gz",
            "console=ttyS0 ksdevice=76:77:6e:40:00:01 ip=137.110.119.118",
        ),
        guest_agent=True,
        attrs={"kvm_domain_type": "qemu"},
    ),
    "cdrom-first": lambda: spec("fd-des-cdrom", cdrom="/isos/debian-12.iso"),
    "cpu-host-model": lambda: spec("fd-des-hm", attrs={"cpu_mode": "host-model"}),
    # The guide's value, word for word: its <topology> has no threads (1 is filled in).
    "cpu-exact-guide": lambda: spec(
        "fd-des-exact",
        vcpus=2,
        attrs={
            "cpu_mode": "exact: <model fallback='allow'>core2duo</model><vendor>Intel</vendor>"
            "<topology sockets='1' cores='2'/>"
        },
    ),
    "pin-all": lambda: spec("fd-des-pinall", vcpus=4, attrs={"kvm_cpu_pinning": "pin_all"}),
    "pin-guide": lambda: spec("fd-des-pinraw", vcpus=4, attrs={"kvm_cpu_pinning": GUIDE_PINNING}),
    "devices-guide": lambda: spec(
        "fd-des-dev",
        attrs={
            "kvm_device_0": GUIDE_HOSTDEV,
            "kvm_device_1": "<watchdog model='i6300esb' action='reset'/>",
            "kvm_device_3": (
                "<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>"
            ),
        },
    ),
    "hvm-features": lambda: spec("fd-des-feat", attrs={"HVM_Features": "<acpi/><apic/>"}),
    "q35-cdrom-sata": lambda: spec(
        "fd-des-q35", cdrom="/isos/debian-12.iso", attrs={"kvm_machine": "q35"}
    ),
    "installed-disk-only": lambda: spec("fd-des-os", installing=False),
    "auto-no-kvm": lambda: spec("fd-des-auto", offered_type="qemu"),
    "labelled-hosted-vm": lambda: spec(
        "fd-des-hosted",
        nics=[NicSpec("76:77:6e:40:00:06", "direct", "peth0.2")],
        labels=Labels(
            "hosted-vm", "Hosted VM", "vm-container-0-0", "frontend-0-0-0", 2, "frontend-0-0-0"
        ),
    ),
    "labelled-physical-compute": lambda: spec(
        "fd-des-compute",
        installing=False,
        labels=Labels("compute", "Compute", "vm-container-0-1", "espresso"),
    ),
    "phy-disk-vnc": lambda: spec(
        "fd-des-phy",
        disks=[DiskSpec("/dev/vg0/fd-des-phy", "vda", "virtio", block=True)],
        attrs={"vnc_listen": "0.0.0.0", "kvm_vnc_keymap": "en-us"},
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, regenerate_golden: bool, test_conn: Any) -> None:
    import libvirt

    xml = design(CASES[name]()).to_xml()
    path = GOLDEN / f"{name}.xml"
    if regenerate_golden or not path.exists():
        path.write_text(xml, encoding="utf-8")
        if not regenerate_golden:
            pytest.fail(f"{path} was missing and has been written: review it and rerun")
    assert xml == path.read_text(encoding="utf-8"), f"differs from {path}"
    dom = test_conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    try:
        dom.create()
        assert dom.isActive()
        dom.destroy()
    finally:
        dom.undefine()


def test_every_designer_golden_has_a_case() -> None:
    assert {p.stem for p in GOLDEN.glob("*.xml")} <= set(CASES)


def test_boot_orders() -> None:


    pxe = ET.fromstring(design(CASES["pxe-kvm-default"]()).to_xml())
    assert [b.get("dev") for b in pxe.iter("boot")] == ["network", "hd"]
    installed = ET.fromstring(design(CASES["installed-disk-only"]()).to_xml())
    assert [b.get("dev") for b in installed.iter("boot")] == ["hd"], "no PXE once installed"
    cd = ET.fromstring(design(CASES["cdrom-first"]()).to_xml())
    assert [b.get("dev") for b in cd.iter("boot")] == ["cdrom", "network", "hd"]
    cdrom = next(d for d in cd.iter("disk") if d.get("device") == "cdrom")
    assert cdrom.find("readonly") is not None
    assert cdrom.find("target").get("dev") == "hda"  # type: ignore[union-attr]
    fe = ET.fromstring(design(CASES["frontend-install"]()).to_xml())
    assert fe.findtext("on_reboot") == "destroy"
    assert fe.find("os/kernel") is not None and not list(fe.iter("boot"))
    kinds = [i.get("type") for i in fe.iter("interface")]
    assert kinds == ["direct", "bridge"], "macvtap NICs come first, as the original"


def test_devices_stop_at_first_missing_index() -> None:
    xml = design(CASES["devices-guide"]()).to_xml()
    assert "<hostdev" in xml and "<watchdog" in xml
    assert "<rng" not in xml, "kvm_device_3 is past the missing kvm_device_2"


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("kvm_device_0", "<hostdev mode='subsystem'><source>"),
        ("HVM_Features", "<acpi/> apic"),
        ("cpu_mode", "exact:<model>core2duo</mod>"),
        ("kvm_cpu_pinning", "<vcpupin vcpu='0' cpuset='1'/>"),
        ("kvm_cpu_pinning", "<cputune><vcpupin vcpu='0' cpuset='1'/>"),
    ],
)
def test_malformed_attribute_names_attribute_and_host(attribute: str, value: str) -> None:
    with pytest.raises(UserError) as info:
        design(spec("fd-des-bad", attrs={attribute: value}))
    assert attribute in info.value.message
    assert "fd-des-bad" in info.value.message


@pytest.mark.parametrize(
    ("attribute", "value"),
    [("cpu_mode", "turbo"), ("kvm_domain_type", "xen"), ("kvm_memballoon", "balloon")],
)
def test_unknown_modes_are_refused(attribute: str, value: str) -> None:
    with pytest.raises(UserError, match=attribute):
        design(spec("fd-des-bad2", attrs={attribute: value}))


def test_a_topology_that_disagrees_with_the_vcpus_is_refused_with_the_fix() -> None:
    guide = CASES["cpu-exact-guide"]().attrs
    with pytest.raises(UserError) as info:
        design(spec("fd-des-topo", vcpus=1, attrs=guide))
    assert info.value.message.startswith(
        "attribute cpu_mode of host fd-des-topo has a <topology> of 2 vCPU(s) (1 sockets x "
        "2 cores x 1 threads) but fd-des-topo has 1: give it 2 with 'rocks set host vm "
        "fd-des-topo cpus=2'"
    )
    with pytest.raises(UserError, match="topology cores='two'"):
        design(spec("fd-des-topo", attrs={"cpu_mode": "host-model:<topology cores='two'/>"}))


def test_the_domain_type_is_the_attribute_else_what_the_container_offers() -> None:
    def kind(**kw: Any) -> str | None:
        return ET.fromstring(design(spec("fd-des-type", **kw)).to_xml()).get("type")

    assert kind() == "kvm"
    assert kind(offered_type="qemu") == "qemu"
    assert kind(offered_type="qemu", attrs={"kvm_domain_type": "kvm"}) == "kvm"
    assert kind(offered_type="kvm", attrs={"kvm_domain_type": "qemu"}) == "qemu"
    assert kind(offered_type="qemu", attrs={"kvm_domain_type": "auto"}) == "qemu"


def test_q35_puts_the_cdrom_on_sata_and_refuses_an_ide_disk() -> None:
    xml = ET.fromstring(design(CASES["q35-cdrom-sata"]()).to_xml())
    cdrom = next(d for d in xml.iter("disk") if d.get("device") == "cdrom")
    assert cdrom.find("target").attrib == {"dev": "sda", "bus": "sata"}  # type: ignore[union-attr]
    ide = DiskSpec("/d/fd-des-ide.img", "hda", "ide")
    with pytest.raises(UserError, match="IDE bus, which machine type q35 does not have"):
        design(spec("fd-des-ide", disks=[ide], attrs={"kvm_machine": "q35"}))


def test_every_domain_has_a_usb_tablet_and_the_labels_say_whose_it_is() -> None:
    xml = ET.fromstring(design(CASES["labelled-hosted-vm"]()).to_xml())
    assert [i.attrib for i in xml.iter("input")] == [{"type": "tablet", "bus": "usb"}]
    assert xml.findtext("title") == "Hosted VM of frontend-0-0-0 (VLAN 2)"
    assert "owner's frontend: frontend-0-0-0" in (xml.findtext("description") or "")
    ns = {"fd": "urn:flightdeck:domain:1"}
    assert xml.findtext("metadata/fd:vm/fd:cluster", namespaces=ns) == "frontend-0-0-0"
