"""rocks remove host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Remove VMs from the database (a virtual frontend goes with remove cluster)"
    args = SOME_HOSTS
    examples = (Example("rocks remove host vm compute-0-0-0", "Forget that VM."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import remove_host_vms

        remove_host_vms(self.ctx.db, p.args)
