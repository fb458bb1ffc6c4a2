"""The container network end to end: VMs on the Rocks scheme, on a libvirtd inside the lab.

The lab (tests/e2e/lab.py) is a network namespace that plays vm-container-0-0, with its own
libvirtd (a second daemon in a private mount namespace: the suite's qemu:///system is left
alone), and a second namespace, the "switch", where the frontend's side of the wire and a
dnsmasq (DHCP only) live. The container's NIC is a veth (this kernel has no `dummy`) with the
MAC of its database row; `rocks sync host network apply=yes local=yes netns=<lab>` turns it
into the Rocks scheme: `peth0`, a port of the bridge `eth0` that carries 10.1.255.254/16.

Two VMs are defined and started through `rocks`, with the container's libvirt URI pointing at
the lab's daemon (`qemu+unix:///system?socket=...`):

- a bridged VM on the private network: `<interface type='bridge'>` on the lab's `eth0`;
- a VLAN VM (VLAN 7, the default `kvm_vlan_mode=macvtap`): `<interface type='direct'>` on
  `peth0.7`.

Both boot from the network (`<boot dev='network'/>`, the designer's order), so each NIC's iPXE
ROM does DHCP by itself, no guest OS needed; the test waits for a lease of each MAC in
dnsmasq's lease file, and checks in its log on which segment each was served.

This kernel has no 802.1Q (`CONFIG_VLAN_8021Q` unset): `peth0.7` cannot be a VLAN interface.
Here the test makes a device that exists in its place: a veth named `peth0.7` whose other end
is a separate port of the switch (a broadcast domain of its own, which is what the VLAN is),
and sets `kvm_vlan_sync=no` on the container so that starting the VM does not try to make the
VLAN interface itself. The macvtap NIC, the domain XML and the DHCP path are then exactly the
VLAN VM's; only the tagging is missing. On a kernel with 802.1Q, `sync` makes the real
`peth0.7` on `peth0`, and the switch gets `sw0.7` (VLAN 7 on its end of the wire) instead.
"""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt
import pytest

from e2e.e2e_common import lab

_lab = lab
netns_lab = lab.netns_lab

C = "vm-container-0-0"
#: vm-container-0-0's eth0 row in the espresso fixture (tests/conftest.py), IP 10.1.255.254.
MAC0 = "52:54:00:fd:00:01"
VLAN = 7
#: iPXE asks for a lease ~3 s after create() (feasibility.md); two TCG VMs share 2 cores.
LEASE_TIMEOUT = 120.0


def rows(rocks: Any, *argv: str) -> list[dict[str, Any]]:
    out = rocks.ok(*argv, "output-format=json")
    return list(json.loads(out)) if out.strip() else []


def nic_of(domain_xml: str) -> ET.Element:
    nics = ET.fromstring(domain_xml).findall("devices/interface")
    assert len(nics) == 1, domain_xml
    return nics[0]


def leases(path: Path) -> dict[str, str]:
    """MAC -> IP from a dnsmasq lease file (`<expiry> <mac> <ip> <name> <client id>`)."""
    if not path.exists():
        return {}
    return {f[1]: f[2] for f in (ln.split() for ln in path.read_text().splitlines()) if len(f) > 2}


