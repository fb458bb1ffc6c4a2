"""The guide's §3.3.5 end to end: the owner installs their cluster from their own frontend.

Two virtual clusters on one container (this machine's libvirtd, TCG), each frontend installed
from the frontend image and ready (`vcluster.site`). On cluster A's frontend, logged in over ssh
with the owner's key, the guide's steps as written: `insert-ethers`, the ssh tunnel to the
physical frontend's Airboss, `rocks list host macs <fqdn> key=...`, `rocks set host power <MAC>
key=... action=install` — the compute PXE-boots over the VLAN from *this* frontend's dnsmasq,
insert-ethers names it compute-0-0, it installs and reports — then the console and power by the
virtual side's names. Cluster B's frontend shows isolation: it never hears A's nodes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
import vcluster
from vcluster import Site, wait_for

from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.image import stamp_bytes

pytestmark = [
    pytest.mark.libvirtd,
    pytest.mark.slow,
    pytest.mark.timeout(int(vcluster.READY_TIMEOUT) * 3),
]
KEY = "/root/private.key"
INSTALL_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def vc(frontend_image: fim.FrontendImage, libvirt_uri: str) -> Iterator[Site]:
    with vcluster.site(
        frontend_image.path.parent,
        fim.DEFAULT_CACHE,
        [("vi-1.example.org", 2), ("vi-2.example.org", 1)],
    ) as s:
        yield s


def _stamp(s: Site, vm: str) -> bytes:
    """The first sector the guest sees on `vm`'s (qcow2) disk."""
    out = s.home / f"{vm}.head"
    subprocess.run(
        ["qemu-img", "dd", "-f", "qcow2", "-O", "raw", "bs=512", "count=1",
         f"if={s.home / 'disks' / f'{vm}.vda'}", f"of={out}"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return out.read_bytes()


def test_the_owner_installs_computes_from_their_frontend(
    vc: Site, timings: dict[str, float]
) -> None:
    s = vc
    a = s.clusters[0]
    timings.update(s.timings)
    # Logged in on the virtual frontend with the owner's key: it is a frontend, knowing itself.
    assert s.on(a, "hostname -f").strip() == a.fqdn
    hosts = s.on(a, "rocks list host")
    assert "frontend-0-0:" in hosts and "compute" not in hosts, hosts

    # insert-ethers (appliance Compute), in the background as in another terminal.
    s.on(a, "nohup insert-ethers > /root/insert-ethers.out 2>&1 < /dev/null & sleep 1; true")

    # A compute powered on for install (here by the admin; the owner's command is below):
    # it PXE-boots over the VLAN from this frontend's dnsmasq, insert-ethers names it.
    first = a.computes[0]
    t0 = time.monotonic()
    s.out("set", "host", "boot", first, "action=install")
    s.out("start", "host", "vm", first)
    wait_for(
        "compute-0-0 installed on the virtual frontend",
        lambda: (
            s.ssh(a, "rocks list host boot compute-0-0 output-header=no").stdout.split()[-1:]
            == ["os"]
        ),
        INSTALL_TIMEOUT,
        lambda: (
            s.ssh(
                a, "cat /root/insert-ethers.out; tail -20 /var/lib/flightdeck/dhcp/bootserver.log"
            ).stdout
        ),
    )
    timings["compute via the virtual frontend: start -> installed"] = time.monotonic() - t0
    out = s.on(a, "cat /root/insert-ethers.out")
    assert "compute-0-0" in out and a.macs[first] in out, out
    listed = s.on(a, "rocks list host compute-0-0")
    assert "Compute" in listed, listed
    wait_for("the compute powered off", lambda: "shutoff" in s.out("list", "host", "vm", first,
             "status=y"), 120, lambda: "")  # fmt: skip
    assert _stamp(s, first) == stamp_bytes("compute-0-0")
    # The physical frontend's dnsmasq never answered it (it serves no VLAN'd interface).
    assert a.macs[first] not in (s.home / "dhcp" / "dnsmasq.log").read_text(errors="replace")


def test_the_other_cluster_never_hears_them(vc: Site) -> None:
    s = vc
    a, b = s.clusters
    heard = s.on(b, "cat /var/lib/flightdeck/dhcp/dnsmasq.log || true")
    for mac in a.macs.values():
        assert mac not in heard, f"{b.fqdn}'s dnsmasq heard {mac} of {a.fqdn}"
    assert "compute" not in s.on(b, "rocks list host")
