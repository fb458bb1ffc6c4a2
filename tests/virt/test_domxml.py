"""The domain XML model: golden files, each also defined and started on libvirt's test driver."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.virt import domxml
from flightdeck.virt.domxml import (
    Channel,
    Console,
    CPUConfig,
    Cputune,
    Devices,
    Disk,
    Domain,
    Graphics,
    GraphicsPort,
    Input,
    Interface,
    OSConfig,
    Serial,
    Video,
    graphics_ports,
    interface_macs,
)
from flightdeck.virt.fragments import parse_fragment

GOLDEN_DIR = Path(__file__).parent / "golden"

MiB = 1024  # KiB


def fragment(text: str) -> list[ET.Element]:
    return parse_fragment(text, attribute="test_attr", host="test-host")


def _disk(name: str) -> Disk:
    return Disk(
        type="file",
        device="disk",
        source=f"/var/lib/flightdeck/disks/{name}.qcow2",
        driver_type="qcow2",
        target_dev="vda",
        target_bus="virtio",
    )


def _pty_console() -> Devices:
    """Half of a device list most cases share: serial + console on a pty, VNC with a keymap."""
    return Devices(
        serials=[Serial(port=0)],
        consoles=[Console(target_type="serial", port=0)],
        graphics=[Graphics(keymap="en-us")],
    )


def _with(devices: Devices, **changes: Any) -> Devices:
    return dataclasses.replace(devices, **changes)


# ------------------------------------------------------------------------------------------- #
# Golden cases: name -> domain                                                                 #
# ------------------------------------------------------------------------------------------- #


def case_tcg_direct_kernel() -> Domain:
    """feasibility.md's working TCG domain: direct kernel boot, qcow2, serial to a file, VNC."""
    log = "/tmp/flightdeck/logs/fd-tcg-direct-kernel-serial.log"
    return Domain(
        type="qemu",
        name="fd-tcg-direct-kernel",
        memory_kib=256 * MiB,
        vcpus=1,
        os=OSConfig(
            arch="x86_64",
            machine="pc",
            kernel="/tmp/flightdeck/img/vmlinuz",
            initrd="/tmp/flightdeck/img/initrd.gz",
            cmdline="console=ttyS0 quiet panic=-1",
        ),
        features=fragment("<acpi/>"),
        on_poweroff="destroy",
        on_reboot="destroy",
        on_crash="destroy",
        devices=Devices(
            disks=[_disk("fd-tcg-direct-kernel")],
            interfaces=[
                Interface(kind="bridge", source="fdbr0", mac="52:54:00:c1:00:01", model="virtio")
            ],
            serials=[Serial(kind="file", path=log, port=0)],
            consoles=[Console(kind="file", path=log, target_type="serial", port=0)],
            channels=[Channel(name="org.qemu.guest_agent.0")],
            graphics=[Graphics(listen="127.0.0.1")],
            video=[Video(model="vga")],
            memballoon="none",
        ),
    )


def case_pxe_boot() -> Domain:
    """A hosted VM: network then disk, boot menu, macvtap NIC, disk from a storage pool."""
    return Domain(
        type="kvm",
        name="fd-pxe-boot",
        uuid="6f1c4c5e-3b1d-4c59-9e43-1d2a4f3b5c60",
        memory_kib=1024 * MiB,
        vcpus=2,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        features=fragment("<acpi/><apic/><pae/>"),
        devices=_with(
            _pty_console(),
            emulator="/usr/bin/qemu-system-x86_64",
            disks=[
                Disk(
                    type="volume",
                    device="disk",
                    pool="default-pool",
                    volume="fd-pxe-boot-0.qcow2",
                    driver_type="qcow2",
                    target_dev="vda",
                    target_bus="virtio",
                )
            ],
            interfaces=[
                Interface(
                    kind="direct",
                    source="peth0.2",
                    mode="bridge",
                    mac="72:00:c0:00:00:01",
                    model="virtio",
                )
            ],
        ),
    )


