"""`rocks sync host network ... apply=yes` on a real kernel, inside network namespaces only.

The container is a namespace this test makes; a veth pair (peer in a second namespace) stands
in for each physical NIC. The same scenarios run through netlink in-process (`local=yes
netns=...`) and through iproute2 scripts over "ssh" (a stand-in ssh that runs the script in the
namespace: FLIGHTDECK_SSH), so both executors and the ssh path are exercised for real.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import DriverError

MAC0 = "52:54:00:fd:00:01"  # vm-container-0-0 eth0 in the espresso fixture
MAC1 = "52:54:00:fd:01:01"
C = "vm-container-0-0"

FAKE_SSH = textwrap.dedent(
    """\
    import os, subprocess, sys
    args = sys.argv[1:]
    target, command = args[-2], args[-1]
    if os.environ.get("FD_FAKE_SSH_FAIL"):
        host = target.split("@")[-1]
        sys.stderr.write(f"ssh: connect to host {host} port 22: Connection refused\\n")
        sys.exit(255)
    assert "BatchMode=yes" in args, args
    ns = os.environ["FD_FAKE_SSH_NETNS"]
    sys.exit(subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", command]).returncode)
    """
)


@pytest.fixture
def site(espresso: Any, netlab: Any, tmp_path: Path) -> Any:
    """vm-container-0-0 with eth0 (private, with its IP and the default route) and eth1 on a
    `lab` network without an IP, carrying one bridged VM; its NICs exist in the lab namespace."""
    rocks = espresso
    rocks.ok("add", "network", "lab", "10.50.0.0", "255.255.255.0", "mtu=1500")
    rocks.ok("add", "host", "interface", C, "eth1", f"mac={MAC1}", "subnet=lab")
    rocks.ok("add", "host", "vm", C, "membership=Compute", "name=labvm", "subnet=lab")
    netlab.add_nic("eth0", MAC0, "10.1.255.254/16", gateway="10.1.1.1")
    netlab.add_nic("eth1", MAC1)
    rocks.netlab = netlab
    rocks.root = tmp_path / "root"
    return rocks


@pytest.fixture
def fake_ssh(site: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    script = tmp_path / "fake_ssh.py"
    script.write_text(FAKE_SSH)
    monkeypatch.setenv("FLIGHTDECK_SSH", f"{sys.executable} {script}")
    monkeypatch.setenv("FD_FAKE_SSH_NETNS", site.netlab.container)
    return site


def _check_scheme(lab: Any) -> None:
    links = lab.links()
    assert links["peth0"]["master"] == "eth0" and links["peth1"]["master"] == "eth1"
    assert links["eth0"]["linkinfo"]["info_kind"] == "bridge"
    assert links["eth1"]["linkinfo"]["info_kind"] == "bridge"
    assert links["peth0"]["address"] == MAC0 and links["peth1"]["address"] == MAC1
    for name in ("peth0", "peth1", "eth0", "eth1"):
        assert "UP" in links[name]["flags"], name
    assert "PROMISC" in links["peth0"]["flags"] and "PROMISC" in links["peth1"]["flags"]
    addrs = lab.addresses()
    assert addrs.get("eth0") == ["10.1.255.254/16"]
    assert not addrs.get("peth0") and not addrs.get("eth1")
    assert ("default", "10.1.1.1", "eth0") in lab.routes()


@pytest.mark.parametrize("local", [True, False], ids=["netlink", "ssh"])
def test_sync_builds_the_rocks_scheme_then_changes_nothing(fake_ssh: Any, local: bool) -> None:
    rocks = fake_ssh
    first = rocks.ok(*sync_args(rocks, local))
    assert f"{C}: rename eth0 to peth0\n" in first
    assert f"{C}: make peth0 a port of eth0\n" in first
    assert f"{C}: add address 10.1.255.254/16 to eth0\n" in first
    assert f"{C}: write {rocks.root}/etc/systemd/network/10-flightdeck-eth0.netdev\n" in first
    _check_scheme(rocks.netlab)
    assert rocks.ok(*sync_args(rocks, local)) == f"{C}: no change\n"
    # the other executor agrees that nothing is left to do
    assert rocks.ok(*sync_args(rocks, not local)) == f"{C}: no change\n"


def sync_args(rocks: Any, local: bool) -> list[str]:
    args = ["sync", "host", "network", C, "apply=yes", f"root={rocks.root}"]
    if local:
        args += ["local=yes", f"netns={rocks.netlab.container}"]
    return args


def test_removing_the_bridged_vm_removes_what_it_no_longer_needs(site: Any) -> None:
    rocks = site
    rocks.ok(*sync_args(rocks, True))
    assert (rocks.root / "etc/systemd/network/10-flightdeck-eth1.netdev").exists()
    rocks.ok("remove", "host", "labvm")
    out = rocks.ok(*sync_args(rocks, True))
    assert f"{C}: take peth1 out of its bridge\n" in out
    assert f"{C}: remove eth1\n" in out
    assert f"{C}: remove {rocks.root}/etc/systemd/network/10-flightdeck-eth1.netdev\n" in out
    links = rocks.netlab.links()
    assert "eth1" not in links and links["peth1"].get("master") is None  # still renamed
    assert "UP" in links["peth1"]["flags"]
    assert links["peth0"]["master"] == "eth0"  # the rest is as it was
    assert not (rocks.root / "etc/systemd/network/10-flightdeck-eth1.netdev").exists()
    assert rocks.ok(*sync_args(rocks, True)) == f"{C}: no change\n"


@pytest.mark.parametrize("local", [True, False], ids=["netlink", "ssh"])
def test_a_failure_halfway_restores_the_previous_state(fake_ssh: Any, local: bool) -> None:
    rocks = fake_ssh
    # An MTU the kernel refuses (veth and bridges stop at 65535), on the second NIC: the
    # renames and eth0's settings come first, then this step fails.
    rocks.ok("add", "network", "jumbo", "10.60.0.0", "255.255.255.0", "mtu=70000")
    rocks.ok("remove", "host", "interface", C, "eth1")
    rocks.ok("add", "host", "interface", C, "eth1", f"mac={MAC1}", "subnet=jumbo")
    before = rocks.netlab.snapshot()
    r = rocks(*sync_args(rocks, local))
    assert r.code == 1, r.out
    assert "could not set the MTU of peth1 to 70000" in r.err
    assert "Invalid argument" in r.err or "RTNETLINK" in r.err or "mtu" in r.err.lower()
    assert "change(s) made before it were undone" in r.err, r.err
    assert rocks.netlab.snapshot() == before
    if local:  # the files written before the failure are put back too (here: none existed)
        assert "the files written before were restored" in r.err
        assert not list((rocks.root / "etc/systemd/network").glob("*"))


def test_ssh_failures_are_clear(fake_ssh: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FD_FAKE_SSH_FAIL", "1")
    r = fake_ssh("sync", "host", "network", C, f"root={fake_ssh.root}")
    assert r.code == 1
    assert (
        f"error - {C}: ssh to root@{C} ({C}) failed: ssh: connect to host {C} port 22: "
        "Connection refused; it must log in as root without a password prompt (BatchMode)"
    ) in r.err


def test_usage_errors(site: Any) -> None:
    r = site("sync", "host", "network", C, "netns=x")
    assert r.code == 2 and "netns= applies to this machine: give local=yes" in r.err
    r = site("sync", "host", "network", C, "vm-container-0-1", "local=yes")
    assert r.code == 2 and "give one host" in r.err
    r = site("sync", "host", "network", C, "local=yes", "apply=yes", "netns=fd-no-such-ns")
    assert r.code == 1 and "network namespace fd-no-such-ns does not exist" in r.err


def test_list_host_vlan_and_vlan_bridges_on_start(site: Any, caplog: Any) -> None:
    """Bridge mode needs no 802.1Q for the bridge VMs attach to: starting a VM makes it; the
    uplink p<dev>.<vlan> needs 802.1Q, so here it is a warning. Removing the cluster removes it.
    """
    from flightdeck.db.engine import open_database
    from flightdeck.net.apply import vlan_supported
    from flightdeck.services.network import ensure_vm_links, release_cluster_links

    rocks, lab = site, site.netlab
    rocks.ok(*sync_args(rocks, True))
    rocks.ok("set", "attr", "Kickstart_PublicGateway", "137.110.119.1")
    rocks.ok("add", "cluster", "137.110.119.118", "1", f"container-hosts={C}", "vlan=7")
    rocks.ok("set", "host", "attr", C, "libvirt_uri", "qemu:///system")
    rocks.ok("set", "host", "attr", C, "kvm_netns", lab.container)
    rocks.ok("set", "host", "attr", C, "kvm_vlan_mode", "bridge")
    rows = rocks.ok("list", "host", "vlan", C)
    assert rows.splitlines()[1].split() == [f"{C}:", "7", "vlan7", "frontend-0-0-0", "1", "no"]
    db = open_database(rocks.url)
    try:
        with caplog.at_level(logging.WARNING, logger="flightdeck.network"):
            changes = ensure_vm_links(db, "hosted-vm-0-0-0")
        assert changes[:2] == [f"{C}: create bridge vlan7", f"{C}: set vlan7 up"]
        supported, reason = vlan_supported()
        if not supported:
            assert reason in caplog.text and "peth0.7 not made" in caplog.text
        assert ensure_vm_links(db, "hosted-vm-0-0-0") == []
        assert "yes" in rocks.ok("list", "host", "vlan", C, f"netns={lab.container}")
        assert lab.links()["vlan7"]["linkinfo"]["info_kind"] == "bridge"
        # remove cluster releases the VLAN devices itself (force: no libvirtd may answer here,
        # and the VMs were never defined).
        rocks.ok("remove", "cluster", "frontend-0-0-0", "force=yes")
        assert "vlan7" not in lab.links()
        assert release_cluster_links(db, 7, [C]) == []
        assert release_cluster_links(db, 7, [C, "no-such-host"]) == []
    finally:
        db.dispose()


def test_a_vlan_on_one_machine_needs_no_uplink_and_no_warning(site: Any, caplog: Any) -> None:
    """The demo's site: the frontend and the container are the same machine (both
    qemu:///system, one network namespace), so the VLAN bridge joins all the cluster's VMs and
    a missing uplink (no peth0 there, no 802.1Q here) is nothing to warn about."""
    from flightdeck.db.engine import open_database
    from flightdeck.services.network import ensure_vm_links

    rocks, lab = site, site.netlab
    rocks.ok("set", "attr", "Kickstart_PublicGateway", "137.110.119.1")
    rocks.ok("add", "cluster", "137.110.119.118", "1", f"container-hosts={C}", "vlan=7")
    for host in (C, "frontend-0-0"):
        rocks.ok("set", "host", "attr", host, "libvirt_uri", "qemu:///system")
        rocks.ok("set", "host", "attr", host, "kvm_netns", lab.container)
        rocks.ok("set", "host", "attr", host, "kvm_vlan_mode", "bridge")
    db = open_database(rocks.url)
    try:
        with caplog.at_level(logging.WARNING, logger="flightdeck.network"):
            changes = ensure_vm_links(db, "hosted-vm-0-0-0")
        assert changes[:2] == [f"{C}: create bridge vlan7", f"{C}: set vlan7 up"]
        assert "stays local" not in caplog.text
        # A container elsewhere carrying the cluster: then the uplink matters again.
        rocks.ok(
            "set", "host", "attr", "frontend-0-0", "libvirt_uri", "qemu+ssh://fe.example/system"
        )
        with caplog.at_level(logging.WARNING, logger="flightdeck.network"):
            ensure_vm_links(db, "hosted-vm-0-0-0")
        assert "the VLAN stays local to vm-container-0-0 until its uplink exists" in caplog.text
    finally:
        db.dispose()


def test_macvtap_vlan_needs_8021q_and_says_so(site: Any) -> None:
    from flightdeck.db.engine import open_database
    from flightdeck.net.apply import vlan_supported
    from flightdeck.services.network import ensure_vm_links

    rocks, lab = site, site.netlab
    rocks.ok("set", "attr", "Kickstart_PublicGateway", "137.110.119.1")
    rocks.ok("add", "cluster", "137.110.119.118", "1", f"container-hosts={C}", "vlan=7")
    rocks.ok("set", "host", "attr", C, "libvirt_uri", "qemu:///system")
    rocks.ok("set", "host", "attr", C, "kvm_netns", lab.container)
    db = open_database(rocks.url)
    try:
        with pytest.raises(DriverError, match="peth0 does not exist on vm-container-0-0"):
            ensure_vm_links(db, "hosted-vm-0-0-0")
        rocks.ok(*sync_args(rocks, True))
        supported, _reason = vlan_supported()
        if supported:
            assert ensure_vm_links(db, "hosted-vm-0-0-0")[0] == (
                f"{C}: create VLAN interface peth0.7 (VLAN 7 on peth0)"
            )
            assert "NOARP" in lab.links()["peth0.7"]["flags"]
        else:
            with pytest.raises(DriverError, match=r"hosted-vm-0-0-0 needs peth0\.7 on vm-co"):
                ensure_vm_links(db, "hosted-vm-0-0-0")
            assert "peth0.7" not in lab.links()
    finally:
        db.dispose()


def test_live_vlan_interfaces(site: Any) -> None:
    """The macvtap path for real: p<dev>.<vlan> made on sync, ARP off, removed with the VMs."""
    from flightdeck.net.apply import vlan_supported

    supported, reason = vlan_supported(site.netlab.container)
    if not supported:
        pytest.skip(reason)
    rocks, lab = site, site.netlab
    rocks.ok("add", "host", "vm", C, "membership=Hosted VM", "name=vlanvm", "vlan=9")
    out = rocks.ok(*sync_args(rocks, True))
    assert f"{C}: create VLAN interface peth0.9 (VLAN 9 on peth0)\n" in out
    link = lab.links()["peth0.9"]
    assert "NOARP" in link["flags"] and "UP" in link["flags"]
    rocks.ok("remove", "host", "vlanvm")
    assert f"{C}: remove peth0.9\n" in rocks.ok(*sync_args(rocks, True))
    assert "peth0.9" not in lab.links()


def test_vlan_probe_agrees_with_the_kernel_config() -> None:
    from flightdeck.net.apply import kernel_config, vlan_supported

    if os.geteuid() != 0:
        pytest.skip("the probe makes a scratch network namespace: needs root")
    supported, reason = vlan_supported()
    config = kernel_config("CONFIG_VLAN_8021Q")
    if config == "":
        assert not supported and "CONFIG_VLAN_8021Q is not set" in reason
    if supported:
        assert "802.1Q VLAN interfaces work" in reason
