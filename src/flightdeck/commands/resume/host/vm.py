"""rocks resume host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Resume paused VMs"
    args = SOME_HOSTS
    examples = (Example("rocks resume host vm hosted-vm-0-0-0", "Let it run again."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import resume_vms

        self.outcomes(resume_vms(self.ctx.db, p.args))