@pytest.mark.libvirtd
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bridged_and_macvtap_vms_boot_on_the_rocks_scheme_and_get_leases(
    espresso: Any,
    netns_lab: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    timings: dict[str, float],
) -> None:
    from flightdeck.net.apply import vlan_supported

    rocks, lab = espresso, netns_lab
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    br_vm, vl_vm = f"fdlab-{lab.token}-br", f"fdlab-{lab.token}-vl"

    # The wire: the container's NIC (its row's MAC) to the frontend's port in the switch.
    lab.wire("eth0", "sw0", MAC0)
    _lab.ip("-n", lab.lab, "addr", "add", "10.1.255.254/16", "dev", "eth0")
    _lab.ip("-n", lab.switch, "addr", "add", "10.1.1.1/16", "dev", "sw0")

    took = lab.libvirtd.start()
    timings["lab libvirtd: start -> answers"] = took

    rocks.ok("set", "attr", "kvm_domain_type", "qemu")
    rocks.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    rocks.ok("set", "host", "attr", C, "libvirt_uri", lab.libvirtd.uri)
    rocks.ok("set", "host", "attr", C, "kvm_netns", lab.lab)
    rocks.ok("add", "host", "vm", C, "membership=Compute", f"name={br_vm}", "mem=256",
             "disksize=1", "subnet=private")  # fmt: skip
    rocks.ok("add", "host", "vm", C, "membership=Hosted VM", f"name={vl_vm}", "mem=256",
             "disksize=1", f"vlan={VLAN}")  # fmt: skip

    # The Rocks scheme, by Flightdeck, in the lab.
    root = tmp_path / "root"
    rocks.ok("sync", "host", "network", C, "apply=yes", "local=yes", f"netns={lab.lab}",
             f"root={root}")  # fmt: skip
    links = {
        ln["ifname"]: ln
        for ln in json.loads(_lab.ip("-n", lab.lab, "-j", "-d", "link", "show").stdout)
    }
    assert links["peth0"]["master"] == "eth0" and links["peth0"]["address"] == MAC0
    assert links["eth0"]["linkinfo"]["info_kind"] == "bridge"
    addrs = json.loads(_lab.ip("-n", lab.lab, "-j", "-4", "addr", "show", "eth0").stdout)
    assert [f"{a['local']}/{a['prefixlen']}" for a in addrs[0]["addr_info"]] == ["10.1.255.254/16"]

    supported, reason = vlan_supported(lab.lab)
    if supported:  # sync made the real 802.1Q peth0.7; the switch takes VLAN 7 off the wire
        assert links[f"peth0.{VLAN}"]["linkinfo"]["info_kind"] == "vlan"
        vlan_port = f"sw0.{VLAN}"
        _lab.ip("-n", lab.switch, "link", "add", "link", "sw0", "name", vlan_port, "type",
                "vlan", "id", str(VLAN))  # fmt: skip
        _lab.ip("-n", lab.switch, "link", "set", vlan_port, "up")
    else:  # no 802.1Q: a veth stands in for peth0.7, its own port on the switch
        assert "802.1Q" in reason and f"peth0.{VLAN}" not in links
        vlan_port = f"sw{VLAN}"
        lab.wire(f"peth0.{VLAN}", vlan_port)
        rocks.ok("set", "host", "attr", C, "kvm_vlan_sync", "no")
    _lab.ip("-n", lab.switch, "addr", "add", f"10.{VLAN}.0.1/24", "dev", vlan_port)

    lab.start_dnsmasq(
        ["sw0", vlan_port],
        ["10.1.200.10,10.1.200.60,255.255.0.0,1h", f"10.{VLAN}.0.100,10.{VLAN}.0.150,1h"],
    )

    t0 = time.monotonic()
    for vm in (br_vm, vl_vm):
        out = rocks.ok("start", "host", "vm", vm)
        assert out == f"started {vm} on {C}\n", out
    timings["lab: rocks start host vm, both"] = time.monotonic() - t0

    # What libvirt made of it, in the lab: a tap in eth0, a macvtap on peth0.7.
    conn = libvirt.open(lab.libvirtd.uri)
    try:
        macs = {}
        for vm, kind in ((br_vm, "bridge"), (vl_vm, "direct")):
            dom = conn.lookupByName(vm)
            assert dom.isActive()
            xml = dom.XMLDesc(0)
            assert ET.fromstring(xml).get("type") == "qemu"
            boot = [b.get("dev") for b in ET.fromstring(xml).findall("os/boot")]
            assert boot[:1] == ["network"], boot
            nic = nic_of(xml)
            assert nic.get("type") == kind, ET.tostring(nic)
            mac = nic.find("mac")
            target = nic.find("target")
            source = nic.find("source")
            assert mac is not None and target is not None and source is not None
            macs[vm] = mac.get("address", "")
            tap = target.get("dev", "")
            live = json.loads(_lab.ip("-n", lab.lab, "-j", "-d", "link", "show", tap).stdout)[0]
            if kind == "bridge":
                assert source.get("bridge") == "eth0"
                assert live["master"] == "eth0", live
            else:
                assert source.get("dev") == f"peth0.{VLAN}"
                assert live["linkinfo"]["info_kind"] == "macvtap", live
                assert live["link"] == f"peth0.{VLAN}", live
    finally:
        conn.close()
    db_macs = {vm: rows(rocks, "list", "host", "interface", vm)[0]["mac"] for vm in macs}
    assert db_macs == macs

    # Both NICs' iPXE ROMs get a lease from the dnsmasq on the switch.
    # Seen first in dnsmasq's log (DHCPACK, at once), then in its lease file (written lazily).
    seen: dict[str, float] = {}
    while time.monotonic() - t0 < LEASE_TIMEOUT and len(seen) < 2:
        log = lab.dnsmasq_log.read_text(errors="replace")
        for vm, mac in macs.items():
            if re.search(rf"DHCPACK\(\S+\) \S+ {re.escape(mac)}", log):
                seen.setdefault(vm, time.monotonic() - t0)
        time.sleep(0.1)
    log = lab.dnsmasq_log.read_text(errors="replace")
    assert len(seen) == 2, f"leases for {sorted(seen)} only; dnsmasq said:\n{log[-3000:]}"
    deadline = time.monotonic() + 30
    while set(macs.values()) - set(leases(lab.leases)) and time.monotonic() < deadline:
        time.sleep(0.2)
    got = leases(lab.leases)
    assert got[macs[br_vm]].startswith("10.1.200."), got
    assert got[macs[vl_vm]].startswith(f"10.{VLAN}.0."), got
    assert f"DHCPACK(sw0) {got[macs[br_vm]]} {macs[br_vm]}" in log
    assert f"DHCPACK({vlan_port}) {got[macs[vl_vm]]} {macs[vl_vm]}" in log
    assert "iPXE" in log  # the NIC's ROM asked, not a guest OS
    timings["lab: start -> lease, bridged VM"] = seen[br_vm]
    timings["lab: start -> lease, macvtap VM"] = seen[vl_vm]

    for vm in (br_vm, vl_vm):
        assert rocks.ok("stop", "host", "vm", vm) == f"stopped {vm}\n"


