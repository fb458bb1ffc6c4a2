"""What owners may do through the Airboss, and how the daemon behaves while they do it.

Power, MAC lists, the ISO catalogue and the CD-ROM, on libvirt's test driver behind the
Airboss application; the rate limit; concurrency (a slow container never holds up another
owner); errors that are bugs (JSON, no traceback); the published OpenAPI document.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest

from flightdeck.api.operations import POWER_ACTIONS
from flightdeck.services.airboss import media, nodes, nonces
from flightdeck.services.airboss import power as power_svc


def power(app: Any, owner: Any, target: str, action: str) -> Any:
    body = json.dumps({"target": target, "action": action}).encode()
    return app.request("POST", "/v1/power", headers=owner.sign("POST", "/v1/power", "", body),
                       body=body)


def macs(app: Any, owner: Any, target: str, status: bool = False) -> Any:
    query = f"target={target}" + ("&status=yes" if status else "")
    return app.request("GET", "/v1/macs", query=query,
                       headers=owner.sign("GET", "/v1/macs", query))


def cdrom(app: Any, owner: Any, target: str, image: str) -> Any:
    body = json.dumps({"target": target, "cdrom": image}).encode()
    return app.request("POST", "/v1/cdrom", headers=owner.sign("POST", "/v1/cdrom", "", body),
                       body=body)


def isos(app: Any, owner: Any, target: str) -> Any:
    query = f"target={target}"
    return app.request("GET", "/v1/isos", query=query,
                       headers=owner.sign("GET", "/v1/isos", query))


def state(site: Any, vm: str) -> str:
    from flightdeck.services.lifecycle import statuses

    return statuses(site.db, [vm])[vm]


def accepted(site: Any, response: Any) -> Any:
    assert response.status == 200, response.body
    row = site.last()
    assert row.accepted is True and response.headers["audit-id"] == str(row.id)
    return response.json


# Power ------------------------------------------------------------------------------------------


def test_owner_powers_a_compute_on_and_off_by_mac(site: Any, alice: Any) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    answer = accepted(site, power(app, alice, site.mac(vm), "on"))
    assert answer == {"target": site.mac(vm), "host": vm, "action": "on",
                      "result": f"started {vm} on vm-container-0-0"}
    row = site.last()
    assert (row.keyid, row.operation, row.target) == (alice.keyid, "power on", site.mac(vm))
    assert row.client == "127.0.0.1"
    assert state(site, vm) == "active"
    # On again: allowed, but it fails, and says why.
    again = power(app, alice, site.mac(vm), "on")
    assert again.status == 409 and again.code == "action-failed"
    assert "already running" in again.json["message"]
    assert accepted(site, power(app, alice, site.mac(vm), "off"))["result"] == f"stopped {vm}"
    assert state(site, vm) == "nostate"


def test_owner_names_a_vm_by_its_physical_side_name(site: Any, alice: Any) -> None:
    app = site.app()
    vm = site.cluster_a[2]
    assert accepted(site, power(app, alice, vm, "on"))["host"] == vm
    assert state(site, vm) == "active"


def test_reset_and_shutdown(site: Any, alice: Any) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    accepted(site, power(app, alice, vm, "on"))
    assert accepted(site, power(app, alice, vm, "reset"))["result"] == f"reset {vm}"
    assert state(site, vm) == "active"
    assert "shut down" in accepted(site, power(app, alice, vm, "shutdown"))["result"]
    assert state(site, vm) == "shutoff"  # the test driver's guest obeys at once


def test_install_sets_the_boot_action_then_powers_on(site: Any, alice: Any) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    site.rocks.ok("set", "host", "boot", vm, "action=os")
    accepted(site, power(app, alice, site.mac(vm), "install"))
    boot = json.loads(site.rocks.ok("list", "host", "boot", vm, "output-format=json"))
    assert boot[0]["action"] == "install"
    assert state(site, vm) == "active"


def test_virtual_frontend_installs_through_its_kernel_once(site: Any, alice: Any) -> None:
    app = site.app()
    fe = site.cluster_a[0]
    # Either of its MACs will do (the guide: "You can use either with pilot").
    public_mac = json.loads(site.rocks.ok("list", "host", "interface", fe, "output-format=json"))
    public = next(r["mac"] for r in public_mac if r["iface"] == "eth1")
    answer = accepted(site, power(app, alice, public, "install"))
    assert answer["result"] == f"installing {fe} on frontend-0-0"
    boot = json.loads(site.rocks.ok("list", "host", "boot", fe, "output-format=json"))
    assert boot[0]["action"] == "os"


def test_a_plain_vm_key_acts_on_that_vm_only(site: Any, carol: Any) -> None:
    app = site.app()
    accepted(site, power(app, carol, site.mac(site.plain), "on"))
    nodes = accepted(site, macs(app, carol, site.plain))["nodes"]
    assert nodes == [{"host": site.plain, "macs": site.macs[site.plain], "frontend": False,
                      "status": None}]
    for other in (site.cluster_a[0], site.cluster_a[1], site.cluster_b[1]):
        r = power(app, carol, other, "on")
        assert r.status == 403 and r.code == "forbidden"


def test_a_cluster_key_cannot_touch_a_plain_vm(site: Any, alice: Any) -> None:
    r = power(site.app(), alice, site.mac(site.plain), "on")
    assert r.status == 403 and "out-of-scope" in site.last().reason


def test_a_vlan_is_no_ticket_into_a_cluster(site: Any, alice: Any) -> None:
    """The original's clusters view took any VM carrying the cluster's VLAN (§4.7.6)."""
    site.rocks.ok("add", "host", "vm", "vm-container-0-0", "membership=Hosted VM",
                  "name=stowaway", "mem=256", "disksize=1")
    vlan = json.loads(site.rocks.ok("list", "host", "interface", site.cluster_a[1],
                                    "output-format=json"))[0]["vlan"]
    site.rocks.ok("set", "host", "interface", "stowaway", "eth0", f"vlan={vlan}")
    app = site.app()
    r = power(app, alice, "stowaway", "on")
    assert r.status == 403 and "out-of-scope (stowaway)" in site.last().reason
    names = [n["host"] for n in accepted(site, macs(app, alice, site.cluster_a[0]))["nodes"]]
    assert "stowaway" not in names


# MAC lists --------------------------------------------------------------------------------------


def test_macs_of_the_cluster_frontend_first_and_only_its_vlan(site: Any, alice: Any) -> None:
    app = site.app()
    nodes = accepted(site, macs(app, alice, site.mac(site.cluster_a[0])))["nodes"]
    assert [n["host"] for n in nodes] == site.cluster_a
    assert [n["macs"] for n in nodes] == [site.macs[h] for h in site.cluster_a]
    assert [n["frontend"] for n in nodes] == [True, False, False]
    assert all(len(n["macs"]) == 1 for n in nodes)  # the frontend's public NIC is not listed
    # Any node of the cluster names it.
    again = accepted(site, macs(app, alice, site.cluster_a[2]))["nodes"]
    assert [n["host"] for n in again] == site.cluster_a


def test_macs_of_a_key_on_one_compute_list_that_compute_only(site: Any, alice: Any) -> None:
    """A key held by one VM of a cluster (not by its frontend) covers that VM only: the
    cluster's MAC list, asked by any name of the cluster it may see, shows that node alone."""
    mallory = site.owners["mallory"]
    path = site.tmp / "mallory.pub"
    path.write_text(mallory.public_pem)
    compute = site.cluster_a[2]
    site.rocks.ok("add", "host", "key", compute, f"key={path}")
    app = site.app()
    nodes = accepted(site, macs(app, mallory, site.mac(compute)))["nodes"]
    assert [(n["host"], n["frontend"]) for n in nodes] == [(compute, False)]
    assert nodes[0]["macs"] == site.macs[compute]
    r = macs(app, mallory, site.cluster_a[0])  # the frontend itself is not its to name
    assert r.status == 403 and "out-of-scope" in site.last().reason
    # The frontend's key still sees the whole cluster.
    assert len(accepted(site, macs(app, alice, compute))["nodes"]) == len(site.cluster_a)


