"""The inventory commands end to end: what a user types and exactly what is printed."""

from __future__ import annotations

import json
from typing import Any

import pytest


def test_add_and_list_host(espresso: Any) -> None:
    assert espresso.ok("add", "host", "compute-1-0", "membership=Compute", "rack=1", "cpus=8",
                       "comment=GPU node") == ""  # fmt: skip
    espresso.ok("add", "host", "compute-1-1", "membership=compute", "rack=1")
    assert espresso.ok("list", "host") == (
        "HOST              MEMBERSHIP   CPUS RACK RANK RUNACTION INSTALLACTION COMMENT\n"
        f"frontend-0-0:     Frontend     {espresso_cpus(espresso):<4} 0    0    os        install"
        "       --------\n"
        "vm-container-0-0: VM Container 1    0    0    os        install       --------\n"
        "vm-container-0-1: VM Container 1    0    1    os        install       --------\n"
        "compute-1-0:      Compute      8    1    0    os        install       GPU node\n"
        "compute-1-1:      Compute      1    1    1    os        install       --------\n"
    )
    assert espresso.ok("list", "host", "compute", "output-col=host", "output-header=no") == (
        "compute-1-0:\ncompute-1-1:\n"
    )


def espresso_cpus(rocks: Any) -> str:
    rows = json.loads(rocks.ok("list", "host", "frontend-0-0", "output-format=json"))
    return str(rows[0]["cpus"])


def test_add_host_interface_positional_and_named(espresso: Any) -> None:
    espresso.ok("add", "host", "compute-0-0", "membership=Compute")
    espresso.ok("add", "host", "interface", "compute-0-0", "eth0", "mac=52:54:00:AA:00:01",
                "ip=auto", "subnet=private", "module=virtio_net")  # fmt: skip
    espresso.ok("add", "host", "interface", "compute-0-0", "iface=eth1",
                "ip=137.110.119.140", "vlan=0")  # fmt: skip
    assert espresso.ok("list", "host", "interface", "compute-0-0") == (
        "SUBNET  IFACE MAC               IP              NETMASK       MODULE     NAME"
        "               VLAN OPTIONS CHANNEL\n"
        "private eth0  52:54:00:aa:00:01 10.1.255.252    255.255.0.0   virtio_net compute-0-0"
        "        ---- ------- -------\n"
        "public  eth1  ----------------- 137.110.119.140 255.255.255.0 ---------- "
        "compute-0-0-public 0    ------- -------\n"
    )
    # Every way to name it gives the same interfaces.
    for expr in ("52:54:00:aa:00:01", "10.1.255.252", "compute-0-0-public", "compute-0-%"):
        assert espresso.ok("list", "host", "interface", expr) == espresso.ok(
            "list", "host", "interface", "compute-0-0"
        )


def test_set_and_remove_host_interface(espresso: Any) -> None:
    espresso.ok("set", "host", "interface", "vm-container-0-0", "eth0", "mac=52:54:00:fd:00:aa",
                "disable-kvm=yes", "options=dhcp")  # fmt: skip
    rows = json.loads(espresso.ok("list", "host", "interface", "vm-container-0-0",
                                  "output-format=json"))  # fmt: skip
    assert (rows[0]["mac"], rows[0]["options"]) == ("52:54:00:fd:00:aa", "dhcp")
    espresso.ok("remove", "host", "interface", "vm-container-0-0", "eth0")
    assert espresso.ok("list", "host", "interface", "vm-container-0-0") == (
        "HOST SUBNET IFACE MAC IP NETMASK MODULE NAME VLAN OPTIONS CHANNEL\n"
    )


def test_set_host_fields_and_rename(espresso: Any) -> None:
    espresso.ok("set", "host", "vm-container-0-%", "cpus=16", "comment=big")
    espresso.ok("set", "host", "vm-container-0-1", "name=vmc-b", "rack=4", "rank=2")
    out = espresso.ok("list", "host", "vm-container", "output-format=json")
    assert [
        (r["host"], r["cpus"], r["rack"], r["rank"], r["comment"]) for r in json.loads(out)
    ] == [
        ("vm-container-0-0", 16, 0, 0, "big"),
        ("vmc-b", 16, 4, 2, "big"),
    ]
    # The interface alias followed the rename; the MAC still finds it.
    assert espresso.ok("list", "host", "52:54:00:fd:00:02", "output-col=host",
                       "output-header=no") == "vmc-b:\n"  # fmt: skip


