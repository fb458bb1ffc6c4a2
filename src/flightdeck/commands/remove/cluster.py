"""rocks remove cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, Args, Example, Param, Parsed


class Command(Base):
    summary = (
        "Remove virtual clusters: their VMs (domains and disks), keys and VLAN, in one transaction"
    )
    args = Args("frontend", "virtual frontends", min=1)
    params = (
        Param("keep-disks", "keep the VMs' disk volumes on their containers", BOOL, default=False),
        Param(
            "force",
            "remove from the database even if a container does not answer",
            BOOL,
            default=False,
        ),
    )
    examples = (Example("rocks remove cluster frontend-0-0-0", "The guide's cluster, gone."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.clusters import remove_clusters

        removed = remove_clusters(
            self.ctx.db,
            p.args,
            keep_disks=p["keep_disks"],
            force=p["force"],
            warn=lambda w: self.ctx.err.write(w + "\n"),
        )
        for fe, vlan, members in removed:
            self.say(f"removed cluster {fe} (VLAN {vlan}) and {len(members)} VM(s)")
