"""rocks create host vm (the original's alias of start host vm)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Start VMs (alias of rocks start host vm)"
    args = SOME_HOSTS
    examples = (Example("rocks create host vm compute-0-0-0", "The same as rocks start host vm."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import start_vms

        self.outcomes(start_vms(self.ctx.db, p.args))
