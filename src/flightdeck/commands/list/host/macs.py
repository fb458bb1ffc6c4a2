"""rocks list host macs"""

from __future__ import annotations

from collections.abc import Sequence

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import BOOL, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "List the MACs of a virtual cluster's nodes on its VLAN, with their names"
    description = """
        With key= (and always under pilot), asks the Airboss, as an owner does from their
        virtual frontend or laptop (the frontend is a MAC, or a name this frontend's database
        turns into its first MAC). Without key=, rocks reads this database directly, as the
        administrator does on the physical frontend. The frontend comes first; status=yes adds
        each node's live STATE (pilot shows it unless status=no, as the guide's pilot.py).
    """
    args = ONE_HOST
    params = (
        Param(
            "status",
            "add each node's live STATE",
            BOOL,
            default=False,
            program_defaults=(("pilot", True),),
        ),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example("rocks list host macs frontend-0-0-0", "The cluster's MACs, from the database."),
        Example(
            "rocks list host macs vi-1.rocksclusters.org key=private.key status=yes",
            "The same, through the Airboss, with the state of each node.",
        ),
    )

    def run(self, p: Parsed) -> None:
        status = bool(p["status"])
        if self.ctx.program.owner_only or p["key"] is not None or p["airboss"] is not None:
            from flightdeck.cli import owner

            client = owner.client(self, p)
            nodes = client.macs(owner.target(self, p.args[0]), status)
            self.emit(macs_table([(n.macs, n.status, n.host) for n in nodes], status))
            return
        from flightdeck.services.clusters import cluster_macs

        listed = cluster_macs(self.ctx.db, p.args[0])
        states: dict[str, str] = {}
        if status:
            from flightdeck.services.lifecycle import statuses

            states = statuses(self.ctx.db, [name for _macs, name in listed])
        self.emit(macs_table([(m, states.get(n), n) for m, n in listed], status))


def macs_table(nodes: Sequence[tuple[Sequence[str], str | None, str]], status: bool) -> Table:
    """The guide's layout, one row per (macs, state, name): MACS IN CLUSTER [STATE] HOST NAMES."""
    header = ["macs in cluster"] + (["state"] if status else []) + ["host names"]
    table = Table(header, owner=False)
    for macs, state, name in nodes:
        table.add(" ".join(macs), *([state or "nostate"] if status else []), name)
    return table
