"""A virtual frontend's image install, on libvirt's test driver: what is refused, what is served.

The image itself is a stand-in here (a registered directory with a manifest and a file of the
size it names): what these tests check is the bookkeeping around it — the command line, the
identity snapshot, who may fetch what, completion — not the Debian system, which the end-to-end
test boots for real.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from flightdeck.db.engine import open_database
from flightdeck.errors import NotFound, PermissionDenied
from flightdeck.pxe import frontend_image as fim
from flightdeck.services import frontend_identity as vfid
from flightdeck.services import frontend_image as vfimg

FE = "frontend-0-0-0"
PUBLIC_MAC = "76:77:6e:40:00:01"
PUBLIC_IP = "137.110.119.118"
SHA = "ab" * 32


@pytest.fixture
def cluster(espresso: Any, tmp_path: Path) -> Any:
    rocks = espresso
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok(
        "add", "cluster", PUBLIC_IP, "1", "fe-fqdn=vi-1.rocksclusters.org", "disk-per-frontend=1",
        "disk-per-compute=1",
    )  # fmt: skip
    pub = tmp_path / "owner.pub"
    pub.write_text(rocks.ok("create", "keys", f"key={tmp_path / 'owner.key'}", "passphrase=no"))
    rocks.ok("add", "host", "key", FE, f"key={pub}")
    return rocks


def register_image(rocks: Any, tmp_path: Path) -> Path:
    """A stand-in image: the boot action filled in and a manifest naming a file of its size."""
    where = tmp_path / "image"
    where.mkdir()
    (where / "frontend-abababababababab.img.gz").write_bytes(b"x" * 10)
    (where / fim.MANIFEST).write_text(
        json.dumps(
            {
                "file": "frontend-abababababababab.img.gz",
                "sha256": SHA,
                "size": 10,
                "disk_bytes": 20,
                "flightdeck": "0",
                "kernel": "6.1",
                "built": "now",
            }
        )
    )
    for f in ("vmlinuz", "initrd.gz"):
        (tmp_path / f).write_bytes(b"k")
    rocks.ok(
        "set", "bootaction", "action=install vm frontend image", f"kernel={tmp_path / 'vmlinuz'}",
        f"ramdisk={tmp_path / 'initrd.gz'}", "args=console=ttyS0",
    )  # fmt: skip
    rocks.ok("set", "attr", vfid.IMAGE_ATTR, str(where))
    return where


def boot_of(rocks: Any, host: str) -> str:
    return str(
        json.loads(rocks.ok("list", "host", "boot", host, "output-format=json"))[0]["action"]
    )


def test_new_frontends_install_from_the_image(cluster: Any) -> None:
    rows = json.loads(cluster.ok("list", "host", FE, "output-format=json"))
    assert rows[0]["installaction"] == "install vm frontend image"
    assert boot_of(cluster, FE) == "install"


def test_without_an_image_the_start_names_the_command_and_changes_nothing(cluster: Any) -> None:
    r = cluster("start", "host", "vm", FE)
    assert r.code != 0
    assert "run rocks create frontend image" in r.err, r.err
    assert "Traceback" not in r.err
    assert boot_of(cluster, FE) == "install"
    cluster.refused("report", "host", "vm", "config", FE, says="rocks create frontend image")


def test_without_the_public_boot_server_the_start_says_so(cluster: Any, tmp_path: Path) -> None:
    register_image(cluster, tmp_path)
    r = cluster("start", "host", "vm", FE)
    assert r.code != 0
    assert f"public address {'137.110.119.117'}, which is not running" in r.err, r.err
    assert "rocks start service dhcp" in r.err
    assert boot_of(cluster, FE) == "install"


def test_the_command_line_carries_urls_and_checksums(cluster: Any, tmp_path: Path) -> None:
    register_image(cluster, tmp_path)
    xml = cluster.ok("report", "host", "vm", "config", FE)
    cmdline = xml.split("<cmdline>")[1].split("</cmdline>")[0].split()
    args = dict(a.split("=", 1) for a in cmdline if "=" in a)
    base = "http://137.110.119.117:8078"
    assert cmdline[0] == "console=ttyS0"
    assert args["fd.image"] == f"{base}/frontend/image/{SHA}"
    assert args["fd.image.sha256"] == SHA
    assert args["fd.identity"] == f"{base}/frontend/{PUBLIC_MAC}/identity"
    assert args["fd.net"] == f"{PUBLIC_MAC},{PUBLIC_IP}/24,137.110.119.1"
    assert args["fd.report"] == f"{base}/frontend/{PUBLIC_MAC}/done"
    db = open_database(cluster.url)
    try:
        with db.transaction() as s:
            from flightdeck.db.hostexpr import resolve_host

            host = resolve_host(s, FE)
            digest = vfid.snapshot_identity(s, host)
        assert args["fd.identity.sha256"] == digest
        snap = vfid.snapshot_path(PUBLIC_MAC)
        assert hashlib.sha256(snap.read_bytes()).hexdigest() == digest
        assert snap.stat().st_mode & 0o077 == 0  # root only: it names the owner's keys
        with tarfile.open(fileobj=io.BytesIO(snap.read_bytes())) as tf:
            env = tf.extractfile("etc/flightdeck/frontend.env")
            keys = tf.extractfile("root/.ssh/authorized_keys")
            assert env is not None and keys is not None
            assert "FD_FQDN=vi-1.rocksclusters.org" in env.read().decode()
            assert keys.read().decode().startswith("ssh-ed25519 AAAA")
    finally:
        db.dispose()


def test_identity_and_reports_only_from_the_vms_own_address(cluster: Any, tmp_path: Path) -> None:
    register_image(cluster, tmp_path)
    db = open_database(cluster.url)
    try:
        with db.transaction() as s:
            from flightdeck.db.hostexpr import resolve_host

            vfid.snapshot_identity(s, resolve_host(s, FE))
        with pytest.raises(PermissionDenied, match=r"came from 137\.110\.119\.66"):
            vfimg.identity_for(db, PUBLIC_MAC, "137.110.119.66")
        assert vfimg.identity_for(db, PUBLIC_MAC, PUBLIC_IP).startswith(b"etc/flightdeck")
        with pytest.raises(NotFound):
            vfimg.identity_for(db, "02:00:00:00:00:99", PUBLIC_IP)
        # A compute's MAC from its own address is still no frontend.
        macs = json.loads(cluster.ok("list", "host", "interface", "output-format=json"))
        compute = next(m for m in macs if m["host"].startswith("hosted-vm"))
        with pytest.raises(PermissionDenied):
            vfimg.identity_for(db, compute["mac"], compute["ip"] or "")
        with pytest.raises(PermissionDenied):
            vfimg.complete(db, PUBLIC_MAC, "10.1.255.1")
        assert boot_of(cluster, FE) == "install"
        assert vfimg.reporter(db, PUBLIC_MAC, PUBLIC_IP) == FE
        assert boot_of(cluster, FE) == "install"
        restarted: list[str] = []
        assert vfimg.complete(db, PUBLIC_MAC, PUBLIC_IP, restart=restarted.append) == FE
        assert restarted == [FE] and boot_of(cluster, FE) == "os"
        assert not vfid.snapshot_path(PUBLIC_MAC).exists()
        assert vfimg.image_file(db, SHA).name == "frontend-abababababababab.img.gz"
        with pytest.raises(NotFound, match="it was rebuilt"):
            vfimg.image_file(db, "cd" * 32)
    finally:
        db.dispose()


def test_fe_fqdn_is_checked_and_unique(espresso: Any) -> None:
    espresso.refused("add", "cluster", "137.110.119.118", "0", "fe-fqdn=vi_1.example.org",
                     says="is not a host name")  # fmt: skip
    espresso.ok("add", "cluster", "137.110.119.118", "0", "fe-fqdn=vi-1.example.org")
    espresso.refused("add", "cluster", "137.110.119.119", "0", "fe-fqdn=VI-1.example.org",
                     says="already the name of a host")  # fmt: skip
