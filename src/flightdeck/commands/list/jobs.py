"""rocks list jobs"""

from __future__ import annotations

import time

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import ONE_HOST, Example, Parsed


def _when(t: int | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


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
    examples = (Example("pilot list jobs host=vi-1.example.org key=private.key", "Your jobs."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.api import operations as ops
        from flightdeck.cli import owner

        client = owner.client(self, p)
        found = client.call(ops.JOBS, ops.JobsRequest(owner.target(self, p.args[0]))).jobs
        table = Table(["job", "action", "state", "started", "finished", "summary"], owner=False)
        for j in found:
            table.add(j.job, j.action, j.state, _when(j.started), _when(j.finished),
                      j.summary or "")  # fmt: skip
        self.emit(table)
