"""Typed model of the libvirt domain XML that Flightdeck writes.

Each class is one element of `<domain>`; `to_element()` renders it and `Domain.to_xml()` renders
the whole document. The model only says *how* a value is written, never *which* value: boot order,
NIC order, the CPU mode, the keymap, what the attributes mean, all of that is decided by the
designer module, which builds these objects (Nova's rule for `nova/virt/libvirt/config.py`: "No
policy or operational decisions should be made by code in these classes"). The defaults below only
mean "leave the element out" or mirror libvirt's own meaning (a VNC `port` of -1 with autoport).

Output is deterministic: elements and attributes come out in a fixed order (libvirt's own, as
`virsh dumpxml` prints it, so a generated document and a dumped one diff cleanly), indented by two
spaces, without an XML declaration, ending with a newline.

Raw XML from attributes (`cpu_mode` after the colon, `kvm_cpu_pinning`, `kvm_device_N`,
`HVM_Features`) arrives as `Element` lists from `flightdeck.virt.fragments` and is copied into the
tree verbatim, at the place that the field names.

Misuse of the model (an unknown disk type, a `block` disk without a device path, a character XML
cannot carry) raises `ValueError`: those are programming errors in the designer, not user errors.
Whether libvirt accepts a value (a bridge that exists, a machine type the emulator knows) is
libvirt's business.

This module is pure: `xml.etree.ElementTree` only. It must not import libvirt.
"""

from __future__ import annotations

import copy
import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args
from xml.etree.ElementTree import Element

__all__ = [
    "CPUConfig",
    "Console",
    "Cputune",
    "Devices",
    "Disk",
    "Domain",
    "Graphics",
    "GraphicsPort",
    "Input",
    "Interface",
    "OSConfig",
    "Serial",
    "Video",
    "graphics_ports",
    "interface_macs",
    "metadata_element",
]

DomainType = Literal["kvm", "qemu"]
VcpuPlacement = Literal["static", "auto"]
LifecycleAction = Literal["destroy", "restart", "preserve", "rename-restart"]
CrashAction = Literal[
    "destroy", "restart", "preserve", "rename-restart", "coredump-destroy", "coredump-restart"
]
OSType = Literal["hvm"]
BootDevice = Literal["cdrom", "network", "hd"]
CPUMode = Literal["host-model", "host-passthrough", "custom", "maximum"]
CPUMatch = Literal["minimum", "exact", "strict"]
CPUCheck = Literal["none", "partial", "full"]
DiskType = Literal["file", "block", "volume"]
DiskDevice = Literal["disk", "cdrom"]
DriverType = Literal["raw", "qcow2", "qed"]
DiskBus = Literal["virtio", "ide", "sata", "scsi", "usb"]
InterfaceKind = Literal["bridge", "direct", "network"]
DirectMode = Literal["bridge", "vepa", "private", "passthrough"]
CharKind = Literal["pty", "file"]
ConsoleTargetType = Literal["serial", "virtio"]
GraphicsType = Literal["vnc"]
InputType = Literal["tablet", "mouse", "keyboard"]
InputBus = Literal["usb", "ps2", "virtio"]
VideoModel = Literal["vga", "cirrus", "virtio", "qxl", "bochs", "ramfb", "none"]
MemballoonModel = Literal["virtio", "none"]

# Characters XML 1.0 cannot carry at all, even escaped (C0 controls other than tab, newline and
# carriage return; lone surrogates; U+FFFE and U+FFFF). ElementTree would write them out as they
# are and produce a document no parser accepts, so they are refused before rendering.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


# --------------------------------------------------------------------------------------------- #
# Element helpers                                                                                #
# --------------------------------------------------------------------------------------------- #


def _xml_string(value: str, where: str) -> str:
    bad = _NOT_XML.search(value)
    if bad is not None:
        raise ValueError(f"{where}: character {bad.group()!r} cannot appear in XML")
    return value


