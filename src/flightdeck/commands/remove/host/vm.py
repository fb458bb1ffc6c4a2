"""rocks remove host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Remove VMs: power off, undefine, delete their disks (keep-disks=yes keeps them)"
    args = SOME_HOSTS
    params = (
        Param("keep-disks", "keep the VMs' disk volumes on their containers", BOOL, default=False),
        Param(
            "force",
            "remove from the database even if a container does not answer",
            BOOL,
            default=False,
        ),
    )
    examples = (Example("rocks remove host vm compute-0-0-0", "Forget that VM."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import remove_host_vms

        remove_host_vms(
            self.ctx.db,
            p.args,
            keep_disks=p["keep_disks"],
            force=p["force"],
            warn=lambda w: self.ctx.err.write(w + "\n"),
        )