def test_macs_by_the_frontends_public_name_as_the_guide_asks(site: Any, alice: Any) -> None:
    """`rocks list host macs vi-1.rocksclusters.org key=...` (§3.3.5): the frontend's name on
    the public network (its FQDN, `fe-fqdn=`), in any case, names its cluster; another
    cluster's public name is refused like any target out of scope."""
    app = site.app()
    site.rocks.ok("set", "host", "interface", site.cluster_a[0], "eth1",
                  "name=vi-1.rocksclusters.org")  # fmt: skip
    for name in ("vi-1.rocksclusters.org", "VI-1.RocksClusters.org"):
        nodes = accepted(site, macs(app, alice, name))["nodes"]
        assert [n["host"] for n in nodes] == site.cluster_a
    theirs = f"{site.cluster_b[0]}-public"
    r = macs(app, alice, theirs)
    assert r.status == 403 and site.last().reason.endswith(f"out-of-scope ({site.cluster_b[0]})")
    # A physical host's name on the public network is no VM: refused as before.
    r = macs(app, alice, "espresso.rocksclusters.org")
    assert r.status == 403 and "not-a-vm" in site.last().reason


def test_macs_with_status(site: Any, alice: Any) -> None:
    app = site.app()
    accepted(site, power(app, alice, site.cluster_a[1], "on"))
    nodes = accepted(site, macs(app, alice, site.cluster_a[0], status=True))["nodes"]
    assert {n["host"]: n["status"] for n in nodes} == {
        site.cluster_a[0]: "nostate", site.cluster_a[1]: "active", site.cluster_a[2]: "nostate"
    }
    assert site.last().operation == "macs+status"


