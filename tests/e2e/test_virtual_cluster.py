"""The guide's §3.3.5 end to end: the owner installs their cluster from their own frontend.

Two virtual clusters on one container (this machine's libvirtd, TCG), each frontend installed
from the frontend image and ready (`vcluster.site`). Logged in to cluster A's frontend over ssh
with the owner's key, the guide's steps as written (with our names): `insert-ethers`, the ssh
tunnel to the physical frontend's Airboss, `rocks list host macs vi-1.example.org
key=private.key`, `rocks set host power <MAC> key=private.key action=install` — the compute
PXE-boots over the VLAN from *this* frontend's dnsmasq, insert-ethers names it compute-0-0, it
installs and reports here — then its console and power by the virtual side's names, and `rocks
set cluster power`. Cluster B reaches the Airboss over TLS instead (the site CA in its
identity, no tunnel), installs its own compute, and never hears cluster A's nodes.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator

import pytest

import vcluster
from flightdeck.pxe import frontend_image as fim
from flightdeck.pxe.image import MARKER_BOOTED, stamp_bytes
from vcluster import Cluster, Site, wait_for

pytestmark = [
    pytest.mark.libvirtd,
    pytest.mark.slow,
    pytest.mark.timeout(int(vcluster.READY_TIMEOUT) * 3),
]
KEY = "/root/private.key"
INSTALL_TIMEOUT = 600.0
MAC_RE = re.compile(r"^(?:[0-9a-f]{2}:){5}[0-9a-f]{2}$")


@pytest.fixture(scope="module")
def vc(frontend_image: fim.FrontendImage, libvirt_uri: str) -> Iterator[Site]:
    shapes = [("vi-1.example.org", 2), ("vi-2.example.org", 1)]
    with vcluster.site(
        frontend_image.path.parent, fim.DEFAULT_CACHE, shapes, tls=frozenset({1})
    ) as s:
        for c in s.clusters:  # the owner puts their private key on their frontend (§3.3.5)
            got = s.ssh(c, f"umask 077; cat > {KEY}", stdin=c.key.read_text())
            assert got.returncode == 0, got.stderr
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


def _boot(s: Site, c: Cluster, host: str) -> str:
    words = s.ssh(c, f"rocks list host boot {host} output-header=no").stdout.split()
    return words[-1] if words else ""


def _explain(s: Site, c: Cluster) -> str:
    return s.ssh(
        c,
        "cat /root/insert-ethers.out; tail -n 30 /var/lib/flightdeck/dhcp/bootserver.log; "
        "rocks list host",
    ).stdout


def _named(s: Site, c: Cluster) -> dict[str, str]:
    """MAC -> name, as this frontend's database knows its computes."""
    out = s.on(c, "rocks list host interface output-header=no output-col=host,mac")
    found = {}
    for line in out.splitlines():
        words = line.replace(":", " ", 1).split()
        if len(words) >= 2 and words[0].startswith("compute-") and MAC_RE.match(words[1]):
            found[words[1]] = words[0]
    return found


def test_the_owner_installs_computes_from_their_frontend(
    vc: Site, timings: dict[str, float]
) -> None:
    s = vc
    a = s.clusters[0]
    timings.update(s.timings)
    # 0. Logged in with the owner's key: a frontend that knows only itself.
    assert s.on(a, "hostname -f").strip() == a.fqdn
    hosts = s.on(a, "rocks list host")
    assert "frontend-0-0:" in hosts and "compute" not in hosts, hosts

    # 1. insert-ethers (appliance Compute), as in another terminal.
    s.on(a, "nohup insert-ethers > /root/insert-ethers.out 2>&1 < /dev/null & sleep 1; true")

    # 2. The guide's tunnel to the physical frontend's Airboss, typed as in the guide.
    s.on(a, f"ssh -f -N -L 8677:localhost:8677 {vcluster.PHYSICAL}")

    # 3. The cluster's MACs, asked by the frontend's own FQDN.
    out = s.on(a, f"rocks list host macs {a.fqdn} key={KEY}")
    assert out.splitlines()[0].split() == ["MACS", "IN", "CLUSTER"], out
    listed = [ln.strip() for ln in out.splitlines()[1:] if ln.strip()]
    assert all(MAC_RE.match(m) for m in listed) and set(a.macs.values()) <= set(listed), out
    assert len(listed) == 3  # the frontend's own MAC on the VLAN, and the two computes

    # 4. Install both computes by MAC: PXE over the VLAN from this frontend, named here.
    t0 = time.monotonic()
    macs = " ".join(a.macs.values())
    s.on(a, f"rocks set host power {macs} key={KEY} action=install")
    wait_for(
        "both computes named and installed on the virtual frontend",
        lambda: (
            set(_named(s, a)) == set(a.macs.values())
            and all(_boot(s, a, n) == "os" for n in _named(s, a).values())
        ),
        INSTALL_TIMEOUT,
        lambda: _explain(s, a),
    )
    timings["2 computes via the virtual frontend: power install -> installed"] = (
        time.monotonic() - t0
    )
    named = _named(s, a)
    assert sorted(named.values()) == ["compute-0-0", "compute-0-1"], named
    listed_hosts = s.on(a, "rocks list host")
    for name in named.values():
        assert re.search(rf"^{name}:.*Compute", listed_hosts, re.M), listed_hosts
    for vm, mac in a.macs.items():
        wait_for(f"{vm} powered off after its install",
                 lambda vm=vm: "shutoff" in s.out("list", "host", "vm", vm, "status=y"),
                 120, lambda: "")  # fmt: skip
        assert _stamp(s, vm) == stamp_bytes(named[mac])  # the installer wrote its stamp
        # The physical frontend's dnsmasq never answered it.
        assert mac not in (s.home / "dhcp" / "dnsmasq.log").read_text(errors="replace")
    audit = s.on(a, "cat /var/lib/flightdeck/dhcp/insert-ethers.log")
    assert "compute-0-0" in audit and "compute-0-1" in audit, audit

    # 5. The console of compute-0-0, a name of the virtual side, while it reinstalls.
    s.on(a, f"rocks set host power compute-0-0 key={KEY} action=install")
    got = s.ssh(a, f"timeout 120 rocks open host console compute-0-0 key={KEY} console=serial "
                "</dev/null | grep -a -m1 FLIGHTDECK-BOOTED", timeout=200)  # fmt: skip
    assert f"{MARKER_BOOTED} host=compute-0-0" in got.stdout, got.stderr

    # 6. Power by name, and the whole cluster, from the virtual frontend.
    first = next(vm for vm, mac in a.macs.items() if named[mac] == "compute-0-0")
    wait_for("compute-0-0 reinstalled", lambda: _boot(s, a, "compute-0-0") == "os",
             INSTALL_TIMEOUT, lambda: _explain(s, a))  # fmt: skip
    s.on(a, f"rocks set cluster power {a.fqdn} key={KEY} action=on")
    states = s.out("list", "host", "vm", *a.computes, "status=y")
    assert states.count("active") == 2, states
    s.on(a, f"rocks set host power compute-0-0 key={KEY} action=off")
    assert "shutoff" in s.out("list", "host", "vm", first, "status=y") or "nostate" in s.out(
        "list", "host", "vm", first, "status=y"
    )
    s.on(a, f"rocks set cluster power {a.fqdn} key={KEY} action=off")
    states = s.out("list", "host", "vm", *a.computes, "status=y")
    assert "active" not in states, states


