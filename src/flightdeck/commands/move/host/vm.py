"""rocks move host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Move a VM to another container (cold: stop, copy its disks, start there)"
    args = ONE_HOST
    params = (Param("container", "the VM container to move to", required=True, positional=True),)
    examples = (
        Example(
            "rocks move host vm hosted-vm-0-0-0 vm-container-0-1", "Re-home a VM with its disk."
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import move_vm

        self.say(move_vm(self.ctx.db, p.args[0], p["container"]))
