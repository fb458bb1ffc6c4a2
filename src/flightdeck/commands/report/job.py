"""rocks report job"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import BOOL, ONE_HOST, POSITIVE, Example, Param, Parsed


class Command(Base):
    summary = "Show a job of your virtual cluster: one line per node, its state, its summary"
    description = """
        The lines the job wrote so far (one per node, as it completed) and, once it ended,
        its summary; follow=yes waits for new lines until the job ends. The exit status is
        non-zero for a job that failed or was interrupted.
    """
    args = ONE_HOST
    params = (
        Param("job", "the job's number (see list jobs)", POSITIVE, required=True),
        Param("follow", "wait for new lines until the job ends", BOOL, default=False),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks report job frontend-0-0-0 job=3 follow=yes key=private.key",
            "Follow job 3 until the whole cluster is up.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.api import operations as ops
        from flightdeck.cli import owner
        from flightdeck.errors import FlightdeckError
        from flightdeck.pilot import commands as c

        client = owner.client(self, p)
        target = owner.target(self, p.args[0])
        if p["follow"]:
            c.follow_job(client, target, p["job"], self.say, self.ctx.warn)
            return
        seen, rep = 0, None
        while rep is None or rep.more:
            rep = client.call(ops.JOB, ops.JobRequest(target, p["job"], seen or None))
            for line in rep.lines:
                text = f"{line.node}: {line.message}"
                (self.say if line.ok else self.ctx.warn)(text if line.ok else f"error - {text}")
            seen += len(rep.lines)
        self.say(
            f"job {rep.job.job} {rep.job.state}"
            + (f": {rep.job.summary}" if rep.job.summary else "")
        )
        if rep.job.state in ("failed", "interrupted"):
            raise FlightdeckError(f"job {rep.job.job} {rep.job.state}")
