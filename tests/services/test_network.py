"""The network service on the guide's database: report, the files sync writes, VLAN listing,
agreement with the domain XML's NIC sources, and the VLAN hook on VM start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

C = "vm-container-0-0"
GOLDEN = Path(__file__).resolve().parents[1] / "net" / "golden"


@pytest.fixture
def cluster(espresso: Any) -> Any:
    """espresso's guide cluster: frontend-0-0-0 on the frontend, computes round robin on the
    two containers, plus a physical-cluster VM bridged on vm-container-0-0."""
    rocks = espresso
    rocks.ok("set", "attr", "Kickstart_PublicGateway", "137.110.119.1")
    rocks.ok("add", "cluster", "137.110.119.118", "2")
    rocks.ok("add", "host", "vm", C, "membership=Compute")
    return rocks


def golden(name: str, text: str, regenerate: bool) -> None:
    path = GOLDEN / name
    if regenerate or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not regenerate:
            pytest.fail(f"golden file {path} was missing and has been written; review it")
        return
    assert text == path.read_text(encoding="utf-8"), f"differs from {path}"


@pytest.mark.parametrize("fmt", ["networkd", "ifcfg"])
def test_report_host_network(cluster: Any, fmt: str, regenerate_golden: bool) -> None:
    out = cluster.ok("report", "host", "network", C, f"format={fmt}")
    golden(f"report-{C}.{fmt}", out, regenerate_golden)
    both = cluster.ok("report", "host", "network", C, "vm-container-0-1", f"format={fmt}")
    assert both.startswith(f"# host {C}\n") and "\n# host vm-container-0-1\n" in both


def test_format_comes_from_the_attribute(cluster: Any) -> None:
    cluster.ok("set", "host", "attr", C, "kvm_network_format", "ifcfg")
    assert cluster.ok("report", "host", "network", C).startswith(
        "# file /etc/sysconfig/network-scripts/ifcfg-peth0\n"
    )
    cluster.refused("set", "host", "attr", C, "kvm_network_format", "netplan", says="netplan")
    cluster.store_host_attr(C, "kvm_network_format", "netplan")  # as an older database may
    r = cluster("report", "host", "network", C)
    assert r.code == 1
    assert "attribute kvm_network_format of host vm-container-0-0 is 'netplan'" in r.err


def test_only_vm_containers(cluster: Any) -> None:
    r = cluster("report", "host", "network", "frontend-0-0-0")
    assert r.code == 1
    assert "host frontend-0-0-0 is not a VM container (its attribute kvm is not true)" in r.err
    r = cluster("report", "host", "network", C, "format=json")
    assert r.code == 1 and "format='json': give one of networkd, ifcfg" in r.err


def test_bad_attributes_fail_before_anything(cluster: Any, tmp_path: Path) -> None:
    cluster.refused("set", "host", "attr", C, "bridge_hello_time", "0.5", says="give seconds")
    # A value stored before `set host attr` checked it (an older database) fails the sync.
    cluster.store_host_attr(C, "bridge_hello_time", "0.5")
    root = tmp_path / "root"
    r = cluster("sync", "host", "network", C, "local=yes", f"root={root}")
    assert r.code == 1 and "bridge_hello_time of host vm-container-0-0 is '0.5'" in r.err
    assert not root.exists()


def test_sync_local_files_only(cluster: Any, tmp_path: Path) -> None:
    tmp_path = tmp_path / "root"
    old = tmp_path / "etc/sysconfig/network-scripts/ifcfg-eth0"
    old.parent.mkdir(parents=True)
    old.write_text("DEVICE=eth0\nBOOTPROTO=dhcp\n")  # the installer's: replaced by the bridge
    out = cluster.ok("sync", "host", "network", C, "local=yes", f"root={tmp_path}", "format=ifcfg")
    assert out.splitlines() == [
        f"{C}: write {tmp_path}/etc/sysconfig/network-scripts/ifcfg-peth0",
        f"{C}: write {tmp_path}/etc/sysconfig/network-scripts/ifcfg-eth0",
        f"{C}: write {tmp_path}/etc/libvirt/networking/vlan.conf",
        f"{C}: write {tmp_path}/etc/sysconfig/network",
    ]
    assert old.read_text().startswith("DEVICE=eth0\nTYPE=Bridge\nIPADDR=10.1.255.254\n")
    again = cluster.ok("sync", "host", "network", C, "local=yes", f"root={tmp_path}",
                       "format=ifcfg")  # fmt: skip
    assert again == f"{C}: no change\n"


def test_list_host_vlan(cluster: Any) -> None:
    out = cluster.ok("list", "host", "vlan", "live=no")
    assert out.splitlines() == [
        "HOST              VLAN DEVICE  CLUSTER        VMS PRESENT",
        "frontend-0-0:     2    peth0.2 frontend-0-0-0 1   -------",
        "vm-container-0-0: 2    peth0.2 frontend-0-0-0 1   -------",
        "vm-container-0-1: 2    peth0.2 frontend-0-0-0 1   -------",
    ]
    cluster.ok("set", "host", "attr", C, "kvm_vlan_mode", "bridge")
    assert "vlan2" in cluster.ok("list", "host", "vlan", C, "live=no")
    # libvirt's test driver has no network behind it: nothing to look at, no error
    cluster.ok("set", "host", "attr", C, "libvirt_uri", "test:///default")
    r = cluster("list", "host", "vlan", C)
    assert r.code == 0 and r.out.splitlines()[1].endswith("-------") and r.err == ""


def test_the_plan_has_every_device_the_domain_xml_attaches_to(cluster: Any) -> None:
    """services/domains.py and the planner resolve VM NICs the same way."""
    from sqlalchemy import select

    from flightdeck.db.engine import open_database
    from flightdeck.db.models import VM, Host
    from flightdeck.services.domains import vm_spec
    from flightdeck.services.network import plan_for

    cluster.ok("set", "bootaction", "install vm frontend", "kernel=/k", "ramdisk=/i")
    cluster.ok("set", "host", "installaction", "frontend-0-0-0", "action=install vm frontend")
    db = open_database(cluster.url)
    try:
        for mode in ("macvtap", "bridge"):
            cluster.ok("set", "attr", "kvm_vlan_mode", mode)
            with db.transaction() as s:
                containers = {}
                for host, vm in s.execute(select(Host, VM).join(VM, VM.host_id == Host.id)):
                    spec, where = vm_spec(s, host)
                    if where.container not in containers:
                        assert vm.container is not None
                        containers[where.container] = plan_for(s, vm.container)
                    plan = containers[where.container]
                    names = {d.name for d in plan.devices}
                    for nic in spec.nics:
                        assert nic.source in names, (mode, host.name, nic, sorted(names))
                    assert not plan.problems
            assert len(containers) == 3
    finally:
        db.dispose()


def test_cluster_containers_and_release_on_test_driver(cluster: Any) -> None:
    from sqlalchemy import select

    from flightdeck.db.engine import open_database
    from flightdeck.db.models import Cluster
    from flightdeck.services.network import cluster_containers, release_cluster_links

    db = open_database(cluster.url)
    try:
        with db.transaction() as s:
            cid = s.scalar(select(Cluster.id))
            assert cid is not None
            assert cluster_containers(s, cid) == ["frontend-0-0", C, "vm-container-0-1"]
        for host in ("frontend-0-0", C, "vm-container-0-1"):
            cluster.ok("set", "host", "attr", host, "libvirt_uri", "test:///default")
        cluster.ok("remove", "cluster", "frontend-0-0-0")
        assert release_cluster_links(db, 2, ["frontend-0-0", C, "vm-container-0-1"]) == []
    finally:
        db.dispose()


def test_starting_a_vm_makes_sure_of_its_vlan_first(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hook in lifecycle._start_one runs before the domain is defined (a failure there
    starts nothing), and does nothing for libvirt's test driver."""
    pytest.importorskip("libvirt")
    import flightdeck.services.network as net
    from flightdeck.errors import DriverError

    node = tmp_path / "node.xml"
    node.write_text("<node/>\n")
    cluster.ok("set", "host", "attr", C, "libvirt_uri", f"test://{node}")
    cluster.ok("set", "attr", "kvm_domain_type", "qemu")
    cluster.ok("set", "attr", "kvm_disk_dir", str(tmp_path / "disks"))
    calls: list[str] = []
    real = net.vm_links

    class Failing:
        def ensure(self) -> list[str]:
            raise DriverError("no VLAN for hosted-vm-0-0-0 today")

    def spy(s: Any, host: Any) -> Any:
        calls.append(host.name)
        assert real(s, host) is None  # test driver: nothing to do
        return Failing()

    monkeypatch.setattr(net, "vm_links", spy)
    r = cluster("start", "host", "vm", "hosted-vm-0-0-0")
    assert calls == ["hosted-vm-0-0-0"]  # read with the VM's spec, made before its domain
    assert r.code == 1 and "no VLAN for hosted-vm-0-0-0 today" in r.err
    status = cluster.ok("list", "host", "vm", "hosted-vm-0-0-0", "status=y")
    assert "nostate" in status or "shutoff" in status  # never defined, never started
    monkeypatch.setattr(net, "vm_links", real)
    assert "started hosted-vm-0-0-0" in cluster.ok("start", "host", "vm", "hosted-vm-0-0-0")
    cluster.ok("stop", "host", "vm", "hosted-vm-0-0-0")