def _element(
    tag: str,
    attrs: Iterable[tuple[str, str | int | None]] = (),
    text: str | int | None = None,
) -> Element:
    """A new element with the given attributes in the given order; None values are left out."""
    element = Element(tag)
    for name, value in attrs:
        if value is not None:
            element.set(name, _xml_string(str(value), f"<{tag} {name}=...>"))
    if text is not None:
        element.text = _xml_string(str(text), f"<{tag}>")
    return element


def _sub(
    parent: Element,
    tag: str,
    attrs: Iterable[tuple[str, str | int | None]] = (),
    text: str | int | None = None,
) -> Element:
    element = _element(tag, attrs, text)
    parent.append(element)
    return element


def _copies(elements: Iterable[Element]) -> list[Element]:
    """Deep copies of fragment elements: rendering and `ET.indent` must not touch the caller's."""
    copies = []
    for element in elements:
        duplicate = copy.deepcopy(element)
        duplicate.tail = None
        copies.append(duplicate)
    return copies


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def _check_choice(value: object, choices: Any, what: str) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(map(str, allowed))}, not {value!r}")


def _check_optional_choice(value: object, choices: Any, what: str) -> None:
    if value is not None:
        _check_choice(value, choices, what)


def _check_count(value: int, what: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, not {value!r}")


def _freeze(instance: object, name: str) -> None:
    """Store a sequence field as a tuple, so a frozen object cannot change through a shared list."""
    object.__setattr__(instance, name, tuple(getattr(instance, name)))


# --------------------------------------------------------------------------------------------- #
# <os>, <cpu>, <cputune>                                                                         #
# --------------------------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True, kw_only=True)
class OSConfig:
    """`<os>`: how the guest starts.

    `boot` lists `<boot dev=.../>` in the given order; `kernel`/`initrd`/`cmdline` are a direct
    kernel boot (paths on the VM container). Both may be given; libvirt then boots the kernel.
    """

    type: OSType = "hvm"
    arch: str | None = None
    machine: str | None = None
    boot: Sequence[BootDevice] = ()
    bootmenu: bool = False
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None

    def __post_init__(self) -> None:
        _check_choice(self.type, OSType, "os type")
        _freeze(self, "boot")
        for device in self.boot:
            _check_choice(device, BootDevice, "boot device")
        if self.kernel is None and (self.initrd is not None or self.cmdline is not None):
            raise ValueError("os initrd and cmdline need a kernel")

    def to_element(self) -> Element:
        os = _element("os")
        _sub(os, "type", [("arch", self.arch), ("machine", self.machine)], self.type)
        if self.kernel is not None:
            _sub(os, "kernel", text=self.kernel)
        if self.initrd is not None:
            _sub(os, "initrd", text=self.initrd)
        if self.cmdline is not None:
            _sub(os, "cmdline", text=self.cmdline)
        for device in self.boot:
            _sub(os, "boot", [("dev", device)])
        if self.bootmenu:
            _sub(os, "bootmenu", [("enable", "yes")])
        return os


@dataclass(frozen=True, slots=True, kw_only=True)
class CPUConfig:
    """`<cpu mode=... match=... check=...>` with optional raw children (`<model>`, `<feature>`...).

    The Rocks `cpu_mode` value `exact:<model...>` is the designer's to translate (to mode `custom`,
    match `exact`); this class writes what it is given.
    """

    mode: CPUMode
    match: CPUMatch | None = None
    check: CPUCheck | None = None
    children: Sequence[Element] = ()

    def __post_init__(self) -> None:
        _check_choice(self.mode, CPUMode, "cpu mode")
        _check_optional_choice(self.match, CPUMatch, "cpu match")
        _check_optional_choice(self.check, CPUCheck, "cpu check")
        _freeze(self, "children")

    def to_element(self) -> Element:
        cpu = _element("cpu", [("mode", self.mode), ("match", self.match), ("check", self.check)])
        cpu.extend(_copies(self.children))
        return cpu


@dataclass(frozen=True, slots=True, kw_only=True)
class Cputune:
    """`<cputune>` with one `<vcpupin vcpu=N cpuset=SET/>` per `(vcpu, cpuset)` pair, in order."""

    vcpupin: Sequence[tuple[int, str]] = ()

    def __post_init__(self) -> None:
        _freeze(self, "vcpupin")
        for vcpu, _cpuset in self.vcpupin:
            _check_count(vcpu, "vcpupin vcpu", 0)

    def to_element(self) -> Element:
        cputune = _element("cputune")
        for vcpu, cpuset in self.vcpupin:
            _sub(cputune, "vcpupin", [("vcpu", vcpu), ("cpuset", cpuset)])
        return cputune


# --------------------------------------------------------------------------------------------- #
# Devices                                                                                        #
# --------------------------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True, kw_only=True)
class Disk:
    """`<disk>`: a disk or CD-ROM drive.

    `source` is the file path (type `file`) or the block device path (type `block`); type `volume`
    names a libvirt storage `pool` and `volume` instead. A CD-ROM may have no source (an empty
    drive). `driver_type` gives `<driver name='qemu' type=.../>`; None leaves the driver out.
    `boot_order` is a per-device `<boot order=N/>`, which libvirt refuses alongside `<os><boot>`.
    """

    type: DiskType
    device: DiskDevice
    target_dev: str
    target_bus: DiskBus
    source: str | None = None
    pool: str | None = None
    volume: str | None = None
    driver_type: DriverType | None = None
    readonly: bool = False
    boot_order: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self.type, DiskType, "disk type")
        _check_choice(self.device, DiskDevice, "disk device")
        _check_choice(self.target_bus, DiskBus, "disk bus")
        _check_optional_choice(self.driver_type, DriverType, "disk driver type")
        if self.boot_order is not None:
            _check_count(self.boot_order, "disk boot order", 1)
        if self.type == "volume":
            if self.pool is None or self.volume is None or self.source is not None:
                raise ValueError("a volume disk needs pool and volume, and no source")
        else:
            if self.pool is not None or self.volume is not None:
                raise ValueError(f"a {self.type} disk takes a source, not pool and volume")
            if self.source is None and self.device != "cdrom":
                raise ValueError(f"a {self.type} disk needs a source")

    def to_element(self) -> Element:
        disk = _element("disk", [("type", self.type), ("device", self.device)])
        if self.driver_type is not None:
            _sub(disk, "driver", [("name", "qemu"), ("type", self.driver_type)])
        if self.type == "volume":
            _sub(disk, "source", [("pool", self.pool), ("volume", self.volume)])
        elif self.source is not None:
            _sub(disk, "source", [("file" if self.type == "file" else "dev", self.source)])
        _sub(disk, "target", [("dev", self.target_dev), ("bus", self.target_bus)])
        if self.readonly:
            _sub(disk, "readonly")
        if self.boot_order is not None:
            _sub(disk, "boot", [("order", self.boot_order)])
        return disk


