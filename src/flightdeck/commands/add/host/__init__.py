"""rocks add host"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import COUNT, POSITIVE, Args, Example, Param, Parsed


class Command(Base):
    summary = "Add a physical host to the database"
    args = Args("name", "the new host's name", min=1, max=1)
    params = (
        Param("membership", "appliance or membership (Compute, VM Container...)", required=True),
        Param("rack", "rack number", COUNT, default=0),
        Param("rank", "rank in the rack", COUNT, default_text="next free in the rack"),
        Param("cpus", "number of CPUs", POSITIVE, default=1),
        Param("os", "operating system", default="linux"),
        Param("comment", "free text"),
    )
    examples = (
        Example(
            'rocks add host vm-container-0-0 membership="VM Container" rack=0 rank=0',
            "Register a VM container.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import add_host

        add_host(
            self.ctx.db,
            p.args[0],
            p["membership"],
            rack=p["rack"],
            rank=p["rank"],
            cpus=p["cpus"],
            os_name=p["os"],
            comment=p["comment"],
        )