def test_macs_query_must_be_exact(site: Any, alice: Any) -> None:
    app = site.app()
    for query in (f"target={site.cluster_a[0]}&target={site.cluster_b[0]}",
                  f"target={site.cluster_a[0]}&status=maybe",
                  f"target={site.cluster_a[0]}&sql=1",
                  "status=yes"):
        r = app.request("GET", "/v1/macs", query=query,
                        headers=alice.sign("GET", "/v1/macs", query))
        assert r.status == 400 and r.code == "invalid-request", (query, r.body)


# ISO catalogue and CD-ROM ---------------------------------------------------------------------


@pytest.fixture
def images(site: Any) -> dict[str, str]:
    d = site.iso_dir
    (d / "debian-12.iso").write_bytes(b"iso")
    (d / "tools.iso").write_bytes(b"iso")
    (d / "inside-link.iso").symlink_to(d / "tools.iso")
    (d / "escape.iso").symlink_to("/etc/passwd")
    (d / "escape-dir.iso").symlink_to("/etc")
    (d / "dangling.iso").symlink_to(d / "nothing-here.iso")
    (d / "subdir").mkdir()
    (d / "subdir" / "hidden.iso").write_bytes(b"iso")
    outside = site.tmp / "outside.iso"
    outside.write_bytes(b"iso")
    (d / "outside-link.iso").symlink_to(outside)
    return {"debian-12.iso": str(d / "debian-12.iso")}


def cdrom_path(site: Any, vm: str) -> str | None:
    rows = json.loads(site.rocks.ok("list", "host", "vm", vm, "showdisks=yes",
                                    "output-format=json"))
    return rows[0]["cdrom"] or None


def test_iso_catalogue_lists_regular_files_and_links_that_stay_inside(
    site: Any, alice: Any, images: dict[str, str]
) -> None:
    app = site.app()
    listed = accepted(site, isos(app, alice, site.cluster_a[1]))["images"]
    assert listed == ["debian-12.iso", "inside-link.iso", "tools.iso"]