def case_cdrom_first() -> Domain:
    """`cdrom_path` set: boot cdrom, network, hd; a read-only IDE CD-ROM on hda after the disk."""
    return Domain(
        type="kvm",
        name="fd-cdrom-first",
        memory_kib=1024 * MiB,
        vcpus=1,
        os=OSConfig(boot=["cdrom", "network", "hd"], bootmenu=True),
        devices=_with(
            _pty_console(),
            disks=[
                Disk(
                    type="file",
                    device="disk",
                    source="/state/partition1/kvm/disks/fd-cdrom-first.vda",
                    driver_type="raw",
                    target_dev="vda",
                    target_bus="virtio",
                ),
                Disk(
                    type="file",
                    device="cdrom",
                    source="/export/isos/install & rescue <x86_64>.iso",
                    driver_type="raw",
                    target_dev="hda",
                    target_bus="ide",
                    readonly=True,
                ),
            ],
            interfaces=[
                Interface(kind="bridge", source="eth0", mac="72:00:c0:00:00:02", model="virtio")
            ],
        ),
    )


def case_cpu_host_passthrough() -> Domain:
    """The global default `cpu_mode=host-passthrough`, on a block (`phy:`) disk."""
    return Domain(
        type="kvm",
        name="fd-cpu-host-passthrough",
        memory_kib=512 * MiB,
        vcpus=2,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        cpu=CPUConfig(mode="host-passthrough"),
        devices=_with(
            _pty_console(),
            disks=[
                Disk(
                    type="block",
                    device="disk",
                    source="/dev/mapper/vg0-fd--cpu--host--passthrough",
                    driver_type="raw",
                    target_dev="vda",
                    target_bus="virtio",
                )
            ],
        ),
    )


def case_cpu_custom_exact() -> Domain:
    """`cpu_mode=exact:<model fallback='allow'>core2duo</model><feature .../>`."""
    return Domain(
        type="kvm",
        name="fd-cpu-custom-exact",
        memory_kib=512 * MiB,
        vcpus=1,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        cpu=CPUConfig(
            mode="custom",
            match="exact",
            check="partial",
            children=fragment(
                "<model fallback='allow'>core2duo</model><feature policy='require' name='vmx'/>"
            ),
        ),
        devices=_with(_pty_console(), disks=[_disk("fd-cpu-custom-exact")]),
    )


def case_cputune_pin_all() -> Domain:
    """`kvm_cpu_pinning=pin_all` for 4 vCPUs: vcpu i on host CPU i."""
    return Domain(
        type="kvm",
        name="fd-cputune-pin-all",
        memory_kib=2048 * MiB,
        vcpus=4,
        vcpu_placement="static",
        vcpu_cpuset="0-3",
        cputune=Cputune(vcpupin=[(i, str(i)) for i in range(4)]),
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        devices=_with(_pty_console(), disks=[_disk("fd-cputune-pin-all")]),
    )


def case_cputune_raw() -> Domain:
    """`kvm_cpu_pinning` holding its own `<cputune>` element, inserted verbatim."""
    return Domain(
        type="kvm",
        name="fd-cputune-raw",
        memory_kib=1024 * MiB,
        vcpus=2,
        cputune=fragment(
            """
            <cputune>
              <vcpupin vcpu="0" cpuset="2-3"/>
              <vcpupin vcpu="1" cpuset="2-3"/>
              <emulatorpin cpuset="0"/>
            </cputune>
            """
        ),
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        devices=_with(_pty_console(), disks=[_disk("fd-cputune-raw")]),
    )


def case_nics_direct_then_bridge() -> Domain:
    """A virtual frontend: macvtap on the VLAN parent first, then the public bridge (§8.2, §8.3)."""
    return Domain(
        type="kvm",
        name="fd-nics-direct-then-bridge",
        memory_kib=2048 * MiB,
        vcpus=2,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        devices=_with(
            _pty_console(),
            disks=[_disk("fd-nics-direct-then-bridge")],
            interfaces=[
                Interface(
                    kind="direct",
                    source="peth0.2",
                    mode="bridge",
                    mac="72:00:c0:00:00:10",
                    model="virtio",
                ),
                Interface(kind="bridge", source="eth1", mac="72:00:c0:00:00:11", model="virtio"),
            ],
        ),
    )


