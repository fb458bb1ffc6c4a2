"""VMs in the database: add / list / set / remove host vm, the CD-ROM and the next MAC.

On the guide's espresso (containers vm-container-0-0 and -0-1 hold 10.1.255.254 and .253), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import VM, Cluster, Host, HostBoot, Interface, Network, VMDisk
from flightdeck.errors import Conflict, NotFound, UserError
from flightdeck.services.clusters import ClusterRequest, add_cluster
from flightdeck.services.vms import (
    AddVMRequest,
    add_host_vm,
    list_host_vms,
    next_mac,
    remove_host_vms,
    set_cdrom,
    set_host_vm,
)

C0, C1 = "vm-container-0-0", "vm-container-0-1"


@pytest.fixture
def db(espresso: Any, db_url: str) -> Iterator[Database]:
    d = open_database(db_url)
    yield d
    d.dispose()


def add(db: Database, *containers: str, membership: str = "Compute", **kw: Any) -> list[str]:
    made = add_host_vm(db, AddVMRequest(containers=containers, membership=membership, **kw))
    return [name for name, _ in made]


def nics(db: Database, name: str) -> list[tuple[str, str | None, str | None, str | None, Any]]:
    """(device, mac, ip, network, vlan) of each NIC of `name`, by device."""
    with db.transaction() as s:
        nets = {n.id: n.name for n in s.scalars(select(Network))}
        q = (
            select(Interface)
            .join(Host, Host.id == Interface.host_id)
            .where(Host.name == name)
            .order_by(Interface.device)
        )
        return [(i.device, i.mac, i.ip, nets.get(i.network_id or -1), i.vlan) for i in s.scalars(q)]


def disks(db: Database, name: str) -> list[tuple[str, int]]:
    return next(r.disks for r in list_host_vms(db, [name]))


def vm_row(db: Database, name: str) -> tuple[Any, ...]:
    """(container, slice, mem, cpus, cdrom, install action, run action, boot, cluster vlan)."""
    with db.transaction() as s:
        h = s.scalars(select(Host).where(Host.name == name)).one()
        vm = s.scalars(select(VM).where(VM.host_id == h.id)).one()
        container = s.get(Host, vm.container_id) if vm.container_id else None
        cluster = s.get(Cluster, vm.cluster_id) if vm.cluster_id else None
        boot = s.scalar(select(HostBoot.action).where(HostBoot.host_id == h.id))
        return (
            container.name if container else None,
            vm.slice,
            vm.mem_mb,
            h.cpus,
            vm.cdrom_path,
            h.install_action,
            h.run_action,
            boot,
            cluster.vlan if cluster else None,
        )


# add host vm -----------------------------------------------------------------------------------


def test_a_compute_vm_gets_name_ip_mac_disk_and_install(db: Database) -> None:
    assert add(db, C0) == ["compute-0-0-0"]
    assert nics(db, "compute-0-0-0") == [
        ("eth0", "76:77:6e:40:00:00", "10.1.255.252", "private", None)
    ]
    assert vm_row(db, "compute-0-0-0") == (C0, 0, 1024, 1, None, "install", "os", "install", None)
    assert disks(db, "compute-0-0-0") == [
        ("qcow2:/var/lib/flightdeck/disks/compute-0-0-0.vda,vda,virtio", 36)
    ]


def test_every_parameter(espresso: Any, db: Database) -> None:
    espresso.ok("add", "network", "storage", "192.168.50.0", "255.255.255.0")
    made = add(
        db,
        C1,
        membership="Compute",
        name="big",
        mem_mb=8192,
        cpus=4,
        slice=7,
        mac="02:AA:BB:CC:DD:EE",
        num_macs=3,
        disk="file:/state/big.img,vda,virtio qcow2:/state/big-2.qcow2,vdb,scsi",
        disksize="100 20",
        vlan="none,5,0",
        ip="192.168.50.20",
        subnet="storage",
    )
    assert made == ["big"]
    assert nics(db, "big") == [
        ("eth0", "02:aa:bb:cc:dd:ee", "192.168.50.20", "storage", None),
        ("eth1", "76:77:6e:40:00:00", None, None, 5),
        ("eth2", "76:77:6e:40:00:01", None, None, 0),
    ]
    assert vm_row(db, "big") == (C1, 7, 8192, 4, None, "install", "os", "install", None)
    assert disks(db, "big") == [
        ("file:/state/big.img,vda,virtio", 100),
        ("qcow2:/state/big-2.qcow2,vdb,scsi", 20),
    ]


def test_a_hosted_vm_gets_no_ip_even_when_given_one(db: Database) -> None:
    assert add(db, C0, membership="Hosted VM", ip="10.1.2.3") == ["hosted-vm-0-0-0"]
    assert nics(db, "hosted-vm-0-0-0") == [("eth0", "76:77:6e:40:00:00", None, None, None)]


def test_several_containers_get_one_vm_each(db: Database) -> None:
    assert add(db, C0, C1, membership="Hosted VM", mem_mb=512) == [
        "hosted-vm-0-0-0",
        "hosted-vm-0-1-0",
    ]
    # One expression naming several hosts (the appliance) works the same way.
    assert add(db, "vm-container", membership="Hosted VM") == [
        "hosted-vm-0-0-1",
        "hosted-vm-0-1-1",
    ]
    assert [r.macs for r in list_host_vms(db, [])] == [
        ["76:77:6e:40:00:00"],
        ["76:77:6e:40:00:02"],
        ["76:77:6e:40:00:01"],
        ["76:77:6e:40:00:03"],
    ]


@pytest.mark.parametrize(
    "given",
    [{"name": "x"}, {"ip": "10.1.2.3"}, {"slice": 3}, {"mac": "02:00:00:00:00:01"}],
)
@pytest.mark.parametrize("containers", [(C0, C1), ("vm-container",)])
def test_identity_parameters_with_several_containers_are_refused(
    espresso: Any, db: Database, given: dict[str, Any], containers: tuple[str, ...]
) -> None:
    before = espresso.dump()
    key = next(iter(given))
    with pytest.raises(UserError, match=f"can't supply the '{key}' parameter with more than one"):
        add(db, *containers, **given)
    assert espresso.dump() == before


def test_slices_follow_the_6_2_rule(db: Database) -> None:
    assert add(db, C0) == ["compute-0-0-0"]
    assert add(db, C0) == ["compute-0-0-1"]
    assert add(db, C0, slice=5) == ["compute-0-0-5"]
    # The next starts from the highest slice on the container, whatever the appliance.
    assert add(db, C0) == ["compute-0-0-6"]
    assert add(db, C0, membership="Hosted VM") == ["hosted-vm-0-0-6"]
    # Each container counts on its own.
    assert add(db, C1) == ["compute-0-1-0"]
    assert [(r.name, r.slice) for r in list_host_vms(db, [C0 + "%"])] == []
    assert [r.slice for r in list_host_vms(db, ["compute-0-0-%"])] == [0, 1, 5, 6]


def test_vlan_list_is_aligned_with_the_nics(db: Database) -> None:
    add(db, C0, num_macs=2, vlan="2,0")
    assert nics(db, "compute-0-0-0") == [
        ("eth0", "76:77:6e:40:00:00", "10.1.255.252", "private", 2),
        ("eth1", "76:77:6e:40:00:01", None, None, 0),
    ]
    # Fewer entries than NICs leave the rest untagged-unknown (NULL), as Rocks.
    add(db, C0, num_macs=3, vlan="4")
    assert [n[4] for n in nics(db, "compute-0-0-1")] == [4, None, None]


def test_a_vm_on_a_cluster_vlan_joins_the_cluster(db: Database) -> None:
    made = add_cluster(db, ClusterRequest(ip="137.110.119.118", num_computes=1))
    add(db, C1, membership="Hosted VM", vlan=str(made.vlan))
    add(db, C1, membership="Hosted VM", vlan="none," + str(made.vlan), num_macs=2)
    assert vm_row(db, "hosted-vm-0-1-0")[-1] == made.vlan
    # Membership follows the first NIC, as the frontend's eth0 carries the cluster.
    assert vm_row(db, "hosted-vm-0-1-1")[-1] is None


def test_explicit_mac_and_the_rest_from_the_space(db: Database) -> None:
    add(db, C0, mac="76-77-6E-40-00-10", num_macs=2)
    assert [n[1] for n in nics(db, "compute-0-0-0")] == ["76:77:6e:40:00:10", "76:77:6e:40:00:11"]
    assert next_mac(db) == "76:77:6e:40:00:12"


def test_disk_directory_comes_from_the_container(espresso: Any, db: Database) -> None:
    espresso.ok("set", "host", "attr", C1, "kvm_disk_dir", "/state/partition1/kvm/disks")
    add(db, C0, C1, membership="Hosted VM", disksize="20")
    assert disks(db, "hosted-vm-0-0-0") == [
        ("qcow2:/var/lib/flightdeck/disks/hosted-vm-0-0-0.vda,vda,virtio", 20)
    ]
    assert disks(db, "hosted-vm-0-1-0") == [
        ("qcow2:/state/partition1/kvm/disks/hosted-vm-0-1-0.vda,vda,virtio", 20)
    ]


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"membership": "Nope"}, NotFound, "membership 'Nope' is not valid"),
        ({"disk": "junk"}, UserError, "invalid disk specification 'junk'"),
        ({"disk": "file:relative.img,vda,virtio"}, UserError, "is not absolute"),
        ({"disk": "file:/a/../b.img,vda,virtio"}, UserError, r"'\.\.' component"),
        ({"disk": "file:/a.img,vda,virtio file:/b.img,vda,virtio"}, UserError, "used twice"),
        ({"disk": "file:/a.img,vda,virtio", "disksize": "1 2"}, UserError, "2 sizes for 1"),
        ({"disksize": "0"}, UserError, "greater than 0"),
        ({"disksize": "abc"}, UserError, "disksize='abc'"),
        ({"disksize": "10 20"}, UserError, "several sizes need disk="),
        ({"num_macs": 1, "vlan": "2,3"}, UserError, "names 2 NICs but num-macs=1"),
        ({"vlan": "4095"}, UserError, "invalid vlan list"),
        ({"vlan": "1"}, UserError, "invalid vlan list"),
        ({"mac": "zz"}, UserError, "invalid MAC address"),
        ({"ip": "8.8.8.8"}, UserError, "outside network private"),
        ({"ip": "10.1.0.0"}, UserError, "network address"),
        ({"ip": "10.1.255.254"}, Conflict, "already used by vm-container-0-0 eth0"),
        ({"ip": "10.1.2.300"}, UserError, "invalid IP address"),
        ({"subnet": "nosuch"}, NotFound, "unknown network"),
        ({"name": "frontend-0-0"}, Conflict, "already in the database"),
        ({"name": "-bad"}, UserError, "invalid host name"),
        ({"num_macs": 0}, UserError, "num-macs=0"),
    ],
)
def test_bad_requests_change_nothing(
    espresso: Any, db: Database, kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = espresso.dump()
    fields = {"membership": "Compute", **kw}
    with pytest.raises(error, match=message):
        add_host_vm(db, AddVMRequest(containers=[C0], **fields))
    assert espresso.dump() == before


def test_taken_identities_are_refused(espresso: Any, db: Database) -> None:
    add(db, C0, name="web", mac="02:00:00:00:00:01")
    add(db, C1)
    before = espresso.dump()
    with pytest.raises(Conflict, match="MAC 02:00:00:00:00:01 is already used by web eth0"):
        add(db, C1, mac="02:00:00:00:00:01")
    with pytest.raises(Conflict, match="host web is already in the database"):
        add(db, C1, name="web")
    with pytest.raises(Conflict, match="host compute-0-1-0 is already in the database"):
        add(db, C1, slice=0)
    assert espresso.dump() == before


def test_unknown_container_is_not_found(espresso: Any, db: Database) -> None:
    before = espresso.dump()
    with pytest.raises(NotFound, match="unknown host 'nosuch'"):
        add(db, C0, "nosuch")
    assert espresso.dump() == before


# list host vm ----------------------------------------------------------------------------------


def test_list_host_vms_rows(espresso: Any, db: Database) -> None:
    add(db, C1, num_macs=2, mem_mb=2048, cpus=2)
    add(db, C0, membership="Hosted VM", disk="phy:/dev/vg0/lv1,vda,ide")
    espresso.ok("set", "host", "vm", "cdrom", "compute-0-1-0", "cdrom=/isos/x.iso")
    rows = list_host_vms(db, [])
    assert [(r.name, r.container, r.slice, r.mem_mb, r.cpus, r.virt_type) for r in rows] == [
        ("hosted-vm-0-0-0", C0, 0, 1024, 1, "hvm"),
        ("compute-0-1-0", C1, 0, 2048, 2, "hvm"),
    ]
    assert rows[0].disks == [("phy:/dev/vg0/lv1,vda,ide", 36)]
    assert rows[1].macs == ["76:77:6e:40:00:00", "76:77:6e:40:00:01"]
    assert (rows[0].cdrom, rows[1].cdrom) == (None, "/isos/x.iso")
    # Non-VM hosts are skipped; unknown ones are an error.
    assert list_host_vms(db, [C0, "frontend-0-0"]) == []
    with pytest.raises(NotFound):
        list_host_vms(db, ["nosuch"])


# set host vm -----------------------------------------------------------------------------------


def test_set_host_vm_fields(espresso: Any, db: Database) -> None:
    add(db, C0)
    set_host_vm(db, "compute-0-0-0", mem=4096, cpus=3, slice_=9, physnode=C1)
    assert vm_row(db, "compute-0-0-0")[:4] == (C1, 9, 4096, 3)
    # Fields not given are kept.
    set_host_vm(db, "compute-0-0-0", mem=512)
    assert vm_row(db, "compute-0-0-0")[:4] == (C1, 9, 512, 3)
    # A host made kvm-capable by its own attribute is a valid physnode.
    espresso.ok("add", "host", "compute-0-5", "membership=Compute", "rack=0", "rank=5")
    espresso.ok("set", "host", "attr", "compute-0-5", "kvm", "yes")
    set_host_vm(db, "compute-0-0-0", physnode="compute-0-5")
    assert vm_row(db, "compute-0-0-0")[0] == "compute-0-5"


def test_set_host_vm_disk_replaces_and_disksize_resizes_in_order(db: Database) -> None:
    add(db, C0)
    set_host_vm(
        db,
        "compute-0-0-0",
        disk="qcow2:/d/a.qcow2,vda,virtio file:/d/b.img,vdb,virtio file:/d/c.img,vdc,ide",
        disksize="10 20",
    )
    assert disks(db, "compute-0-0-0") == [
        ("qcow2:/d/a.qcow2,vda,virtio", 10),
        ("file:/d/b.img,vdb,virtio", 20),
        ("file:/d/c.img,vdc,ide", 36),
    ]
    # 0 keeps a size; fewer sizes than disks leave the rest.
    set_host_vm(db, "compute-0-0-0", disksize="0 50")
    assert [size for _, size in disks(db, "compute-0-0-0")] == [10, 50, 36]
    set_host_vm(db, "compute-0-0-0", disk="file:/d/only.img,vda,virtio")
    assert disks(db, "compute-0-0-0") == [("file:/d/only.img,vda,virtio", 36)]


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"physnode": "frontend-0-0-0"}, UserError, "cannot host VMs"),
        ({"physnode": "nosuch"}, NotFound, "unknown host"),
        ({"physnode": "vm-container"}, UserError, "names 2 hosts"),
        ({"disksize": "1 2"}, UserError, "gives 2 sizes but compute-0-0-0 has 1 disk"),
        ({"disksize": "big"}, UserError, "whole number"),
        ({"disk": "file:/x,vda"}, UserError, "invalid disk specification"),
        ({"disk": "file:/x,vda,virtio", "disksize": "0"}, UserError, "greater than 0"),
        ({"mem": 2048, "physnode": "frontend-0-0-0"}, UserError, "cannot host VMs"),
    ],
)
def test_set_host_vm_refusals_change_nothing(
    espresso: Any, db: Database, kw: dict[str, Any], error: type[Exception], message: str
) -> None:
    add(db, C0)
    add_cluster(db, ClusterRequest(ip="137.110.119.118", num_computes=0))
    before = espresso.dump()
    with pytest.raises(error, match=message):
        set_host_vm(db, "compute-0-0-0", **kw)
    assert espresso.dump() == before


def test_set_host_vm_on_a_physical_host_is_refused(espresso: Any, db: Database) -> None:
    before = espresso.dump()
    with pytest.raises(UserError, match="host vm-container-0-0 is not a virtual machine"):
        set_host_vm(db, C0, mem=10)
    assert espresso.dump() == before


# CD-ROM ----------------------------------------------------------------------------------------


def test_set_cdrom(espresso: Any, db: Database) -> None:
    add(db, C0)
    assert set_cdrom(db, "compute-0-0-0", "/isos//debian-12.iso") == "/isos/debian-12.iso"
    assert vm_row(db, "compute-0-0-0")[4] == "/isos/debian-12.iso"
    before = espresso.dump()
    for bad, message in (
        ("debian-12.iso", "absolute path"),
        ("isos/x.iso", "absolute path"),
        ("/isos/../etc/shadow", r"'\.\.'"),
        ("/isos/x.iso\n/etc", "control characters"),
    ):
        with pytest.raises(UserError, match=message):
            set_cdrom(db, "compute-0-0-0", bad)
    with pytest.raises(UserError, match="not a virtual machine"):
        set_cdrom(db, C0, "/isos/x.iso")
    assert espresso.dump() == before
    assert set_cdrom(db, "compute-0-0-0", "None") is None
    assert vm_row(db, "compute-0-0-0")[4] is None


# remove host vm --------------------------------------------------------------------------------


def test_remove_host_vms_takes_all_its_rows(espresso: Any, db: Database) -> None:
    base = espresso.dump()
    add(db, C0, num_macs=2, disk="file:/d/a.img,vda,virtio file:/d/b.img,vdb,virtio")
    espresso.ok("set", "host", "attr", "compute-0-0-0", "owner", "bob")
    keep = add(db, C1)
    with_keep = {t: set(rows) for t, rows in espresso.dump().items()}
    assert remove_host_vms(db, ["compute-0-0-0"]) == ["compute-0-0-0"]
    now = {t: set(rows) for t, rows in espresso.dump().items()}
    assert keep == ["compute-0-1-0"]
    for table in now:
        assert now[table] <= with_keep[table]
        assert set(base[table]) <= now[table]
    with db.transaction() as s:
        assert set(s.scalars(select(Host.name).join(VM, VM.host_id == Host.id))) == {
            "compute-0-1-0"
        }
        assert len(list(s.scalars(select(VMDisk)))) == 1
    assert sum(len(v) for v in now.values()) == sum(len(v) for v in with_keep.values()) - (
        1 + 2 + 1 + 2 + 1 + 1  # host, 2 NICs, vm, 2 disks, boot, attribute
    )


def test_remove_host_vms_refusals_are_all_or_nothing(espresso: Any, db: Database) -> None:
    add(db, C0, C1)
    add_cluster(db, ClusterRequest(ip="137.110.119.118", num_computes=0))
    before = espresso.dump()
    with pytest.raises(Conflict, match="frontend-0-0-0 is a virtual frontend"):
        remove_host_vms(db, ["compute-0-0-0", "frontend-0-0-0"])
    with pytest.raises(UserError, match="host vm-container-0-1 is not a virtual machine"):
        remove_host_vms(db, ["compute-0-0-0", C1])
    with pytest.raises(NotFound):
        remove_host_vms(db, ["compute-0-0-0", "nosuch"])
    assert espresso.dump() == before
    assert remove_host_vms(db, ["compute-%"]) == ["compute-0-0-0", "compute-0-1-0"]


# next MAC --------------------------------------------------------------------------------------


def test_next_mac_is_max_plus_one_in_the_space(espresso: Any, db: Database) -> None:
    assert next_mac(db) == "76:77:6e:40:00:00"
    # MACs outside the space (the containers' own 52:54:00:...) do not count.
    add(db, C0, num_macs=3)
    assert next_mac(db) == "76:77:6e:40:00:03"
    remove_host_vms(db, ["compute-0-0-0"])
    assert next_mac(db) == "76:77:6e:40:00:00"
    add(db, C0, mac="76:77:6e:40:01:00")
    add(db, C1)
    # Freed MACs below the maximum are not reused.
    assert nics(db, "compute-0-1-0")[0][1] == "76:77:6e:40:01:01"
    assert next_mac(db) == "76:77:6e:40:01:02"


def test_the_vm_row_follows_inserts_and_deletes_made_in_the_same_transaction(
    db: Database,
) -> None:
    """`domains.vm_row` answers from the host's `vm` relationship once loaded; a row inserted
    by Core after a miss, or deleted since, is still seen as it is."""
    from sqlalchemy import insert

    from flightdeck.services import domains

    (name,) = add(db, C0)
    with db.transaction() as s:
        h = s.scalars(select(Host).where(Host.name == name)).one()
        row = domains.vm_row(s, h)
        assert domains.vm_row(s, h) is row
        values = {c: getattr(row, c) for c in ("container_id", "cluster_id", "mem_mb", "slice")}
        s.delete(row)
        s.flush()
        with pytest.raises(UserError, match=f"host {name} is not a virtual host"):
            domains.vm_row(s, h)
        s.execute(insert(VM).values(host_id=h.id, **values))  # a writer's Core insert
        again = domains.vm_row(s, h)
        assert again is not row and again.mem_mb == values["mem_mb"]
        s.rollback()  # nothing of it stays