def test_cdrom_set_and_clear(site: Any, alice: Any, images: dict[str, str]) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    answer = accepted(site, cdrom(app, alice, site.mac(vm), "debian-12.iso"))
    assert answer == {"target": site.mac(vm), "host": vm, "cdrom": images["debian-12.iso"]}
    assert cdrom_path(site, vm) == images["debian-12.iso"]
    assert site.last().operation == "cdrom set"
    # An absolute path directly in the ISO directory is the same image.
    accepted(site, cdrom(app, alice, vm, images["debian-12.iso"]))
    # A link inside the directory gets the file it points to.
    accepted(site, cdrom(app, alice, vm, "inside-link.iso"))
    assert cdrom_path(site, vm) == str(site.iso_dir / "tools.iso")
    accepted(site, cdrom(app, alice, vm, "none"))
    assert cdrom_path(site, vm) is None
    assert site.last().operation == "cdrom clear"
    # The VM then boots from it.
    accepted(site, cdrom(app, alice, vm, "debian-12.iso"))
    import xml.etree.ElementTree as ET

    domain = ET.fromstring(site.rocks.ok("report", "host", "vm", "config", vm))
    sources = [d.get("file") for d in domain.iter("source")]
    assert images["debian-12.iso"] in sources
    assert next(b.get("dev") for b in domain.iter("boot")) == "cdrom"


@pytest.mark.parametrize(
    "image",
    [
        "../outside.iso",
        "..",
        "/etc/passwd",
        "/etc/../etc/shadow",
        "escape.iso",
        "escape-dir.iso",
        "dangling.iso",
        "outside-link.iso",
        "subdir/hidden.iso",
        "subdir",
        "missing.iso",
        "-drive.iso",
        "debian-12.iso\n",
        "x" * 300,
    ],
)
def test_cdrom_outside_the_catalogue_is_refused(
    site: Any, alice: Any, images: dict[str, str], image: str
) -> None:
    app = site.app()
    vm = site.cluster_a[1]
    r = cdrom(app, alice, vm, image)
    assert r.status == 400 and r.code in ("invalid", "invalid-request"), r.body
    row = site.last()
    assert row.accepted is False and row.operation == "cdrom set"
    assert cdrom_path(site, vm) is None


def test_cdrom_path_outside_the_iso_directory_is_named(
    site: Any, alice: Any, images: dict[str, str]
) -> None:
    r = cdrom(site.app(), alice, site.cluster_a[1], str(site.tmp / "outside.iso"))
    assert r.status == 400 and "not in the ISO directory" in r.json["message"]


def test_cdrom_of_another_clusters_vm_is_refused(
    site: Any, bob: Any, images: dict[str, str]
) -> None:
    app = site.app()
    r = cdrom(app, bob, site.cluster_a[1], "debian-12.iso")
    assert r.status == 403 and r.code == "forbidden"
    r = isos(app, bob, site.cluster_a[1])
    assert r.status == 403


def test_cdrom_without_an_iso_directory(site: Any, alice: Any) -> None:
    site.rocks.ok("remove", "attr", "kvm_iso_dir")
    r = cdrom(site.app(), alice, site.cluster_a[1], "debian-12.iso")
    assert r.status == 409 and "kvm_iso_dir" in r.json["message"]


