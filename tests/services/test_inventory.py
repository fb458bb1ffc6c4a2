"""services/inventory.py: hosts, interfaces, networks and boot, one transaction per use-case."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import Base
from flightdeck.errors import Conflict, NotFound, PlannerError, UserError
from flightdeck.services import attributes, inventory
from flightdeck.services.frontend import FrontendSpec, init_frontend


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    init_frontend(
        FrontendSpec(
            name="espresso.rocksclusters.org",
            public_ip="137.110.119.117",
            public_netmask="255.255.255.0",
            private_ip="10.1.1.1",
            private_netmask="255.255.0.0",
        ),
        db_url,
    )
    database = open_database(db_url)
    yield database
    database.dispose()


def dump(db: Database) -> dict[str, list[tuple[object, ...]]]:
    with db.engine.connect() as c:
        return {
            name: sorted((tuple(r) for r in c.execute(t.select())), key=repr)
            for name, t in Base.metadata.tables.items()
        }


def hosts(db: Database) -> list[tuple[str, str, int, int, int]]:
    return [(r.name, r.membership, r.rack, r.rank, r.cpus) for r in inventory.list_hosts(db, [])]


def ifaces(db: Database, *exprs: str) -> list[tuple[str, str | None, str, str | None, str | None]]:
    return [(r.host, r.subnet, r.iface, r.mac, r.ip) for r in inventory.list_interfaces(db, exprs)]


# Hosts ----------------------------------------------------------------------------------------


def test_add_host_ranks_follow_appliance_and_rack(db: Database) -> None:
    for _ in range(2):
        inventory.add_host(db, f"vm-container-0-{_}", "VM Container")
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-2-0", "compute", rack=2, cpus=8)
    inventory.add_host(db, "compute-2-7", "compute", rack=2, rank=7)
    inventory.add_host(db, "compute-2-8", "compute", rack=2)
    # Listed by rack, rank, then name.
    assert [h for h in hosts(db) if h[0] != "frontend-0-0"] == [
        ("compute-0-0", "Compute", 0, 0, 1),
        ("vm-container-0-0", "VM Container", 0, 0, 1),
        ("vm-container-0-1", "VM Container", 0, 1, 1),
        ("compute-2-0", "Compute", 2, 0, 8),
        ("compute-2-7", "Compute", 2, 7, 1),
        ("compute-2-8", "Compute", 2, 8, 1),
    ]


def test_add_host_creates_its_boot_row(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute", comment="spare", os_name="linux")
    assert inventory.list_boot(db, ["compute-0-0"]) == [("compute-0-0", "os")]
    (row,) = inventory.list_hosts(db, ["compute-0-0"])
    assert (row.comment, row.run_action, row.install_action) == ("spare", "os", "install")


def test_add_host_refusals_change_nothing(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    before = dump(db)
    with pytest.raises(Conflict, match="compute-0-0 is already in the database"):
        inventory.add_host(db, "compute-0-0", "VM Container")
    with pytest.raises(
        NotFound, match=r"membership 'Storage' is not valid: use one of .*'Compute'"
    ):
        inventory.add_host(db, "storage-0-0", "Storage")
    for bad in ("bad_name", "-x", "a..b", "10.1.1.1", "x" * 254, ""):
        with pytest.raises(UserError, match="invalid host name"):
            inventory.add_host(db, bad, "Compute")
    assert dump(db) == before


def test_list_hosts_by_expression(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-0-1", "Compute")
    assert [r.name for r in inventory.list_hosts(db, ["compute"])] == [
        "compute-0-0",
        "compute-0-1",
    ]
    with pytest.raises(NotFound):
        inventory.list_hosts(db, ["compute-9-9"])


def test_remove_hosts_takes_interfaces_attributes_and_boot_with_them(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", mac="52:54:00:00:00:10", ip="auto",
                            subnet="private")  # fmt: skip
    attributes.set_host(db, ["compute-0-0"], "cpu_mode", "host-model")
    before = dump(db)
    inventory.add_host(db, "compute-0-1", "Compute")
    inventory.add_interface(db, "compute-0-1", "eth0", mac="52:54:00:00:00:11", ip="auto",
                            subnet="private")  # fmt: skip
    attributes.set_host(db, ["compute-0-1"], "cpu_mode", "host-model")
    assert inventory.remove_hosts(db, ["compute-0-1"]) == ["compute-0-1"]
    after = dump(db)
    # Ids are not reused on every backend, so compare everything but them.
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert ifaces(db, "compute-0-0") == [
        ("compute-0-0", "private", "eth0", "52:54:00:00:00:10", "10.1.255.254")
    ]


def test_remove_hosts_all_or_nothing(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    before = dump(db)
    with pytest.raises(NotFound, match="nosuch"):
        inventory.remove_hosts(db, ["compute-0-0", "nosuch"])
    with pytest.raises(UserError, match="at least one host"):
        inventory.remove_hosts(db, [])
    assert dump(db) == before


def test_set_hosts_changes_fields_of_many_hosts(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-0-1", "Compute")
    inventory.set_hosts(db, ["compute"], {"cpus": 4, "rack": 3, "comment": "moved"})
    assert [(r.cpus, r.rack, r.comment) for r in inventory.list_hosts(db, ["compute"])] == [
        (4, 3, "moved"),
        (4, 3, "moved"),
    ]
    inventory.set_hosts(db, ["compute-0-1"], {"membership": "VM Container"})
    assert [r.membership for r in inventory.list_hosts(db, ["rack3"])] == [
        "Compute",
        "VM Container",
    ]


def test_rename_carries_the_interface_name(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", ip="auto", subnet="private")
    inventory.add_interface(db, "compute-0-0", "eth1", ip="137.110.119.50")
    inventory.set_hosts(db, ["compute-0-0"], {"name": "node-a"})
    assert [(r.host, r.name) for r in inventory.list_interfaces(db, ["node-a"])] == [
        ("node-a", "node-a"),
        ("node-a", "compute-0-0-public"),
    ]


def test_rename_refusals_change_nothing(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-0-1", "Compute")
    before = dump(db)
    with pytest.raises(Conflict, match="compute-0-1 is already in the database"):
        inventory.set_hosts(db, ["compute-0-0"], {"name": "compute-0-1"})
    with pytest.raises(UserError, match="renames one host"):
        inventory.set_hosts(db, ["compute"], {"name": "x"})
    with pytest.raises(UserError, match="invalid host name"):
        inventory.set_hosts(db, ["compute-0-0"], {"name": "no_good"})
    with pytest.raises(NotFound, match="membership"):
        inventory.set_hosts(db, ["compute"], {"cpus": 9, "membership": "nope"})
    assert dump(db) == before


# Interfaces -----------------------------------------------------------------------------------


def test_ip_auto_takes_the_highest_free_address(db: Database) -> None:
    for rank in range(3):
        inventory.add_host(db, f"compute-0-{rank}", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", ip="10.1.255.253", subnet="private")
    inventory.add_interface(db, "compute-0-1", "eth0", ip="auto", subnet="private")
    inventory.add_interface(db, "compute-0-2", "eth0", ip="AUTO", subnet="private")
    assert [r[4] for r in ifaces(db, "compute")] == ["10.1.255.253", "10.1.255.254", "10.1.255.252"]


def test_ip_auto_reports_a_full_network(db: Database) -> None:
    inventory.add_network(db, "tiny", "192.168.9.0", "255.255.255.252")
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth1", ip="auto", subnet="tiny")
    inventory.add_interface(db, "compute-0-0", "eth2", ip="auto", subnet="tiny")
    before = dump(db)
    with pytest.raises(PlannerError):
        inventory.add_interface(db, "compute-0-0", "eth3", ip="auto", subnet="tiny")
    assert dump(db) == before


def test_interface_network_and_name_defaults(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", mac="52:54:00:AB:CD:EF", ip="10.1.2.3")
    inventory.add_interface(db, "compute-0-0", "eth1", ip="137.110.119.9")
    inventory.add_interface(db, "compute-0-0", "ib0")
    rows = inventory.list_interfaces(db, ["compute-0-0"])
    assert [(r.iface, r.subnet, r.mac, r.ip, r.netmask, r.name) for r in rows] == [
        ("eth0", "private", "52:54:00:ab:cd:ef", "10.1.2.3", "255.255.0.0", "compute-0-0"),
        ("eth1", "public", None, "137.110.119.9", "255.255.255.0", "compute-0-0-public"),
        ("ib0", None, None, None, None, "compute-0-0"),
    ]


def test_add_interface_refusals_change_nothing(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-0-1", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", mac="52:54:00:00:00:01", ip="10.1.0.9")
    before = dump(db)
    cases: list[tuple[type[Exception], str, dict[str, object]]] = [
        (Conflict, "already used by compute-0-0 eth0", {"mac": "52:54:00:00:00:01"}),
        (Conflict, "already used by compute-0-0 eth0", {"mac": "52-54-00-00-00-01"}),
        (Conflict, "IP 10.1.0.9 on network private is already used", {"ip": "10.1.0.9"}),
        (UserError, "outside network public", {"ip": "10.1.0.10", "subnet": "public"}),
        (UserError, "ip=auto needs subnet", {"ip": "auto"}),
        (UserError, "invalid IP", {"ip": "10.1.0.300"}),
        (UserError, "invalid IP", {"ip": "fe80::1"}),
        (UserError, "invalid MAC", {"mac": "52:54:00:00:00"}),
        (UserError, "invalid VLAN", {"vlan": 4095}),
        (NotFound, "unknown network", {"subnet": "nowhere"}),
    ]
    for exc, says, kw in cases:
        with pytest.raises(exc, match=says):
            inventory.add_interface(db, "compute-0-1", "eth0", **kw)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match="already has an interface eth0"):
        inventory.add_interface(db, "compute-0-0", "eth0")
    with pytest.raises(UserError, match="names 2 hosts"):
        inventory.add_interface(db, "compute", "eth5")
    with pytest.raises(UserError, match="invalid interface name"):
        inventory.add_interface(db, "compute-0-1", "a-very-long-interface-name")
    assert dump(db) == before


def test_set_interface(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", mac="52:54:00:00:00:01", ip="10.1.0.9")
    inventory.set_interface(db, "compute-0-0", "eth0", {"mac": "52:54:00:00:00:0A"})
    inventory.set_interface(db, "compute-0-0", "eth0", {"ip": "10.1.0.9"})  # its own IP: fine
    inventory.set_interface(db, "compute-0-0", "eth0", {"ip": "137.110.119.77", "subnet": "public"})
    inventory.set_interface(db, "compute-0-0", "eth0", {"vlan": 12, "module": "virtio_net"})
    (row,) = inventory.list_interfaces(db, ["compute-0-0"])
    assert (row.mac, row.ip, row.subnet, row.vlan, row.module) == (
        "52:54:00:00:00:0a", "137.110.119.77", "public", 12, "virtio_net"
    )  # fmt: skip
    inventory.set_interface(db, "compute-0-0", "eth0", {"mac": "none", "ip": "none",
                                                        "module": "None"})  # fmt: skip
    (row,) = inventory.list_interfaces(db, ["compute-0-0"])
    assert (row.mac, row.ip, row.subnet, row.module) == (None, None, "public", None)


def test_set_interface_refusals_change_nothing(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", mac="52:54:00:00:00:01", ip="10.1.0.9")
    inventory.add_interface(db, "compute-0-0", "eth1", mac="52:54:00:00:00:02", ip="10.1.0.8")
    before = dump(db)
    with pytest.raises(Conflict, match="already used by compute-0-0 eth0"):
        inventory.set_interface(db, "compute-0-0", "eth1", {"mac": "52:54:00:00:00:01"})
    with pytest.raises(Conflict, match="already used by compute-0-0 eth0"):
        inventory.set_interface(db, "compute-0-0", "eth1", {"ip": "10.1.0.9"})
    with pytest.raises(UserError, match="outside network public"):
        inventory.set_interface(db, "compute-0-0", "eth1", {"subnet": "public"})
    with pytest.raises(NotFound, match="has no interface 'eth9' \\(it has: eth0, eth1\\)"):
        inventory.set_interface(db, "compute-0-0", "eth9", {"vlan": 2})
    with pytest.raises(UserError, match="invalid VLAN"):
        inventory.set_interface(db, "compute-0-0", "eth1", {"module": "x", "vlan": -1})
    assert dump(db) == before


def test_remove_interface(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_interface(db, "compute-0-0", "eth0", ip="auto", subnet="private")
    inventory.add_interface(db, "compute-0-0", "eth1")
    before = dump(db)
    with pytest.raises(NotFound, match="eth7"):
        inventory.remove_interface(db, "compute-0-0", ["eth1", "eth7"])
    assert dump(db) == before
    inventory.remove_interface(db, "compute-0-0", ["eth0"])
    assert [r[2] for r in ifaces(db, "compute-0-0")] == ["eth1"]
    # The freed IP is allocated again.
    inventory.add_interface(db, "compute-0-0", "eth2", ip="auto", subnet="private")
    assert ifaces(db, "compute-0-0")[1][4] == "10.1.255.254"


# Networks, appliances, boot -------------------------------------------------------------------


def test_networks(db: Database) -> None:
    row = inventory.add_network(db, "optiputer", "192.168.1.0", "24")
    assert (row.subnet, row.netmask, row.mtu, row.dnszone) == (
        "192.168.1.0", "255.255.255.0", 1500, "optiputer"
    )  # fmt: skip
    assert [n.name for n in inventory.list_networks(db)] == ["private", "public", "optiputer"]
    before = dump(db)
    with pytest.raises(Conflict, match="already exists"):
        inventory.add_network(db, "optiputer", "192.168.2.0", "24")
    with pytest.raises(UserError, match=r"did you mean 192\.168\.3\.0"):
        inventory.add_network(db, "n2", "192.168.3.7", "255.255.255.0")
    with pytest.raises(UserError, match="invalid network name"):
        inventory.add_network(db, "2bad", "192.168.4.0", "24")
    assert dump(db) == before


def test_appliances(db: Database) -> None:
    assert inventory.list_appliances(db) == [
        ("frontend", "Frontend", True),
        ("vm-container", "VM Container", True),
        ("hosted-vm", "Hosted VM", False),
        ("compute", "Compute", True),
    ]


def test_boot_actions(db: Database) -> None:
    from flightdeck.services.bootactions import set_host_boot

    inventory.add_host(db, "compute-0-0", "Compute")
    inventory.add_host(db, "compute-0-1", "Compute")
    assert set_host_boot(db, ["compute"], " Install ") == ["compute-0-0", "compute-0-1"]
    assert inventory.list_boot(db, ["compute-0-%"]) == [
        ("compute-0-0", "install"),
        ("compute-0-1", "install"),
    ]
    before = dump(db)
    with pytest.raises(UserError, match="invalid boot action"):
        set_host_boot(db, ["compute"], "pxe")
    assert dump(db) == before
    names = [a[0] for a in inventory.list_boot_actions(db)]
    assert names == sorted(["install", "install vm frontend", "install vm frontend image", "os"])


def test_reading_services_never_write(db: Database) -> None:
    inventory.add_host(db, "compute-0-0", "Compute")
    before = dump(db)
    inventory.list_hosts(db, ["%"])
    inventory.list_interfaces(db, [])
    inventory.list_networks(db)
    inventory.list_boot(db, [])
    attributes.list_host(db, ["compute-0-0"])
    assert dump(db) == before
    with db.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM hosts")).scalar_one() == 2
