"""VM disk specifications (reference §2.3, "Disk spec format").

Users write disks as Rocks did, ``<type>:<path>,<device>,<bus>``, e.g.
``qcow2:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio``; ``list host vm`` and
``dump host vm`` print them back in the same form, so ``parse_disk_spec(s.format())`` must give
the same spec. The parse is stricter than the original, which accepted any text, stored it, and
failed later on the container: here a bad type, relative path, ``..`` component, unknown device or
bus is refused up front.

Sizes are whole GB of 10^9 bytes, as the original created them.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import NoReturn

from flightdeck.errors import UserError
from flightdeck.planner import defaults
from flightdeck.planner.names import validate_host_name

#: Types the ``vm_disks.VBD_Type`` column may hold. ``file`` and ``raw`` are raw images; ``phy`` a
#: block device on the container; ``tap:aio`` is the legacy Xen spelling of a raw file.
DISK_TYPES = ("file", "qcow2", "qed", "phy", "raw", "tap:aio")
#: Buses libvirt emulates for a disk; stored in the (misnamed) ``Mode`` column.
DISK_BUSES = ("virtio", "ide", "scsi", "sata")
#: The Xen-era mode ``w`` (writable) found in old databases means a virtio disk.
_LEGACY_BUS = {"w": "virtio"}

_DEVICE_RE = re.compile(r"(vd|hd|sd|xvd)[a-z]{1,2}")
#: Characters a path must not contain: separators of the spec itself (``,``), of the disk list
#: (white space), and control characters, none of which could survive ``format()`` and re-parsing.
_BAD_PATH_CHAR_RE = re.compile(r"[\s,\x00-\x1f\x7f]")
_EXPECTED = (
    "expected <type>:<absolute path>,<device>,<bus> "
    "e.g. file:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio"
)


@dataclass(frozen=True)
class DiskSpec:
    """One VM disk, as the ``vm_disks`` row stores it.

    ``prefix`` is the directory and ``name`` the file name, except for ``phy`` where ``prefix`` is
    empty and ``name`` is the whole device path (so LVM paths with ``/`` survive). ``size_gb`` is
    in GB of 10^9 bytes.
    """

    vbd_type: str
    prefix: str
    name: str
    device: str
    bus: str
    size_gb: int

    @property
    def path(self) -> str:
        """Absolute path of the image (or block device) on the container."""
        if not self.prefix:
            return self.name
        return posixpath.join(self.prefix, self.name)

    def format(self) -> str:
        """The spec string ``<type>:<path>,<device>,<bus>``; the size is not part of it."""
        return f"{self.vbd_type}:{self.path},{self.device},{self.bus}"


def parse_disk_spec(text: str, size_gb: int) -> DiskSpec:
    """Parse one ``<type>:<path>,<device>,<bus>`` spec with a size in GB; raise ``UserError``.

    The type is everything before the *last* ``:`` of the first field (so ``tap:aio:/x`` has type
    ``tap:aio``); paths therefore cannot contain ``:``. Type, device and bus are case-insensitive
    and stored in lower case; the legacy bus ``w`` becomes ``virtio``.
    """
    fields = text.strip().split(",")
    if len(fields) != 3:
        _fail(text, f"it has {len(fields)} comma-separated fields, not 3")
    location, device, bus = (field.strip() for field in fields)
    vbd_type, colon, path = location.rpartition(":")
    vbd_type = vbd_type.lower()
    if not colon:
        _fail(text, "the first field has no '<type>:' before the path")
    if vbd_type not in DISK_TYPES:
        _fail(text, f"type {vbd_type!r} is not one of {', '.join(DISK_TYPES)}")
    _check_path(text, path)
    device = device.lower()
    if _DEVICE_RE.fullmatch(device) is None:
        _fail(text, f"device {device!r} is not like vda, hda, sda or xvda")
    bus = bus.lower()
    bus = _LEGACY_BUS.get(bus, bus)
    if bus not in DISK_BUSES:
        _fail(text, f"bus {bus!r} is not one of {', '.join(DISK_BUSES)}")
    _check_size(text, size_gb)
    if vbd_type == "phy":
        prefix, name = "", path
    else:
        prefix, name = posixpath.split(path)
    return DiskSpec(vbd_type, prefix, name, device, bus, size_gb)


def parse_disk_list(
    specs: str, sizes: str | None, default_size_gb: int = defaults.DISK_GB
) -> list[DiskSpec]:
    """Parse the ``set host vm disk=... disksize=...`` pair into the disks that replace a VM's.

    ``specs`` and ``sizes`` are space-separated and aligned by position; a missing size is
    ``default_size_gb`` (``defaults.DISK_GB``, 36 GB as Rocks). More sizes than specs, an empty
    list, or two disks on one device or one path raise ``UserError``: libvirt would refuse such
    a domain at start time.
    """
    spec_texts = specs.split()
    size_texts = sizes.split() if sizes is not None else []
    if not spec_texts:
        raise UserError(
            f"invalid disk list {specs!r}: give at least one disk specification, {_EXPECTED}"
        )
    if len(size_texts) > len(spec_texts):
        raise UserError(
            f"invalid disksize {sizes!r}: {len(size_texts)} sizes for {len(spec_texts)} disks; "
            "give at most one size in GB per disk"
        )
    disks: list[DiskSpec] = []
    for index, spec_text in enumerate(spec_texts):
        size = default_size_gb
        if index < len(size_texts):
            if re.fullmatch(r"[0-9]+", size_texts[index]) is None:
                raise UserError(
                    f"invalid disksize {size_texts[index]!r} for disk {spec_text!r}: expected a "
                    "whole number of GB like 36"
                )
            size = int(size_texts[index])
        disks.append(parse_disk_spec(spec_text, size))
    _check_unique(disks)
    return disks


def default_disk(vm_name: str, disk_dir: str, size_gb: int, fmt: str = "qcow2") -> DiskSpec:
    """The disk a new VM gets when none is given: ``<disk_dir>/<vm_name>.vda`` on ``vda``, virtio.

    ``fmt`` is ``qcow2`` (our default: sparse, and libvirt storage pools create it remotely) or
    ``raw`` (the Rocks default), stored as type ``file`` as Rocks did.
    """
    validate_host_name(vm_name)
    fmt_lower = fmt.lower()
    if fmt_lower not in ("qcow2", "raw"):
        raise UserError(f"invalid disk format {fmt!r}: expected qcow2 or raw")
    vbd_type = "file" if fmt_lower == "raw" else "qcow2"
    directory = disk_dir.rstrip("/") or "/"
    path = posixpath.join(directory, f"{vm_name}.vda")
    return parse_disk_spec(f"{vbd_type}:{path},vda,virtio", size_gb)


def _check_path(text: str, path: str) -> None:
    if not path.startswith("/"):
        _fail(text, f"path {path!r} is not absolute")
    if _BAD_PATH_CHAR_RE.search(path):
        _fail(text, "the path contains white space or a control character")
    parts = path.split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        _fail(text, f"path {path!r} has an empty, '.' or '..' component or a trailing '/'")


def _check_size(text: str, size_gb: int) -> None:
    if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb <= 0:
        raise UserError(
            f"invalid disk size {size_gb!r} GB for {text!r}: expected a whole number of GB "
            "greater than 0"
        )


def _check_unique(disks: list[DiskSpec]) -> None:
    devices: set[str] = set()
    paths: set[str] = set()
    for disk in disks:
        if disk.device in devices:
            raise UserError(
                f"invalid disk list: device {disk.device} is used twice; give each disk its own "
                "device (vda, vdb...)"
            )
        if disk.path in paths:
            raise UserError(
                f"invalid disk list: {disk.path} is used twice; give each disk its own image"
            )
        devices.add(disk.device)
        paths.add(disk.path)


def _fail(text: str, reason: str) -> NoReturn:
    raise UserError(f"invalid disk specification {text!r}: {reason}; {_EXPECTED}")
