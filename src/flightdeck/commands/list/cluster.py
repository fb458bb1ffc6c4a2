"""rocks list cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import BOOL, Args, Example, Param, Parsed


class Command(Base):
    summary = "List the physical cluster and every virtual cluster with their nodes"
    args = Args("frontend", "frontends (physical or virtual) to show")
    params = (Param("status", "add the live STATUS of each VM", BOOL, default=False),)
    writes = False
    examples = (
        Example("rocks list cluster", "All clusters."),
        Example("rocks list cluster frontend-0-0-0 status=y", "One cluster, live."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.clusters import list_clusters

        header = ["frontend", "client nodes", "type"] + (["status"] if p["status"] else [])
        t = Table(header, keep_owner=True)
        for block in list_clusters(self.ctx.db, p.args):
            # Live status arrives with the libvirt driver; until then a VM's state is unknown.
            st = ["nostate" if block.kind == "VM" else None] if p["status"] else []
            t.add(block.label, None, block.kind, *st)
            for node, kind in block.nodes:
                t.add("", node, kind, *(["nostate" if kind == "VM" else None] if st else []))
        self.emit(t)