def test_set_host_attr_many_hosts_positional_from_the_end(espresso: Any) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "vm-container-0-1", "kvm", "false")
    out = espresso.ok("list", "host", "attr", "vm-container", "attr=kvm")
    assert out == (
        "HOST              ATTR VALUE SOURCE\n"
        "vm-container-0-0: kvm  false H\n"
        "vm-container-0-1: kvm  false H\n"
    )
    espresso.ok("remove", "host", "attr", "vm-container-0-0", "kvm")
    out = espresso.ok("list", "host", "attr", "vm-container", "attr=kvm", "output-header=no")
    assert out == "vm-container-0-0: kvm true  A\nvm-container-0-1: kvm false H\n"


def test_global_and_appliance_attributes(espresso: Any) -> None:
    espresso.ok("set", "attr", "kvm_domain_type", "qemu")
    assert espresso.ok("list", "attr", "kvm_domain_type") == "ATTR            VALUE\n" \
        "kvm_domain_type qemu\n"  # fmt: skip
    espresso.ok("set", "appliance", "attr", "compute", "hosted-vm", "kvm", "true")
    assert espresso.ok("list", "appliance", "attr") == (
        "APPLIANCE     ATTR    VALUE\n"
        "compute:      kvm     true\n"
        "hosted-vm:    kvm     true\n"
        "vm-container: kvm     true\n"
        "vm-container: managed true\n"
    )
    espresso.ok("remove", "appliance", "attr", "compute", "kvm")
    espresso.ok("remove", "attr", "kvm_domain_type")
    assert espresso.ok("list", "attr", "kvm_domain_type") == "ATTR VALUE\n"
    assert "compute" not in espresso.ok("list", "appliance", "attr")


def test_networks_memberships_appliances_bootactions(espresso: Any) -> None:
    espresso.ok("add", "network", "optiputer", "192.168.1.0", "255.255.255.0", "mtu=9000")
    assert espresso.ok("list", "network") == (
        "NETWORK    SUBNET        NETMASK       MTU  DNSZONE\n"
        "private:   10.1.0.0      255.255.0.0   1500 local\n"
        "public:    137.110.119.0 255.255.255.0 1500 rocksclusters.org\n"
        "optiputer: 192.168.1.0   255.255.255.0 9000 optiputer\n"
    )
    assert espresso.ok("list", "membership") == (
        "MEMBERSHIP    APPLIANCE    PUBLIC\n"
        "Frontend:     frontend     yes\n"
        "VM Container: vm-container yes\n"
        "Hosted VM:    hosted-vm    no\n"
        "Compute:      compute      yes\n"
    )
    assert espresso.ok("list", "appliance", "output-col=appliance", "output-header=no") == (
        "frontend:\nvm-container:\nhosted-vm:\ncompute:\n"
    )
    actions = json.loads(espresso.ok("list", "bootaction", "output-format=json"))
    assert [a["action"] for a in actions] == [
        "install",
        "install vm frontend",
        "install vm frontend image",
        "os",
    ]


def test_boot(espresso: Any) -> None:
    espresso.ok("set", "host", "boot", "vm-container-0-1", "install")
    espresso.ok("set", "host", "boot", "vm-container-0-0", "action=os")
    assert espresso.ok("list", "host", "boot", "vm-container") == (
        "HOST              ACTION\nvm-container-0-0: os\nvm-container-0-1: install\n"
    )


def test_remove_host(espresso: Any) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-1", "x", "y")
    espresso.ok("remove", "host", "vm-container-0-1")
    r = espresso("list", "host", "vm-container-0-1")
    assert r.code == 1 and "unknown host" in r.err
    # Its MAC and IP are free again.
    espresso.ok("add", "host", "compute-0-0", "membership=Compute")
    espresso.ok("add", "host", "interface", "compute-0-0", "eth0", "mac=52:54:00:fd:00:02",
                "ip=auto", "subnet=private")  # fmt: skip
    rows = json.loads(espresso.ok("list", "host", "interface", "compute-0-0", "output-format=json"))
    assert (rows[0]["mac"], rows[0]["ip"]) == ("52:54:00:fd:00:02", "10.1.255.253")
    dump = espresso.dump()
    # Only the frontend's kvm and libvirt_uri and vm-container-0-0's libvirt_uri are left.
    assert len(dump["host_attributes"]) == 3


def test_the_real_executable_runs_a_workflow(espresso: Any) -> None:
    p = espresso.process(["add", "host", "compute-0-0", "membership=Compute", "cpus=2"])
    assert (p.returncode, p.stdout, p.stderr) == (0, "", "")
    p = espresso.process(["add", "host", "interface", "compute-0-0", "eth0", "ip=auto",
                          "subnet=private"])  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = espresso.process(["list", "host", "interface", "compute-0-0", "output-format=csv",
                          "output-col=ip"])  # fmt: skip
    assert (p.returncode, p.stdout) == (0, "ip\n10.1.255.252\n")


