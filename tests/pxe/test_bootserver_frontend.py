"""The boot server's public listener: a virtual frontend's image install over real HTTP.

The public network here is 127.0.0.0/8, so the virtual frontend's own address (127.0.0.20) and
a stranger's (127.0.0.9) are both real sources on loopback. The database is real; the image is
a stand-in file of the size its manifest names (the installer's checksum is the end-to-end
test's business). The frontend's container is libvirt's test driver, so the restart after a
completed install really happens there.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("libvirt")

from flightdeck.db.engine import open_database
from flightdeck.db.hostexpr import resolve_host
from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.bootserver import PUBLIC_ROUTES, BootServer
from flightdeck.services import frontend_identity as vfid
from flightdeck.services.provisioning import BootAnswers
from flightdeck.virt import hypervisor as hv

VF_IP = "127.0.0.20"
STRANGER = "127.0.0.9"
FE = "frontend-0-0-0"
IMAGE = b"the frontend image, gzip'd" * 100
SHA = hashlib.sha256(IMAGE).hexdigest()


@pytest.fixture
def site(rocks: Any, tmp_path: Path) -> Any:
    rocks.ok(
        "init", "frontend", "name=fe.example.org", "public-ip=127.0.0.10",
        "public-netmask=255.0.0.0", "private-ip=10.1.1.1", "private-netmask=255.255.0.0",
        "gateway=127.0.0.1",
    )  # fmt: skip
    node = tmp_path / "fe-node.xml"
    node.write_text("<node/>\n")
    rocks.ok("set", "host", "attr", "frontend-0-0", "libvirt_uri", f"test://{node}")
    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok("add", "cluster", VF_IP, "0", "fe-fqdn=vi-1.example.org", "disk-per-frontend=1")
    where = tmp_path / "image"
    where.mkdir()
    name = f"frontend-{SHA[:16]}.img.gz"
    (where / name).write_bytes(IMAGE)
    manifest = {
        "file": name, "sha256": SHA, "size": len(IMAGE), "disk_bytes": 1, "flightdeck": "0",
        "kernel": "6.1", "built": "now",
    }  # fmt: skip
    (where / fim.MANIFEST).write_text(json.dumps(manifest))
    rocks.ok("set", "attr", vfid.IMAGE_ATTR, str(where))
    return rocks


@pytest.fixture
def public(site: Any) -> Iterator[tuple[int, Any, Any]]:
    """The public listener (only the image routes) on loopback; yields (port, rocks, db)."""
    db = open_database(site.url)
    srv = BootServer(("127.0.0.1", 0), BootAnswers(db), "", routes=PUBLIC_ROUTES)
    worker = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    worker.start()
    try:
        yield srv.server_address[1], site, db
    finally:
        srv.shutdown()
        srv.server_close()
        worker.join()
        db.dispose()


def fetch(port: int, method: str, path: str, source: str, body: bytes | None = None
          ) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def public_mac(rocks: Any) -> str:
    rows = json.loads(rocks.ok("list", "host", "interface", FE, "output-format=json"))
    return str(next(r["mac"] for r in rows if r["ip"] == VF_IP))


def test_the_public_listener_serves_the_image_install_and_nothing_else(
    public: tuple[int, Any, Any],
) -> None:
    port, rocks, _db = public
    mac = public_mac(rocks)
    assert fetch(port, "GET", f"/frontend/image/{SHA}", STRANGER) == (200, IMAGE)
    assert fetch(port, "GET", f"/frontend/image/{'0' * 64}", VF_IP)[0] == 404
    assert fetch(port, "GET", "/frontend/image/../../etc/passwd", VF_IP)[0] == 404
    # The private routes are not there at all on the public side.
    assert fetch(port, "GET", f"/ipxe/{mac}", VF_IP)[0] == 404
    assert fetch(port, "GET", f"/install/{mac}", VF_IP)[0] == 404
    assert fetch(port, "POST", f"/install/{mac}/done", VF_IP, b"host=x")[0] == 404


def test_identity_and_reports_only_from_the_vms_address(public: tuple[int, Any, Any]) -> None:
    port, rocks, db = public
    mac = public_mac(rocks)
    with db.transaction() as s:
        digest = vfid.snapshot_identity(s, resolve_host(s, FE))
    assert fetch(port, "GET", f"/frontend/{mac}/identity", STRANGER)[0] == 403
    status, tar = fetch(port, "GET", f"/frontend/{mac}/identity", VF_IP)
    assert status == 200 and hashlib.sha256(tar).hexdigest() == digest
    # A stranger's report is refused before its body is read, and changes nothing.
    assert fetch(port, "POST", f"/frontend/{mac}/done", STRANGER, b"x" * 100)[0] == 403
    assert fetch(port, "POST", f"/frontend/{mac}/failed", STRANGER, b"reason=x")[0] == 403
    assert fetch(port, "POST", f"/frontend/{mac}/done", VF_IP, b"x" * 5000)[0] == 413
    boot = rocks.ok("list", "host", "boot", FE, "output-header=no").split()[-1]
    assert boot == "install"
    status, body = fetch(port, "POST", f"/frontend/{mac}/failed", VF_IP, b"reason=checksum")
    assert (status, body) == (200, f"noted {FE}\n".encode())
    assert rocks.ok("list", "host", "boot", FE, "output-header=no").split()[-1] == "install"


def test_completion_sets_os_and_starts_the_vm_from_its_disk(
    public: tuple[int, Any, Any],
) -> None:
    port, rocks, _db = public
    mac = public_mac(rocks)
    status, body = fetch(port, "POST", f"/frontend/{mac}/done", VF_IP, f"image={SHA}".encode())
    assert (status, body) == (200, f"ok {FE}\n".encode())
    assert rocks.ok("list", "host", "boot", FE, "output-header=no").split()[-1] == "os"
    # The domain was never started here (the installer "powered off"): the boot server starts
    # it, now booting its disk, not the installer.
    uri = rocks.ok("list", "host", "attr", "frontend-0-0", "attr=libvirt_uri",
                   "output-col=value", "output-header=no").strip()  # fmt: skip
    conn = hv.connect("frontend-0-0", uri)
    deadline = time.monotonic() + 30
    while conn.state(FE) != "active":
        assert time.monotonic() < deadline, "the installed frontend was not started"
        time.sleep(0.2)
    assert "<kernel>" not in conn.xml(FE)