@dataclass(frozen=True, slots=True, kw_only=True)
class Interface:
    """`<interface>`: a NIC.

    `source` is the bridge (kind `bridge`, e.g. `eth1`), the parent device of a macvtap (kind
    `direct`, e.g. `peth0.2`, with `mode`) or a libvirt network (kind `network`). `target_dev` names
    the host-side tap; `boot_order` is a per-device `<boot order=N/>`.
    """

    kind: InterfaceKind
    source: str
    mode: DirectMode | None = None
    mac: str | None = None
    model: str | None = None
    target_dev: str | None = None
    boot_order: int | None = None

    def __post_init__(self) -> None:
        _check_choice(self.kind, InterfaceKind, "interface kind")
        _check_optional_choice(self.mode, DirectMode, "direct interface mode")
        if self.mode is not None and self.kind != "direct":
            raise ValueError(f"only a direct interface takes a mode, not a {self.kind} one")
        if self.mac is not None and not _MAC.fullmatch(self.mac):
            raise ValueError(f"interface MAC {self.mac!r} is not six colon-separated hex bytes")
        if self.boot_order is not None:
            _check_count(self.boot_order, "interface boot order", 1)

    def to_element(self) -> Element:
        interface = _element("interface", [("type", self.kind)])
        if self.mac is not None:
            _sub(interface, "mac", [("address", self.mac)])
        if self.kind == "bridge":
            _sub(interface, "source", [("bridge", self.source)])
        elif self.kind == "direct":
            _sub(interface, "source", [("dev", self.source), ("mode", self.mode)])
        else:
            _sub(interface, "source", [("network", self.source)])
        if self.target_dev is not None:
            _sub(interface, "target", [("dev", self.target_dev)])
        if self.model is not None:
            _sub(interface, "model", [("type", self.model)])
        if self.boot_order is not None:
            _sub(interface, "boot", [("order", self.boot_order)])
        return interface


