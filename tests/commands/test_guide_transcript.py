"""The users guide's virtual-cluster transcript (seeds 001 and 004), verbatim."""

from __future__ import annotations

from typing import Any


def test_add_cluster_prints_the_guides_three_lines(espresso: Any) -> None:
    out = espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=2")
    assert out == (
        "created frontend VM named: frontend-0-0-0\n"
        "\tcreated compute VM named: hosted-vm-0-0-0\n"
        "\tcreated compute VM named: hosted-vm-0-1-0\n"
    )


def test_list_cluster_is_the_guides_table(espresso: Any) -> None:
    espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=2")
    assert espresso.ok("list", "cluster") == (
        "FRONTEND                    CLIENT NODES     TYPE\n"
        "espresso.rocksclusters.org: ---------------- physical\n"
        ":                           vm-container-0-0 physical\n"
        ":                           vm-container-0-1 physical\n"
        "frontend-0-0-0-public:      ---------------- VM\n"
        ":                           hosted-vm-0-0-0  VM\n"
        ":                           hosted-vm-0-1-0  VM\n"
    )


def test_list_host_interface_of_the_virtual_frontend(espresso: Any) -> None:
    espresso.ok("add", "cluster", "ip=137.110.119.118", "num-computes=2")
    lines = espresso.ok("list", "host", "interface", "frontend-0-0-0").splitlines()
    assert lines[0].split() == [
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
    ]
    eth0, eth1 = (line.split() for line in lines[1:])
    assert eth0[:5] == ["private", "eth0", "76:77:6e:40:00:00", "10.1.255.252", "255.255.0.0"]
    assert eth0[6:8] == ["frontend-0-0-0", "2"]
    assert eth1[:5] == ["public", "eth1", "76:77:6e:40:00:01", "137.110.119.118", "255.255.255.0"]
    assert eth1[6:8] == ["frontend-0-0-0-public", "0"]


def test_add_host_vm_prints_the_guides_line(espresso: Any) -> None:
    out = espresso.ok("add", "host", "vm", "vm-container-0-0", "membership=Compute")
    assert out == "added VM compute-0-0-0 on physical node vm-container-0-0\n"


def test_positional_form_is_the_same_as_named(espresso: Any) -> None:
    out = espresso.ok("add", "cluster", "137.110.119.118", "2")
    assert out.splitlines()[0] == "created frontend VM named: frontend-0-0-0"
