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
        administrator does on the physical frontend. The frontend comes first. As the guide
        prints it, one column, MACS IN CLUSTER; names=yes adds each node's HOST NAMES on the
        physical side and status=yes its live STATE (pilot shows both unless told no, as the
        guide's pilot.py).
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
        Param(
            "names",
            "add each node's HOST NAMES (the physical side's)",
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
        remote = p["key"] is not None or p["token"] is not None or p["airboss"] is not None
        if self.ctx.program.owner_only or remote:
            from flightdeck.cli import owner

            client = owner.client(self, p)
            nodes = client.macs(owner.target(self, p.args[0]), status)
            rows = [(n.macs, n.status, n.host) for n in nodes]
            self.emit(macs_table(rows, status, p["names"]))
            return
        from flightdeck.services.listings import cluster_macs

        listed = cluster_macs(self.ctx.db, p.args[0])
        states: dict[str, str] = {}
        if status:
            from flightdeck.services.vm_status import statuses

            states = statuses(self.ctx.db, [name for _macs, name in listed])
        self.emit(macs_table([(m, states.get(n), n) for m, n in listed], status, p["names"]))


def macs_table(
    nodes: Sequence[tuple[Sequence[str], str | None, str]], status: bool, names: bool
) -> Table:
    """The guide's layout, one row per (macs, state, name): MACS IN CLUSTER [STATE] [HOST
    NAMES]."""
    header = ["macs in cluster"] + (["state"] if status else []) + (["host names"] if names else [])
    table = Table(header, owner=False)
    for macs, state, name in nodes:
        table.add(
            " ".join(macs),
            *([state or "nostate"] if status else []),
            *([name] if names else []),
        )
    return table