def test_cdrom_rechecks_the_key_in_the_writing_transaction(
    site: Any, alice: Any, images: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key removed between the authorisation and the write changes nothing."""
    real = media._catalogue

    def revoke_meanwhile(place: Any) -> dict[str, str]:
        site.rocks.ok("remove", "cluster", site.cluster_b[0])  # unrelated write, same time
        from flightdeck.db.models import PublicKey

        with site.db.engine.begin() as conn:
            conn.execute(PublicKey.__table__.delete())
        return real(place)

    monkeypatch.setattr(media, "_catalogue", revoke_meanwhile)
    r = cdrom(site.app(), alice, site.cluster_a[1], "debian-12.iso")
    assert r.status == 403 and "key-covers-nothing" in site.last().reason
    assert cdrom_path(site, site.cluster_a[1]) is None


# Rate limit ---------------------------------------------------------------------------------------


def test_rate_limit_per_key(site: Any, alice: Any, bob: Any) -> None:
    app = site.app(rate=0.5, burst=3)
    target = site.cluster_a[0]
    codes = [macs(app, alice, target).status for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    r = macs(app, alice, target)
    assert r.status == 429 and r.code == "rate-limited" and int(r.headers["retry-after"]) >= 1
    row = site.last()
    assert row.accepted is False and row.reason.startswith("rate-limited") and row.keyid
    # Another key is not held back by alice's use.
    assert macs(app, bob, site.cluster_b[0]).status == 200


def test_forged_requests_do_not_use_up_an_owners_allowance(
    site: Any, alice: Any, mallory: Any
) -> None:
    app = site.app(rate=0.5, burst=2)
    query = f"target={site.cluster_a[0]}"
    for _ in range(10):
        headers = mallory.sign("GET", "/v1/macs", query, keyid=alice.keyid)
        assert app.request("GET", "/v1/macs", query=query, headers=headers).status == 401
    assert macs(app, alice, site.cluster_a[0]).status == 200


# Concurrency --------------------------------------------------------------------------------------


def test_a_slow_container_does_not_hold_up_other_owners(
    site: Any, alice: Any, bob: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's power request hangs in libvirt; bob's requests are answered meanwhile.

    bob's power request is for his frontend, on another container: the hung one holds only
    its own container's slot (per_container=1).
    """
    release = threading.Event()
    real_power = power_svc.on

    def slow_power(db: Any, target: Any) -> str:
        if target.name == site.cluster_a[1]:
            assert release.wait(30)
        return real_power(db, target)

    monkeypatch.setattr(power_svc, "on", slow_power)
    app = site.app(per_container=1)
    body_a = json.dumps({"target": site.cluster_a[1], "action": "on"}).encode()
    body_b = json.dumps({"target": site.cluster_b[0], "action": "on"}).encode()

    async def scenario() -> tuple[Any, list[Any], float]:
        hung = asyncio.ensure_future(app.arequest(
            "POST", "/v1/power", headers=alice.sign("POST", "/v1/power", "", body_a),
            body=body_a))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        others = []
        for owner, target in ((bob, site.cluster_b[0]), (alice, site.cluster_a[0])):
            q = f"target={target}&status=yes"
            others.append(await app.arequest("GET", "/v1/macs", query=q,
                                             headers=owner.sign("GET", "/v1/macs", q)))
        others.append(await app.arequest(
            "POST", "/v1/power", headers=bob.sign("POST", "/v1/power", "", body_b), body=body_b))
        elapsed = time.monotonic() - t0
        assert not hung.done()
        release.set()
        return await hung, others, elapsed

    hung, others, elapsed = app.loop.run_until_complete(scenario())
    assert [r.status for r in others] == [200, 200, 200]
    assert elapsed < 5
    assert hung.status == 200


def test_per_container_bound_queues_only_that_container(
    site: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    running: dict[str, int] = {}
    peak: dict[str, int] = {}
    lock = threading.Lock()

    def counted(db: Any, target: Any) -> str:
        with lock:
            running[target.container] = running.get(target.container, 0) + 1
            peak[target.container] = max(peak.get(target.container, 0),
                                         running[target.container])
        time.sleep(0.2)
        with lock:
            running[target.container] -= 1
        return "ok"

    monkeypatch.setattr(power_svc, "reset", counted)
    app = site.app(per_container=2, libvirt_workers=16)
    targets = [site.cluster_a[1]] * 6 + [site.cluster_a[2]] * 6  # two containers

    async def all_at_once() -> list[Any]:
        calls = []
        for t in targets:
            body = json.dumps({"target": t, "action": "reset"}).encode()
            calls.append(app.arequest("POST", "/v1/power", body=body,
                                      headers=alice.sign("POST", "/v1/power", "", body)))
        return list(await asyncio.gather(*calls))

    results = app.loop.run_until_complete(all_at_once())
    assert all(r.status == 200 for r in results)
    assert peak == {"vm-container-0-0": 2, "vm-container-0-1": 2}


# Errors, documents ------------------------------------------------------------------------------


def test_a_bug_answers_json_without_a_traceback(
    site: Any, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("secret detail /var/lib/flightdeck")

    monkeypatch.setattr(nodes, "cluster_nodes", broken)
    r = macs(site.app(), alice, site.cluster_a[0])
    assert r.status == 500 and r.json == {"error": "internal",
                                          "message": "internal error: see the Airboss log"}
    assert "secret" not in r.body.decode()
    row = site.last()
    assert row.accepted is False and row.reason.startswith("internal: RuntimeError")


def test_a_container_that_does_not_answer(site: Any, alice: Any) -> None:
    site.rocks.ok("set", "host", "attr", "vm-container-0-0", "libvirt_uri",
                  "qemu+tcp://127.0.0.1:1/system")
    r = power(site.app(), alice, site.cluster_a[1], "on")
    assert r.status == 409 and "does not answer" in r.json["message"]


def test_health_and_openapi_are_public_and_not_logged(site: Any) -> None:
    app = site.app()
    assert app.request("GET", "/health").json == {"status": "ok"}
    doc = app.request("GET", "/openapi.json").json
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/health",
        "/v1/power",
        "/v1/macs",
        "/v1/isos",
        "/v1/cdrom",
        "/v1/console",
        "/v1/console/token",
        "/v1/cluster/power",
        "/v1/jobs",
        "/v1/job",
        "/v1/token/revoke",
        "/v1/audit",
        # issue 19: the dashboard's link, and its view of the nodes
        "/v1/nodes",
        "/v1/dashboard/link",
    }
    assert doc["paths"]["/v1/power"]["post"]["requestBody"]["content"]["application/json"][
        "schema"]["properties"]["action"]["enum"] == list(POWER_ACTIONS)
    assert site.audit(10) == []


def test_audit_entries_are_listed_for_root(site: Any, alice: Any, mallory: Any) -> None:
    app = site.app()
    accepted(site, macs(app, alice, site.cluster_a[0]))
    macs(app, mallory, site.cluster_a[0])
    out = site.rocks.ok("list", "airboss", "log", "limit=2")
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "CLIENT", "KEY", "OPERATION", "TARGET", "ACCEPTED",
                                "RESULT"]
    assert alice.keyid in lines[1] and " yes " in lines[1] and "3 node(s)" in lines[1]
    assert mallory.keyid in lines[2] and " no " in lines[2] and "unknown-key" in lines[2]
    rows = json.loads(site.rocks.ok("list", "airboss", "log", "output-format=json"))
    assert len(rows) == 2


def test_expired_nonces_are_purged(site: Any, alice: Any) -> None:
    app = site.app()
    macs(app, alice, site.cluster_a[0])
    from sqlalchemy import func, select

    from flightdeck.db.models import Nonce

    def count() -> int:
        with site.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Nonce)).scalar_one())

    assert count() == 1
    assert nonces.purge_nonces(site.db, int(time.time())) == 0
    assert nonces.purge_nonces(site.db, int(time.time()) + 400) == 1
    assert count() == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_served_document_is_the_committed_one(site: Any) -> None:
    from flightdeck.api import openapi

    served = site.app().request("GET", "/openapi.json").json
    assert served == json.loads(openapi.COMMITTED.read_text(encoding="utf-8"))