def _check_char_source(kind: CharKind, path: str | None, what: str) -> None:
    _check_choice(kind, CharKind, f"{what} type")
    if kind == "file" and path is None:
        raise ValueError(f"a file {what} needs a path")
    if kind == "pty" and path is not None:
        raise ValueError(f"a pty {what} takes no path")


@dataclass(frozen=True, slots=True, kw_only=True)
class Serial:
    """`<serial>`: a pseudo-terminal (the default) or a file the guest's output is written to."""

    kind: CharKind = "pty"
    path: str | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        _check_char_source(self.kind, self.path, "serial")
        if self.port is not None:
            _check_count(self.port, "serial port", 0)

    def to_element(self) -> Element:
        serial = _element("serial", [("type", self.kind)])
        if self.path is not None:
            _sub(serial, "source", [("path", self.path)])
        if self.port is not None:
            _sub(serial, "target", [("port", self.port)])
        return serial


@dataclass(frozen=True, slots=True, kw_only=True)
class Console:
    """`<console>`: like `Serial`; `target_type` `serial` makes it an alias of the first serial."""

    kind: CharKind = "pty"
    path: str | None = None
    target_type: ConsoleTargetType | None = None
    port: int | None = None

    def __post_init__(self) -> None:
        _check_char_source(self.kind, self.path, "console")
        _check_optional_choice(self.target_type, ConsoleTargetType, "console target type")
        if self.port is not None:
            _check_count(self.port, "console port", 0)

    def to_element(self) -> Element:
        console = _element("console", [("type", self.kind)])
        if self.path is not None:
            _sub(console, "source", [("path", self.path)])
        if self.target_type is not None or self.port is not None:
            _sub(console, "target", [("type", self.target_type), ("port", self.port)])
        return console


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """`<channel type='unix'>` with a virtio target, e.g. the QEMU guest agent's
    `org.qemu.guest_agent.0` (libvirt chooses the socket's path)."""

    name: str

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "._-" for c in self.name):
            raise ValueError(f"channel name {self.name!r} must be letters, digits, '.', '_', '-'")

    def to_element(self) -> Element:
        channel = _element("channel", [("type", "unix")])
        _sub(channel, "source", [("mode", "bind")])
        _sub(channel, "target", [("type", "virtio"), ("name", self.name)])
        return channel


