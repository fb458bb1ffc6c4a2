"""The policy of Flightdeck's domain XML: what a VM's libvirt definition contains, and why.

The XML model (`domxml`) says how elements are written; this module decides which ones. Its input
is a plain `VMSpec` that the services build from the database (names, sizes, resolved NIC
sources, resolved attributes, what the container's libvirt offers), so it can be tested without
a database and without libvirt. Every document it writes is accepted by libvirt's QEMU driver,
not only by its test driver (the tests define each one on both).

Rules, after the original (reference §9.1) with its bugs fixed:

- Boot: `<boot dev='cdrom'/>` first when a CD-ROM is attached, then network, then disk, with the
  boot menu on (the PXE server on that network decides between installing and `localboot`).
  `installing=False` (the services set it for an installed virtual frontend, which no PXE
  server answers) boots its disk only: no PXE attempts on each NIC first. A virtual frontend
  due to install (`install vm frontend` and boot action `install`) boots the boot action's
  kernel and initrd directly, with its public address on the command line, and
  `on_reboot=destroy` so the installer's final reboot stops it.
- Domain type: attribute `kvm_domain_type` (`kvm`, `qemu`; `auto` or unset = what the container's
  libvirt offers, `kvm` where it has KVM, else `qemu`, which the services warn about).
- NICs: macvtap (`type='direct'`) ones first, then bridged ones, each virtio with its MAC.
- CPU: `cpu_mode` as `host-model`, `host-passthrough` or the colon form `exact:<model>...` (the
  original's `<cpu mode='exact'>` is not valid libvirt; it becomes mode custom, match exact).
  Unset: host-passthrough on `kvm`, nothing under TCG (`qemu`), where it cannot work. A
  `<topology>` in it must give the VM's vCPU count (QEMU refuses any other); an attribute it
  leaves out (the guide's `<topology sockets='1' cores='2'/>` has no threads) is 1.
- `kvm_cpu_pinning`: `pin_all` pins vCPU i to host CPU i; anything else must be one `<cputune>`.
- `HVM_Features` replaces the default `<acpi/><apic/><pae/>`; `kvm_device_0`, `_1`, ... are
  appended to `<devices>` in order, up to the first missing index.
- Guest agent: virtual frontends get the QEMU guest agent's virtio channel; their image starts
  the agent only once the frontend is ready, so its answer is the readiness signal.
- Machine `kvm_machine` (default `pc`): q35 has no IDE bus, so the CD-ROM goes on SATA there and
  an IDE disk is refused with the fix.
- Console: a serial port on a pty (reachable through libvirt's console stream, also remotely);
  VNC with autoport listening on `vnc_listen` (default 127.0.0.1, never all interfaces unless
  an admin says so), with a USB tablet so the viewer's pointer is where the guest's is.
- What virt-manager shows: a one-line `<title>`, a `<description>` (appliance, cluster, the
  owner's frontend, the container) and the same facts in our `<metadata>` element.

The attribute parsers (`check_*`) are also what `rocks set ... attr` runs before it stores a
value (`services/validation.py`), so a mistake gets the same message at either time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal
from xml.etree.ElementTree import Element

from flightdeck.attrsubject import Subject, subject
from flightdeck.errors import UserError
from flightdeck.virt import domxml as dx
from flightdeck.virt.fragments import expect_root, parse_fragment

DEFAULT_FEATURES = "<acpi/><apic/><pae/>"
DEFAULT_VNC_LISTEN = "127.0.0.1"
#: The machine type: `pc` keeps an IDE bus for the CD-ROM (q35 has none: SATA there).
DEFAULT_MACHINE = "pc"
MAX_DEVICES = 256
GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
#: Our `<metadata>` element's namespace (libvirt keeps one element per namespace).
METADATA_NS = "urn:flightdeck:domain:1"
METADATA_PREFIX = "flightdeck"

DomainType = Literal["kvm", "qemu"]

# Seed commands continue long attribute values over lines with "\" inside single quotes, which
# the shell keeps literally; and nested single quotes leave attribute values unquoted. Both are
# repaired before parsing, so the guide's commands work as written.
_CONTINUATION = re.compile(r"\\\s+")
_BARE_ATTR = re.compile(r"(\s[A-Za-z_:][-\w:.]*)=([^\s\"'<>/=]+)")
_DEVICE_ATTR = re.compile(r"kvm_device_[0-9]+")


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
class Labels:
    """What the VM is, for people looking at the container (virt-manager, `virsh list --title`).

    `cluster` is the virtual cluster's frontend (the VM itself for a virtual frontend), or the
    physical frontend for a VM of the physical cluster; `owner` is the host whose registered
    keys may act on the VM through the Airboss (the virtual frontend, or the VM itself).
    """

    appliance: str
    membership: str
    container: str
    cluster: str | None = None
    vlan: int | None = None
    owner: str | None = None


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
    #: Boot from the network first (PXE decides); False boots the disk only (see the rules).
    installing: bool = True
    #: The domain type the container's libvirt offers (`kvm` with KVM, else `qemu`); None when
    #: nobody asked, which means `kvm` unless the attribute says otherwise.
    offered_type: DomainType | None = None
    labels: Labels | None = None


# Attribute values -----------------------------------------------------------------------------


def parse_attr_fragment(text: str, attribute: str, who: str | Subject) -> list[Element]:
    """An attribute's raw XML as elements, the guide's line continuations and quoting repaired."""
    text = _CONTINUATION.sub(" ", text)
    try:
        return parse_fragment(text, attribute=attribute, host=who)
    except UserError:
        repaired = _BARE_ATTR.sub(r'\1="\2"', text)
        if repaired == text:
            raise
        return parse_fragment(repaired, attribute=attribute, host=who)


def check_domain_type(value: str | None, who: str | Subject) -> DomainType | None:
    """`kvm_domain_type`: kvm or qemu; None for auto (unset, empty or `auto`)."""
    word = (value or "").strip().lower()
    if word in ("", "auto"):
        return None
    if word in ("kvm", "qemu"):
        return "kvm" if word == "kvm" else "qemu"
    raise UserError(
        f"{subject(who).attr('kvm_domain_type')} is {value!r}: use kvm, or qemu on hosts "
        "without hardware virtualisation (auto, or unset: what the container offers)"
    )


_MODES = {"host-model", "host-passthrough", "custom", "maximum"}
_MATCHES = {"exact", "minimum", "strict"}
_TOPOLOGY = ("sockets", "dies", "cores", "threads")


def check_cpu_mode(value: str | None, who: str | Subject) -> dx.CPUConfig | None:
    """`cpu_mode` as a `<cpu>` (None when unset: the designer's default applies)."""
    if value is None or not value.strip():
        return None
    head, colon, rest = value.partition(":")
    mode = head.strip().lower()
    children = parse_attr_fragment(rest, "cpu_mode", who) if colon else []
    for topology in (c for c in children if c.tag == "topology"):
        _topology_counts(topology, who)
    if mode in _MATCHES:
        return dx.CPUConfig(mode="custom", match=mode, children=children)  # type: ignore[arg-type]
    if mode in _MODES:
        return dx.CPUConfig(mode=mode, children=children)  # type: ignore[arg-type]
    raise UserError(
        f"{subject(who).attr('cpu_mode')} is {value!r}: use host-model, host-passthrough, "
        "or <mode>:<xml> such as exact:<model fallback='allow'>core2duo</model>"
    )


def _topology_counts(topology: Element, who: str | Subject) -> dict[str, int]:
    counts = {}
    for name in _TOPOLOGY:
        text = topology.get(name)
        if text is None:
            continue
        if not text.strip().isdigit() or int(text) < 1:
            raise UserError(
                f"{subject(who).attr('cpu_mode')} has <topology {name}='{text}'>: give a "
                f"whole number of at least 1; fix it with {subject(who).fix('cpu_mode')}"
            )
        counts[name] = int(text)
    return counts


def check_cpu_pinning(value: str | None, who: str | Subject) -> list[Element] | None:
    """`kvm_cpu_pinning`: None for unset or `pin_all`, else its single `<cputune>`."""
    if value is None or not value.strip() or value.strip().lower() == "pin_all":
        return None
    elements = parse_attr_fragment(value, "kvm_cpu_pinning", who)
    return [expect_root(elements, "cputune", "kvm_cpu_pinning", who)]


def check_features(value: str | None, who: str | Subject) -> list[Element]:
    """`HVM_Features`: the children of `<features>`."""
    return parse_attr_fragment(value or "", "HVM_Features", who)


def check_device(value: str | None, who: str | Subject, attribute: str = "kvm_device_0") -> None:
    """`kvm_device_N`: any devices, as long as they are well-formed XML."""
    parse_attr_fragment(value or "", attribute, who)


def is_device_attr(name: str) -> bool:
    return bool(_DEVICE_ATTR.fullmatch(name))


def check_memballoon(value: str | None, who: str | Subject) -> Literal["virtio", "none"]:
    word = (value or "none").strip().lower()
    if word not in ("virtio", "none"):
        raise UserError(
            f"{subject(who).attr('kvm_memballoon')} is {value!r}: use virtio (the guest may "
            "give memory back) or none"
        )
    return "virtio" if word == "virtio" else "none"


# The parts of the domain ----------------------------------------------------------------------


def domain_type(spec: VMSpec) -> DomainType:
    """The attribute's type, else what the container offers, else kvm."""
    chosen = check_domain_type(spec.attrs.get("kvm_domain_type"), spec.name)
    return chosen or spec.offered_type or "kvm"


def cpu(spec: VMSpec, dtype: str) -> dx.CPUConfig | None:
    config = check_cpu_mode(spec.attrs.get("cpu_mode"), spec.name)
    if config is None:
        return dx.CPUConfig(mode="host-passthrough") if dtype == "kvm" else None
    children = [_reconciled(c, spec) if c.tag == "topology" else c for c in config.children]
    return dx.CPUConfig(mode=config.mode, match=config.match, children=children)


def _reconciled(topology: Element, spec: VMSpec) -> Element:
    """The `<topology>` with each attribute it leaves out set to 1, if it gives spec.vcpus.

    QEMU refuses a topology whose product is not the vCPU count (libvirt's test driver does
    not check); rather than start a VM with a shape nobody asked for, the mismatch is refused.
    """
    counts = _topology_counts(topology, spec.name)
    filled = {name: counts.get(name, 1) for name in _TOPOLOGY}
    total = filled["sockets"] * filled["dies"] * filled["cores"] * filled["threads"]
    if total != spec.vcpus:
        shape = " x ".join(f"{filled[n]} {n}" for n in _TOPOLOGY if n != "dies" or n in counts)
        raise UserError(
            f"attribute cpu_mode of host {spec.name} has a <topology> of {total} vCPU(s) "
            f"({shape}) but {spec.name} has {spec.vcpus}: give it {total} with 'rocks set host "
            f"vm {spec.name} cpus={total}', or fix the topology with "
            f"{Subject('host', spec.name).fix('cpu_mode')}"
        )
    out = Element("topology")
    for name in _TOPOLOGY:
        if name != "dies" or name in counts:
            out.set(name, str(filled[name]))
    return out


def cputune(spec: VMSpec) -> dx.Cputune | list[Element] | None:
    value = spec.attrs.get("kvm_cpu_pinning")
    if value is not None and value.strip().lower() == "pin_all":
        return dx.Cputune(vcpupin=[(i, str(i)) for i in range(spec.vcpus)])
    return check_cpu_pinning(value, spec.name)


def features(spec: VMSpec) -> list[Element]:
    if "HVM_Features" in spec.attrs:
        return check_features(spec.attrs["HVM_Features"], spec.name)
    return parse_fragment(DEFAULT_FEATURES, attribute="HVM_Features", host=spec.name)


def extra_devices(spec: VMSpec) -> list[Element]:
    out: list[Element] = []
    for i in range(MAX_DEVICES):
        name = f"kvm_device_{i}"
        if name not in spec.attrs:
            break
        out += parse_attr_fragment(spec.attrs[name], name, spec.name)
    return out


def _is_q35(machine: str) -> bool:
    return "q35" in machine.lower()


def _disks(spec: VMSpec, machine: str) -> list[dx.Disk]:
    q35 = _is_q35(machine)
    for d in spec.disks:
        if q35 and d.bus == "ide":
            raise UserError(
                f"disk {d.device} of {spec.name} is on the IDE bus, which machine type {machine} "
                f"does not have: rocks set host vm {spec.name} disk=<type>:{d.path},{d.device},"
                "sata (or virtio), or kvm_machine=pc"
            )
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
        # q35 has no IDE bus: its CD-ROM is a SATA drive.
        prefix, bus, letters = ("sd", "sata", "abcdef") if q35 else ("hd", "ide", "abcd")
        slot = next((f"{prefix}{c}" for c in letters if f"{prefix}{c}" not in used), None)
        if slot is None:
            first, last = f"{prefix}{letters[0]}", f"{prefix}{letters[-1]}"
            raise UserError(
                f"host {spec.name} has no free {bus.upper()} slot ({first}-{last}) for its CD-ROM"
            )
        disks.append(
            dx.Disk(
                type="block" if spec.cdrom.startswith("/dev/") else "file",
                device="cdrom",
                source=spec.cdrom,
                driver_type="raw",
                target_dev=slot,
                target_bus=bus,  # type: ignore[arg-type]
                readonly=True,
            )
        )
    return disks


def _boot(spec: VMSpec) -> list[dx.BootDevice]:
    if spec.cdrom:
        return ["cdrom", "network", "hd"]
    return ["network", "hd"] if spec.installing else ["hd"]


def _title(spec: VMSpec) -> str | None:
    lab = spec.labels
    if lab is None:
        return None
    if lab.cluster and lab.cluster != spec.name:
        return f"{lab.membership} of {lab.cluster}" + (f" (VLAN {lab.vlan})" if lab.vlan else "")
    if lab.vlan:
        return f"{lab.membership}, VLAN {lab.vlan}"
    return lab.membership


def _description(spec: VMSpec) -> str | None:
    lab = spec.labels
    if lab is None:
        return None
    lines = [f"Flightdeck VM {spec.name}", f"appliance: {lab.appliance} ({lab.membership})"]
    if lab.cluster:
        lines.append(f"cluster: {lab.cluster}" + (f", VLAN {lab.vlan}" if lab.vlan else ""))
    if lab.owner:
        lines.append(f"owner's frontend: {lab.owner}")
    lines.append(f"container: {lab.container}")
    return "\n".join(lines)


def _metadata(spec: VMSpec) -> list[Element] | None:
    lab = spec.labels
    if lab is None:
        return None
    children: list[tuple[str, Sequence[tuple[str, str | int | None]], str | int | None]] = [
        ("appliance", [("membership", lab.membership)], lab.appliance),
        ("container", [], lab.container),
    ]
    if lab.cluster:
        children.append(("cluster", [("vlan", lab.vlan)], lab.cluster))
    if lab.owner:
        children.append(("owner", [], lab.owner))
    return [dx.metadata_element(METADATA_PREFIX, METADATA_NS, "vm", children)]


def design(spec: VMSpec) -> dx.Domain:
    """The libvirt domain for `spec`; raises UserError for a bad attribute before anything runs."""
    dtype = domain_type(spec)
    machine = spec.attrs.get("kvm_machine") or DEFAULT_MACHINE
    if spec.kernel_boot is not None:
        kb = spec.kernel_boot
        os_config = dx.OSConfig(
            arch="x86_64", machine=machine, kernel=kb.kernel, initrd=kb.initrd, cmdline=kb.cmdline
        )
        on_reboot: dx.LifecycleAction | None = "destroy"
    else:
        os_config = dx.OSConfig(arch="x86_64", machine=machine, boot=_boot(spec), bootmenu=True)
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
        disks=_disks(spec, machine),
        interfaces=interfaces,
        serials=[dx.Serial(port=0)],
        consoles=[dx.Console(target_type="serial", port=0)],
        channels=[dx.Channel(name=GUEST_AGENT_CHANNEL)] if spec.guest_agent else [],
        inputs=[dx.Input(type="tablet", bus="usb")],
        graphics=[
            dx.Graphics(
                listen=spec.attrs.get("vnc_listen", DEFAULT_VNC_LISTEN),
                keymap=spec.attrs.get("kvm_vnc_keymap"),
            )
        ],
        video=[dx.Video(model="vga")],
        memballoon=check_memballoon(spec.attrs.get("kvm_memballoon"), spec.name),
        extra=extra_devices(spec),
    )
    return dx.Domain(
        type=dtype,
        name=spec.name,
        title=_title(spec),
        description=_description(spec),
        metadata=_metadata(spec),
        memory_kib=spec.mem_mb * 1024,
        vcpus=spec.vcpus,
        os=os_config,
        devices=devices,
        cpu=cpu(spec, dtype),
        cputune=cputune(spec),
        features=features(spec),
        on_reboot=on_reboot,
    )
