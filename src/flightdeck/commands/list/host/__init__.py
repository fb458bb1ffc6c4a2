"""rocks list host"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import HOSTS, Example, Parsed


class Command(Base):
    summary = "List hosts with their membership, CPUs, rack, rank and boot actions"
    args = HOSTS
    writes = False
    examples = (
        Example("rocks list host", "Every host."),
        Example("rocks list host compute", "Hosts of appliance compute."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_hosts

        t = Table(
            ["host", "membership", "cpus", "rack", "rank", "runaction", "installaction", "comment"],
            keep_owner=True,
        )
        t.extend(
            (
                r.name,
                r.membership,
                r.cpus,
                r.rack,
                r.rank,
                r.run_action,
                r.install_action,
                r.comment,
            )
            for r in list_hosts(self.ctx.db, p.args)
        )
        self.emit(t)
