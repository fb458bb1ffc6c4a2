"""libvirt as it really is: every golden document and every kind the designer makes, on QEMU.

libvirt's test driver (which the golden tests also use) accepts documents its QEMU driver
refuses: a `<topology>` that is not the vCPU count ("CPU topology doesn't match maximum vcpu
count"), a CD-ROM on IDE with machine q35 ("IDE controllers are unsupported"), a topology
without threads (schema). Here each one is defined, schema-validated, on the QEMU driver (the
suite's libvirtd, or `qemu:///embed`) and undefined again; nothing is started.
"""

from __future__ import annotations

import itertools
import secrets
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from flightdeck.virt.designer import DiskSpec, KernelBoot, Labels, NicSpec, VMSpec, design

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_FILES = sorted(GOLDEN.rglob("*.xml"))


@pytest.fixture(scope="module")
def offers_kvm(qemu_conn: Any) -> bool:
    import libvirt

    try:
        qemu_conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except libvirt.libvirtError:
        return False
    return True


def qemu_accepts(conn: Any, xml: str) -> str | None:
    """None when the QEMU driver defines `xml` (schema-validated), else libvirt's complaint.

    The document is defined under its name plus a random token and undefined at once.
    """
    import libvirt

    root = ET.fromstring(xml)
    name_el = root.find("name")
    assert name_el is not None and name_el.text
    name_el.text = f"{name_el.text}-{secrets.token_hex(4)}"
    try:
        dom = conn.defineXMLFlags(
            ET.tostring(root, encoding="unicode"), libvirt.VIR_DOMAIN_DEFINE_VALIDATE
        )
    except libvirt.libvirtError as exc:
        return str(exc.get_error_message() or exc)
    dom.undefine()
    return None


def _check(conn: Any, xml: str, kvm: bool) -> None:
    if ET.fromstring(xml).get("type") == "kvm" and not kvm:
        pytest.skip("this libvirt has no KVM: a kvm domain cannot be defined here")
    refused = qemu_accepts(conn, xml)
    assert refused is None, f"libvirt's QEMU driver refuses it: {refused}"


def test_there_are_golden_files() -> None:
    assert len(GOLDEN_FILES) >= 20


@pytest.mark.parametrize(
    "path", GOLDEN_FILES, ids=[str(p.relative_to(GOLDEN)) for p in GOLDEN_FILES]
)
def test_every_golden_document_is_accepted(path: Path, qemu_conn: Any, offers_kvm: bool) -> None:
    _check(qemu_conn, path.read_text(encoding="utf-8"), offers_kvm)


# What the designer can make: every domain type, machine and way of booting, with each CPU
# setting, and the other attributes and devices spread over them.

CPU_MODES: dict[str, tuple[int, str | None]] = {
    "cpu-unset": (1, None),
    "host-model": (2, "host-model"),
    "host-passthrough": (1, "host-passthrough"),
    "guide-exact": (
        2,
        "exact: <model fallback='allow'>core2duo</model><vendor>Intel</vendor>"
        "<topology sockets='1' cores='2'/>",
    ),
    "custom-topology": (
        4,
        "custom:<model>qemu64</model><topology sockets='2' cores='1' threads='2'/>",
    ),
}
BOOTS = ("install", "installed", "cdrom", "kernel")
DISKS = (
    DiskSpec("/var/lib/flightdeck/disks/{name}.vda", "vda", "virtio"),
    DiskSpec("/var/lib/flightdeck/disks/{name}.sda", "sda", "sata", format="raw"),
    DiskSpec("/var/lib/flightdeck/disks/{name}.sdb", "sdb", "scsi"),
    DiskSpec("/dev/vg0/{name}", "vdb", "virtio", block=True),
)
COMBINATIONS = list(itertools.product(("kvm", "qemu"), ("pc", "q35"), BOOTS, CPU_MODES))


def _spec(dtype: str, machine: str, boot: str, cpu: str, i: int) -> VMSpec:
    name = f"fd-qemu-{i}"
    vcpus, cpu_mode = CPU_MODES[cpu]
    attrs = {"kvm_domain_type": dtype, "kvm_machine": machine}
    if cpu_mode is not None:
        attrs["cpu_mode"] = cpu_mode
    if i % 3 == 0:
        attrs["kvm_cpu_pinning"] = "pin_all"
    if i % 3 == 1:
        attrs["kvm_cpu_pinning"] = "<cputune><vcpupin vcpu='0' cpuset='0'/></cputune>"
    if i % 4 == 1:
        attrs["HVM_Features"] = "<acpi/><apic/>"
    if i % 4 == 2:
        attrs["kvm_device_0"] = "<watchdog model='i6300esb' action='reset'/>"
        attrs["kvm_memballoon"] = "virtio"
    if i % 5 == 3:
        attrs["vnc_listen"] = "0.0.0.0"
        attrs["kvm_vnc_keymap"] = "en-us"
    disk = DISKS[i % len(DISKS)]
    return VMSpec(
        name=name,
        vcpus=vcpus,
        mem_mb=512,
        nics=[
            NicSpec(f"76:77:6e:40:01:{i:02x}", "direct", "peth0.2"),
            NicSpec(f"76:77:6e:40:02:{i:02x}", "bridge", "eth1"),
        ][: 1 + i % 2],
        disks=[
            DiskSpec(disk.path.format(name=name), disk.device, disk.bus, disk.format, disk.block)
        ],
        cdrom="/export/isos/debian-12.iso" if boot == "cdrom" else None,
        kernel_boot=(
            KernelBoot("/boot/flightdeck/vmlinuz", "/boot/flightdeck/initrd.gz", "console=ttyS0")
            if boot == "kernel"
            else None
        ),
        attrs=attrs,
        installing=boot != "installed",
        labels=Labels("hosted-vm", "Hosted VM", "vm-container-0-0", "frontend-0-0-0", 2,
                      "frontend-0-0-0") if i % 2 else None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("i", "combination"),
    list(enumerate(COMBINATIONS)),
    ids=["-".join(c) for c in COMBINATIONS],
)
def test_every_kind_of_designed_domain_is_accepted(
    i: int, combination: tuple[str, str, str, str], qemu_conn: Any, offers_kvm: bool
) -> None:
    _check(qemu_conn, design(_spec(*combination, i)).to_xml(), offers_kvm)
