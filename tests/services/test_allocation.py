"""The allocator (names, slices, MACs, IPs, VLANs inside one write transaction), container
capacity and kvm checks, and the bulk insert, against real SQLite and PostgreSQL databases.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import (
    VM,
    GlobalAttr,
    Host,
    HostBoot,
    Interface,
    Network,
    VMDisk,
)
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.planner.disks import default_disk
from flightdeck.planner.placement import ContainerCapacity
from flightdeck.services.allocation import (
    Allocator,
    NewNic,
    NewVM,
    container_capacity,
    insert_vms,
    kvm_hosts,
    require_kvm,
)
from flightdeck.services.clusters import ClusterRequest, add_cluster

C0, C1 = "vm-container-0-0", "vm-container-0-1"


@pytest.fixture
def db(espresso: Any, db_url: str) -> Iterator[Database]:
    d = open_database(db_url)
    yield d
    d.dispose()


def host(s: Any, name: str) -> Host:
    return s.scalars(select(Host).where(Host.name == name)).one()


def private(s: Any) -> Network:
    return s.scalars(select(Network).where(Network.name == "private")).one()


# MACs ------------------------------------------------------------------------------------------


def test_macs_continue_after_the_highest_and_remember_this_batch(db: Database) -> None:
    with db.transaction(write=True) as s:
        alloc = Allocator(s)
        assert alloc.macs(2) == ["76:77:6e:40:00:00", "76:77:6e:40:00:01"]
        assert alloc.macs(1) == ["76:77:6e:40:00:02"]
        # A MAC claimed explicitly above the others moves "max" on.
        assert alloc.claim_mac("76:77:6E:40:00:10") == "76:77:6e:40:00:10"
        assert alloc.macs(1) == ["76:77:6e:40:00:11"]
        with pytest.raises(UserError, match="MAC 76:77:6e:40:00:01 is given twice"):
            alloc.claim_mac("76:77:6e:40:00:01")


def test_claiming_a_mac_of_the_database_names_its_owner(db: Database) -> None:
    with (
        db.transaction(write=True) as s,
        pytest.raises(
            Conflict, match="MAC 52:54:00:fd:00:02 is already used by vm-container-0-1 eth0"
        ),
    ):
        Allocator(s).claim_mac("52:54:00:FD:00:02")


def test_without_a_mac_base_there_is_no_allocator(espresso: Any, db: Database) -> None:
    espresso.ok("remove", "attr", "vm_mac_base_addr")
    with db.transaction() as s, pytest.raises(NotFound, match="no VM MAC base address"):
        Allocator(s)


def test_a_different_mac_base_is_honoured(db: Database) -> None:
    with db.transaction(write=True) as s:
        s.get(GlobalAttr, "vm_mac_base_addr").value = "36:77:6e:c0:00:00"  # type: ignore[union-attr]
    with db.transaction() as s:
        assert Allocator(s).macs(2) == ["36:77:6e:c0:00:00", "36:77:6e:c0:00:01"]


# Names and slices ------------------------------------------------------------------------------


def test_vm_names_are_unique_in_the_batch_and_start_at_the_max_slice(db: Database) -> None:
    add_cluster(db, ClusterRequest(ip="137.110.119.118", num_computes=2))  # hosted-vm-0-{0,1}-0
    with db.transaction(write=True) as s:
        alloc = Allocator(s)
        c0, c1 = host(s, C0), host(s, C1)
        assert alloc.vm_name("hosted-vm", c0) == ("hosted-vm-0-0-1", 1)
        assert alloc.vm_name("hosted-vm", c0) == ("hosted-vm-0-0-2", 2)
        assert alloc.vm_name("compute", c1) == ("compute-0-1-0", 0)
        assert alloc.vm_name("compute", c1) == ("compute-0-1-1", 1)
        assert alloc.vm_name("hosted-vm", c1) == ("hosted-vm-0-1-1", 1)
        assert alloc.claim_name("web") == "web"
        with pytest.raises(Conflict, match="host web is already"):
            alloc.claim_name("web")
        with pytest.raises(Conflict, match="host frontend-0-0-0 is already"):
            alloc.claim_name("frontend-0-0-0")


# IPs -------------------------------------------------------------------------------------------


def test_ips_count_down_from_the_top_skipping_used_ones(db: Database) -> None:
    with db.transaction(write=True) as s:
        alloc = Allocator(s)
        net = private(s)
        # .254 and .253 are the containers'.
        assert [alloc.next_ip(net) for _ in range(3)] == [
            "10.1.255.252",
            "10.1.255.251",
            "10.1.255.250",
        ]
        assert alloc.claim_ip(net, "10.1.255.249") == "10.1.255.249"
        assert alloc.next_ip(net) == "10.1.255.248"
        with pytest.raises(UserError, match=re.escape("IP 10.1.255.251 is given twice")):
            alloc.claim_ip(net, "10.1.255.251")
        with pytest.raises(
            Conflict, match=re.escape("IP 10.1.1.1 on network private is already used")
        ):
            alloc.claim_ip(net, "10.1.1.1")


# VLANs -----------------------------------------------------------------------------------------


def test_used_vlans_name_their_users(espresso: Any, db: Database) -> None:
    add_cluster(db, ClusterRequest(ip="137.110.119.118", num_computes=1))
    espresso.ok("add", "host", "interface", C1, "vlan7", "vlan=7")
    # Untagged (0) and unset (NULL) are no VLAN.
    espresso.ok("add", "host", "interface", C0, "eth9", "vlan=0")
    with db.transaction() as s:
        alloc = Allocator(s)
        assert alloc.used_vlans() == {2: "cluster frontend-0-0-0", 7: f"host {C1}"}
        assert alloc.vlan(None) == 3
        assert alloc.vlan(3) == 3
        assert alloc.vlan(4094) == 4094
        with pytest.raises(Conflict, match="VLAN 7 is already used by host vm-container-0-1"):
            alloc.vlan(7)
        for bad in (0, 1, 4095, 4096, -2):
            with pytest.raises(UserError, match=f"invalid VLAN id {bad}"):
                alloc.vlan(bad)


# kvm -------------------------------------------------------------------------------------------


def test_kvm_capability_resolves_host_over_appliance_over_global(
    espresso: Any, db: Database
) -> None:
    espresso.ok("add", "host", "compute-0-0", "membership=Compute", "rack=0", "rank=0")
    espresso.ok("add", "host", "compute-0-1", "membership=Compute", "rack=0", "rank=1")
    espresso.ok("set", "host", "attr", "compute-0-1", "kvm", "TRUE")
    espresso.ok("set", "host", "attr", C1, "kvm", "no")

    def capable() -> list[str]:
        with db.transaction() as s:
            return [h.name for h in kvm_hosts(s, s.scalars(select(Host).order_by(Host.id)))]

    # The physical frontend has kvm=true of its own (rocks init frontend).
    assert capable() == ["frontend-0-0", C0, "compute-0-1"]
    espresso.ok("set", "attr", "kvm", "true")
    assert capable() == ["frontend-0-0", C0, "compute-0-0", "compute-0-1"]
    with db.transaction() as s:
        require_kvm(s, [host(s, C0), host(s, "compute-0-1")])
        with pytest.raises(UserError, match=f"host {C1} cannot host VMs"):
            require_kvm(s, [host(s, C0), host(s, C1)])


# Capacity --------------------------------------------------------------------------------------


def test_container_capacity_reads_memory_overcommit_and_use(espresso: Any, db: Database) -> None:
    espresso.ok("set", "appliance", "attr", "vm-container", "kvm_mem_mb", "16384")
    espresso.ok("set", "host", "attr", C1, "kvm_mem_mb", "8192")
    espresso.ok("set", "attr", "kvm_mem_overcommit", "1.5")
    add_cluster(
        db,
        ClusterRequest(
            ip="137.110.119.118",
            num_computes=3,
            mem_per_compute=1000,
            mem_per_frontend=4000,
            fe_container=C0,
        ),
    )
    with db.transaction() as s:
        caps = container_capacity(s, [host(s, C0), host(s, C1), host(s, "frontend-0-0")])
    assert caps == [
        # C0: the frontend (4000) and computes 0 and 2 (1000 each).
        ContainerCapacity(C0, 16384, 6000, 1.5),
        ContainerCapacity(C1, 8192, 1000, 1.5),
        ContainerCapacity("frontend-0-0", None, 0, 1.5),
    ]
    assert caps[0].free_mb == 16384 * 1.5 - 6000
    espresso.refused("set", "host", "attr", C1, "kvm_mem_overcommit", "much", says="ratio")
    espresso.store_host_attr(C1, "kvm_mem_overcommit", "much")  # as an older database may
    with db.transaction() as s, pytest.raises(UserError, match=f"overcommit of host {C1} is"):
        container_capacity(s, [host(s, C1)])


# Bulk insert -----------------------------------------------------------------------------------


def test_insert_vms_writes_every_row_of_every_vm(db: Database) -> None:
    with db.transaction(write=True) as s:
        c0 = host(s, C0)
        net = private(s)
        app_id = c0.appliance_id
        vms = [
            NewVM(
                name=f"bulk-{i}",
                appliance_id=app_id,
                container=c0,
                slice=i,
                cpus=2,
                mem_mb=512,
                nics=[
                    NewNic("eth0", f"02:00:00:00:01:{i:02x}", f"10.1.0.{i + 10}", net.id, None),
                    NewNic("eth1", f"02:00:00:00:02:{i:02x}", vlan=5, name=f"bulk-{i}-b"),
                ],
                disks=[default_disk(f"bulk-{i}", "/d", 10 + i)],
                boot="os",
                install_action="install headless",
                run_action="os",
            )
            for i in range(3)
        ]
        ids = insert_vms(s, vms)
        assert sorted(ids) == ["bulk-0", "bulk-1", "bulk-2"]
        assert insert_vms(s, []) == {}
    with db.transaction() as s:
        for i in range(3):
            h = host(s, f"bulk-{i}")
            assert h.id == ids[f"bulk-{i}"]
            assert (h.rack, h.rank, h.cpus, h.install_action) == (0, 0, 2, "install headless")
            vm = s.scalars(select(VM).where(VM.host_id == h.id)).one()
            assert (vm.container_id, vm.slice, vm.mem_mb, vm.cluster_id) == (c0.id, i, 512, None)
            assert [
                (n.device, n.mac, n.ip, n.vlan, n.name)
                for n in s.scalars(
                    select(Interface).where(Interface.host_id == h.id).order_by(Interface.device)
                )
            ] == [
                ("eth0", f"02:00:00:00:01:{i:02x}", f"10.1.0.{i + 10}", None, f"bulk-{i}"),
                ("eth1", f"02:00:00:00:02:{i:02x}", None, 5, f"bulk-{i}-b"),
            ]
            assert [(d.position, d.size_gb) for d in vm.disks] == [(0, 10 + i)]
            assert s.get(HostBoot, h.id).action == "os"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(VMDisk)) == 3


def test_insert_vms_duplicates_are_refused_by_the_schema(db: Database) -> None:
    """The schema, not only the allocator, keeps MACs unique: a race cannot slip through."""
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), db.transaction(write=True) as s:
        c0 = host(s, C0)
        insert_vms(
            s,
            [
                NewVM(
                    name="dup",
                    appliance_id=c0.appliance_id,
                    container=c0,
                    slice=0,
                    nics=[NewNic("eth0", "52:54:00:fd:00:01")],
                )
            ],
        )
    with db.transaction() as s:
        assert s.scalars(select(Host).where(Host.name == "dup")).first() is None
