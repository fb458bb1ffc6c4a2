"""rocks pause host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Pause running VMs (their memory stays on the container)"
    args = SOME_HOSTS
    examples = (Example("rocks pause host vm hosted-vm-0-0-0", "Freeze it."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import pause_vms

        self.outcomes(pause_vms(self.ctx.db, p.args))