def case_extra_devices() -> Domain:
    """`kvm_device_0`, `kvm_device_1`: raw devices appended after everything else, in order."""
    hostdev = """
        <hostdev mode='subsystem' type='pci' managed='yes'>
          <source><address domain='0x0000' bus='0x06' slot='0x02' function='0x0'/></source>
        </hostdev>"""
    return Domain(
        type="kvm",
        name="fd-extra-devices",
        memory_kib=1024 * MiB,
        vcpus=1,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        devices=_with(
            _pty_console(),
            disks=[_disk("fd-extra-devices")],
            memballoon="virtio",
            extra=[
                *fragment(hostdev),
                *fragment("<watchdog model='i6300esb' action='reset'/>"),
            ],
        ),
    )


def case_features_fragment() -> Domain:
    """`HVM_Features` from an attribute, `virt-type` hvm, on a VM with a description."""
    return Domain(
        type="kvm",
        name="fd-features-fragment",
        description="hosted VM of cluster frontend-0-0-0",
        memory_kib=1024 * MiB,
        vcpus=1,
        os=OSConfig(boot=["network", "hd"], bootmenu=True),
        features=fragment("<acpi/><apic/><pae/><hap state='on'/>"),
        devices=_with(_pty_console(), disks=[_disk("fd-features-fragment")]),
    )


def case_per_device_boot() -> Domain:
    """Per-device boot order (no `<os><boot>`), a libvirt network, a named tap, a VNC password."""
    return Domain(
        type="qemu",
        name="fd-per-device-boot",
        memory_kib=128 * MiB,
        vcpus=1,
        os=OSConfig(arch="x86_64"),
        features=[],
        on_reboot="restart",
        on_crash="coredump-destroy",
        devices=Devices(
            disks=[
                Disk(
                    type="file",
                    device="disk",
                    source="/var/lib/flightdeck/disks/fd-per-device-boot.qcow2",
                    driver_type="qed",
                    target_dev="sda",
                    target_bus="sata",
                    boot_order=2,
                ),
                Disk(type="file", device="cdrom", target_dev="hdc", target_bus="ide"),
            ],
            interfaces=[
                Interface(
                    kind="network",
                    source="default",
                    mac="52:54:00:AB:CD:EF",
                    model="virtio",
                    target_dev="fdtap0",
                    boot_order=1,
                )
            ],
            serials=[Serial()],
            consoles=[Console()],
            graphics=[Graphics(port=5907, autoport=False, listen="0.0.0.0", passwd="s3cr'et\"")],
            video=[Video(model="cirrus")],
        ),
    )


def case_title_metadata_tablet() -> Domain:
    """What virt-manager shows: a title, a description, our metadata; a USB tablet for VNC."""
    meta = domxml.metadata_element(
        "flightdeck",
        "urn:flightdeck:domain:1",
        "vm",
        [
            ("appliance", [("membership", "Hosted VM")], "hosted-vm"),
            ("cluster", [("vlan", 2)], "frontend-0-0-0"),
        ],
    )
    return Domain(
        type="qemu",
        name="fd-title-metadata-tablet",
        title="Hosted VM of frontend-0-0-0 (VLAN 2)",
        description="Flightdeck VM hosted-vm-0-0-0\ncluster: frontend-0-0-0, VLAN 2",
        metadata=[meta],
        memory_kib=256 * MiB,
        vcpus=1,
        os=OSConfig(arch="x86_64", machine="q35", boot=["hd"]),
        devices=_with(
            _pty_console(),
            disks=[_disk("fd-title-metadata-tablet")],
            inputs=[Input(type="tablet", bus="usb"), Input(type="keyboard", bus="virtio")],
        ),
    )


CASES: dict[str, Callable[[], Domain]] = {
    "tcg-direct-kernel": case_tcg_direct_kernel,
    "pxe-boot": case_pxe_boot,
    "cdrom-first": case_cdrom_first,
    "cpu-host-passthrough": case_cpu_host_passthrough,
    "cpu-custom-exact": case_cpu_custom_exact,
    "cputune-pin-all": case_cputune_pin_all,
    "cputune-raw": case_cputune_raw,
    "nics-direct-then-bridge": case_nics_direct_then_bridge,
    "extra-devices": case_extra_devices,
    "features-fragment": case_features_fragment,
    "per-device-boot": case_per_device_boot,
    "title-metadata-tablet": case_title_metadata_tablet,
}


