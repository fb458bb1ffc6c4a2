"""Owner jobs: a cluster power sequence the Airboss runs for a signed request.

`pilot set cluster power` asks the Airboss to power a whole cluster in order (frontend first,
computes once it is ready: `services.clusterpower`). That takes minutes, longer than a request
may, so the Airboss answers at once with a job id and runs the sequence in its own thread: the
client may disconnect, the job goes on. Its state and one line per node are rows of the
database (`jobs`, `job_events`), so any Airboss replica answers `pilot report job`, and what a
job did stays after it ended.

Who may see a job: keys that cover the job's cluster (a key on its virtual frontend), through
a target of that cluster, like every owner operation. Who may start one: only such a key, and
only with the frontend as the target (a key on one compute VM covers that VM, not its
cluster). An Airboss that stops marks its running jobs `interrupted`; one that starts marks
those a dead process of its own host left `running`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from flightdeck.db.engine import Database, core_reads
from flightdeck.db.hostexpr import HostIds
from flightdeck.db.tables import clusters, hosts, job_events, jobs
from flightdeck.errors import Conflict, FlightdeckError, NotFound
from flightdeck.logsafe import escape
from flightdeck.services.airboss.access import Target, not_yours

log = logging.getLogger(__name__)  # under flightdeck.*, in the Airboss's log

#: Lines returned per `report job` call (the client asks again from where it stopped).
PAGE = 500
#: Jobs listed by `list jobs` (newest first).
LISTED = 50
#: What a job may be (a second job of a cluster is refused while one is running).
STATES = ("running", "done", "failed", "interrupted")

Runner = Callable[[Callable[[], None]], None]


def runner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:255]


@dataclass(frozen=True)
class JobRow:
    id: int
    action: str
    state: str
    frontend: str
    created: int
    finished: int | None
    summary: str | None


@dataclass(frozen=True)
class EventRow:
    seq: int
    node: str
    ok: bool
    message: str
    at_ms: int


def _cluster_frontend(db: Database | Connection, target: Target) -> tuple[int, int, str]:
    """(cluster id, frontend host id, frontend name) of a target the key covers as a cluster."""
    if target.cluster_id is None or target.cluster_id not in target.scope.clusters:
        raise not_yours(target.given, f"not-a-cluster-key ({target.name})")
    with core_reads(db) as conn:
        row = conn.execute(
            select(clusters.c.id, hosts.c.id, hosts.c.name)
            .join(hosts, hosts.c.id == clusters.c.frontend_id)
            .where(clusters.c.id == target.cluster_id)
        ).one()
    return int(row[0]), int(row[1]), str(row[2])


def start_power_job(
    db: Database,
    keyid: str,
    target: Target,
    action: str,
    *,
    wait: bool,
    max_parallel: int | None,
    run: Runner,
    probe: Callable[[str], bool] | None = None,
    with_frontend: bool = True,
) -> JobRow:
    """Record a job for the target's cluster and hand its sequence to `run` (a thread)."""
    cluster_id, fe_id, fe_name = _cluster_frontend(db, target)
    if target.host_id != fe_id:
        raise FlightdeckError(
            f"{target.given} is {target.name}, a compute of the cluster: name its frontend "
            f"({fe_name}) to power the cluster"
        )
    now = int(time.time())
    row = {"cluster_id": cluster_id, "keyid": keyid, "action": action, "state": "running",
           "created": now, "finished": None, "runner": runner_id(), "summary": None}  # fmt: skip
    try:
        with db.engine.begin() as conn:
            job_id = conn.execute(insert(jobs).returning(jobs.c.id), row).scalar_one()
    except IntegrityError:
        # The schema keeps one running job per cluster (index uq_jobs_one_running), so two
        # requests at once, even to two replicas, cannot both start one.
        with core_reads(db) as conn:
            busy = conn.scalar(
                select(jobs.c.id).where(jobs.c.cluster_id == cluster_id, jobs.c.state == "running")
            )
        raise Conflict(
            f"job {busy} is still powering this cluster: follow it with "
            f"'pilot report job host={target.given} job={busy}'"
        ) from None
    log.info("job %d: power %s of cluster %s for key %s", job_id, action, escape(fe_name), keyid)
    run(lambda: _run(db, int(job_id), fe_id, action, wait, max_parallel, probe, with_frontend))
    return JobRow(int(job_id), action, "running", fe_name, now, None, None)


