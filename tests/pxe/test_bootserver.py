"""The boot server over real HTTP on loopback, answering from a real database.

The private network here is 127.0.0.0/8, so a client can speak from the node's own address
(127.0.0.5) or from another one (127.0.0.9) and the address check is exercised for real.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flightdeck.db.engine import open_database
from flightdeck.pxe.bootserver import BootServer
from flightdeck.services.provisioning import BootAnswers

NODE = "127.0.0.5"
MAC = "52:54:00:00:05:05"


@pytest.fixture
def site(rocks: Any, tmp_path: Path) -> Any:
    rocks.ok(
        "init", "frontend", "name=fe.example.org", "public-ip=192.0.2.10",
        "public-netmask=255.255.255.0", "private-ip=127.0.0.1", "private-netmask=255.0.0.0",
    )  # fmt: skip
    kernel, initrd = tmp_path / "vmlinuz", tmp_path / "initrd.gz"
    kernel.write_bytes(b"K" * 70000)
    initrd.write_bytes(b"I" * 1000)
    rocks.ok("set", "bootaction", "action=install", f"kernel={kernel}", f"ramdisk={initrd}",
             "args=console=ttyS0 fd.stamp=1")  # fmt: skip
    rocks.ok("add", "host", "compute-0-0", "membership=Compute")
    rocks.ok("add", "host", "interface", "compute-0-0", "eth0", f"mac={MAC}", f"ip={NODE}",
             "subnet=private")  # fmt: skip
    rocks.ok("set", "host", "boot", "compute-0-0", "action=install")
    return rocks


@pytest.fixture
def server(site: Any) -> Iterator[tuple[int, Any]]:
    db = open_database(site.url)
    srv = BootServer(("127.0.0.1", 0), BootAnswers(db), "")
    port = srv.server_address[1]
    srv.base_url = f"http://127.0.0.1:{port}"
    worker = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    worker.start()
    try:
        yield port, site
    finally:
        srv.shutdown()
        srv.server_close()
        worker.join()
        db.dispose()


def fetch(port: int, method: str, path: str, source: str = NODE, body: bytes | None = None
          ) -> tuple[int, bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def boot(rocks: Any) -> str:
    return rocks.ok("list", "host", "boot", "compute-0-0", "output-header=no").split()[-1]


def test_install_script_files_and_instructions(server: tuple[int, Any]) -> None:
    port, _ = server
    base = f"http://127.0.0.1:{port}"
    status, body = fetch(port, "GET", "/ipxe/52%3A54%3A00%3A00%3A05%3A05")  # as iPXE asks
    text = body.decode()
    assert status == 200 and text.startswith("#!ipxe\n# compute-0-0 (52:54:00:00:05:05)")
    kernel = next(ln for ln in text.splitlines() if ln.startswith("kernel "))
    action_id = kernel.split()[1].split("/")[-2]
    assert kernel.split()[1] == f"{base}/files/{action_id}/vmlinuz"
    assert f"fd.report={base}/install/{MAC}/done" in kernel
    assert fetch(port, "GET", f"/files/{action_id}/vmlinuz") == (200, b"K" * 70000)
    assert fetch(port, "GET", f"/files/{action_id}/initrd.gz") == (200, b"I" * 1000)
    assert fetch(port, "GET", "/files/9999/vmlinuz")[0] == 404
    assert fetch(port, "GET", f"/files/{action_id}/../../etc/passwd")[0] == 404
    status, body = fetch(port, "GET", f"/install/{MAC}")
    assert status == 200 and body.decode().startswith(f"host=compute-0-0\nmac={MAC}\nip={NODE}\n")
    unknown = fetch(port, "GET", "/ipxe/52:54:00:99:99:99")[1].decode()
    assert "52:54:00:99:99:99 is not in the database: run insert-ethers" in unknown
    assert unknown.endswith("exit\n")
    assert fetch(port, "GET", f"/install/{MAC}/done")[0] == 405


def test_completion_only_from_the_nodes_own_address(
    server: tuple[int, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    port, rocks = server
    status, body = fetch(port, "POST", f"/install/{MAC}/done", source="127.0.0.9", body=b"x")
    assert status == 403
    assert body.decode().strip() == (
        f"install report for compute-0-0 ({MAC}) came from 127.0.0.9, not from its address {NODE}"
    )
    assert boot(rocks) == "install"
    assert "127.0.0.9 POST /install/52:54:00:00:05:05/done 403 refused:" in capsys.readouterr().err
    assert fetch(port, "POST", f"/install/{MAC}/done", body=b"x" * 5000)[0] == 403
    assert fetch(port, "POST", "/install/52:54:00:99:99:99/done")[0] == 404
    assert boot(rocks) == "install"

    assert fetch(port, "POST", f"/install/{MAC}/done", body=b"host=compute-0-0") == (
        200, b"ok compute-0-0\n",
    )  # fmt: skip
    assert boot(rocks) == "os"
    status, body = fetch(port, "GET", f"/ipxe/{MAC}")
    assert body.decode().splitlines()[-1] == "exit"
    assert "boot action 'os' -> local disk" in body.decode()