def _define_start_destroy_undefine(conn: Any, xml: str) -> str:
    """libvirt's check of a document: define (schema-validated), start, stop, undefine.

    Returns the running domain's XML as libvirt reports it.
    """
    import libvirt

    dom = conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
    try:
        dom.create()
        try:
            assert dom.isActive()
            live: str = dom.XMLDesc(0)
        finally:
            dom.destroy()
        assert not dom.isActive()
    finally:
        dom.undefine()
    with pytest.raises(libvirt.libvirtError):
        conn.lookupByName(ET.fromstring(xml).findtext("name"))
    return live


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, golden: Callable[[str, str], None], test_conn: Any) -> None:
    domain = CASES[name]()
    xml = domain.to_xml()
    golden(name, xml)

    live = _define_start_destroy_undefine(test_conn, xml)
    assert ET.fromstring(live).findtext("name") == domain.name
    assert interface_macs(live) == [
        i.mac.lower() for i in domain.devices.interfaces if i.mac is not None
    ]


def test_every_golden_file_has_a_case() -> None:
    on_disk = {path.stem for path in GOLDEN_DIR.glob("*.xml")}
    assert on_disk <= set(CASES), f"stale golden files: {sorted(on_disk - set(CASES))}"


def test_golden_names_are_unique() -> None:
    """test:///default is shared by the whole process: cases must not reuse a domain name."""
    names = [build().name for build in CASES.values()]
    assert len(names) == len(set(names))


def _instances(value: object) -> Iterator[object]:
    """Every model object reachable from `value`."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield value
        for f in dataclasses.fields(value):
            yield from _instances(getattr(value, f.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _instances(item)


def test_every_model_field_is_exercised_by_a_golden() -> None:
    """virt-manager's checkprops: each field of each class takes a non-default value somewhere."""
    classes = [
        Domain, OSConfig, CPUConfig, Cputune, Disk, Interface,
        Serial, Console, Channel, Input, Graphics, Video, Devices,
    ]  # fmt: skip
    seen: dict[type, set[str]] = {cls: set() for cls in classes}
    for build in CASES.values():
        for obj in _instances(build()):
            for f in dataclasses.fields(obj):  # type: ignore[arg-type]
                value = getattr(obj, f.name)
                default = f.default if f.default is not dataclasses.MISSING else object()
                if value != default and value != ():
                    seen[type(obj)].add(f.name)
    missing = {
        cls.__name__: sorted({f.name for f in dataclasses.fields(cls)} - seen[cls])
        for cls in classes
    }
    # Fixed by the schema: the only OS type and the only graphics type we write.
    missing["OSConfig"].remove("type")
    missing["Graphics"].remove("type")
    assert {k: v for k, v in missing.items() if v} == {}


# ------------------------------------------------------------------------------------------- #
# Rendering details                                                                            #
# ------------------------------------------------------------------------------------------- #


def test_output_is_deterministic_and_fragments_are_not_mutated() -> None:
    features = fragment("<acpi/><apic/>")
    domain = dataclasses.replace(case_tcg_direct_kernel(), features=features)
    first = domain.to_xml()
    assert [(e.tag, e.text, e.tail) for e in features] == [
        ("acpi", None, None),
        ("apic", None, None),
    ]
    assert domain.to_xml() == first
    assert not first.startswith("<?xml")
    assert first.endswith("</domain>\n")
    assert "\n  <name>fd-tcg-direct-kernel</name>\n" in first


def test_special_characters_are_escaped() -> None:
    domain = dataclasses.replace(
        case_tcg_direct_kernel(),
        os=OSConfig(kernel="/k", cmdline="ks=http://fe/ks.cgi?a=1&b=<2> \"q\" 'q'"),
    )
    xml = domain.to_xml()
    assert "a=1&amp;b=&lt;2&gt;" in xml
    assert ET.fromstring(xml).findtext("os/cmdline") == "ks=http://fe/ks.cgi?a=1&b=<2> \"q\" 'q'"


def test_memory_is_written_in_kib() -> None:
    memory = ET.fromstring(case_pxe_boot().to_xml()).find("memory")
    assert memory is not None
    assert (memory.get("unit"), memory.text) == ("KiB", "1048576")