def _run(
    db: Database,
    job_id: int,
    fe_id: int,
    action: str,
    wait: bool,
    max_parallel: int | None,
    probe: Callable[[str], bool] | None,
    with_frontend: bool = True,
) -> None:
    from flightdeck.services.clusterpower import NodeResult, power_cluster

    def echo(r: NodeResult) -> None:
        with db.engine.begin() as conn:
            conn.execute(
                insert(job_events),
                {"job_id": job_id, "at_ms": int(r.at * 1000), "node": r.node[:255],
                 "ok": r.ok, "message": r.message[:1024]},
            )  # fmt: skip

    try:
        done = power_cluster(
            db, HostIds.of(fe_id), action, wait=wait, max_parallel=max_parallel, probe=probe,
            echo=echo, with_frontend=with_frontend,
        )  # fmt: skip
        state = "failed" if done.failed else "done"
        summary = done.summary()
    except Exception as exc:  # the job's end must be written whatever happened
        state = "failed"
        summary = getattr(exc, "message", None) or f"internal error: {type(exc).__name__}"
        if not isinstance(exc, FlightdeckError):
            log.exception("job %d failed", job_id)
    _finish(db, job_id, state, summary)
    log.info("job %d: %s: %s", job_id, state, escape(summary))


def _finish(db: Database, job_id: int, state: str, summary: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job_id)
            .values(state=state, finished=int(time.time()), summary=summary[:1024])
        )


def interrupt_own(db: Database, *, dead_only: bool) -> int:
    """Mark this host's running jobs interrupted: those of this process (it is stopping), or
    with `dead_only` those whose process is gone (at start-up). How many."""
    host = socket.gethostname()
    mine = runner_id()
    with db.engine.begin() as conn:
        rows = conn.execute(select(jobs.c.id, jobs.c.runner).where(jobs.c.state == "running")).all()
        chosen = []
        for job_id, runner in rows:
            name, _, pid = str(runner).rpartition(":")
            if name != host:
                continue
            if dead_only:
                if runner != mine and pid.isdigit() and not _alive(int(pid)):
                    chosen.append(job_id)
            elif runner == mine:
                chosen.append(job_id)
        if chosen:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(chosen))
                .values(
                    state="interrupted",
                    finished=int(time.time()),
                    summary="interrupted: the Airboss running it stopped; run it again",
                )
            )
    return len(chosen)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _job_row(row: tuple[object, ...]) -> JobRow:
    id_, action, state, fe, created, finished, summary = row
    return JobRow(
        int(id_),  # type: ignore[call-overload]
        str(action),
        str(state),
        str(fe),
        int(created),  # type: ignore[call-overload]
        None if finished is None else int(finished),  # type: ignore[call-overload]
        None if summary is None else str(summary),
    )


_JOB = (
    select(jobs.c.id, jobs.c.action, jobs.c.state, hosts.c.name, jobs.c.created,
           jobs.c.finished, jobs.c.summary)
    .join(clusters, clusters.c.id == jobs.c.cluster_id)
    .join(hosts, hosts.c.id == clusters.c.frontend_id)
)  # fmt: skip


def list_jobs(db: Database | Connection, target: Target) -> list[JobRow]:
    """The newest jobs of the target's cluster (one read transaction, the cluster's included)."""
    with core_reads(db) as conn:
        cluster_id, _fe, _name = _cluster_frontend(conn, target)
        rows = conn.execute(
            _JOB.where(jobs.c.cluster_id == cluster_id).order_by(jobs.c.id.desc()).limit(LISTED)
        ).all()
    return [_job_row(tuple(r)) for r in rows]


def report_job(
    db: Database | Connection, target: Target, job_id: int, after: int = 0
) -> tuple[JobRow, list[EventRow], bool]:
    """A job of the target's cluster, its lines after line `after` (at most PAGE), and whether
    more follow."""
    with core_reads(db) as conn:
        cluster_id, _fe, _name = _cluster_frontend(conn, target)
        row = conn.execute(_JOB.where(jobs.c.id == job_id, jobs.c.cluster_id == cluster_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id} for this cluster: see 'pilot list jobs'")
        found = conn.execute(
            select(job_events.c.id, job_events.c.node, job_events.c.ok, job_events.c.message,
                   job_events.c.at_ms)
            .where(job_events.c.job_id == job_id)
            .order_by(job_events.c.id)
            .offset(after)
            .limit(PAGE + 1)
        ).all()  # fmt: skip
    events = [
        EventRow(after + i + 1, str(n), bool(ok), str(msg), int(at))
        for i, (_id, n, ok, msg, at) in enumerate(found[:PAGE])
    ]
    return _job_row(tuple(row)), events, len(found) > PAGE


class Jobs:
    """The Airboss's job threads: each job runs on its own daemon thread (a few at most per
    cluster, one per cluster at a time), apart from the request pools, so a sequence of
    minutes never holds a request worker."""

    def __init__(self) -> None:
        self._threads: set[threading.Thread] = set()
        self._lock = threading.Lock()

    def __call__(self, work: Callable[[], None]) -> None:
        def body() -> None:
            try:
                work()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        t = threading.Thread(target=body, name="airboss-job", daemon=True)
        with self._lock:
            self._threads.add(t)
        t.start()

    def running(self) -> int:
        with self._lock:
            return len(self._threads)

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
