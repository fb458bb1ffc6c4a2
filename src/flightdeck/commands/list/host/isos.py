"""rocks list host isos"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import ONE_HOST, Example, Parsed


class Command(Base):
    summary = "List the ISO images your VM's CD-ROM may hold, through the Airboss"
    description = """
        The images in the ISO directory of the VM's container (attribute kvm_iso_dir), one
        file name a line: what 'set host cdrom' accepts.
    """
    args = ONE_HOST
    params = AIRBOSS_PARAMS
    writes = False
    owner = True
    examples = (
        Example("rocks list host isos hosted-vm-0-0-0 key=private.key", "The images there are."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner

        client = owner.client(self, p)
        for name in client.isos(owner.target(self, p.args[0])):
            self.say(name)
