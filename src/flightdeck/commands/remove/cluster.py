"""rocks remove cluster"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Args, Example, Parsed


class Command(Base):
    summary = "Remove virtual clusters: their VMs, interfaces, keys and VLAN, in one transaction"
    args = Args("frontend", "virtual frontends", min=1)
    examples = (Example("rocks remove cluster frontend-0-0-0", "The guide's cluster, gone."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.clusters import remove_clusters

        for fe, vlan, members in remove_clusters(self.ctx.db, p.args):
            self.say(f"removed cluster {fe} (VLAN {vlan}) and {len(members)} VM(s)")
