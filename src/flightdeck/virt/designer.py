"""The policy of Flightdeck's domain XML: what a VM's libvirt definition contains, and why.

The XML model (`domxml`) says how elements are written; this module decides which ones. Its input
is a plain `VMSpec` that the services build from the database (names, sizes, resolved NIC
sources, resolved attributes), so it can be tested without a database and without libvirt.

Rules, after the original (reference §9.1) with its bugs fixed:

- Boot: `<boot dev='cdrom'/>` first when a CD-ROM is attached, then network, then disk, with the
  boot menu on; the PXE server on that network decides between installing and `localboot`. A
  virtual frontend due to install (`install vm frontend` and boot action `install`) boots the
  boot action's kernel and initrd directly, with its public address on the command line, and
  `on_reboot=destroy` so the installer's final reboot stops it.
- NICs: macvtap (`type='direct'`) ones first, then bridged ones, each virtio with its MAC.
- CPU: `cpu_mode` as `host-model`, `host-passthrough` or the colon form `exact:<model>...` (the
  original's `<cpu mode='exact'>` is not valid libvirt; it becomes mode custom, match exact).
  Unset: host-passthrough on `kvm`, nothing under TCG (`qemu`), where it cannot work.
- `kvm_cpu_pinning`: `pin_all` pins vCPU i to host CPU i; anything else must be one `<cputune>`.
- `HVM_Features` replaces the default `<acpi/><apic/><pae/>`; `kvm_device_0`, `_1`, ... are
  appended to `<devices>` in order, up to the first missing index.
- Guest agent: virtual frontends get the QEMU guest agent's virtio channel; their image starts
  the agent only once the frontend is ready, so its answer is the readiness signal.
- Console: a serial port on a pty (reachable through libvirt's console stream, also remotely);
  VNC with autoport listening on `vnc_listen` (default 127.0.0.1, never all interfaces unless
  an admin says so).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from xml.etree.ElementTree import Element

from flightdeck.errors import UserError
from flightdeck.virt import domxml as dx
from flightdeck.virt.fragments import expect_root, parse_fragment

DEFAULT_FEATURES = "<acpi/><apic/><pae/>"
DEFAULT_VNC_LISTEN = "127.0.0.1"
#: The machine type: `pc` keeps an IDE bus for the CD-ROM (q35 has none).
DEFAULT_MACHINE = "pc"
MAX_DEVICES = 256
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"

# Seed commands continue long attribute values over lines with "\" inside single quotes, which
# the shell keeps literally; and nested single quotes leave attribute values unquoted. Both are
# repaired before parsing, so the guide's commands work as written.
_CONTINUATION = re.compile(r"\\\s+")
_BARE_ATTR = re.compile(r"(\s[A-Za-z_:][-\w:.]*)=([^\s\"'<>/=]+)")


@dataclass(frozen=True)
class NicSpec:
    mac: str
    kind: Literal["direct", "bridge"]
    #: The container device: `peth0.2` for macvtap, the bridge `eth0` for bridged NICs.
    source: str


@dataclass(frozen=True)
class DiskSpec:
    """A disk as the container sees it: a file path (qcow2/raw) or a block device (phy)."""

    path: str
    device: str
    bus: str
    format: Literal["qcow2", "raw", "qed"] = "qcow2"
    block: bool = False


@dataclass(frozen=True)
class KernelBoot:
    """Direct kernel boot (a virtual frontend's install): paths on the container."""

    kernel: str
    initrd: str | None
    cmdline: str


@dataclass(frozen=True)
class VMSpec:
    name: str
    vcpus: int
    mem_mb: int
    nics: Sequence[NicSpec] = ()
    disks: Sequence[DiskSpec] = ()
    cdrom: str | None = None
    kernel_boot: KernelBoot | None = None
    #: A virtio channel for the QEMU guest agent (virtual frontends: its answer means "ready").
    guest_agent: bool = False
    #: The VM's resolved attributes (host > appliance > global).
    attrs: Mapping[str, str] = field(default_factory=dict)


def _fragment(spec: VMSpec, attribute: str) -> list[Element]:
    text = _CONTINUATION.sub(" ", spec.attrs[attribute])
    try:
        return parse_fragment(text, attribute=attribute, host=spec.name)
    except UserError:
        repaired = _BARE_ATTR.sub(r'\1="\2"', text)
        if repaired == text:
            raise
        return parse_fragment(repaired, attribute=attribute, host=spec.name)


def domain_type(spec: VMSpec) -> Literal["kvm", "qemu"]:
    value = spec.attrs.get("kvm_domain_type", "kvm").strip().lower()
    if value not in ("kvm", "qemu"):
        raise UserError(
            f"attribute kvm_domain_type of host {spec.name} is {value!r}: use kvm, or qemu on "
            "hosts without hardware virtualisation"
        )
    return "kvm" if value == "kvm" else "qemu"


_MODES = {"host-model", "host-passthrough", "custom", "maximum"}
_MATCHES = {"exact", "minimum", "strict"}


def cpu(spec: VMSpec, dtype: str) -> dx.CPUConfig | None:
    value = spec.attrs.get("cpu_mode")
    if value is None or not value.strip():
        return dx.CPUConfig(mode="host-passthrough") if dtype == "kvm" else None
    head, colon, rest = value.partition(":")
    mode = head.strip().lower()
    children = (
        _fragment(VMSpec(spec.name, 1, 1, attrs={"cpu_mode": rest}), "cpu_mode") if colon else []
    )
    if mode in _MATCHES:
        return dx.CPUConfig(mode="custom", match=mode, children=children)  # type: ignore[arg-type]
    if mode in _MODES:
        return dx.CPUConfig(mode=mode, children=children)  # type: ignore[arg-type]
    raise UserError(
        f"attribute cpu_mode of host {spec.name} is {value!r}: use host-model, host-passthrough, "
        "or <mode>:<xml> such as exact:<model fallback='allow'>core2duo</model>"
    )


def cputune(spec: VMSpec) -> dx.Cputune | list[Element] | None:
    value = spec.attrs.get("kvm_cpu_pinning")
    if value is None or not value.strip():
        return None
    if value.strip().lower() == "pin_all":
        return dx.Cputune(vcpupin=[(i, str(i)) for i in range(spec.vcpus)])
    elements = _fragment(spec, "kvm_cpu_pinning")
    return [expect_root(elements, "cputune", "kvm_cpu_pinning", spec.name)]


def features(spec: VMSpec) -> list[Element]:
    if "HVM_Features" in spec.attrs:
        return _fragment(spec, "HVM_Features")
    return parse_fragment(DEFAULT_FEATURES, attribute="HVM_Features", host=spec.name)


def extra_devices(spec: VMSpec) -> list[Element]:
    out: list[Element] = []
    for i in range(MAX_DEVICES):
        name = f"kvm_device_{i}"
        if name not in spec.attrs:
            break
        out += _fragment(spec, name)
    return out


def _disks(spec: VMSpec) -> list[dx.Disk]:
    disks = [
        dx.Disk(
            type="block" if d.block else "file",
            device="disk",
            source=d.path,
            driver_type="raw" if d.block else d.format,
            target_dev=d.device,
            target_bus=d.bus,  # type: ignore[arg-type]
        )
        for d in spec.disks
    ]
    if spec.cdrom:
        used = {d.device for d in spec.disks}
        slot = next((f"hd{c}" for c in "abcd" if f"hd{c}" not in used), None)
        if slot is None:
            raise UserError(f"host {spec.name} has no free IDE slot (hda-hdd) for its CD-ROM")
        disks.append(
            dx.Disk(
                type="block" if spec.cdrom.startswith("/dev/") else "file",
                device="cdrom",
                source=spec.cdrom,
                driver_type="raw",
                target_dev=slot,
                target_bus="ide",
                readonly=True,
            )
        )
    return disks


def design(spec: VMSpec) -> dx.Domain:
    """The libvirt domain for `spec`; raises UserError for a bad attribute before anything runs."""
    dtype = domain_type(spec)
    machine = spec.attrs.get("kvm_machine", DEFAULT_MACHINE)
    if spec.kernel_boot is not None:
        kb = spec.kernel_boot
        os_config = dx.OSConfig(
            arch="x86_64", machine=machine, kernel=kb.kernel, initrd=kb.initrd, cmdline=kb.cmdline
        )
        on_reboot: dx.LifecycleAction | None = "destroy"
    else:
        boot: list[dx.BootDevice] = ["cdrom", "network", "hd"] if spec.cdrom else ["network", "hd"]
        os_config = dx.OSConfig(arch="x86_64", machine=machine, boot=boot, bootmenu=True)
        on_reboot = None
    nics = [n for n in spec.nics if n.kind == "direct"] + [
        n for n in spec.nics if n.kind == "bridge"
    ]
    model = spec.attrs.get("kvm_nic_model", "virtio")
    interfaces = [
        dx.Interface(
            kind=n.kind,
            source=n.source,
            mode="bridge" if n.kind == "direct" else None,
            mac=n.mac,
            model=model,
        )
        for n in nics
    ]
    devices = dx.Devices(
        disks=_disks(spec),
        interfaces=interfaces,
        serials=[dx.Serial(port=0)],
        consoles=[dx.Console(target_type="serial", port=0)],
        channels=[dx.Channel(name=GUEST_AGENT_CHANNEL)] if spec.guest_agent else [],
        graphics=[
            dx.Graphics(
                listen=spec.attrs.get("vnc_listen", DEFAULT_VNC_LISTEN),
                keymap=spec.attrs.get("kvm_vnc_keymap"),
            )
        ],
        video=[dx.Video(model="vga")],
        memballoon=spec.attrs.get("kvm_memballoon", "none"),  # type: ignore[arg-type]
        extra=extra_devices(spec),
    )
    return dx.Domain(
        type=dtype,
        name=spec.name,
        memory_kib=spec.mem_mb * 1024,
        vcpus=spec.vcpus,
        os=os_config,
        devices=devices,
        cpu=cpu(spec, dtype),
        cputune=cputune(spec),
        features=features(spec),
        on_reboot=on_reboot,
    )