def test_direct_nic_order_is_kept() -> None:
    root = ET.fromstring(case_nics_direct_then_bridge().to_xml())
    assert [i.get("type") for i in root.iterfind("devices/interface")] == ["direct", "bridge"]
    sources = [i.find("source") for i in root.iterfind("devices/interface")]
    assert [s.attrib for s in sources if s is not None] == [
        {"dev": "peth0.2", "mode": "bridge"},
        {"bridge": "eth1"},
    ]


def test_extra_devices_come_last_in_order() -> None:
    root = ET.fromstring(case_extra_devices().to_xml())
    devices = root.find("devices")
    assert devices is not None
    assert [child.tag for child in devices][-3:] == ["memballoon", "hostdev", "watchdog"]


_DISK: dict[str, Any] = {"device": "disk", "target_dev": "vda", "target_bus": "virtio"}


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (OSConfig, {"boot": ["floppy"]}, "boot device"),
        (OSConfig, {"initrd": "/i"}, "need a kernel"),
        (CPUConfig, {"mode": "exact"}, "cpu mode"),
        (Disk, {**_DISK, "type": "phy", "source": "/dev/x"}, "disk type"),
        (Disk, {**_DISK, "type": "file"}, "needs a source"),
        (Disk, {**_DISK, "type": "volume", "source": "/x"}, "pool and volume"),
        (Disk, {**_DISK, "type": "block", "source": "/dev/x", "pool": "p"}, "not pool"),
        (Disk, {**_DISK, "type": "file", "source": "/x", "target_bus": "xen"}, "disk bus"),
        (Disk, {**_DISK, "type": "file", "source": "/x", "boot_order": 0}, "boot order"),
        (Interface, {"kind": "bridge", "source": "eth0", "mode": "bridge"}, "only a direct"),
        (Interface, {"kind": "bridge", "source": "eth0", "mac": "72:00:c0:00:00"}, "MAC"),
        (Interface, {"kind": "user", "source": "eth0"}, "interface kind"),
        (Serial, {"kind": "file"}, "needs a path"),
        (Console, {"path": "/tmp/x"}, "no path"),
        (Graphics, {"port": -2}, "graphics port"),
        (Video, {"model": "matrox"}, "video model"),
        (Devices, {"memballoon": "xen"}, "memballoon"),
        (Input, {"type": "joystick"}, "input type"),
        (Input, {"type": "tablet", "bus": "xen"}, "input bus"),
        (Cputune, {"vcpupin": [(-1, "0")]}, "vcpupin"),
    ],
)
def test_misuse_is_a_value_error(cls: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memory_kib": 0}, "memory"),
        ({"vcpus": True}, "vcpu count"),
        ({"uuid": "nope"}, "uuid"),
        ({"type": "xen"}, "domain type"),
        ({"on_reboot": "coredump-destroy"}, "on_reboot"),
        ({"title": "two\nlines"}, "one line"),
    ],
)
def test_domain_misuse_is_a_value_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(case_pxe_boot(), **changes)


def test_metadata_names_must_be_plain_xml_names() -> None:
    with pytest.raises(ValueError, match="XML name"):
        domxml.metadata_element("fd", "urn:x", "vm", [("a:b", [], "x")])
    element = domxml.metadata_element("fd", "urn:x", "vm", [("cluster", [("vlan", 2)], "fe")])
    parsed = ET.fromstring(ET.tostring(element, encoding="unicode"))
    assert parsed.tag == "{urn:x}vm"
    assert parsed.find("{urn:x}cluster").get("vlan") == "2"  # type: ignore[union-attr]


def test_sequences_are_frozen_into_tuples() -> None:
    boot: list[Any] = ["network"]
    os = OSConfig(boot=boot)
    boot.append("hd")
    assert os.boot == ("network",)
    assert OSConfig(boot=["hd"]) == OSConfig(boot=("hd",))


def test_character_xml_cannot_carry_is_refused() -> None:
    domain = dataclasses.replace(case_pxe_boot(), name="bad\x01name")
    with pytest.raises(ValueError, match="cannot appear in XML"):
        domain.to_xml()


# ------------------------------------------------------------------------------------------- #
# Reading live XML                                                                             #
# ------------------------------------------------------------------------------------------- #

