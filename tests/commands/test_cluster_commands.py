"""`rocks add / list / remove cluster`, `rocks list host macs` and `rocks report vm nextmac` as
a user types them, in process, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

PUBLIC = "137.110.119.118"


def table(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


# add cluster -----------------------------------------------------------------------------------


def test_add_cluster_with_every_parameter(espresso: Any) -> None:
    rocks = espresso
    rocks.ok("add", "host", "vm-container-0-2", "membership=VM Container", "rack=0", "rank=2")
    rocks.ok("set", "host", "attr", "vm-container-0-0", "kvm_disk_dir", "/state/kvm")
    for c, mem in (("vm-container-0-0", "8192"), ("vm-container-0-1", "4096")):
        rocks.ok("set", "host", "attr", c, "kvm_mem_mb", mem)
    out = rocks.ok(
        "add",
        "cluster",
        PUBLIC,
        "3",
        "cpus-per-compute=2",
        "mem-per-compute=2048",
        "disk-per-compute=40",
        "disk-per-frontend=80",
        "container-hosts=vm-container-0-1 vm-container-0-0",
        "vlan=12",
        "subnet=private",
        "gateway=137.110.119.254",
        "fe-name=latte",
        "fe-container=vm-container-0-2",
        "cluster-naming=y",
        "placement=capacity",
    )
    assert out == (
        "created frontend VM named: latte\n"
        "\tcreated compute VM named: vm-latte-0\n"
        "\tcreated compute VM named: vm-latte-1\n"
        "\tcreated compute VM named: vm-latte-2\n"
    )
    assert table(rocks.ok("list", "host", "vm", "showdisks=y")) == [
        [
            "VM-HOST",
            "SLICE",
            "MEM",
            "CPUS",
            "MAC",
            "HOST",
            "VIRT-TYPE",
            "DISK",
            "DISKSIZE",
            "CDROM",
        ],
        # Free 4096 / 8192 MB: the 8 GB container first, then 6144 there, then 4096 (tie, the
        # first listed, -0-1).
        [
            "vm-latte-0:",
            "0",
            "2048",
            "2",
            "76:77:6e:40:00:02",
            "vm-container-0-0",
            "hvm",
            "qcow2:/state/kvm/vm-latte-0.vda,vda,virtio",
            "40",
            "-----",
        ],
        [
            "vm-latte-1:",
            "0",
            "2048",
            "2",
            "76:77:6e:40:00:03",
            "vm-container-0-0",
            "hvm",
            "qcow2:/state/kvm/vm-latte-1.vda,vda,virtio",
            "40",
            "-----",
        ],
        [
            "vm-latte-2:",
            "0",
            "2048",
            "2",
            "76:77:6e:40:00:04",
            "vm-container-0-1",
            "hvm",
            "qcow2:/var/lib/flightdeck/disks/vm-latte-2.vda,vda,virtio",
            "40",
            "-----",
        ],
        [
            "latte:",
            "0",
            "1024",
            "1",
            "76:77:6e:40:00:00",
            "vm-container-0-2",
            "hvm",
            "qcow2:/var/lib/flightdeck/disks/latte.vda,vda,virtio",
            "80",
            "-----",
        ],
        [
            ":",
            "-----",
            "----",
            "----",
            "76:77:6e:40:00:01",
            "-" * 16,
            "-" * 9,
            "-" * 57,
            "-" * 8,
            "-----",
        ],
    ]
    assert table(rocks.ok("list", "host", "interface", "latte", "vm-latte-2")) == [
        [
            "HOST",
            "SUBNET",
            "IFACE",
            "MAC",
            "IP",
            "NETMASK",
            "MODULE",
            "NAME",
            "VLAN",
            "OPTIONS",
            "CHANNEL",
        ],
        [
            "vm-latte-2:",
            "-------",
            "eth0",
            "76:77:6e:40:00:04",
            "-" * 15,
            "-" * 13,
            "------",
            "vm-latte-2",
            "12",
            "-------",
            "-------",
        ],
        [
            "latte:",
            "private",
            "eth0",
            "76:77:6e:40:00:00",
            "10.1.255.252",
            "255.255.0.0",
            "------",
            "latte",
            "12",
            "-------",
            "-------",
        ],
        [
            "latte:",
            "public",
            "eth1",
            "76:77:6e:40:00:01",
            PUBLIC,
            "255.255.255.0",
            "------",
            "latte-public",
            "0",
            "-------",
            "-------",
        ],
    ]
    boots = dict(line.split() for line in rocks.ok("list", "host", "boot").splitlines()[1:])
    assert {h: a for h, a in boots.items() if "latte" in h} == {
        "latte:": "install",
        "vm-latte-0:": "install",
        "vm-latte-1:": "install",
        "vm-latte-2:": "install",
    }
    # RUNACTION and INSTALLACTION: the frontend installs as a frontend, computes run nothing.
    assert rocks.ok(
        "list", "host", "latte", "vm-latte-1", "output-col=host,runaction,installaction"
    ) == (
        "HOST        RUNACTION INSTALLACTION\n"
        "vm-latte-1: none      install\n"
        "latte:      os        install vm frontend image\n"
    )
    routes = rocks.dump()["routes"]
    assert [r[2:] for r in routes] == [("0.0.0.0", "0.0.0.0", "137.110.119.254")]


def test_two_clusters_get_vlans_2_and_3_and_consecutive_macs(espresso: Any) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("add", "cluster", "137.110.119.119", "2")
    vlans = {
        r[0]: r[-3]
        for r in table(espresso.ok("list", "host", "interface"))[1:]
        if r[2] == "eth0" and r[0].startswith(("frontend-0-0-", "hosted"))
    }
    assert vlans == {
        "frontend-0-0-0:": "2",
        "hosted-vm-0-0-0:": "2",
        "hosted-vm-0-1-0:": "2",
        "frontend-0-0-1:": "3",
        "hosted-vm-0-0-1:": "3",
        "hosted-vm-0-1-1:": "3",
    }
    # The guide's single column (§3.3.5); names=yes adds the physical side's names (6.2's).
    assert espresso.ok("list", "host", "macs", "frontend-0-0-1") == (
        "MACS IN CLUSTER\n76:77:6e:40:00:04\n76:77:6e:40:00:06\n76:77:6e:40:00:07\n"
    )
    assert espresso.ok("list", "host", "macs", "frontend-0-0-1", "names=yes") == (
        "MACS IN CLUSTER   HOST NAMES\n"
        "76:77:6e:40:00:04 frontend-0-0-1\n"
        "76:77:6e:40:00:06 hosted-vm-0-0-1\n"
        "76:77:6e:40:00:07 hosted-vm-0-1-1\n"
    )
    assert espresso.ok("report", "vm", "nextmac") == "76:77:6e:40:00:08\n"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["num-computes=-1"], "num-computes=-1 must be zero or a positive integer"),
        (["num-computes=abc"], "num-computes='abc' must be an integer"),
        (["-1"], "num-computes=-1"),
        (["ip=137.110.119.256", "num-computes=1"], "invalid IP address '137.110.119.256'"),
        (["ip=not-an-ip", "num-computes=1"], "invalid IP address"),
        (["ip=137.110.119.117", "num-computes=1"], "already used by frontend-0-0 eth1"),
        (["ip=10.1.2.3", "num-computes=1"], "outside network public"),
        (["2", "vlan=4096"], "invalid VLAN id 4096"),
        (["2", "vlan=4095"], "invalid VLAN id 4095"),
        (["2", "vlan=1"], "invalid VLAN id 1"),
        (["2", "vlan=two"], "vlan='two' must be an integer"),
        (["2", "mem-per-compute=0"], "mem-per-compute=0 must be a positive integer"),
        (["2", "cpus-per-compute=0"], "cpus-per-compute=0"),
        (["2", "disk-per-compute=0"], "disk-per-compute=0"),
        (["2", "cluster-naming=y"], "fe-name"),
        (["2", "cluster-naming=perhaps", "fe-name=x"], "is not a boolean"),
        (["2", "virt-type=para"], "only 'hvm'"),
        (["2", "placement=capacity"], "cluster does not fit"),
        (["2", "container-hosts=nosuch"], "unknown host 'nosuch'"),
        (["2", "gateway=10.1.1.1"], "outside network public"),
        (["2", "subnet=nosuch"], "unknown network"),
        (["2", "fe-name=vm-container-0-0"], "already in the database"),
        (["2", "fe-name=-x"], "invalid host name"),
        (["2", "fe-name=rack0"], "'rack0' is read by host expressions as rack 0"),
        (["2", "fe-name=Compute"], "'Compute' is read by host expressions as appliance"),
        (["2", "fe-name=02-00-00-00-00-09"], "as MAC address 02:00:00:00:00:09"),
        (["2", "colour=blue"], "unknown parameter 'colour'"),
        ([], "needs num-computes"),
    ],
)
def test_add_cluster_refusals(espresso: Any, argv: list[str], says: str) -> None:
    ip = [] if any(a.startswith("ip=") for a in argv) else [PUBLIC]
    espresso.refused("add", "cluster", *ip, *argv, says=says)


def test_add_cluster_refusals_against_an_existing_cluster(espresso: Any) -> None:
    espresso.ok("add", "cluster", PUBLIC, "1")
    espresso.refused("add", "cluster", PUBLIC, "1", says="already used by frontend-0-0-0 eth1")
    espresso.refused(
        "add",
        "cluster",
        "137.110.119.119",
        "1",
        "vlan=2",
        says="VLAN 2 is already used by cluster frontend-0-0-0",
    )


def test_add_cluster_refuses_containers_without_kvm(espresso: Any) -> None:
    espresso.ok("add", "host", "compute-0-0", "membership=Compute", "rack=0", "rank=0")
    for param in ("container-hosts=vm-container-0-0 compute-0-0", "fe-container=compute-0-0"):
        espresso.refused(
            "add",
            "cluster",
            PUBLIC,
            "1",
            param,
            says="host compute-0-0 cannot host VMs: its attribute kvm is not true",
        )


def test_capacity_refusal_names_the_shortfall(espresso: Any) -> None:
    espresso.ok("set", "appliance", "attr", "vm-container", "kvm_mem_mb", "2048")
    line = espresso.refused(
        "add",
        "cluster",
        PUBLIC,
        "3",
        "mem-per-compute=1536",
        "placement=capacity",
        says="cluster does not fit",
    )
    assert line == (
        "error - cluster does not fit: compute 2 needs 1536 MB, the most free on any container "
        "is 512 MB (vm-container-0-0); add containers or lower mem-per-compute"
    )


# list cluster ----------------------------------------------------------------------------------


def test_list_cluster_with_frontend_arguments(espresso: Any) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("add", "cluster", "137.110.119.119", "1", "fe-name=latte", "cluster-naming=y")
    assert espresso.ok("list", "cluster", "latte") == (
        "FRONTEND      CLIENT NODES TYPE\n"
        "latte-public: ------------ VM\n"
        ":             vm-latte-0   VM\n"
    )
    both = espresso.ok("list", "cluster", "latte", "frontend-0-0-0", "output-header=no")
    assert both == (
        "frontend-0-0-0-public: --------------- VM\n"
        ":                      hosted-vm-0-0-0 VM\n"
        ":                      hosted-vm-0-1-0 VM\n"
        "latte-public:          --------------- VM\n"
        ":                      vm-latte-0      VM\n"
    )
    # The physical frontend is a frontend too.
    assert espresso.ok("list", "cluster", "frontend-0-0").splitlines()[1:] == [
        "espresso.rocksclusters.org: ---------------- physical",
        ":                           vm-container-0-0 physical",
        ":                           vm-container-0-1 physical",
    ]


@pytest.mark.parametrize("arg", ["vm-container-0-0", "hosted-vm-0-1-0"])
def test_list_cluster_refuses_what_is_not_a_frontend(espresso: Any, arg: str) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.refused("list", "cluster", arg, says=f"host {arg} is not a virtual frontend")


def test_list_cluster_unknown_host(espresso: Any) -> None:
    espresso.refused("list", "cluster", "nosuch", says="unknown host 'nosuch'")


def _test_uri(tmp_path: Path, name: str) -> str:
    node = tmp_path / f"{name}.xml"
    node.write_text("<node/>\n")
    return f"test://{node}"


def test_list_cluster_status(espresso: Any, tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    rocks = espresso
    # Each container its own libvirt test driver; vm-container-0-1 answers nobody.
    for h in ("frontend-0-0", "vm-container-0-0"):
        rocks.ok("set", "host", "attr", h, "libvirt_uri", _test_uri(tmp_path, h))
    rocks.ok("set", "host", "attr", "vm-container-0-1", "libvirt_uri", "qemu+tcp://127.0.0.1:1/x")
    rocks.ok("set", "attr", "kvm_connect_timeout", "5")
    rocks.ok("add", "cluster", PUBLIC, "2")
    assert rocks.ok("list", "cluster", "status=y") == (
        "FRONTEND                    CLIENT NODES     TYPE     STATUS\n"
        "espresso.rocksclusters.org: ---------------- physical -------------\n"
        ":                           vm-container-0-0 physical -------------\n"
        ":                           vm-container-0-1 physical -------------\n"
        "frontend-0-0-0-public:      ---------------- VM       nostate\n"
        ":                           hosted-vm-0-0-0  VM       nostate\n"
        ":                           hosted-vm-0-1-0  VM       nostate-error\n"
    )


# remove cluster --------------------------------------------------------------------------------


def test_remove_cluster(espresso: Any) -> None:
    base = espresso.dump()
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.ok("add", "cluster", "137.110.119.119", "3", "fe-name=latte")
    with_latte_only = None
    out = espresso.ok("remove", "cluster", "frontend-0-0-0-public")
    assert out == "removed cluster frontend-0-0-0 (VLAN 2) and 2 VM(s)\n"
    assert espresso.ok("list", "cluster", "output-header=no").splitlines()[3:] == [
        "latte-public:               ---------------- VM",
        ":                           hosted-vm-0-0-1  VM",
        ":                           hosted-vm-0-0-2  VM",
        ":                           hosted-vm-0-1-1  VM",
    ]
    with_latte_only = espresso.dump()
    assert espresso.ok("remove", "cluster", "latte") == (
        "removed cluster latte (VLAN 3) and 3 VM(s)\n"
    )
    assert espresso.dump() == base
    assert with_latte_only != base


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["frontend-0-0"], "host frontend-0-0 is not a virtual frontend"),
        (["frontend-0-0-0", "hosted-vm-0-0-0"], "host hosted-vm-0-0-0 is not a virtual frontend"),
        (["frontend-0-0-0", "nosuch"], "unknown host 'nosuch'"),
        ([], "needs {frontend}"),
    ],
)
def test_remove_cluster_refusals(espresso: Any, argv: list[str], says: str) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.refused("remove", "cluster", *argv, says=says)


# list host macs / report vm nextmac ------------------------------------------------------------


def test_list_host_macs(espresso: Any) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    assert espresso.ok("list", "host", "macs", "frontend-0-0-0", "names=yes") == (
        "MACS IN CLUSTER   HOST NAMES\n"
        "76:77:6e:40:00:00 frontend-0-0-0\n"
        "76:77:6e:40:00:02 hosted-vm-0-0-0\n"
        "76:77:6e:40:00:03 hosted-vm-0-1-0\n"
    )
    # A VM on the cluster's VLAN with two NICs there shows both MACs on its row.
    espresso.ok(
        "add", "host", "vm", "vm-container-0-1", "membership=Hosted VM", "num-macs=2", "vlan=2,2"
    )
    assert espresso.ok("list", "host", "macs", "frontend-0-0-0", "names=y").splitlines()[-1] == (
        "76:77:6e:40:00:04 76:77:6e:40:00:05 hosted-vm-0-1-1"
    )
    assert espresso.ok("list", "host", "macs", "frontend-0-0-0", "output-header=no").split() == [
        "76:77:6e:40:00:00", "76:77:6e:40:00:02", "76:77:6e:40:00:03",
        "76:77:6e:40:00:04", "76:77:6e:40:00:05",
    ]  # fmt: skip


@pytest.mark.parametrize("arg", ["frontend-0-0", "vm-container-0-1", "hosted-vm-0-0-0"])
def test_list_host_macs_refuses_what_is_not_a_virtual_frontend(espresso: Any, arg: str) -> None:
    espresso.ok("add", "cluster", PUBLIC, "2")
    espresso.refused("list", "host", "macs", arg, says=f"host {arg} is not a virtual frontend")


def test_report_vm_nextmac_from_the_public_ip(rocks: Any) -> None:
    rocks.ok(
        "init",
        "frontend",
        "name=cappuccino.rocksclusters.org",
        "public-ip=137.110.119.55",
        "public-netmask=255.255.255.0",
        "private-ip=10.1.1.1",
        "private-netmask=255.255.0.0",
    )
    assert rocks.ok("report", "vm", "nextmac") == "36:77:6e:c0:00:00\n"
    rocks.ok("add", "cluster", "137.110.119.56", "2")
    assert rocks.ok("list", "host", "macs", "frontend-0-0-0", "names=yes").split()[5:] == [
        "36:77:6e:c0:00:00",
        "frontend-0-0-0",
        "36:77:6e:c0:00:02",
        "hosted-vm-0-0-0",
        "36:77:6e:c0:00:03",
        "hosted-vm-0-0-1",
    ]
    assert rocks.ok("report", "vm", "nextmac") == "36:77:6e:c0:00:04\n"


def test_report_vm_nextmac_on_the_guides_espresso(espresso: Any) -> None:
    assert espresso.ok("report", "vm", "nextmac") == "76:77:6e:40:00:00\n"
    espresso.ok("add", "cluster", PUBLIC, "0")
    assert espresso.ok("report", "vm", "nextmac") == "76:77:6e:40:00:02\n"
