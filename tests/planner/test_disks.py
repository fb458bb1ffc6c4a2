"""Disk specs: parse, format round trips, the set host vm disk= list, the default disk."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flightdeck.errors import UserError
from flightdeck.planner.disks import (
    DiskSpec,
    default_disk,
    parse_disk_list,
    parse_disk_spec,
)

EXPECTED = (
    "expected <type>:<absolute path>,<device>,<bus> "
    "e.g. file:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio"
)


def test_parse_rocks_default_spec() -> None:
    spec = parse_disk_spec("file:/state/partition1/kvm/disks/compute-0-0-0.vda,vda,virtio", 36)
    assert spec == DiskSpec(
        vbd_type="file",
        prefix="/state/partition1/kvm/disks",
        name="compute-0-0-0.vda",
        device="vda",
        bus="virtio",
        size_gb=36,
    )
    assert spec.path == "/state/partition1/kvm/disks/compute-0-0-0.vda"
    assert spec.format() == "file:/state/partition1/kvm/disks/compute-0-0-0.vda,vda,virtio"


def test_type_is_everything_before_the_last_colon() -> None:
    spec = parse_disk_spec("tap:aio:/xen/disks/vm.hda,hda,ide", 10)
    assert (spec.vbd_type, spec.prefix, spec.name) == ("tap:aio", "/xen/disks", "vm.hda")
    assert spec.format() == "tap:aio:/xen/disks/vm.hda,hda,ide"


def test_phy_keeps_the_whole_path_as_name() -> None:
    spec = parse_disk_spec("phy:/dev/vg0/compute-0-0-0,vdb,virtio", 100)
    assert (spec.prefix, spec.name) == ("", "/dev/vg0/compute-0-0-0")
    assert spec.path == "/dev/vg0/compute-0-0-0"
    assert spec.format() == "phy:/dev/vg0/compute-0-0-0,vdb,virtio"


def test_legacy_w_mode_means_virtio() -> None:
    spec = parse_disk_spec("file:/state/partition1/xen/disks/a.hda,hda,w", 36)
    assert spec.bus == "virtio"
    assert spec.format() == "file:/state/partition1/xen/disks/a.hda,hda,virtio"


def test_case_is_normalised_except_in_the_path() -> None:
    spec = parse_disk_spec("QCOW2:/Data/VM.img,VDA,VirtIO", 5)
    assert spec.format() == "qcow2:/Data/VM.img,vda,virtio"


def test_file_at_root() -> None:
    spec = parse_disk_spec("raw:/disk.img,sda,sata", 1)
    assert (spec.prefix, spec.name, spec.path) == ("/", "disk.img", "/disk.img")
    assert spec.format() == "raw:/disk.img,sda,sata"


@pytest.mark.parametrize(
    "text",
    [
        "file:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio",
        "qcow2:/var/lib/flightdeck/disks/hosted-vm-0-1-0.vda,vdb,virtio",
        "qed:/a/b.qed,hdc,ide",
        "phy:/dev/sdb1,sdb,scsi",
        "phy:/dev/mapper/vg-lv,xvdaa,virtio",
        "raw:/srv/x.raw,sdz,sata",
        "tap:aio:/xen/disks/vm.hda,hda,ide",
    ],
)
def test_round_trip(text: str) -> None:
    spec = parse_disk_spec(text, 36)
    assert spec.format() == text
    assert parse_disk_spec(spec.format(), spec.size_gb) == spec


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("file:/a/b.img,vda", "it has 2 comma-separated fields, not 3"),
        ("file:/a/b.img,vda,virtio,extra", "it has 4 comma-separated fields, not 3"),
        ("/a/b.img,vda,virtio", "the first field has no '<type>:' before the path"),
        (
            "vmdk:/a/b.vmdk,vda,virtio",
            "type 'vmdk' is not one of file, qcow2, qed, phy, raw, tap:aio",
        ),
        ("tap:/a/b.img,vda,virtio", "type 'tap' is not one of"),
        (":/a/b.img,vda,virtio", "type '' is not one of"),
        ("file:a/b.img,vda,virtio", "path 'a/b.img' is not absolute"),
        ("file:,vda,virtio", "path '' is not absolute"),
        (
            "file:/a/../etc/shadow,vda,virtio",
            "path '/a/../etc/shadow' has an empty, '.' or '..' component or a trailing '/'",
        ),
        (
            "file:/a/b/,vda,virtio",
            "path '/a/b/' has an empty, '.' or '..' component or a trailing '/'",
        ),
        (
            "file:/a//b.img,vda,virtio",
            "path '/a//b.img' has an empty, '.' or '..' component or a trailing '/'",
        ),
        ("file:/,vda,virtio", "path '/' has an empty, '.' or '..' component or a trailing '/'"),
        ("file:/a b/c.img,vda,virtio", "the path contains white space or a control character"),
        ("file:/a/b.img,disk0,virtio", "device 'disk0' is not like vda, hda, sda or xvda"),
        ("file:/a/b.img,vdaaa,virtio", "device 'vdaaa' is not like"),
        ("file:/a/b.img,vd1,virtio", "device 'vd1' is not like"),
        ("file:/a/b.img,vda,usb", "bus 'usb' is not one of virtio, ide, scsi, sata"),
        ("file:/a/b.img,vda,", "bus '' is not one of"),
        ("", "it has 1 comma-separated fields, not 3"),
    ],
)
def test_malformed_specs(text: str, reason: str) -> None:
    with pytest.raises(UserError) as info:
        parse_disk_spec(text, 36)
    message = info.value.message
    assert message.startswith(f"invalid disk specification {text!r}: {reason}")
    assert message.endswith(f"; {EXPECTED}")


def test_exact_message_for_a_wrong_field_count() -> None:
    with pytest.raises(UserError) as info:
        parse_disk_spec("file:/a/b.img", 36)
    assert info.value.message == (
        "invalid disk specification 'file:/a/b.img': it has 1 comma-separated fields, not 3; "
        "expected <type>:<absolute path>,<device>,<bus> "
        "e.g. file:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio"
    )


@pytest.mark.parametrize("size", [0, -1, True])
def test_size_must_be_positive(size: int) -> None:
    with pytest.raises(UserError, match="expected a whole number of GB greater than 0"):
        parse_disk_spec("file:/a/b.img,vda,virtio", size)


def test_disk_list_with_sizes_and_defaults() -> None:
    disks = parse_disk_list(
        "qcow2:/d/vm.vda,vda,virtio  file:/d/vm.vdb,vdb,virtio phy:/dev/sdc,vdc,virtio", "100 20"
    )
    assert [(d.format(), d.size_gb) for d in disks] == [
        ("qcow2:/d/vm.vda,vda,virtio", 100),
        ("file:/d/vm.vdb,vdb,virtio", 20),
        ("phy:/dev/sdc,vdc,virtio", 36),
    ]


def test_disk_list_without_sizes_uses_the_default() -> None:
    disks = parse_disk_list("file:/d/a.img,vda,virtio", None, default_size_gb=8)
    assert [d.size_gb for d in disks] == [8]
    assert [d.size_gb for d in parse_disk_list("file:/d/a.img,vda,virtio", "")] == [36]


def test_disk_list_refusals() -> None:
    with pytest.raises(UserError, match="give at least one disk specification"):
        parse_disk_list("   ", None)
    with pytest.raises(UserError, match="2 sizes for 1 disks"):
        parse_disk_list("file:/d/a.img,vda,virtio", "10 20")
    with pytest.raises(UserError, match="invalid disksize '10G' for disk"):
        parse_disk_list("file:/d/a.img,vda,virtio", "10G")
    with pytest.raises(UserError, match="invalid disk size 0 GB"):
        parse_disk_list("file:/d/a.img,vda,virtio", "0")
    with pytest.raises(UserError, match="device vda is used twice"):
        parse_disk_list("file:/d/a.img,vda,virtio file:/d/b.img,vda,virtio", None)
    with pytest.raises(UserError, match=re.escape("/d/a.img is used twice")):
        parse_disk_list("file:/d/a.img,vda,virtio qcow2:/d/a.img,vdb,virtio", None)
    with pytest.raises(UserError, match=re.escape("invalid disk specification 'file:/d/a.img,'")):
        parse_disk_list("file:/d/a.img, vda,virtio", None)


def test_default_disk_qcow2() -> None:
    disk = default_disk("compute-0-0-0", "/var/lib/flightdeck/disks", 36)
    assert disk == DiskSpec(
        "qcow2", "/var/lib/flightdeck/disks", "compute-0-0-0.vda", "vda", "virtio", 36
    )
    assert disk.format() == "qcow2:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio"


def test_default_disk_raw_is_type_file_as_rocks() -> None:
    disk = default_disk("hosted-vm-0-1-0", "/state/partition1/kvm/disks/", 50, fmt="raw")
    assert disk.format() == "file:/state/partition1/kvm/disks/hosted-vm-0-1-0.vda,vda,virtio"
    assert disk.size_gb == 50


def test_default_disk_refusals() -> None:
    with pytest.raises(UserError, match="invalid disk format 'vmdk'"):
        default_disk("compute-0-0-0", "/d", 36, fmt="vmdk")
    with pytest.raises(UserError, match=re.escape("invalid host name '../etc'")):
        default_disk("../etc", "/d", 36)
    with pytest.raises(UserError, match="is not absolute"):
        default_disk("compute-0-0-0", "disks", 36)
    with pytest.raises(UserError, match="greater than 0"):
        default_disk("compute-0-0-0", "/d", 0)


_segment = st.from_regex(r"[A-Za-z0-9_.-]{1,12}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)


@given(
    st.sampled_from(["file", "qcow2", "qed", "phy", "raw", "tap:aio"]),
    st.lists(_segment, min_size=1, max_size=5),
    st.from_regex(r"(vd|hd|sd|xvd)[a-z]{1,2}", fullmatch=True),
    st.sampled_from(["virtio", "ide", "scsi", "sata"]),
    st.integers(min_value=1, max_value=100_000),
)
def test_property_round_trip(
    vbd_type: str, segments: list[str], device: str, bus: str, size: int
) -> None:
    text = f"{vbd_type}:/{'/'.join(segments)},{device},{bus}"
    spec = parse_disk_spec(text, size)
    assert spec.format() == text
    assert parse_disk_spec(spec.format(), size) == spec
    assert spec.path == "/" + "/".join(segments)