LIVE = """<domain type='kvm' id='7'>
  <name>compute-0-0-0</name>
  <devices>
    <interface type='direct'>
      <mac address='72:00:C0:00:00:10'/>
      <source dev='peth0.2' mode='bridge'/>
      <target dev='macvtap0'/>
    </interface>
    <interface type='bridge'>
      <mac address='72:00:c0:00:00:11'/>
      <source bridge='eth1'/>
    </interface>
    <interface type='user'/>
    <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <graphics type='spice' port='-1' autoport='yes'/>
    <graphics type='spice' tlsPort='5902'/>
    <graphics type='vnc' port='5903'/>
  </devices>
</domain>"""


def test_graphics_ports_lists_allocated_ports_only() -> None:
    ports = graphics_ports(LIVE)
    assert ports == [("vnc", 5901), ("vnc", 5903)]
    assert ports[0] == GraphicsPort(type="vnc", port=5901)


def test_interface_macs_in_document_order_lowercased() -> None:
    assert interface_macs(LIVE) == ["72:00:c0:00:00:10", "72:00:c0:00:00:11"]


def test_helpers_on_an_inactive_definition() -> None:
    xml = case_pxe_boot().to_xml()
    assert graphics_ports(xml) == []
    assert interface_macs(xml) == ["72:00:c0:00:00:01"]


def test_helpers_on_test_driver_xml(test_conn: Any) -> None:
    domain = dataclasses.replace(case_per_device_boot(), name="fd-helpers-live")
    live = _define_start_destroy_undefine(test_conn, domain.to_xml())
    assert interface_macs(live) == ["52:54:00:ab:cd:ef"]
    assert graphics_ports(live) == [("vnc", 5907)]


def test_malformed_live_xml_raises_parse_error() -> None:
    with pytest.raises(ET.ParseError):
        interface_macs("<domain>")


# ------------------------------------------------------------------------------------------- #
# Properties                                                                                   #
# ------------------------------------------------------------------------------------------- #

# Anything XML 1.0 can carry (no C0 controls but tab/LF/CR, no surrogates, no U+FFFE/U+FFFF).
xml_text = st.text(
    st.characters(
        exclude_categories=["Cs"],
        exclude_characters=[chr(c) for c in range(0x20) if c not in (9, 10, 13)]
        + ["\ufffe", "\uffff"],
    )
)


def _mac(raw: bytes) -> str:
    """Mixed case on purpose (libvirt accepts both; `interface_macs` lower-cases)."""
    return ":".join(f"{b:02X}" if i % 2 else f"{b:02x}" for i, b in enumerate(raw))


macs = st.lists(st.binary(min_size=6, max_size=6).map(_mac), max_size=4)


def _normalised(text: str) -> str:
    """What an XML parser returns for `text` written as element content (line ends become LF)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@given(name=xml_text, description=xml_text, bridge=xml_text, mac_list=macs)
def test_to_xml_is_always_well_formed(
    name: str, description: str, bridge: str, mac_list: list[str]
) -> None:
    domain = Domain(
        type="qemu",
        name=name,
        description=description,
        memory_kib=1,
        vcpus=1,
        os=OSConfig(),
        devices=Devices(
            interfaces=[Interface(kind="bridge", source=bridge, mac=mac) for mac in mac_list]
        ),
    )
    xml = domain.to_xml()
    root = ET.fromstring(xml)
    assert (root.findtext("name") or "") == _normalised(name)
    assert (root.findtext("description") or "") == _normalised(description)
    bridges = [s.get("bridge") for s in root.iterfind("devices/interface/source")]
    assert bridges == [bridge] * len(mac_list)
    assert interface_macs(xml) == [mac.lower() for mac in mac_list]


@given(
    before=xml_text,
    bad=st.sampled_from(["\x00", "\x08", "\x1f", "\ufffe", "\ud800"]),
    after=xml_text,
)
def test_characters_xml_cannot_carry_never_reach_the_output(
    before: str, bad: str, after: str
) -> None:
    domain = Domain(
        type="qemu",
        name=before + bad + after,
        memory_kib=1,
        vcpus=1,
        os=OSConfig(),
        devices=Devices(),
    )
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        domain.to_xml()


def test_module_does_not_import_libvirt() -> None:
    import flightdeck.virt.fragments as fragments

    for module in (domxml, fragments):
        source = Path(module.__file__ or "").read_text(encoding="utf-8")
        assert not re.search(r"^\s*(import|from)\s+libvirt\b", source, re.M)
