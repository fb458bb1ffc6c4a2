"""rocks list cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
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
    records = "one for each frontend (node null), then one per client node of that frontend"
    fields = (
        Field(
            "frontend",
            "the frontend as the table shows it: its name on the public network, else its name",
        ),
        Field(
            "frontend_host",
            "the frontend's host name (frontend-0-0-0), what other commands take",
            column=None,
        ),
        Field(
            "node",
            "a client node of that frontend; null on the frontend's own record",
            nullable=True,
            column="client nodes",
        ),
        Field("type", "physical or VM: of the node, or of the frontend on its own record"),
        Field("status", "its live state; null for a physical host", nullable=True, when="status"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_clusters

        t = self.table(keep_owner=True, group=True)
        blocks = list_clusters(self.ctx.db, p.args)
        live: dict[str, str] = {}
        if p["status"]:
            from flightdeck.services.vm_status import statuses

            vms = [b.frontend for b in blocks if b.kind == "VM"]
            vms += [n for b in blocks for n, kind in b.nodes if kind == "VM"]
            live = statuses(self.ctx.db, vms) if vms else {}

        def status(name: str, kind: str) -> list[str | None]:
            if not p["status"]:
                return []
            return [live.get(name, "nostate") if kind == "VM" else None]

        for block in blocks:
            fe = (block.label, block.frontend)
            t.add(*fe, None, block.kind, *status(block.frontend, block.kind))
            for node, kind in block.nodes:
                t.add(*fe, node, kind, *status(node, kind))
        self.emit(t)
