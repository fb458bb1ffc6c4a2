"""`rocks add / list / set / remove host vm` and `rocks set host vm cdrom` as a user types them,
in process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import pytest

C0, C1 = "vm-container-0-0", "vm-container-0-1"
HEADER = ["VM-HOST", "SLICE", "MEM", "CPUS", "MAC", "HOST", "VIRT-TYPE"]


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


# add host vm -----------------------------------------------------------------------------------


def test_add_host_vm_on_several_containers(espresso: Any) -> None:
    out = espresso.ok("add", "host", "vm", C0, C1, "membership=Hosted VM", "mem=512", "cpus=2")
    assert out == (
        "added VM hosted-vm-0-0-0 on physical node vm-container-0-0\n"
        "added VM hosted-vm-0-1-0 on physical node vm-container-0-1\n"
    )
    assert table(espresso.ok("list", "host", "vm")) == [
        HEADER,
        ["hosted-vm-0-0-0:", "0", "512", "2", "76:77:6e:40:00:00", C0, "hvm"],
        ["hosted-vm-0-1-0:", "0", "512", "2", "76:77:6e:40:00:01", C1, "hvm"],
    ]
    # Hosted VMs get no IP.
    ip = table(espresso.ok("list", "host", "interface", "hosted-vm-0-1-0"))[1][3]
    assert set(ip) == {"-"}


def test_add_host_vm_with_every_parameter(espresso: Any) -> None:
    out = espresso.ok(
        "add",
        "host",
        "vm",
        C1,
        "membership=Compute",
        "name=web",
        "mem=3072",
        "cpus=4",
        "slice=3",
        "mac=02:00:00:00:aa:01",
        "num-macs=2",
        "disk=file:/state/web.img,vda,virtio qcow2:/state/web-data.qcow2,vdb,virtio",
        "disksize=12 100",
        "vlan=2,0",
        "ip=10.1.200.1",
        "subnet=private",
    )
    assert out == "added VM web on physical node vm-container-0-1\n"
    assert table(espresso.ok("list", "host", "vm", "web", "showdisks=y")) == [
        [*HEADER, "DISK", "DISKSIZE", "CDROM"],
        [
            "web:",
            "3",
            "3072",
            "4",
            "02:00:00:00:aa:01",
            C1,
            "hvm",
            "file:/state/web.img,vda,virtio",
            "12",
            "-----",
        ],
        [
            ":",
            "-----",
            "----",
            "----",
            "76:77:6e:40:00:00",
            "-" * 16,
            "-" * 9,
            "qcow2:/state/web-data.qcow2,vdb,virtio",
            "100",
            "-----",
        ],
    ]
    nics = table(espresso.ok("list", "host", "interface", "web"))
    assert [(r[0], r[1], r[2], r[3], r[-3]) for r in nics[1:]] == [
        ("private", "eth0", "02:00:00:00:aa:01", "10.1.200.1", "2"),
        ("-------", "eth1", "76:77:6e:40:00:00", "-" * 10, "0"),
    ]


def test_list_host_vm_continuation_rows_and_host_arguments(espresso: Any) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "1")
    espresso.ok("add", "host", "vm", C1, "membership=Compute", "num-macs=3")
    assert espresso.ok("list", "host", "vm", "frontend-0-0-0", "compute-0-1-0") == (
        "VM-HOST         SLICE MEM  CPUS MAC               HOST             VIRT-TYPE\n"
        "frontend-0-0-0: 0     1024 1    76:77:6e:40:00:00 frontend-0-0     hvm\n"
        ":               ----- ---- ---- 76:77:6e:40:00:01 ---------------- ---------\n"
        "compute-0-1-0:  0     1024 1    76:77:6e:40:00:03 vm-container-0-1 hvm\n"
        ":               ----- ---- ---- 76:77:6e:40:00:04 ---------------- ---------\n"
        ":               ----- ---- ---- 76:77:6e:40:00:05 ---------------- ---------\n"
    )
    # Physical hosts are skipped; an empty answer is not an error.
    assert table(espresso.ok("list", "host", "vm", C0)) == [HEADER]
    espresso.refused("list", "host", "vm", "nosuch", says="unknown host 'nosuch'")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["membership=Nope"], "membership 'Nope' is not valid"),
        (["membership=Compute", "disk=junk"], "invalid disk specification 'junk'"),
        (["membership=Compute", "disk=file:/a.img,vda"], "invalid disk specification"),
        (["membership=Compute", "disk=ext4:/a.img,vda,virtio"], "type 'ext4' is not one of"),
        (["membership=Compute", "disk=file:/a.img,vda,usb"], "bus 'usb' is not one of"),
        (["membership=Compute", "mem=0"], "mem=0 must be a positive integer"),
        (["membership=Compute", "mem=lots"], "mem='lots' must be an integer"),
        (["membership=Compute", "cpus=0"], "cpus=0 must be a positive integer"),
        (["membership=Compute", "num-macs=0"], "num-macs=0 must be a positive integer"),
        (["membership=Compute", "disksize=0"], "greater than 0"),
        (["membership=Compute", "vlan=4095"], "invalid vlan list"),
        (["membership=Compute", "vlan=2,3"], "names 2 NICs but num-macs=1"),
        (["membership=Compute", "mac=76:77:6e:40:00"], "invalid MAC address"),
        (["membership=Compute", "ip=192.168.1.1"], "outside network private"),
        (["membership=Compute", "ip=10.1.255.253"], "already used by vm-container-0-1 eth0"),
        (["membership=Compute", "name=vm-container-0-1"], "already in the database"),
        (["membership=Compute", "name=a b"], "invalid host name"),
        (["membership=Compute", "name=rack0"], "'rack0' is read by host expressions as rack 0"),
        (["membership=Compute", "name=hosted-vm"], "as appliance 'hosted-vm'"),
        (["membership=Compute", "name=76-77-6e-40-00-09"], "as MAC address 76:77:6e:40:00:09"),
        (["membership=Compute", "slice=-1"], "slice=-1"),
        (["membership=Compute", "virt-type=para"], "unknown parameter 'virt-type'"),
        ([C1, "membership=Compute", "name=web"], "can't supply the 'name' parameter"),
        ([C1, "membership=Compute", "ip=10.1.9.9"], "can't supply the 'ip' parameter"),
        ([C1, "membership=Compute", "slice=4"], "can't supply the 'slice' parameter"),
        ([C1, "membership=Compute", "mac=02:00:00:00:00:09"], "can't supply the 'mac' parameter"),
        (["frontend-0-0-0", "membership=Compute"], "host frontend-0-0-0 cannot host VMs"),
        (["nosuch", "membership=Compute"], "unknown host 'nosuch'"),
        ([], "needs membership="),
    ],
)
def test_add_host_vm_refusals(espresso: Any, argv: list[str], says: str) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "0")
    espresso.refused("add", "host", "vm", C0, *argv, says=says)


def test_add_host_vm_refuses_a_container_without_kvm(espresso: Any) -> None:
    espresso.ok("add", "host", "compute-0-0", "membership=Compute", "rack=0", "rank=0")
    espresso.refused(
        "add",
        "host",
        "vm",
        "compute-0-0",
        "membership=Compute",
        says="host compute-0-0 cannot host VMs: its attribute kvm is not true",
    )
    espresso.ok("set", "host", "attr", "compute-0-0", "kvm", "true")
    assert espresso.ok("add", "host", "vm", "compute-0-0", "membership=Compute") == (
        "added VM compute-0-0-0 on physical node compute-0-0\n"
    )


def test_a_vm_with_a_cluster_vlan_is_listed_in_that_cluster(espresso: Any) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "1")
    espresso.ok("add", "cluster", "137.110.119.119", "1")
    espresso.ok("add", "host", "vm", C1, "membership=Hosted VM", "vlan=3")
    assert espresso.ok("list", "cluster", "frontend-0-0-1", "output-header=no") == (
        "frontend-0-0-1-public: --------------- VM\n"
        ":                      hosted-vm-0-0-1 VM\n"
        ":                      hosted-vm-0-1-0 VM\n"
    )
    # And it goes with the cluster.
    espresso.ok("remove", "cluster", "frontend-0-0-1")
    assert "hosted-vm-0-1-0" not in espresso.ok("list", "host", "vm")


# set host vm -----------------------------------------------------------------------------------


def test_set_host_vm(espresso: Any) -> None:
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    assert espresso.ok("set", "host", "vm", "compute-0-0-0", "mem=2048", "physnode=" + C1) == ""
    espresso.ok("set", "host", "vm", "compute-0-0-0", "cpus=2", "slice=7")
    espresso.ok(
        "set",
        "host",
        "vm",
        "compute-0-0-0",
        "disk=file:/d/a.img,vda,virtio file:/d/b.img,vdb,virtio",
        "disksize=5 6",
    )
    espresso.ok("set", "host", "vm", "compute-0-0-0", "disksize=0 60")
    assert table(espresso.ok("list", "host", "vm", "compute-0-0-0", "showdisks=y"))[1:] == [
        [
            "compute-0-0-0:",
            "7",
            "2048",
            "2",
            "76:77:6e:40:00:00",
            C1,
            "hvm",
            "file:/d/a.img,vda,virtio",
            "5",
            "-----",
        ],
        [
            ":",
            "-----",
            "----",
            "----",
            "-" * 17,
            "-" * 16,
            "-" * 9,
            "file:/d/b.img,vdb,virtio",
            "60",
            "-----",
        ],
    ]


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "nothing to change"),
        (["mem=0"], "mem=0 must be a positive integer"),
        (["physnode=frontend-0-0-0"], "host frontend-0-0-0 cannot host VMs"),
        (["physnode=nosuch"], "unknown host 'nosuch'"),
        (["disksize=1 2"], "gives 2 sizes but compute-0-0-0 has 1 disk"),
        (["disk=qcow2:/x.qcow2,vda,virtio,extra"], "invalid disk specification"),
        (["disk=qcow2:x.qcow2,vda,virtio"], "is not absolute"),
        (["virt-type=para"], "unknown parameter 'virt-type'"),
    ],
)
def test_set_host_vm_refusals(espresso: Any, argv: list[str], says: str) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "0")
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    espresso.refused("set", "host", "vm", "compute-0-0-0", *argv, says=says)


def test_set_host_vm_needs_exactly_one_vm(espresso: Any) -> None:
    espresso.ok("add", "host", "vm", C0, C1, "membership=Compute")
    espresso.refused("set", "host", "vm", "compute-%", "mem=5", says="names 2 hosts")
    espresso.refused("set", "host", "vm", C0, "mem=5", says="is not a virtual machine")
    espresso.refused("set", "host", "vm", "mem=5", says="needs {host}")


# set host vm cdrom -----------------------------------------------------------------------------


def test_set_host_vm_cdrom(espresso: Any) -> None:
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    espresso.ok("set", "host", "vm", "cdrom", "compute-0-0-0", "cdrom=/isos/debian.iso")
    assert table(espresso.ok("list", "host", "vm", "showdisks=y"))[1][-1] == "/isos/debian.iso"
    # Positional, as the guide writes it.
    espresso.ok("set", "host", "vm", "cdrom", "compute-0-0-0", "/isos/other.iso")
    assert table(espresso.ok("list", "host", "vm", "showdisks=y"))[1][-1] == "/isos/other.iso"
    espresso.ok("set", "host", "vm", "cdrom", "compute-0-0-0", "cdrom=none")
    assert table(espresso.ok("list", "host", "vm", "showdisks=y"))[1][-1] == "-----"
    for bad, says in (
        ("cdrom=debian.iso", "use an absolute path"),
        ("cdrom=./debian.iso", "use an absolute path"),
        ("cdrom=/isos/../../etc/shadow", "may not contain '..'"),
    ):
        espresso.refused("set", "host", "vm", "cdrom", "compute-0-0-0", bad, says=says)
    espresso.refused(
        "set", "host", "vm", "cdrom", C0, "cdrom=/x.iso", says="is not a virtual machine"
    )


# remove host vm --------------------------------------------------------------------------------


def test_remove_host_vm(espresso: Any) -> None:
    base = espresso.dump()
    espresso.ok("add", "host", "vm", C0, C1, "membership=Compute", "num-macs=2")
    assert espresso.ok("remove", "host", "vm", "compute-0-0-0", "compute-0-1-0") == ""
    assert espresso.dump() == base


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["frontend-0-0-0"], "frontend-0-0-0 is a virtual frontend: use 'rocks remove cluster"),
        (["compute-0-0-0", C1], "host vm-container-0-1 is not a virtual machine"),
        (["compute-0-0-0", "nosuch"], "unknown host 'nosuch'"),
        ([], "needs {host}"),
    ],
)
def test_remove_host_vm_refusals(espresso: Any, argv: list[str], says: str) -> None:
    espresso.ok("add", "cluster", "137.110.119.118", "1")
    espresso.ok("add", "host", "vm", C0, "membership=Compute")
    espresso.refused("remove", "host", "vm", *argv, says=says)
