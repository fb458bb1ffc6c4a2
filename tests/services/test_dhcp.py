"""DHCP from the database: who gets a fixed lease, sync, and insert-ethers' transaction."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flightdeck.db.engine import open_database
from flightdeck.errors import NotFound
from flightdeck.services import dhcp, provisioning


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLIGHTDECK_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def db(espresso: Any, home: Path) -> Any:
    database = open_database(espresso.url)
    yield database
    database.dispose()


def test_leases_skip_vlans_and_interfaces_without_mac_or_ip(espresso: Any, db: Any) -> None:
    espresso.ok("add", "host", "compute-0-0", "membership=Compute")
    espresso.ok("add", "host", "interface", "compute-0-0", "eth0", "mac=52:54:00:00:00:10",
                "ip=auto", "subnet=private")  # fmt: skip
    espresso.ok("add", "host", "interface", "compute-0-0", "eth1", "mac=52:54:00:00:00:11",
                "ip=auto", "subnet=private", "vlan=2")  # fmt: skip
    espresso.ok("add", "host", "interface", "compute-0-0", "eth2", "mac=52:54:00:00:00:12")
    espresso.ok("add", "host", "interface", "compute-0-0", "eth3", "mac=52:54:00:00:00:13",
                "ip=137.110.119.50", "subnet=public")  # fmt: skip
    hosts = dhcp.render(db).hosts.splitlines()[1:]
    assert hosts == [  # in host order: rack, rank, name
        "52:54:00:00:00:10,10.1.255.252,compute-0-0,infinite",
        "52:54:00:fd:00:01,10.1.255.254,vm-container-0-0,infinite",
        "52:54:00:fd:00:02,10.1.255.253,vm-container-0-1,infinite",
    ]
    # An untagged VLAN 0 is served like no VLAN.
    espresso.ok("set", "host", "interface", "compute-0-0", "eth1", "vlan=0")
    assert "52:54:00:00:00:11,10.1.255.251,compute-0-0,infinite" in dhcp.render(db).hosts


def test_sync_writes_once_then_says_no_change(espresso: Any, db: Any, home: Path) -> None:
    first = dhcp.sync_dhcp(db)
    assert first.changed == [home / "dhcp" / "hosts", home / "dhcp" / "opts"]
    assert first.reloaded is None and first.hosts == 2
    again = dhcp.sync_dhcp(db)
    assert again.changed == [] and again.reloaded is None
    espresso.ok("remove", "host", "vm-container-0-1")
    third = dhcp.sync_dhcp(db)
    assert third.changed == [home / "dhcp" / "hosts"] and third.hosts == 1


def test_report_needs_an_interface_and_a_private_network(rocks: Any, home: Path) -> None:
    database = open_database(rocks.url, create=True)
    try:
        with pytest.raises(NotFound, match="no private network: run rocks init frontend"):
            dhcp.render(database)
    finally:
        database.dispose()


def test_discover_names_the_next_of_the_appliance_with_the_next_ip(espresso: Any, db: Any) -> None:
    a = provisioning.discover(db, "52:54:00:AA:00:01", "VM Container")
    assert a == provisioning.Discovered(
        "vm-container-0-2", "52:54:00:aa:00:01", "10.1.255.252", "VM Container", 0, 2
    )
    b = provisioning.discover(db, "52:54:00:aa:00:02", "compute", rack=1)
    assert b is not None and (b.name, b.ip) == ("compute-1-0", "10.1.255.251")
    # rank= starts there and skips names in use.
    espresso.ok("add", "host", "compute-1-5", "membership=Compute", "rack=1", "rank=5")
    c = provisioning.discover(db, "52:54:00:aa:00:03", "Compute", rack=1, rank=5)
    assert c is not None and c.name == "compute-1-6"
    # Never an address of the discovery pool, which dnsmasq lends.
    d = provisioning.discover(db, "52:54:00:aa:00:04", "Compute", exclude=["10.1.255.249"])
    assert d is not None and d.ip == "10.1.255.248"
    # A known MAC is nobody new.
    assert provisioning.discover(db, "52:54:00:aa:00:01", "Compute") is None
    boots = espresso.ok("list", "host", "boot", "vm-container-0-2", "output-header=no")
    assert boots.split() == ["vm-container-0-2:", "install"]
    with pytest.raises(NotFound, match="membership 'Toaster' is not valid"):
        provisioning.discover(db, "52:54:00:aa:00:09", "Toaster")


def test_insert_and_forget_rewrite_the_leases(espresso: Any, db: Any, home: Path) -> None:
    found = provisioning.insert(db, "52:54:00:aa:00:01", "VM Container", 0, None)
    assert found is not None
    hosts = (home / "dhcp" / "hosts").read_text()
    assert "52:54:00:aa:00:01,10.1.255.252,vm-container-0-2,infinite" in hosts
    gone = provisioning.forget(db, "vm-container-0-2")
    assert gone.name == "vm-container-0-2" and gone.sync.changed == [home / "dhcp" / "hosts"]
    assert gone.interfaces == [("52:54:00:aa:00:01", "10.1.255.252")]
    assert "52:54:00:aa:00:01" not in (home / "dhcp" / "hosts").read_text()


def test_completion_checks_the_address(espresso: Any, db: Any) -> None:
    from flightdeck.errors import PermissionDenied

    espresso.ok("set", "host", "boot", "vm-container-0-0", "action=install")
    with pytest.raises(PermissionDenied, match=r"came from 10\.1\.1\.1, not from its address"):
        provisioning.complete(db, "52:54:00:fd:00:01", "10.1.1.1")
    assert provisioning.complete(db, "52-54-00-FD-00-01", "10.1.255.254") == "vm-container-0-0"
    out = espresso.ok("list", "host", "boot", "vm-container-0-0", "output-header=no")
    assert out.split()[-1] == "os"
