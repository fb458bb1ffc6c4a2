"""Virtual clusters in the database: add / list / remove cluster and the cluster's MACs.

Every test runs on SQLite and on PostgreSQL (the `db_url` fixture), on the guide's espresso
(physical frontend frontend-0-0 with public IP 137.110.119.117, containers vm-container-0-0 and
vm-container-0-1 holding private IPs 10.1.255.254 and 10.1.255.253).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event, func, select

from flightdeck.db.engine import Database, open_database
from flightdeck.db.models import (
    VM,
    Appliance,
    Cluster,
    Host,
    HostBoot,
    Interface,
    Network,
    PublicKey,
    Route,
    VMDisk,
)
from flightdeck.errors import Conflict, NotFound, PlannerError, UserError
from flightdeck.services.clusters import (
    ClusterRequest,
    add_cluster,
    cluster_macs,
    list_clusters,
    remove_clusters,
)
from flightdeck.services.vms import AddVMRequest, add_host_vm, next_mac

PUBLIC = "137.110.119.118"


@pytest.fixture
def db(espresso: Any, db_url: str) -> Iterator[Database]:
    d = open_database(db_url)
    yield d
    d.dispose()


@dataclass
class Nic:
    device: str
    mac: str | None
    ip: str | None
    network: str | None
    vlan: int | None
    name: str | None


@dataclass
class VMView:
    """Everything the database says about one VM, read back in a fresh transaction."""

    name: str
    appliance: str
    rack: int
    rank: int
    cpus: int
    run_action: str
    install_action: str
    boot: str | None
    container: str | None
    cluster_vlan: int | None
    mem_mb: int
    slice: int
    virt_type: str
    nics: list[Nic]
    disks: list[tuple[str, str, str, str, str, int]]
    routes: list[tuple[str, str, str]]


def view(db: Database, name: str) -> VMView:
    with db.transaction() as s:
        host = s.scalars(select(Host).where(Host.name == name)).one()
        vm = s.scalars(select(VM).where(VM.host_id == host.id)).one()
        container = s.get(Host, vm.container_id) if vm.container_id is not None else None
        cluster = s.get(Cluster, vm.cluster_id) if vm.cluster_id is not None else None
        nets = {n.id: n.name for n in s.scalars(select(Network))}
        nics = [
            Nic(i.device, i.mac, i.ip, nets.get(i.network_id or -1), i.vlan, i.name)
            for i in s.scalars(
                select(Interface).where(Interface.host_id == host.id).order_by(Interface.device)
            )
        ]
        disks = [
            (d.vbd_type, d.prefix, d.name, d.device, d.bus, d.size_gb)
            for d in s.scalars(
                select(VMDisk).where(VMDisk.vm_id == vm.id).order_by(VMDisk.position)
            )
        ]
        routes = [
            (r.destination, r.netmask, r.gateway)
            for r in s.scalars(select(Route).where(Route.host_id == host.id))
        ]
        return VMView(
            name=host.name,
            appliance=host.appliance.name,
            rack=host.rack,
            rank=host.rank,
            cpus=host.cpus,
            run_action=host.run_action,
            install_action=host.install_action,
            boot=s.scalar(select(HostBoot.action).where(HostBoot.host_id == host.id)),
            container=container.name if container else None,
            cluster_vlan=cluster.vlan if cluster else None,
            mem_mb=vm.mem_mb,
            slice=vm.slice,
            virt_type=vm.virt_type,
            nics=nics,
            disks=disks,
            routes=routes,
        )


def count(db: Database, model: Any) -> int:
    with db.transaction() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def add_container(rocks: Any, name: str, rank: int, *, membership: str = "VM Container") -> None:
    rocks.ok("add", "host", name, f"membership={membership}", "rack=0", f"rank={rank}")


# add cluster: what it creates ------------------------------------------------------------------


def test_every_parameter_lands_in_its_row(espresso: Any, db: Database) -> None:
    add_container(espresso, "vm-container-0-2", 2)
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_disk_dir", "/data/kvm")
    made = add_cluster(
        db,
        ClusterRequest(
            ip=PUBLIC,
            num_computes=5,
            cpus_per_compute=2,
            mem_per_compute=2048,
            disk_per_compute=50,
            disk_per_frontend=100,
            # Listed out of rack/rank order on purpose: round robin follows the order given.
            container_hosts=["vm-container-0-1", "vm-container-0-0"],
            vlan=7,
            subnet="private",
            gateway="137.110.119.254",
            fe_name="latte",
            fe_container="vm-container-0-2",
            cluster_naming=True,
        ),
    )
    assert made.frontend == "latte"
    assert made.vlan == 7
    assert made.computes == [
        ("vm-latte-0", "vm-container-0-1"),
        ("vm-latte-1", "vm-container-0-0"),
        ("vm-latte-2", "vm-container-0-1"),
        ("vm-latte-3", "vm-container-0-0"),
        ("vm-latte-4", "vm-container-0-1"),
    ]

    fe = view(db, "latte")
    assert (fe.appliance, fe.container, fe.rack, fe.rank) == ("frontend", "vm-container-0-2", 0, 2)
    assert (fe.boot, fe.install_action, fe.run_action) == (
        "install",
        "install vm frontend image",
        "os",
    )
    assert (fe.cluster_vlan, fe.mem_mb, fe.cpus, fe.slice, fe.virt_type) == (7, 1024, 1, 0, "hvm")
    assert fe.nics == [
        # eth0 on the cluster VLAN, highest free private IP (the containers hold .254, .253).
        Nic("eth0", "76:77:6e:40:00:00", "10.1.255.252", "private", 7, "latte"),
        Nic("eth1", "76:77:6e:40:00:01", PUBLIC, "public", 0, "latte-public"),
    ]
    assert fe.routes == [("0.0.0.0", "0.0.0.0", "137.110.119.254")]
    assert fe.disks == [("qcow2", "/var/lib/flightdeck/disks", "latte.vda", "vda", "virtio", 100)]

    for i, (name, container) in enumerate(made.computes):
        vm = view(db, name)
        assert vm.appliance == "hosted-vm"
        assert vm.container == container
        assert (vm.rack, vm.rank) == (0, int(container[-1]))
        assert (vm.boot, vm.install_action, vm.run_action) == ("install", "install", "none")
        assert (vm.cluster_vlan, vm.mem_mb, vm.cpus, vm.slice) == (7, 2048, 2, 0)
        # One NIC, on the VLAN, with no IP: the virtual frontend numbers it.
        assert vm.nics == [Nic("eth0", f"76:77:6e:40:00:0{i + 2}", None, None, 7, name)]
        prefix = "/data/kvm" if container == "vm-container-0-1" else "/var/lib/flightdeck/disks"
        assert vm.disks == [("qcow2", prefix, f"{name}.vda", "vda", "virtio", 50)]
        assert vm.routes == []
    assert count(db, Cluster) == 1
    assert count(db, Route) == 1


def test_defaults_are_the_guides(db: Database) -> None:
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    assert (made.frontend, made.vlan) == ("frontend-0-0-0", 2)
    assert made.computes == [
        ("hosted-vm-0-0-0", "vm-container-0-0"),
        ("hosted-vm-0-1-0", "vm-container-0-1"),
    ]
    fe = view(db, "frontend-0-0-0")
    # The frontend runs on the physical frontend by default; the gateway is the site's.
    assert fe.container == "frontend-0-0"
    assert fe.routes == [("0.0.0.0", "0.0.0.0", "137.110.119.1")]
    assert fe.disks == [
        ("qcow2", "/var/lib/flightdeck/disks", "frontend-0-0-0.vda", "vda", "virtio", 36)
    ]
    vm = view(db, "hosted-vm-0-1-0")
    assert (vm.mem_mb, vm.cpus) == (1024, 1)
    assert vm.disks[0][-1] == 36


def test_second_cluster_gets_next_vlan_and_continues_the_macs(db: Database) -> None:
    first = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    second = add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=3))
    assert (first.vlan, second.vlan) == (2, 3)
    # The first cluster used :00-:03 (two frontend NICs, two computes).
    fe2 = view(db, second.frontend)
    assert second.frontend == "frontend-0-0-1"
    assert [n.mac for n in fe2.nics] == ["76:77:6e:40:00:04", "76:77:6e:40:00:05"]
    assert fe2.nics[0].ip == "10.1.255.251"
    assert fe2.nics[0].vlan == 3
    assert [view(db, n).nics[0].mac for n, _ in second.computes] == [
        "76:77:6e:40:00:06",
        "76:77:6e:40:00:07",
        "76:77:6e:40:00:08",
    ]
    assert [n for n, _ in second.computes] == [
        "hosted-vm-0-0-1",
        "hosted-vm-0-1-1",
        "hosted-vm-0-0-2",
    ]
    assert next_mac(db) == "76:77:6e:40:00:09"


def test_a_container_listed_twice_gets_twice_the_share(espresso: Any, db: Database) -> None:
    made = add_cluster(
        db,
        ClusterRequest(
            ip=PUBLIC,
            num_computes=6,
            container_hosts=["vm-container-0-0", "vm-container-0-0", "vm-container-0-1"],
        ),
    )
    c0, c1 = "vm-container-0-0", "vm-container-0-1"
    assert [c for _, c in made.computes] == [c0, c0, c1, c0, c0, c1]
    # Capacity placement looks at each container once.
    for c in ("vm-container-0-0", "vm-container-0-1"):
        espresso.ok("set", "host", "attr", c, "kvm_mem_mb", "65536")
    made = add_cluster(
        db,
        ClusterRequest(
            ip="137.110.119.119",
            num_computes=2,
            container_hosts=["vm-container-0-1", "vm-container-0-1", "vm-container-0-0"],
            placement="capacity",
        ),
    )
    # -0-0 holds 4 GB of the first cluster, -0-1 only 2 GB.
    assert [c for _, c in made.computes] == ["vm-container-0-1", "vm-container-0-1"]


def test_zero_computes_is_a_frontend_alone(db: Database) -> None:
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=0))
    assert made.computes == []
    assert count(db, VM) == 1
    assert [b.nodes for b in list_clusters(db, [made.frontend])] == [[]]


def test_cluster_naming_shortens_a_dotted_frontend_name(db: Database) -> None:
    made = add_cluster(
        db,
        ClusterRequest(ip=PUBLIC, num_computes=2, fe_name="latte.example.org", cluster_naming=True),
    )
    assert [n for n, _ in made.computes] == ["vm-latte-0", "vm-latte-1"]


def test_cluster_naming_refuses_a_taken_compute_name(espresso: Any, db: Database) -> None:
    add_container(espresso, "vm-latte-1", 5)
    before = espresso.dump()
    with pytest.raises(Conflict, match="vm-latte-1 is already in the database"):
        add_cluster(
            db, ClusterRequest(ip=PUBLIC, num_computes=2, fe_name="latte", cluster_naming=True)
        )
    assert espresso.dump() == before


def test_without_containers_the_computes_go_on_the_physical_frontend(
    rocks: Any, db_url: str
) -> None:
    rocks.ok(
        "init",
        "frontend",
        "name=espresso.rocksclusters.org",
        "public-ip=137.110.119.117",
        "public-netmask=255.255.255.0",
        "private-ip=10.1.1.1",
        "private-netmask=255.255.0.0",
    )
    db = open_database(db_url)
    try:
        made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    finally:
        db.dispose()
    assert made.computes == [
        ("hosted-vm-0-0-0", "frontend-0-0"),
        ("hosted-vm-0-0-1", "frontend-0-0"),
    ]


def test_default_containers_are_the_kvm_capable_physical_hosts(espresso: Any, db: Database) -> None:
    # A Compute host is no container until its kvm attribute says so (reference §7.3); a
    # vm-container whose own attribute says false is none either.
    add_container(espresso, "compute-0-0", 0, membership="Compute")
    add_container(espresso, "compute-0-1", 1, membership="Compute")
    espresso.ok("set", "host", "attr", "compute-0-1", "kvm", "true")
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm", "false")
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=4))
    assert [c for _, c in made.computes] == [
        "compute-0-1",
        "vm-container-0-1",
        "compute-0-1",
        "vm-container-0-1",
    ]


# Refusals: nothing is written ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"num_computes": -1}, UserError, "num-computes=-1"),
        ({"ip": "137.110.119.300"}, UserError, "invalid IP address"),
        ({"ip": "10.1.1.5"}, UserError, "outside network public"),
        ({"ip": "137.110.119.117"}, Conflict, "already used by frontend-0-0 eth1"),
        ({"vlan": 4095}, UserError, "invalid VLAN id 4095"),
        ({"vlan": 4096}, UserError, "invalid VLAN id 4096"),
        ({"vlan": 1}, UserError, "invalid VLAN id 1"),
        ({"virt_type": "para"}, UserError, "only 'hvm'"),
        ({"cluster_naming": True}, UserError, "fe-name"),
        ({"placement": "random"}, UserError, "round-robin or capacity"),
        ({"subnet": "nosuch"}, NotFound, "unknown network"),
        ({"gateway": "10.1.1.1"}, UserError, "outside network public"),
        ({"gateway": "gw"}, UserError, "invalid IP address"),
        ({"fe_name": "frontend-0-0"}, Conflict, "already in the database"),
        ({"fe_name": "bad_name"}, UserError, "invalid host name"),
        ({"container_hosts": ["nosuch-0-0"]}, NotFound, "unknown host 'nosuch-0-0'"),
        ({"fe_container": "nosuch-0-0"}, NotFound, "unknown host 'nosuch-0-0'"),
    ],
)
def test_bad_requests_change_nothing(
    espresso: Any, db: Database, changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    before = espresso.dump()
    fields: dict[str, Any] = {"ip": PUBLIC, "num_computes": 2, **changes}
    with pytest.raises(error, match=message):
        add_cluster(db, ClusterRequest(**fields))
    assert espresso.dump() == before


def test_the_gateway_comes_from_the_site_or_the_request(espresso: Any, db: Database) -> None:
    espresso.ok("set", "attr", "Kickstart_PublicGateway", "137.110.119.126")
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=0))
    assert view(db, made.frontend).routes == [("0.0.0.0", "0.0.0.0", "137.110.119.126")]
    espresso.ok("remove", "attr", "Kickstart_PublicGateway")
    before = espresso.dump()
    with pytest.raises(UserError, match="no public gateway: give gateway=<ip>"):
        add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=0))
    assert espresso.dump() == before
    made = add_cluster(
        db, ClusterRequest(ip="137.110.119.119", num_computes=0, gateway="137.110.119.2")
    )
    assert view(db, made.frontend).routes == [("0.0.0.0", "0.0.0.0", "137.110.119.2")]


def test_a_container_without_kvm_is_refused_everywhere(espresso: Any, db: Database) -> None:
    add_container(espresso, "compute-0-0", 0, membership="Compute")
    add_host_vm(db, AddVMRequest(containers=["vm-container-0-0"], membership="Compute"))
    before = espresso.dump()
    for req, host in (
        (ClusterRequest(ip=PUBLIC, num_computes=1, container_hosts=["compute-0-0"]), "compute-0-0"),
        (ClusterRequest(ip=PUBLIC, num_computes=1, fe_container="compute-0-0"), "compute-0-0"),
        # A VM is no container either.
        (
            ClusterRequest(
                ip=PUBLIC, num_computes=1, container_hosts=["vm-container-0-0", "compute-0-0-0"]
            ),
            "compute-0-0-0",
        ),
    ):
        with pytest.raises(
            UserError, match=f"host {host} cannot host VMs: its attribute kvm is not true"
        ):
            add_cluster(db, req)
    assert espresso.dump() == before
    with pytest.raises(UserError, match="host compute-0-0 cannot host VMs"):
        add_host_vm(db, AddVMRequest(containers=["compute-0-0"], membership="Compute"))
    assert espresso.dump() == before


# VLANs -----------------------------------------------------------------------------------------


def test_vlan_is_the_lowest_free_one_counting_every_interface(espresso: Any, db: Database) -> None:
    # VLAN 2 and 4 are taken by interfaces (the Rocks vlanN rows); 3 is the lowest free.
    espresso.ok("add", "host", "interface", "vm-container-0-0", "vlan2", "vlan=2")
    espresso.ok("add", "host", "interface", "vm-container-0-1", "vlan4", "vlan=4")
    assert add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1)).vlan == 3
    assert add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1)).vlan == 5
    assert add_cluster(
        db, ClusterRequest(ip="137.110.119.120", num_computes=1, vlan=4094)
    ).vlan == (4094)


def test_an_explicit_vlan_in_use_is_refused_naming_the_user(espresso: Any, db: Database) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1))
    espresso.ok("add", "host", "interface", "vm-container-0-1", "vlan9", "vlan=9")
    before = espresso.dump()
    with pytest.raises(Conflict, match="VLAN 2 is already used by cluster frontend-0-0-0"):
        add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1, vlan=2))
    with pytest.raises(Conflict, match="VLAN 9 is already used by host vm-container-0-1"):
        add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1, vlan=9))
    assert espresso.dump() == before


# Capacity placement ----------------------------------------------------------------------------


def test_capacity_puts_each_vm_where_most_memory_is_free(espresso: Any, db: Database) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_mb", "4096")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_mem_mb", "8192")
    made = add_cluster(
        db, ClusterRequest(ip=PUBLIC, num_computes=6, mem_per_compute=1024, placement="capacity")
    )
    # Free: 4096 / 8192. Four go on -0-1 until both have 4096; the tie goes to the first listed,
    # then -0-1 has more again.
    assert [c for _, c in made.computes] == [
        "vm-container-0-1",
        "vm-container-0-1",
        "vm-container-0-1",
        "vm-container-0-1",
        "vm-container-0-0",
        "vm-container-0-1",
    ]


def test_capacity_counts_existing_vms_and_overcommit(espresso: Any, db: Database) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_mb", "4096")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_mem_mb", "4096")
    # -0-0 may promise twice its memory; -0-1 already holds a 3 GB VM.
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_overcommit", "2.0")
    add_host_vm(
        db, AddVMRequest(containers=["vm-container-0-1"], membership="Compute", mem_mb=3072)
    )
    made = add_cluster(
        db, ClusterRequest(ip=PUBLIC, num_computes=3, mem_per_compute=2048, placement="capacity")
    )
    # Free: 8192 / 1024 -> all three fit only on -0-0 (8192 -> 6144 -> 4096 -> 2048).
    assert [c for _, c in made.computes] == ["vm-container-0-0"] * 3


def test_capacity_default_overcommit_is_one(espresso: Any, db: Database) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_mb", "2048")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_mem_mb", "2048")
    add_cluster(
        db, ClusterRequest(ip=PUBLIC, num_computes=4, mem_per_compute=1024, placement="capacity")
    )
    before = espresso.dump()
    with pytest.raises(PlannerError):
        add_cluster(
            db,
            ClusterRequest(
                ip="137.110.119.119", num_computes=1, mem_per_compute=1, placement="capacity"
            ),
        )
    assert espresso.dump() == before


def test_capacity_refuses_a_cluster_that_does_not_fit_naming_the_shortfall(
    espresso: Any, db: Database
) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_mb", "4096")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_mem_mb", "6000")
    before = espresso.dump()
    with pytest.raises(PlannerError) as caught:
        add_cluster(
            db,
            ClusterRequest(ip=PUBLIC, num_computes=5, mem_per_compute=2048, placement="capacity"),
        )
    # 6000 -> 3952 (-0-1), 4096 -> 2048 (-0-0), 3952 -> 1904 (-0-1), 2048 -> 0 (-0-0), then the
    # fifth (compute 4) needs 2048 where 1904 is the most left.
    assert str(caught.value) == (
        "cluster does not fit: compute 4 needs 2048 MB, the most free on any container is "
        "1904 MB (vm-container-0-1); add containers or lower mem-per-compute"
    )
    assert espresso.dump() == before


def test_capacity_needs_the_memory_size_of_the_containers(espresso: Any, db: Database) -> None:
    before = espresso.dump()
    with pytest.raises(PlannerError, match="no container reports its memory size"):
        add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1, placement="capacity"))
    # A value stored before `set host attr` checked it (an older database) is refused at use.
    espresso.store_host_attr("vm-container-0-0", "kvm_mem_mb", "lots")
    with pytest.raises(UserError, match="kvm_mem_mb of host vm-container-0-0 is 'lots'"):
        add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1, placement="capacity"))
    espresso.ok("remove", "host", "attr", "vm-container-0-0", "kvm_mem_mb")
    assert espresso.dump() == before


def test_capacity_counts_the_frontend_on_its_container(espresso: Any, db: Database) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-0", "kvm_mem_mb", "4096")
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_mem_mb", "3072")
    made = add_cluster(
        db,
        ClusterRequest(
            ip=PUBLIC,
            num_computes=2,
            mem_per_compute=1024,
            mem_per_frontend=2048,
            fe_container="vm-container-0-0",
            placement="capacity",
        ),
    )
    # Without the frontend's 2048 MB -0-0 would look freest; with it, -0-1 (3072) is.
    assert [c for _, c in made.computes] == ["vm-container-0-1", "vm-container-0-0"]
    assert view(db, made.frontend).container == "vm-container-0-0"

    before = espresso.dump()
    with pytest.raises(PlannerError, match="the frontend needs 2048 MB, 1024 MB free on"):
        add_cluster(
            db,
            ClusterRequest(
                ip="137.110.119.119",
                num_computes=0,
                mem_per_frontend=2048,
                fe_container="vm-container-0-0",
                placement="capacity",
            ),
        )
    assert espresso.dump() == before


# Listing ---------------------------------------------------------------------------------------


def test_list_clusters_blocks(espresso: Any, db: Database) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1, fe_name="latte"))
    # A plain VM outside any cluster belongs to the physical cluster.
    add_host_vm(db, AddVMRequest(containers=["vm-container-0-1"], membership="Compute"))
    blocks = list_clusters(db, [])
    assert [(b.label, b.frontend, b.kind) for b in blocks] == [
        ("espresso.rocksclusters.org", "frontend-0-0", "physical"),
        ("frontend-0-0-0-public", "frontend-0-0-0", "VM"),
        ("latte-public", "latte", "VM"),
    ]
    assert blocks[0].nodes == [
        ("vm-container-0-0", "physical"),
        ("vm-container-0-1", "physical"),
        ("compute-0-1-0", "VM"),
    ]
    assert blocks[1].nodes == [("hosted-vm-0-0-0", "VM"), ("hosted-vm-0-1-0", "VM")]
    assert blocks[2].nodes == [("hosted-vm-0-0-1", "VM")]
    assert [b.frontend for b in list_clusters(db, ["latte"])] == ["latte"]
    assert [b.frontend for b in list_clusters(db, ["latte-public", "frontend-0-0"])] == [
        "frontend-0-0",
        "latte",
    ]


@pytest.mark.parametrize("arg", ["vm-container-0-0", "hosted-vm-0-0-0"])
def test_list_clusters_refuses_what_is_not_a_frontend(db: Database, arg: str) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1))
    with pytest.raises(UserError, match=f"host {arg} is not a virtual frontend"):
        list_clusters(db, [arg])


def test_a_vm_added_on_the_cluster_vlan_joins_the_cluster(db: Database) -> None:
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1))
    add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=0))
    add_host_vm(
        db,
        AddVMRequest(containers=["vm-container-0-1"], membership="Hosted VM", vlan=str(made.vlan)),
    )
    assert list_clusters(db, [made.frontend])[0].nodes == [
        ("hosted-vm-0-0-0", "VM"),
        ("hosted-vm-0-1-0", "VM"),
    ]
    assert [name for _, name in cluster_macs(db, made.frontend)] == [
        "frontend-0-0-0",
        "hosted-vm-0-0-0",
        "hosted-vm-0-1-0",
    ]
    assert list_clusters(db, ["frontend-0-0-1"])[0].nodes == []


# MACs of a cluster -----------------------------------------------------------------------------


def test_cluster_macs_frontend_first_on_the_cluster_vlan_only(db: Database) -> None:
    made = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1))
    assert cluster_macs(db, made.frontend) == [
        # eth1 (public, VLAN 0) is not on the cluster's network.
        (["76:77:6e:40:00:00"], "frontend-0-0-0"),
        (["76:77:6e:40:00:02"], "hosted-vm-0-0-0"),
        (["76:77:6e:40:00:03"], "hosted-vm-0-1-0"),
    ]
    # The frontend may be named by its public name, or by a MAC.
    assert cluster_macs(db, "frontend-0-0-0-public") == cluster_macs(db, "76:77:6e:40:00:01")


@pytest.mark.parametrize("arg", ["frontend-0-0", "vm-container-0-0", "hosted-vm-0-0-0"])
def test_cluster_macs_refuses_what_is_not_a_virtual_frontend(db: Database, arg: str) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=1))
    with pytest.raises(UserError, match=f"host {arg} is not a virtual frontend"):
        cluster_macs(db, arg)


# Removing --------------------------------------------------------------------------------------


def _add_key(db: Database, host: str, fingerprint: str) -> None:
    with db.transaction(write=True) as s:
        host_id = s.scalars(select(Host.id).where(Host.name == host)).one()
        s.add(PublicKey(host_id=host_id, fingerprint=fingerprint, public_key="ssh-ed25519 AAAA"))


def test_remove_cluster_takes_everything_of_it_and_nothing_else(
    espresso: Any, db: Database
) -> None:
    base = espresso.dump()
    first = add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=3))
    _add_key(db, first.frontend, "SHA256:first")
    espresso.ok("set", "host", "attr", "hosted-vm-0-0-0", "owner", "alice")
    after_first = espresso.dump()
    second = add_cluster(
        db,
        ClusterRequest(ip="137.110.119.119", num_computes=2, fe_name="latte", cluster_naming=True),
    )
    _add_key(db, "latte", "SHA256:latte")
    with_both = espresso.dump()

    removed = remove_clusters(db, [first.frontend])
    assert removed == [
        ("frontend-0-0-0", 2, ["hosted-vm-0-0-0", "hosted-vm-0-0-1", "hosted-vm-0-1-0"])
    ]
    now = espresso.dump()
    # Exactly the rows the first cluster added are gone; the second cluster's are untouched.
    for table in now:
        first_rows = set(after_first[table]) - set(base[table])
        assert not first_rows & set(now[table]), table
        assert set(now[table]) == set(with_both[table]) - first_rows, table
    assert [b.frontend for b in list_clusters(db, [])] == ["frontend-0-0", "latte"]
    assert second.vlan == 3
    # The VLAN is free again: the next cluster gets 2.
    assert add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=0)).vlan == 2


def test_remove_cluster_is_all_or_nothing(espresso: Any, db: Database) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=1))
    before = espresso.dump()
    with pytest.raises(UserError, match="host vm-container-0-0 is not a virtual frontend"):
        remove_clusters(db, ["frontend-0-0-1", "vm-container-0-0"])
    with pytest.raises(NotFound):
        remove_clusters(db, ["frontend-0-0-1", "nosuch"])
    with pytest.raises(UserError, match="must supply at least one frontend"):
        remove_clusters(db, [])
    assert espresso.dump() == before
    assert len(remove_clusters(db, ["frontend-0-0-0", "frontend-0-0-1"])) == 2
    with db.transaction() as s:
        left = set(s.scalars(select(Host.name)))
        apps = {a.name for a in s.scalars(select(Appliance))}
    assert left == {"frontend-0-0", "vm-container-0-0", "vm-container-0-1"}
    assert "hosted-vm" in apps
    for model in (VM, VMDisk, Cluster, Route, PublicKey):
        assert count(db, model) == 0


# Cost: a handful of statements whatever the size ----------------------------------------------


class Statements:
    """Counts the SQL statements sent to the database while active."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self.count = 0

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_add_cluster_statement_count_does_not_grow_with_the_cluster(
    espresso: Any, db: Database
) -> None:
    espresso.ok("set", "host", "attr", "vm-container-0-1", "kvm_disk_dir", "/data/kvm")
    with Statements(db) as small:
        add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    with Statements(db) as large:
        add_cluster(db, ClusterRequest(ip="137.110.119.119", num_computes=300))
    assert large.count == small.count
    assert count(db, VM) == 2 + 1 + 300 + 1


def test_list_clusters_statement_count_does_not_grow_with_the_clusters(db: Database) -> None:
    add_cluster(db, ClusterRequest(ip=PUBLIC, num_computes=2))
    with Statements(db) as one:
        list_clusters(db, [])
    for i in range(10):
        add_cluster(db, ClusterRequest(ip=f"137.110.119.{200 + i}", num_computes=3))
    with Statements(db) as eleven:
        assert len(list_clusters(db, [])) == 12
    assert eleven.count == one.count
