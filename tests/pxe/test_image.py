"""The installer image builder: the pieces that need no download, and one real build (slow).

The pieces are checked on their own (the /init text, the module order, the newc archive, the
apt-cache parsing) because a broken image only shows up as a VM that never prints its marker,
which is slow and vague to debug; the real build proves the pieces fit Debian's packages.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from flightdeck.errors import DriverError
from flightdeck.pxe import image as im

#: The order in shared/reference/ci-vm-recipe.sh, which is known to boot.
RECIPE_ORDER = [
    "virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
    "virtio_blk", "failover", "net_failover", "virtio_net",
]  # fmt: skip
#: depends= of those modules in Debian's 6.1 cloud kernel.
DEBIAN_61_DEPENDS: dict[str, list[str]] = {
    "virtio_ring": [],
    "virtio": ["virtio_ring"],
    "virtio_pci_modern_dev": [],
    "virtio_pci_legacy_dev": [],
    "virtio_pci": ["virtio_ring", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio"],
    "virtio_blk": ["virtio", "virtio_ring"],
    "failover": [],
    "net_failover": ["failover"],
    "virtio_net": ["virtio_ring", "virtio", "net_failover"],
}


def unpack_newc(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) of a newc archive (a reader independent of the writer)."""
    out: dict[str, tuple[int, bytes]] = {}
    pos = 0
    while True:
        assert data[pos : pos + 6] == b"070701", f"bad magic at {pos}"
        fields = [int(data[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name_start = pos + 110
        name = data[name_start : name_start + namesize - 1].decode()
        body = (name_start + namesize + 3) & ~3
        out[name] = (mode, data[body : body + size])
        pos = (body + size + 3) & ~3
        if name == "TRAILER!!!":
            return out


# /init --------------------------------------------------------------------------------------


def test_init_mounts_loads_modules_in_order_and_powers_off() -> None:
    text = im.init_script(RECIPE_ORDER)
    assert text.startswith("#!/bin/sh\n")
    for fs in ("proc proc /proc", "sysfs sysfs /sys", "devtmpfs devtmpfs /dev"):
        assert f"mount -t {fs}" in text
    assert f"for m in {' '.join(RECIPE_ORDER)}; do" in text
    assert 'insmod "/lib/modules/$m.ko"' in text
    assert text.index("insmod") < text.index("FLIGHTDECK-BOOTED") < text.index("poweroff -f")
    assert text.rstrip().endswith("poweroff -f")


def test_init_marker_names_the_host_from_the_command_line() -> None:
    text = im.init_script(["virtio"])
    assert 'fd.host=*) host="${arg#fd.host=}"' in text
    assert "echo \"FLIGHTDECK-BOOTED host=$host uptime=$(cut -d' ' -f1 /proc/uptime)\"" in text


def test_init_stamps_the_disk_only_when_asked() -> None:
    text = im.init_script(["virtio"])
    assert "fd.stamp=1) stamp=1" in text
    stamp = text[text.index('if [ "$stamp" = 1 ]') :]
    assert "dd if=/dev/zero of=/tmp/stamp bs=512 count=1" in stamp
    assert "printf 'FLIGHTDECK-STAMP %s\\n' \"$host\"" in stamp
    assert "of=/dev/vda bs=512 count=1 conv=fsync" in stamp
    assert 'echo "FLIGHTDECK-STAMPED"' in stamp


@pytest.mark.skipif(shutil.which("sh") is None, reason="no /bin/sh to check the syntax with")
def test_init_is_valid_shell() -> None:
    subprocess.run(["sh", "-n"], input=im.init_script(RECIPE_ORDER), text=True, check=True)


def test_init_behaves_on_a_fake_command_line(tmp_path: Path) -> None:
    """Run /init's argument parsing and marker line with harmless stand-ins for the rest."""
    text = im.init_script(["virtio"])
    body = text[text.index("host=unknown") : text.index('if [ "$stamp" = 1 ]')]
    body = body.replace("/proc/cmdline", str(tmp_path / "cmdline"))
    body = body.replace("/proc/uptime", str(tmp_path / "uptime"))
    (tmp_path / "cmdline").write_text("console=ttyS0 fd.host=frontend-0-0-0 fd.stamp=1 quiet\n")
    (tmp_path / "uptime").write_text("3.21 1.00\n")
    out = subprocess.run(
        ["sh", "-c", body + 'echo "stamp=$stamp"'], capture_output=True, text=True, check=True
    ).stdout
    assert out == "FLIGHTDECK-BOOTED host=frontend-0-0-0 uptime=3.21\nstamp=1\n"


def test_stamp_bytes_are_one_sector() -> None:
    data = im.stamp_bytes("compute-0-0-0")
    assert len(data) == 512
    assert data.startswith(b"FLIGHTDECK-STAMP compute-0-0-0\n\0")
    assert data.rstrip(b"\0") == b"FLIGHTDECK-STAMP compute-0-0-0\n"


# Modules ------------------------------------------------------------------------------------


def test_module_order_puts_dependencies_first_as_the_recipe() -> None:
    order = im.module_order(im.MODULE_ROOTS, DEBIAN_61_DEPENDS)
    assert sorted(order) == sorted(RECIPE_ORDER)
    for name, deps in DEBIAN_61_DEPENDS.items():
        for dep in deps:
            assert order.index(dep) < order.index(name), f"{dep} must load before {name}"
    assert order[-1] == "virtio_net"


def test_module_order_refuses_cycles_and_missing_modules() -> None:
    with pytest.raises(DriverError, match="circle: a -> b -> a"):
        im.module_order(["a"], {"a": ["b"], "b": ["a"]})
    with pytest.raises(DriverError, match="no module virtio_blk"):
        im.module_order(["virtio_blk"], {})


def test_modinfo_depends_is_read_from_the_modinfo_strings() -> None:
    blob = b"\x7fELF...\x00license=GPL\x00depends=virtio,virtio_ring\x00vermagic=6.1\x00"
    assert im.modinfo_depends(blob) == ["virtio", "virtio_ring"]
    assert im.modinfo_depends(b"\x00depends=\x00name=failover\x00") == []
    assert im.modinfo_depends(b"\x00softdepends=x\x00") == []


def test_module_names_normalise_dashes_and_compression() -> None:
    assert im.module_name("virtio-net.ko") == "virtio_net"
    assert im.module_name("virtio_blk.ko.xz") == "virtio_blk"


def test_modules_are_resolved_from_a_kernel_tree(tmp_path: Path) -> None:
    kernel = tmp_path / "kernel" / "drivers"
    kernel.mkdir(parents=True)
    for name, deps in DEBIAN_61_DEPENDS.items():
        (kernel / f"{name}.ko").write_bytes(b"\x00depends=" + ",".join(deps).encode() + b"\x00")
    (tmp_path / "modules.builtin").write_text("kernel/net/core/failover.ko\n")
    (kernel / "failover.ko").unlink()
    got = [name for name, _ in im._Modules.scan(tmp_path).resolve(im.MODULE_ROOTS)]
    assert "failover" not in got  # built in: nothing to load
    assert got == [m for m in im.module_order(im.MODULE_ROOTS, DEBIAN_61_DEPENDS) if m in got]


# The archive --------------------------------------------------------------------------------


def test_initramfs_holds_busybox_links_modules_console_and_init() -> None:
    modules = [("virtio", b"V" * 5), ("virtio_blk", b"B" * 7)]
    archive = gzip.decompress(im.initramfs(b"BUSYBOX", ["sh", "dd", "busybox"], modules))
    files = unpack_newc(archive)
    assert files["bin/busybox"] == (0o100755, b"BUSYBOX")
    assert files["bin/sh"] == (0o120777, b"busybox")
    assert "bin/busybox" in files and files["bin/dd"][1] == b"busybox"
    assert files["lib/modules/virtio_blk.ko"][1] == b"B" * 7
    assert files["dev/console"][0] == 0o020600
    mode, init = files["init"]
    assert mode == 0o100755
    assert b"for m in virtio virtio_blk; do" in init
    for d in ("proc", "sys", "dev", "tmp"):
        assert files[d][0] == 0o040755


def test_initramfs_is_reproducible() -> None:
    args = (b"BB", ["sh"], [("virtio", b"x")])
    assert im.initramfs(*args) == im.initramfs(*args)


# apt -----------------------------------------------------------------------------------------

APT_SHOW = """Package: linux-image-cloud-amd64
Version: 6.1.192-2
Architecture: amd64
Depends: linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)
Description: Linux for x86-64 cloud (meta-package)
 This package depends on the latest Linux kernel.

Package: busybox-static
Version: 1:1.35.0-4+deb12u1+b1
Architecture: amd64
"""


def test_apt_cache_show_is_parsed() -> None:
    stanzas = im.parse_stanzas(APT_SHOW)
    assert [s["Package"] for s in stanzas] == ["linux-image-cloud-amd64", "busybox-static"]
    assert stanzas[0]["Description"].endswith("\nThis package depends on the latest Linux kernel.")
    assert im.kernel_dependency(stanzas[0]) == ("linux-image-6.1.0-56-cloud-amd64", "6.1.192-2")
    assert im.kernel_dependency({"Depends": "linux-image-6.12.9-cloud-amd64"}) == (
        "linux-image-6.12.9-cloud-amd64",
        None,
    )
    with pytest.raises(DriverError, match="apt-get update"):
        im.kernel_dependency({"Package": "x", "Depends": "initramfs-tools"})


def test_deb_names_are_those_apt_get_download_writes() -> None:
    bb = im.Package("busybox-static", "1:1.35.0-4+deb12u1+b1", "amd64")
    assert bb.deb_name == "busybox-static_1%3a1.35.0-4+deb12u1+b1_amd64.deb"


def test_a_failing_tool_names_the_step_and_the_fix() -> None:
    with pytest.raises(DriverError) as err:
        im._run(
            "apt-get download",
            ["sh", "-c", "echo 'E: Unable to locate x' >&2; exit 100"],
            "run apt-get update",
        )
    assert (
        err.value.message == "apt-get download failed (E: Unable to locate x): run apt-get update"
    )
    with pytest.raises(DriverError, match="no-such-tool is not installed; install it"):
        im._run("building", ["no-such-tool"], "install it")


def test_default_destination_follows_flightdeck_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    assert im.default_dest() == tmp_path / "images" / "installer"


# The real thing -----------------------------------------------------------------------------


@pytest.mark.slow
def test_build_the_real_image_then_reuse_it(tmp_path: Path) -> None:
    """apt-get download + dpkg-deb + initramfs; the cache is shared with the e2e tests."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb (Debian)")
    t0 = time.monotonic()
    first = im.build_image(tmp_path / "img", im.DEFAULT_CACHE)
    cold = time.monotonic() - t0
    assert first.rebuilt
    assert first.kernel == tmp_path / "img" / "vmlinuz" and first.kernel.stat().st_size > 1 << 20
    assert first.version.endswith("-cloud-amd64")
    assert first.kernel.read_bytes()[0x202:0x206] == b"HdrS"  # a bzImage
    files = unpack_newc(gzip.decompress(first.initrd.read_bytes()))
    loaded = [
        n.removeprefix("lib/modules/").removesuffix(".ko") for n in files if n.endswith(".ko")
    ]
    assert set(loaded) >= {"virtio_pci", "virtio_blk", "virtio_net"}
    assert files["lib/modules/virtio_blk.ko"][1].startswith(b"\x7fELF")
    assert b"for m in " + " ".join(loaded).encode() + b"; do" in files["init"][1]
    assert files["bin/busybox"][1].startswith(b"\x7fELF")

    t0 = time.monotonic()
    again = im.build_image(tmp_path / "img", im.DEFAULT_CACHE)
    warm = time.monotonic() - t0
    assert not again.rebuilt and again.kernel == first.kernel and again.version == first.version
    assert warm < 1.0, f"reusing an up-to-date image took {warm:.2f} s (cold: {cold:.2f} s)"

    (tmp_path / "img" / "initrd.gz").write_bytes(b"damaged")
    assert im.build_image(tmp_path / "img", im.DEFAULT_CACHE).rebuilt
