"""rocks list jobs"""

from __future__ import annotations

from datetime import UTC, datetime

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import ONE_HOST, Example, Parsed


def _when(t: int | None) -> datetime | None:
    """A job's Unix time (seconds) as a time the listing prints in UTC."""
    return None if t is None else datetime.fromtimestamp(t, UTC)


class Command(Base):
    summary = "List the Airboss's jobs (cluster power sequences) of your virtual cluster"
    description = """
        The newest 50 jobs of the cluster whose frontend is given (a MAC or a name): what
        each was asked, its state (running, done, failed, interrupted), when it started and
        ended, and its summary. Any Airboss of the site answers: jobs live in the database.
    """
    args = ONE_HOST
    params = AIRBOSS_PARAMS
    writes = False
    owner = True
    examples = (Example("rocks list jobs frontend-0-0-0 key=private.key", "Your cluster's jobs."),)
    records = "one per job, newest first"
    fields = (
        Field("job", "the job's number (what report job job= takes)", "integer"),
        Field("frontend", "the cluster's virtual frontend (physical-side name)"),
        Field("action", "on, off or install"),
        Field("state", "running, done, failed or interrupted"),
        Field("started", "when the Airboss accepted it", "time"),
        Field("finished", "when it ended; null while it runs", "time", nullable=True),
        Field("summary", "what it did, once it ended", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.api import operations as ops
        from flightdeck.cli import owner

        client = owner.client(self, p)
        found = client.call(ops.JOBS, ops.JobsRequest(owner.target(self, p.args[0]))).jobs
        table = self.table(owner=False)
        for j in found:
            table.add(j.job, j.frontend, j.action, j.state, _when(j.started),
                      _when(j.finished), j.summary)  # fmt: skip
        self.emit(table)
