"""planner/cluster.py: the cluster plan as a value, golden-tested as JSON.

The inventories are the guide's espresso (reference §2.2: public 137.110.119.117, containers
vm-container-0-0 and vm-container-0-1) and variations of it. Regenerate the golden files on
purpose with `pytest --regenerate-golden`.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from flightdeck.errors import Conflict, PlannerError, UserError
from flightdeck.planner.cluster import (
    ClusterInventory,
    ClusterPlan,
    ClusterRequest,
    Container,
    Network,
    plan_cluster,
)
from flightdeck.planner.placement import ContainerCapacity

GOLDEN = Path(__file__).parent / "golden"

PUBLIC = Network(
    "public", "137.110.119.0", "255.255.255.0", {"137.110.119.117": "frontend-0-0 eth1"}
)
PRIVATE = Network(
    "private",
    "10.1.0.0",
    "255.255.0.0",
    {
        "10.1.1.1": "frontend-0-0 eth0",
        "10.1.255.254": "vm-container-0-0 eth0",
        "10.1.255.253": "vm-container-0-1 eth0",
    },
)
FRONTEND = Container("frontend-0-0", 0, 0, True, "/var/lib/flightdeck/disks")
C0 = Container("vm-container-0-0", 0, 0, True, "/var/lib/flightdeck/disks")
C1 = Container("vm-container-0-1", 0, 1, True, "/data/kvm")
ESPRESSO = ClusterInventory(
    public=PUBLIC,
    private=PRIVATE,
    gateway="137.110.119.1",
    mac_base="76:77:6e:40:00:00",
    mac_mask="ff:ff:ff:c0:00:00",
    used_macs=frozenset({"52:54:00:fd:00:01", "52:54:00:fd:00:02"}),
    used_vlans={},
    names=frozenset({"frontend-0-0", "vm-container-0-0", "vm-container-0-1"}),
    fe_container=FRONTEND,
    containers=(C0, C1),
)
GUIDE = ClusterRequest(ip="137.110.119.118", num_computes=2)


def render(plan: ClusterPlan) -> str:
    """The plan as JSON: indented, one compute a line (1,000 computes stay readable)."""
    data = plan.to_json()
    computes = data.pop("computes")
    head = json.dumps(data, indent=1)
    lines = [json.dumps(c, separators=(",", ":")) for c in computes]
    return head[:-2] + ',\n "computes": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def golden(name: str, plan: ClusterPlan, regenerate: bool) -> None:
    path = GOLDEN / f"cluster-{name}.json"
    text = render(plan)
    json.loads(text)  # it is JSON
    if regenerate or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not regenerate:
            pytest.fail(f"{path} did not exist: written, check it and commit it")
    assert text == path.read_text(encoding="utf-8"), (
        f"the plan differs from {path}; if intended, rerun with --regenerate-golden"
    )


def plan(req: ClusterRequest = GUIDE, inv: ClusterInventory = ESPRESSO) -> ClusterPlan:
    return plan_cluster(req, inv, random.Random(0))


# The golden plans -------------------------------------------------------------------------------


def test_the_guides_cluster(regenerate_golden: bool) -> None:
    got = plan()
    golden("guide", got, regenerate_golden)
    fe = got.frontend
    assert (fe.name, fe.container, got.vlan, got.gateway) == (
        "frontend-0-0-0", "frontend-0-0", 2, "137.110.119.1")
    assert [(n.device, n.mac, n.ip, n.vlan) for n in fe.nics] == [
        ("eth0", "76:77:6e:40:00:00", "10.1.255.252", 2),
        ("eth1", "76:77:6e:40:00:01", "137.110.119.118", 0),
    ]
    assert [(c.name, c.container, c.nics[0].mac) for c in got.computes] == [
        ("hosted-vm-0-0-0", "vm-container-0-0", "76:77:6e:40:00:02"),
        ("hosted-vm-0-1-0", "vm-container-0-1", "76:77:6e:40:00:03"),
    ]
    assert got.computes[1].disks[0].format() == "qcow2:/data/kvm/hosted-vm-0-1-0.vda,vda,virtio"
    assert got.computes[0].disks[0].size_gb == 36


def test_a_thousand_computes(regenerate_golden: bool) -> None:
    boxes = tuple(
        Container(f"vm-container-{r}-{k}", r, k, True, "/var/lib/flightdeck/disks")
        for r in range(2) for k in range(4)
    )  # fmt: skip
    got = plan(
        ClusterRequest(ip="137.110.119.200", num_computes=1000, vlan=100, mem_per_compute=512),
        dataclasses.replace(ESPRESSO, containers=boxes),
    )
    golden("1000", got, regenerate_golden)
    assert len(got.computes) == 1000
    assert len({c.name for c in got.computes}) == 1000
    macs = [n.mac for v in (got.frontend, *got.computes) for n in v.nics]
    assert len(set(macs)) == 1002 and macs[-1] == "76:77:6e:40:03:e9"
    assert [c.container for c in got.computes[:9]] == [b.name for b in boxes] + [boxes[0].name]
    assert got.computes[-1].name == "hosted-vm-1-3-124"


def test_capacity_placement(regenerate_golden: bool) -> None:
    def sized(c: Container, total: int, used: int) -> Container:
        return dataclasses.replace(c, capacity=ContainerCapacity(c.name, total, used))

    inv = dataclasses.replace(
        ESPRESSO,
        fe_container=sized(FRONTEND, 16384, 0),
        containers=(sized(C0, 8192, 2048), sized(C1, 16384, 4096)),
    )
    got = plan(ClusterRequest(ip="137.110.119.118", num_computes=6, placement="capacity",
                              mem_per_compute=2048), inv)
    golden("capacity", got, regenerate_golden)
    # 6144 and 12288 MB free: the larger takes computes until they are level, then in turn.
    assert [c.container for c in got.computes] == [
        "vm-container-0-1", "vm-container-0-1", "vm-container-0-1", "vm-container-0-0",
        "vm-container-0-1", "vm-container-0-0"]


def test_cluster_naming(regenerate_golden: bool) -> None:
    got = plan(ClusterRequest(ip="137.110.119.118", num_computes=3, cluster_naming=True,
                              fe_name="latte.rocksclusters.org",
                              fe_fqdn="latte.rocksclusters.org"))
    golden("naming", got, regenerate_golden)
    assert got.frontend.name == "latte.rocksclusters.org"
    assert [c.name for c in got.computes] == ["vm-latte-0", "vm-latte-1", "vm-latte-2"]
    assert all(c.slice == 0 for c in got.computes)
    assert got.fe_fqdn == "latte.rocksclusters.org"


# Properties --------------------------------------------------------------------------------------


def test_the_plan_depends_on_the_request_and_the_inventory_only() -> None:
    """No rule of the original is random: any seed gives the same plan."""
    assert plan_cluster(GUIDE, ESPRESSO, random.Random(1)) == plan_cluster(
        GUIDE, ESPRESSO, random.Random(2)
    )


def test_it_continues_after_what_is_used() -> None:
    inv = dataclasses.replace(
        ESPRESSO,
        used_macs=ESPRESSO.used_macs | {"76:77:6e:40:00:00", "76:77:6e:40:00:07"},
        used_vlans={2: "cluster frontend-0-0-0", 3: "host vm-container-0-1"},
        names=ESPRESSO.names | {"frontend-0-0-0", "hosted-vm-0-0-0"},
        containers=(dataclasses.replace(C0, max_slice=0), C1),
    )
    got = plan(inv=inv)
    assert got.vlan == 4
    assert got.frontend.name == "frontend-0-0-1"
    assert got.frontend.nics[0].mac == "76:77:6e:40:00:08"
    assert [c.name for c in got.computes] == ["hosted-vm-0-0-1", "hosted-vm-0-1-0"]


@pytest.mark.parametrize(
    ("req", "inv", "error", "message"),
    [
        (dataclasses.replace(GUIDE, ip="137.110.119.117"), ESPRESSO, Conflict,
         "IP 137.110.119.117 on network public is already used by frontend-0-0 eth1"),
        (dataclasses.replace(GUIDE, ip="10.1.1.9"), ESPRESSO, UserError, "outside network public"),
        (dataclasses.replace(GUIDE, vlan=2), dataclasses.replace(
            ESPRESSO, used_vlans={2: "cluster frontend-0-0-0"}), Conflict,
         "VLAN 2 is already used by cluster frontend-0-0-0"),
        (GUIDE, dataclasses.replace(ESPRESSO, gateway=None), UserError, "no public gateway"),
        (GUIDE, dataclasses.replace(ESPRESSO, containers=(dataclasses.replace(C1, kvm=False),)),
         UserError, "host vm-container-0-1 cannot host VMs"),
        (dataclasses.replace(GUIDE, fe_name="vm-container-0-0"), ESPRESSO, Conflict,
         "host vm-container-0-0 is already in the database"),
        (dataclasses.replace(GUIDE, placement="capacity"), ESPRESSO, PlannerError,
         "was not read"),
        (dataclasses.replace(GUIDE, num_computes=-1), ESPRESSO, UserError, "num-computes=-1"),
        (dataclasses.replace(GUIDE, cluster_naming=True), ESPRESSO, UserError, "fe-name"),
    ],
)
def test_refusals(req: ClusterRequest, inv: ClusterInventory, error: type[Exception],
                  message: str) -> None:
    with pytest.raises(error, match=message):
        plan(req, inv)


def test_the_json_is_plain() -> None:
    data: Any = json.loads(render(plan()))
    assert set(data) == {"vlan", "network", "gateway", "fe_fqdn", "frontend", "computes"}
    assert data["frontend"]["disks"] == [
        {"spec": "qcow2:/var/lib/flightdeck/disks/frontend-0-0-0.vda,vda,virtio", "size_gb": 36}]
