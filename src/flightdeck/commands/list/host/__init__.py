"""rocks list host"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import HOSTS, Example, Parsed


class Command(Base):
    summary = "List hosts with their membership, CPUs, rack, rank and boot actions"
    args = HOSTS
    writes = False
    examples = (
        Example("rocks list host", "Every host."),
        Example("rocks list host compute", "Hosts of appliance compute."),
    )
    records = "one per host, by rack, rank and name"
    fields = (
        Field("host", "the host's name"),
        Field("membership", "its membership (Compute, VM Container, Hosted VM...)"),
        Field("cpus", "its CPUs (vCPUs for a VM)", "integer"),
        Field("rack", "its rack", "integer"),
        Field("rank", "its rank in the rack", "integer"),
        Field("runaction", "the boot action of its installed OS"),
        Field("installaction", "the boot action that installs it"),
        Field("comment", "free text", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_hosts

        t = self.table(keep_owner=True)
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