@dataclass(frozen=True, slots=True, kw_only=True)
class Graphics:
    """`<graphics type='vnc'>`. `port=-1` with `autoport` lets libvirt pick a free port at start."""

    type: GraphicsType = "vnc"
    port: int = -1
    autoport: bool = True
    listen: str | None = None
    keymap: str | None = None
    passwd: str | None = None

    def __post_init__(self) -> None:
        _check_choice(self.type, GraphicsType, "graphics type")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or self.port < -1:
            raise ValueError(f"graphics port must be -1 or a port number, not {self.port!r}")

    def to_element(self) -> Element:
        return _element(
            "graphics",
            [
                ("type", self.type),
                ("port", self.port),
                ("autoport", _yes_no(self.autoport)),
                ("listen", self.listen),
                ("keymap", self.keymap),
                ("passwd", self.passwd),
            ],
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Input:
    """`<input type=... bus=.../>`: a USB tablet gives a VNC viewer an absolute pointer."""

    type: InputType
    bus: InputBus | None = None

    def __post_init__(self) -> None:
        _check_choice(self.type, InputType, "input type")
        _check_optional_choice(self.bus, InputBus, "input bus")

    def to_element(self) -> Element:
        return _element("input", [("type", self.type), ("bus", self.bus)])


@dataclass(frozen=True, slots=True, kw_only=True)
class Video:
    """`<video><model type=.../></video>`."""

    model: VideoModel

    def __post_init__(self) -> None:
        _check_choice(self.model, VideoModel, "video model")

    def to_element(self) -> Element:
        video = _element("video")
        _sub(video, "model", [("type", self.model)])
        return video


@dataclass(frozen=True, slots=True, kw_only=True)
class Devices:
    """`<devices>`, in libvirt's order; `extra` (raw fragments, e.g. `kvm_device_N`) comes last.

    The order inside each list is kept: it is the order libvirt assigns PCI slots in, hence the
    guest's NIC names (`eth0`, `eth1`...) and its first hard disk.
    """

    emulator: str | None = None
    disks: Sequence[Disk] = ()
    interfaces: Sequence[Interface] = ()
    serials: Sequence[Serial] = ()
    consoles: Sequence[Console] = ()
    channels: Sequence[Channel] = ()
    inputs: Sequence[Input] = ()
    graphics: Sequence[Graphics] = ()
    video: Sequence[Video] = ()
    memballoon: MemballoonModel | None = None
    extra: Sequence[Element] = ()

    def __post_init__(self) -> None:
        for name in (
            "disks",
            "interfaces",
            "serials",
            "consoles",
            "channels",
            "inputs",
            "graphics",
            "video",
            "extra",
        ):
            _freeze(self, name)
        _check_optional_choice(self.memballoon, MemballoonModel, "memballoon model")

    def to_element(self) -> Element:
        devices = _element("devices")
        if self.emulator is not None:
            _sub(devices, "emulator", text=self.emulator)
        for group in (
            self.disks,
            self.interfaces,
            self.serials,
            self.consoles,
            self.channels,
            self.inputs,
            self.graphics,
            self.video,
        ):
            for device in group:
                devices.append(device.to_element())
        if self.memballoon is not None:
            _sub(devices, "memballoon", [("model", self.memballoon)])
        devices.extend(_copies(self.extra))
        return devices


# --------------------------------------------------------------------------------------------- #
# <domain>                                                                                       #
# --------------------------------------------------------------------------------------------- #


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    """`<domain>`: a whole guest definition.

    `memory_kib` is in KiB and written with `unit='KiB'` (the DB keeps MiB; the designer converts).
    `title` is the one line virt-manager shows instead of the name; `metadata` are the children of
    `<metadata>`, each in a namespace of its own (`metadata_element` makes one).
    `cputune` is either a `Cputune` or raw elements inserted verbatim where `<cputune>` goes (the
    Rocks `kvm_cpu_pinning` value); `features` are the children of `<features>` (None leaves the
    element out, an empty sequence writes an empty `<features/>`).
    """

    type: DomainType
    name: str
    memory_kib: int
    vcpus: int
    os: OSConfig
    devices: Devices
    uuid: str | None = None
    title: str | None = None
    description: str | None = None
    metadata: Sequence[Element] | None = None
    vcpu_placement: VcpuPlacement | None = None
    vcpu_cpuset: str | None = None
    cpu: CPUConfig | None = None
    cputune: Sequence[Element] | Cputune | None = None
    features: Sequence[Element] | None = None
    on_poweroff: LifecycleAction | None = None
    on_reboot: LifecycleAction | None = None
    on_crash: CrashAction | None = None

    def __post_init__(self) -> None:
        _check_choice(self.type, DomainType, "domain type")
        _check_count(self.memory_kib, "memory (KiB)", 1)
        _check_count(self.vcpus, "vcpu count", 1)
        if self.uuid is not None:
            try:
                uuid.UUID(self.uuid)
            except ValueError:
                raise ValueError(f"domain uuid {self.uuid!r} is not a UUID") from None
        _check_optional_choice(self.vcpu_placement, VcpuPlacement, "vcpu placement")
        _check_optional_choice(self.on_poweroff, LifecycleAction, "on_poweroff")
        _check_optional_choice(self.on_reboot, LifecycleAction, "on_reboot")
        _check_optional_choice(self.on_crash, CrashAction, "on_crash")
        if self.cputune is not None and not isinstance(self.cputune, Cputune):
            _freeze(self, "cputune")
        if self.features is not None:
            _freeze(self, "features")
        if self.metadata is not None:
            _freeze(self, "metadata")
        if self.title is not None and ("\n" in self.title or "\r" in self.title):
            raise ValueError(f"domain title {self.title!r} must be one line")

    def to_element(self) -> Element:
        domain = _element("domain", [("type", self.type)])
        _sub(domain, "name", text=self.name)
        if self.uuid is not None:
            _sub(domain, "uuid", text=self.uuid)
        if self.title is not None:
            _sub(domain, "title", text=self.title)
        if self.description is not None:
            _sub(domain, "description", text=self.description)
        if self.metadata is not None:
            _sub(domain, "metadata").extend(_copies(self.metadata))
        _sub(domain, "memory", [("unit", "KiB")], self.memory_kib)
        _sub(
            domain,
            "vcpu",
            [("placement", self.vcpu_placement), ("cpuset", self.vcpu_cpuset)],
            self.vcpus,
        )
        if isinstance(self.cputune, Cputune):
            domain.append(self.cputune.to_element())
        elif self.cputune is not None:
            domain.extend(_copies(self.cputune))
        domain.append(self.os.to_element())
        if self.features is not None:
            _sub(domain, "features").extend(_copies(self.features))
        if self.cpu is not None:
            domain.append(self.cpu.to_element())
        for tag, action in (
            ("on_poweroff", self.on_poweroff),
            ("on_reboot", self.on_reboot),
            ("on_crash", self.on_crash),
        ):
            if action is not None:
                _sub(domain, tag, text=action)
        domain.append(self.devices.to_element())
        return domain

    def to_xml(self) -> str:
        """The document for `defineXML`: two-space indented, no declaration, final newline."""
        root = self.to_element()
        ET.indent(root, space="  ")
        return ET.tostring(root, encoding="unicode") + "\n"


def metadata_element(
    prefix: str,
    uri: str,
    tag: str,
    children: Sequence[tuple[str, Sequence[tuple[str, str | int | None]], str | int | None]] = (),
) -> Element:
    """`<prefix:tag xmlns:prefix=uri>` with `(tag, attributes, text)` children in that namespace.

    libvirt keeps one `<metadata>` child per namespace and writes it back with its prefix
    declared on it (as Nova's `<nova:instance>`), which is how it is written here too: the
    declaration sits on the element, not on `<domain>`.
    """
    for name in (prefix, tag, *(c[0] for c in children)):
        if not _NCNAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an XML name without a colon")
    root = _element(f"{prefix}:{tag}", [(f"xmlns:{prefix}", uri)])
    for name, attrs, text in children:
        _sub(root, f"{prefix}:{name}", attrs, text)
    return root


# --------------------------------------------------------------------------------------------- #
# Reading a live domain's XML                                                                    #
# --------------------------------------------------------------------------------------------- #


class GraphicsPort(NamedTuple):
    """A graphics console of a running domain: its protocol (`vnc`, `spice`) and TCP port."""

    type: str
    port: int


def graphics_ports(xml: str) -> list[GraphicsPort]:
    """The graphics consoles in a domain's XML (`XMLDesc()`), in document order.

    Only ports libvirt has allocated are listed: a `port` of -1 (autoport, domain not running) or
    a missing one is left out. Raises `xml.etree.ElementTree.ParseError` on malformed XML.
    """
    ports = []
    for graphics in ET.fromstring(xml).iterfind("./devices/graphics"):
        port = graphics.get("port")
        if port is None:
            continue
        try:
            number = int(port)
        except ValueError:
            continue
        if number > 0:
            ports.append(GraphicsPort(graphics.get("type", ""), number))
    return ports


def interface_macs(xml: str) -> list[str]:
    """The MAC addresses of a domain's NICs, lower-cased, in document order.

    Raises `xml.etree.ElementTree.ParseError` on malformed XML.
    """
    macs = []
    for mac in ET.fromstring(xml).iterfind("./devices/interface/mac"):
        address = mac.get("address")
        if address:
            macs.append(address.lower())
    return macs