def test_the_other_cluster_uses_tls_and_never_hears_them(vc: Site) -> None:
    s = vc
    a, b = s.clusters
    # Its identity named the Airboss over TLS and carried the site CA: no tunnel, no airboss=.
    assert "FLIGHTDECK_AIRBOSS=https://192.0.2.10:8677" in s.on(b, "cat /etc/flightdeck/client.env")
    out = s.on(b, f"rocks list host macs {b.fqdn} key={KEY}")
    assert next(iter(b.macs.values())) in out, out
    # A's key is not B's: refused, by the physical Airboss.
    refused = s.ssh(b, f"rocks list host macs {a.fqdn} key={KEY}")
    assert refused.returncode != 0 and "not a VM your key may control" in refused.stderr
    s.on(b, "nohup insert-ethers > /root/insert-ethers.out 2>&1 < /dev/null & sleep 1; true")
    (mac,) = b.macs.values()
    s.on(b, f"rocks set host power {mac} key={KEY} action=install")
    wait_for("B's compute installed on B", lambda: _boot(s, b, "compute-0-0") == "os",
             INSTALL_TIMEOUT, lambda: _explain(s, b))  # fmt: skip
    # B's dnsmasq heard only B's node; A's frontend never heard B's.
    heard_b = s.on(b, "cat /var/lib/flightdeck/dhcp/dnsmasq.log")
    for other in a.macs.values():
        assert other not in heard_b, f"{b.fqdn} heard {other} of {a.fqdn}"
    assert mac not in s.on(a, "cat /var/lib/flightdeck/dhcp/dnsmasq.log")
    assert "compute-0-0" in s.on(b, "rocks list host") and "compute-0-1" not in s.on(
        b, "rocks list host"
    )


def test_a_compute_cannot_complete_another_nodes_install(vc: Site) -> None:
    """A node of cluster A speaking from compute-0-1's address reports compute-0-0's install:
    its frontend's boot server refuses (the report must come from the node's own address)."""
    s = vc
    a = s.clusters[0]
    named = {v: k for k, v in _named(s, a).items()}
    s.on(a, "rocks set host boot compute-0-0 action=install")
    ip1 = s.on(a, "rocks list host interface compute-0-1 output-header=no output-col=ip").split()[0]
    ns, veth = f"fdx-{s.tok}", f"fdx{s.tok}v"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        vlan_br = f"vlan{a.vlan}"
        subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                        "netns", ns], check=True)  # fmt: skip
        subprocess.run(["ip", "link", "set", veth, "master", vlan_br, "up"], check=True)
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{ip1}/16", "dev", "eth0"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        code = (
            "import urllib.request,urllib.error\n"
            f"r=urllib.request.Request('http://10.1.1.1:8078/install/{named['compute-0-0']}/done',"
            "data=b'host=compute-0-0',method='POST')\n"
            "try:\n    print(urllib.request.urlopen(r,timeout=20).status)\n"
            "except urllib.error.HTTPError as e:\n    print(e.code)\n"
        )
        got = subprocess.run(["ip", "netns", "exec", ns, "python3", "-c", code],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
        assert got.stdout.strip() == "403", got.stdout + got.stderr
        assert _boot(s, a, "compute-0-0") == "install"
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        s.ssh(a, "rocks set host boot compute-0-0 action=os")
