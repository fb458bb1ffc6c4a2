"""rocks list host macs"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import BOOL, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "List the MACs of a virtual cluster's nodes on its VLAN, with their names"
    description = """
        Run on the physical frontend, this reads the database directly. Tenants on a virtual
        frontend ask the Airboss instead, with their key.
    """
    args = ONE_HOST
    params = (Param("status", "add each node's live STATE", BOOL, default=False),)
    writes = False
    examples = (Example("rocks list host macs frontend-0-0-0", "The cluster's MACs."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.clusters import cluster_macs

        header = ["macs in cluster"] + (["state"] if p["status"] else []) + ["host names"]
        t = Table(header, owner=False)
        for macs, name in cluster_macs(self.ctx.db, p.args[0]):
            t.add(" ".join(macs), *(["nostate"] if p["status"] else []), name)
        self.emit(t)