# Names that widen (issue 14): a host named like another host expression -----------------------

WIDENING_NAMES = [
    ("rack0", "rack 0"),
    ("RACK12", "rack 12"),
    ("compute", "appliance 'compute'"),
    ("Vm-Container", "appliance 'vm-container'"),
    ("frontend", "appliance 'frontend'"),
    ("52-54-00-fd-00-01", "MAC address 52:54:00:fd:00:01"),
    ("0a-2-0-80-0-0", "MAC address 0a:02:00:80:00:00"),
]


@pytest.mark.parametrize(("name", "read_as"), WIDENING_NAMES)
def test_host_names_the_grammar_reads_otherwise_are_refused(
    espresso: Any, name: str, read_as: str
) -> None:
    line = espresso.refused(
        "add", "host", name, "membership=Compute",
        says=f"host name {name!r} is read by host expressions as {read_as}",
    )  # fmt: skip
    assert line.endswith("choose another name, e.g. compute-0-0")
    espresso.refused("set", "host", "vm-container-0-1", f"name={name}", says="host expressions")


def test_a_widening_name_would_have_reached_every_host_of_the_rack(espresso: Any) -> None:
    """Why: a host named rack0, once named as a target, is every host in rack 0."""
    espresso.refused("add", "host", "rack0", "membership=Compute", says="rack 0")
    espresso.ok("add", "host", "rack0-node", "membership=Compute", "rack=5")
    espresso.ok("set", "host", "boot", "rack0-node", "action=install")
    assert espresso.ok("list", "host", "boot", "output-header=no").split() == [
        "frontend-0-0:", "os", "vm-container-0-0:", "os", "vm-container-0-1:", "os",
        "rack0-node:", "install",
    ]  # fmt: skip


# Strings that end up in configuration files (issue 14, weak) -----------------------------------

INJECTED = "\nGATEWAY=6.6.6.6"


def test_a_dns_zone_cannot_add_a_line_to_a_network_file(espresso: Any) -> None:
    espresso.refused(
        "add", "network", "evil", "192.168.5.0", "24", f"dnszone=lab{INJECTED}",
        says="invalid DNS zone 'lab\\nGATEWAY=6.6.6.6'",
    )  # fmt: skip
    espresso.refused("add", "network", "evil", "192.168.5.0", "24", "dnszone=lab zone",
                     says="invalid DNS zone 'lab zone'")  # fmt: skip
    espresso.ok("add", "network", "good", "192.168.5.0", "24", "dnszone=lab.example.org")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("module", "e1000\ninstall e1000 /bin/sh -c id", "invalid kernel module name"),
        ("module", "e1000 x", "invalid kernel module name"),
        ("options", "debug=1\ninstall e1000 /bin/sh -c id", "control character"),
    ],
)
def test_interface_fields_cannot_add_a_line_to_modprobe_d(
    espresso: Any, field: str, value: str, says: str
) -> None:
    espresso.refused("set", "host", "interface", "vm-container-0-0", "eth0", f"{field}={value}",
                     says=says)  # fmt: skip
    espresso.refused("add", "host", "interface", "vm-container-0-0", "eth9", f"{field}={value}",
                     says=says)  # fmt: skip


def test_rows_written_past_the_commands_are_refused_when_rendered(espresso: Any) -> None:
    """A DB string is checked again where it goes into a file, naming the host and the value."""
    import sqlalchemy

    from flightdeck.db.tables import interfaces, networks

    espresso.ok("add", "network", "lab", "192.168.5.0", "24")
    espresso.ok("set", "host", "attr", "vm-container-0-0", "primary_net", "lab")
    espresso.ok("report", "host", "network", "vm-container-0-0", "format=ifcfg")
    engine = sqlalchemy.create_engine(espresso.url)
    try:
        with engine.begin() as conn:
            conn.execute(networks.update().where(networks.c.name == "lab")
                         .values(dnszone=f"lab{INJECTED}"))  # fmt: skip
        espresso.refused(
            "report", "host", "network", "vm-container-0-0", "format=ifcfg",
            says="vm-container-0-0: host name 'vm-container-0-0.lab\\nGATEWAY=",
        )  # fmt: skip
        with engine.begin() as conn:
            conn.execute(networks.update().where(networks.c.name == "lab").values(dnszone="lab"))
            conn.execute(interfaces.update().where(interfaces.c.device == "eth0")
                         .values(module="e1000\ninstall e1000 /bin/sh"))  # fmt: skip
        espresso.refused("report", "host", "network", "vm-container-0-0", "format=ifcfg",
                         says="eth0: invalid kernel module name")  # fmt: skip
    finally:
        engine.dispose()
