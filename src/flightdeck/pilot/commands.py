"""What the owner commands do with the client, shared by `rocks ... key=` and `pilot ...`.

Each function takes an `AirbossClient` and returns results; printing is the caller's.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from flightdeck.api import operations as ops
from flightdeck.api.operations import POWER_ACTIONS
from flightdeck.errors import FlightdeckError, UserError
from flightdeck.pilot.client import AirbossClient

#: Requests in flight at once for a fan-out; the Airboss further bounds each container's share.
FAN_OUT = 8


def check_action(action: str | None) -> str:
    word = (action or "").strip().lower()
    if word not in POWER_ACTIONS:
        quoted = [f'"{a}"' for a in POWER_ACTIONS]
        raise UserError(
            f"invalid action. action must be {', '.join(quoted[:-1])} or {quoted[-1]}"
        )
    return word


@dataclass(frozen=True)
class Result:
    """One target's outcome: what was asked for, which VM it is, and what happened."""

    target: str
    host: str | None
    ok: bool
    message: str

    def line(self) -> str:
        who = self.host or self.target
        if self.host and self.host != self.target:
            who = f"{self.host} ({self.target})"
        return f"{who}: {self.message}"


def _power_one(client: AirbossClient, target: str, action: str) -> Result:
    try:
        answer = client.power(target, action)
    except FlightdeckError as exc:
        return Result(target, None, False, exc.message)
    return Result(target, answer.host, True, answer.result)


def power_many(
    client: AirbossClient,
    targets: Sequence[str],
    action: str,
    *,
    workers: int = FAN_OUT,
    names: dict[str, str] | None = None,
) -> list[Result]:
    """Power every target, at most `workers` requests at once; results in the given order."""
    action = check_action(action)
    if not targets:
        return []
    with concurrent.futures.ThreadPoolExecutor(min(workers, len(targets))) as pool:
        results = list(pool.map(lambda t: _power_one(client, t, action), targets))
    if names:
        results = [
            Result(r.target, r.host or names.get(r.target), r.ok, r.message) for r in results
        ]
    return results


def cluster_power(
    client: AirbossClient, frontend: str, action: str, *, workers: int = FAN_OUT
) -> list[Result]:
    """Power every node of the frontend's cluster but the frontend itself, in parallel.

    As the original, the nodes come from the MAC list and each is named by its first MAC; the
    frontend is left alone (the command usually runs on it). Unlike the original, nodes are
    powered in parallel rather than one per second.
    """
    action = check_action(action)
    nodes = [n for n in client.macs(frontend) if not n.frontend]
    targets = [n.macs[0] if n.macs else n.host for n in nodes]
    names = {t: n.host for t, n in zip(targets, nodes, strict=True)}
    return power_many(client, targets, action, workers=workers, names=names)


def start_cluster_job(
    client: AirbossClient,
    target: str,
    action: str,
    wait: bool,
    max_parallel: int | None,
    *,
    frontend: bool = True,
) -> ops.JobInfo:
    """Ask the Airboss to power the cluster of `target` (its frontend) in order, as a job;
    `frontend=False` for its computes only."""
    if action not in ops.CLUSTER_ACTIONS:
        raise UserError(f"action={action}: a cluster is powered in order with on, off, install")
    return client.call(
        ops.CLUSTER_POWER, ops.ClusterPowerRequest(target, action, wait, max_parallel, frontend)
    )


def follow_job(
    client: AirbossClient,
    target: str,
    job: int,
    say: Callable[[str], None],
    warn: Callable[[str], object],
    *,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ops.JobInfo:
    """Print a job's lines as they come (one per node), then its summary; the job's end.

    Interrupting this (Ctrl-C) stops following, not the job. A job that failed makes the
    command fail, naming what its summary names.
    """
    seen = 0
    try:
        while True:
            rep = client.call(ops.JOB, ops.JobRequest(target, job, seen or None))
            for line in rep.lines:
                text = f"{line.node}: {line.message}"
                (say if line.ok else warn)(text if line.ok else f"error - {text}")
            seen += len(rep.lines)
            if rep.more:
                continue
            if rep.job.state != "running":
                break
            sleep(poll)
    except KeyboardInterrupt:
        raise FlightdeckError(
            f"stopped following job {job}; it goes on: pilot report job host={target} job={job}"
        ) from None
    info = rep.job
    if info.summary:
        say(info.summary)
    if info.state != "done":
        raise FlightdeckError(f"job {job} {info.state}: {info.summary or 'see its lines'}")
    return info


def report(
    results: Sequence[Result], say: Callable[[str], None], warn: Callable[[str], object]
) -> None:
    """One line per target; any failure makes the command fail after all lines are out."""
    failed = [r for r in results if not r.ok]
    for r in results:
        (say if r.ok else warn)(r.line() if r.ok else f"error - {r.line()}")
    if failed:
        raise FlightdeckError(
            f"{len(failed)} of {len(results)} request(s) failed: "
            + ", ".join(r.host or r.target for r in failed)
        )
