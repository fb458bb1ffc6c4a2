"""rocks stop host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Power off VMs (hard), or with terminate=yes run the disallocate plugins"
    args = SOME_HOSTS
    params = (
        Param(
            "terminate",
            "only run the disallocate plugins (the VM has stopped)",
            BOOL,
            default=False,
        ),
    )
    examples = (Example("rocks stop host vm compute-0-0-0", "Pull its plug."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import stop_vms

        self.outcomes(stop_vms(self.ctx.db, p.args, terminate=p["terminate"]))
