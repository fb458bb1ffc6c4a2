"""Cluster power as an Airboss job: ordered, followed by id, outliving its client, scoped to the
cluster the key covers (the attacks first)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from flightdeck.api import operations as ops


def start(app: Any, owner: Any, target: str, action: str = "on", **more: str) -> Any:
    body = json.dumps({"target": target, "action": action, **more}).encode()
    path = ops.CLUSTER_POWER.path
    return app.request("POST", path, headers=owner.sign("POST", path, "", body), body=body)


def job(app: Any, owner: Any, target: str, number: int, after: int = 0) -> Any:
    query = f"target={target}&job={number}" + (f"&after={after}" if after else "")
    return app.request("GET", "/v1/job", query=query, headers=owner.sign("GET", "/v1/job", query))


def jobs(app: Any, owner: Any, target: str) -> Any:
    query = f"target={target}"
    return app.request("GET", "/v1/jobs", query=query,
                       headers=owner.sign("GET", "/v1/jobs", query))  # fmt: skip


def until_done(app: Any, owner: Any, target: str, number: int, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        r = job(app, owner, target, number)
        assert r.status == 200, r.body
        if r.json["job"]["state"] != "running":
            return r.json
        assert time.monotonic() < deadline, r.json
        time.sleep(0.1)


def test_a_cluster_key_runs_the_sequence_as_a_job(site: Any, alice: Any) -> None:
    app = site.app()
    fe = site.cluster_a[0]
    r = start(app, alice, site.mac(fe), wait="no")
    assert r.status == 200, r.body
    info = r.json
    assert info["state"] == "running" and info["frontend"] == fe and info["action"] == "on"
    row = site.last()
    assert (row.operation, row.accepted) == ("cluster power on", True)
    done = until_done(app, alice, site.mac(fe), info["job"])
    assert done["job"]["state"] == "done", done
    lines = done["lines"]
    assert lines[0]["node"] == fe
    assert {x["node"] for x in lines} == set(site.cluster_a)
    assert [x["line"] for x in lines] == list(range(1, len(lines) + 1))
    assert done["job"]["summary"] == f"{fe} on: 3 started"
    # Following from where one stopped; the list of the cluster's jobs.
    tail = job(app, alice, site.mac(fe), info["job"], after=2).json["lines"]
    assert [x["line"] for x in tail] == [3]
    listed = jobs(app, alice, site.mac(fe)).json["jobs"]
    assert [j["job"] for j in listed] == [info["job"]]


def test_the_frontend_not_ready_in_time_fails_the_job_and_starts_no_compute(
    site: Any, alice: Any
) -> None:
    site.rocks.ok("set", "host", "attr", site.cluster_a[0], "kvm_frontend_ready_timeout", "1")
    app = site.app()
    fe = site.cluster_a[0]
    number = start(app, alice, fe).json["job"]
    done = until_done(app, alice, fe, number)
    assert done["job"]["state"] == "failed"
    assert "not ready within 1 s" in done["job"]["summary"] or any(
        "not ready within 1 s" in x["message"] for x in done["lines"]
    )
    from flightdeck.services.lifecycle import statuses

    live = statuses(site.db, site.cluster_a)
    assert live[fe] == "active"
    assert all(live[c] == "nostate" for c in site.cluster_a[1:])


def test_attack_a_key_on_one_compute_cannot_power_its_cluster(
    site: Any, mallory: Any
) -> None:
    """A key registered on one compute VM covers that VM: not its frontend, not its cluster."""
    compute = site.cluster_a[1]
    path = site.tmp / "mallory.pub"
    path.write_text(mallory.public_pem)
    site.rocks.ok("add", "host", "key", compute, f"key={path}")
    app = site.app()
    r = start(app, mallory, site.mac(site.cluster_a[0]), wait="no")
    assert r.status == 403 and r.code == "forbidden"
    r = start(app, mallory, site.mac(compute), wait="no")
    assert r.status == 403 and r.code == "forbidden"
    assert "not-a-cluster-key" in site.last().reason
    assert jobs(app, mallory, site.mac(compute)).status == 403
    from flightdeck.services.lifecycle import statuses

    assert set(statuses(site.db, site.cluster_a).values()) == {"nostate"}


def test_attack_another_owner_cannot_see_or_follow_a_job(
    site: Any, alice: Any, bob: Any, carol: Any
) -> None:
    app = site.app()
    fe_a, fe_b = site.cluster_a[0], site.cluster_b[0]
    number = start(app, alice, fe_a, wait="no").json["job"]
    until_done(app, alice, fe_a, number)
    # Bob names alice's job through his own cluster: no such job there.
    r = job(app, bob, fe_b, number)
    assert r.status == 404 and r.code == "not-found"
    # Through alice's cluster: his key does not cover it.
    assert job(app, bob, fe_a, number).status == 403
    assert jobs(app, bob, fe_a).status == 403
    assert jobs(app, bob, fe_b).json["jobs"] == []
    # A plain VM's key has no cluster to power.
    r = start(app, carol, site.plain, wait="no")
    assert r.status == 403


def test_a_compute_as_target_is_refused_naming_the_frontend(site: Any, alice: Any) -> None:
    app = site.app()
    r = start(app, alice, site.cluster_a[1], wait="no")
    assert r.status == 400 and site.cluster_a[0] in r.json["message"]


def test_a_second_job_while_one_runs_is_refused(site: Any, alice: Any) -> None:
    site.rocks.ok("set", "host", "attr", site.cluster_a[0], "kvm_frontend_ready_timeout", "3")
    app = site.app()
    fe = site.cluster_a[0]
    first = start(app, alice, fe).json["job"]
    r = start(app, alice, fe)
    assert r.status == 409 and f"job {first} is still powering" in r.json["message"]
    until_done(app, alice, fe, first)


def test_attack_many_starts_at_once_run_one_job(site: Any, alice: Any) -> None:
    """Six signed starts in flight together (the Airboss serves them on its pools at once):
    one job, five refusals, never two sequences racing over the same VMs."""
    import asyncio

    site.rocks.ok("set", "host", "attr", site.cluster_a[0], "kvm_frontend_ready_timeout", "2")
    app = site.app()
    fe = site.cluster_a[0]
    path = ops.CLUSTER_POWER.path

    async def all_at_once() -> list[Any]:
        calls = []
        for _ in range(6):
            body = json.dumps({"target": fe, "action": "on"}).encode()
            headers = alice.sign("POST", path, "", body)
            calls.append(app.arequest("POST", path, headers=headers, body=body))
        return list(await asyncio.gather(*calls))

    answers = app.loop.run_until_complete(all_at_once())
    assert sorted(r.status for r in answers) == [200, 409, 409, 409, 409, 409]
    (ok,) = [r for r in answers if r.status == 200]
    until_done(app, alice, fe, ok.json["job"])


def test_the_schema_keeps_one_running_job_per_cluster(site: Any) -> None:
    """The defence under the service: a second running row of a cluster is refused by the
    database itself (what two replicas deciding at once would write)."""
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from flightdeck.db.tables import clusters, jobs

    with site.db.engine.begin() as conn:
        cluster = conn.scalar(clusters.select().with_only_columns(clusters.c.id).limit(1))
    row = {"cluster_id": cluster, "keyid": "k", "action": "on", "created": 1, "runner": "x:1"}
    with site.db.engine.begin() as conn:
        conn.execute(insert(jobs), {**row, "state": "done"})
        conn.execute(insert(jobs), {**row, "state": "running"})
    with pytest.raises(IntegrityError), site.db.engine.begin() as conn:
        conn.execute(insert(jobs), {**row, "state": "running"})


@pytest.mark.parametrize("bad", ["0", "65", "x", "-1", "1e3"])
def test_max_parallel_is_checked(site: Any, alice: Any, bad: str) -> None:
    r = start(site.app(), alice, site.cluster_a[0], max_parallel=bad)
    assert r.status == 400 and r.code == "invalid-request"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_job_goes_on_when_the_client_disconnects(site: Any, alice: Any) -> None:
    """A real `airboss serve`: the client asks and leaves; a new client finds the job ended."""
    from flightdeck.pilot.client import AirbossClient

    site.rocks.ok("set", "host", "attr", site.cluster_a[0], "kvm_frontend_ready_timeout", "2")
    server = site.server()
    fe = site.cluster_a[0]
    client = AirbossClient(alice.key, server.address)
    info = client.call(ops.CLUSTER_POWER, ops.ClusterPowerRequest(fe, "on"))
    client.close()
    assert info.state == "running"
    other = AirbossClient(alice.key, server.address)
    deadline = time.monotonic() + 60
    while True:
        rep = other.call(ops.JOB, ops.JobRequest(fe, info.job))
        if rep.job.state != "running":
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert rep.job.state == "failed"
    assert rep.lines[0].node == fe and rep.lines[0].message.startswith("installing")
    assert "not ready within 2 s" in rep.lines[-1].message


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pilot_follows_the_job_line_by_line(site: Any, alice: Any, tmp_path: Any) -> None:
    from flightdeck.cli.command import Context
    from flightdeck.cli.main import run
    from flightdeck.cli.program import PILOT
    from flightdeck.crypto import keys as ck

    server = site.server()
    key = tmp_path / "alice.key"
    key.write_bytes(ck.private_key_to_pem(alice.key, None))
    key.chmod(0o600)
    import io

    out, err = io.StringIO(), io.StringIO()
    argv = ["set", "cluster", "power", f"host={site.cluster_a[0]}", "action=on", "wait=no",
            f"key={key}", f"airboss={server.address}"]  # fmt: skip
    code = run(argv, Context(out=out, err=err, program=PILOT))
    assert code == 0, err.getvalue()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("job ") and "power on of frontend-0-0-0" in lines[0]
    assert lines[-1] == "frontend-0-0-0 on: 3 started"
    out2 = io.StringIO()
    argv = ["list", "jobs", f"host={site.cluster_a[0]}", f"key={key}", f"airboss={server.address}"]
    code = run(argv, Context(out=out2, err=err, program=PILOT))
    assert code == 0 and " done " in out2.getvalue()
    # Its JSON: the declared fields, typed (times in ISO 8601 UTC).
    from flightdeck.commands.list.jobs import Command as ListJobs

    out3 = io.StringIO()
    code = run([*argv, "output-format=json"], Context(out=out3, err=err, program=PILOT))
    assert code == 0, err.getvalue()
    (record,) = json.loads(out3.getvalue())
    assert list(record) == [f.key for f in ListJobs.fields]
    assert isinstance(record["job"], int) and record["state"] == "done"
    assert record["frontend"] == site.cluster_a[0] and record["action"] == "on"
    assert record["started"].endswith("Z") and record["finished"].endswith("Z")
    assert record["summary"] == "frontend-0-0-0 on: 3 started"
