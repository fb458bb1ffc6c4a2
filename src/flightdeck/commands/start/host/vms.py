"""rocks start host vms"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Parsed


class Command(Base):
    summary = "At a container's boot: restore saved autostart VMs, boot the others"
    args = ONE_HOST
    examples = (Example("rocks start host vms vm-container-0-0", "What its boot runs."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import autostart_vms

        self.outcomes(autostart_vms(self.ctx.db, p.args[0], stopping=False))
