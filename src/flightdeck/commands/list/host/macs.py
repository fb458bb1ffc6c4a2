"""rocks list host macs"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, ONE_HOST, Example, Param, Parsed
from flightdeck.commands.set.host.power import AIRBOSS_PARAMS


class Command(Base):
    summary = "List the MACs of a virtual cluster's nodes on its VLAN, with their names"
    description = """
        With key=, asks the Airboss, as an owner does from their virtual frontend or laptop
        (the frontend is a MAC, or a name this database turns into its first MAC). Without
        key=, reads this database directly, as the administrator does on the physical
        frontend. The frontend comes first; status=yes adds each node's live STATE.
    """
    args = ONE_HOST
    params = (
        Param("status", "add each node's live STATE", BOOL, default=False),
        *AIRBOSS_PARAMS,
    )
    writes = False
    examples = (
        Example("rocks list host macs frontend-0-0-0", "The cluster's MACs, from the database."),
        Example(
            "rocks list host macs vi-1.rocksclusters.org key=private.key status=yes",
            "The same, through the Airboss, with the state of each node.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.pilot.commands import macs_table

        status = bool(p["status"])
        if p["key"] is not None or p["airboss"] is not None:
            from flightdeck.pilot import site

            client = site.client(p["key"], p["airboss"], lambda: self.ctx.db, p["ca"])
            (target,), _names = site.targets(p.args, lambda: self.ctx.db)
            self.emit(macs_table(client.macs(target, status), status))
            return
        from flightdeck.services.clusters import cluster_macs

        nodes = cluster_macs(self.ctx.db, p.args[0])
        states: dict[str, str] = {}
        if status:
            from flightdeck.services.lifecycle import statuses

            states = statuses(self.ctx.db, [name for _macs, name in nodes])
        self.emit(
            macs_table(
                [{"host": n, "macs": m, "status": states.get(n, "nostate")} for m, n in nodes],
                status,
            )
        )