@pytest.mark.libvirtd
@pytest.mark.slow
def test_live_8021q_between_two_tcg_guests_across_the_lab_bridge(
    netns_lab: Any, installer_image: Any, tmp_path: Path, timings: dict[str, float]
) -> None:
    """The live VLAN test this kernel cannot run, inside guests whose kernel has 8021q.

    Two TCG guests (the installer image's Debian cloud kernel, with 8021q in their own
    initramfs) on a bridge of the lab, defined through Flightdeck's designer on the lab's
    libvirtd. Each makes `eth0.2` with 10.2.0.<n>/24 and pings the other: answered. Each also
    puts 10.3.0.<n>/24 on a VLAN of its own (3 and 4): the same subnet, different tags, so no
    answer, which shows the tags (not the addresses) decide who hears whom across the bridge.
    """
    from concurrent.futures import ThreadPoolExecutor

    from flightdeck.pxe.image import DEFAULT_CACHE
    from flightdeck.virt import hypervisor as hv
    from flightdeck.virt.console import read_serial
    from flightdeck.virt.designer import KernelBoot, NicSpec, VMSpec, design

    lab = netns_lab
    del installer_image  # it fetched (or found) the kernel and busybox debs in the cache
    t0 = time.monotonic()
    kernel, initrd = _lab.vlan_guest_image(DEFAULT_CACHE, tmp_path)
    timings["lab VLAN guest image"] = time.monotonic() - t0
    bridge = "fdvlbr"
    _lab.ip("-n", lab.lab, "link", "add", bridge, "type", "bridge")
    _lab.ip("-n", lab.lab, "link", "set", bridge, "up")
    lab.libvirtd.start()
    conn = hv.connect("lab", lab.libvirtd.uri, timeout=15)
    t0 = time.monotonic()

    guests = {1: ("2:10.2.0,3:10.3.0"), 2: ("2:10.2.0,4:10.3.0")}
    names = {n: f"fdlab-{lab.token}-v{n}" for n in guests}
    for n, vlans in guests.items():
        spec = VMSpec(
            name=names[n],
            vcpus=1,
            mem_mb=256,
            nics=[NicSpec(f"52:54:00:fd:7a:0{n}", "bridge", bridge)],
            kernel_boot=KernelBoot(
                str(kernel),
                str(initrd),
                f"console=ttyS0 panic=-1 fd.me={n} fd.peer={3 - n} fd.vlans={vlans}",
            ),
            attrs={"kvm_domain_type": "qemu"},
        )
        dom = conn.define(design(spec).to_xml())
        conn.start(dom)
    done = f"{_lab.VLAN_MARKER}-DONE".encode()
    with ThreadPoolExecutor(2) as pool:
        futures = {n: pool.submit(read_serial, conn, names[n], done, 180.0) for n in guests}
        said = {n: f.result().decode(errors="replace") for n, f in futures.items()}
    timings["lab VLAN guests: start -> both done"] = time.monotonic() - t0
    for n in guests:
        text = said[n]
        assert f"{_lab.VLAN_MARKER}-DONE me={n}" in text, f"guest {n} said:\n{text[-3000:]}"
        assert "NOVLAN" not in text and "WARNING" not in text, text[-3000:]
        peer = 3 - n
        assert f"vlan=2 peer=10.2.0.{peer} answered=yes" in text, text[-3000:]
        other = 3 if n == 1 else 4
        assert f"vlan={other} peer=10.3.0.{peer} answered=no" in text, text[-3000:]
