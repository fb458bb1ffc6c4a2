"""rocks set host cdrom"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import BOOL, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Put an ISO image in your VM's CD-ROM drive (or none) through the Airboss"
    description = """
        Only images in the ISO directory of the VM's container (attribute kvm_iso_dir) are
        accepted, named by their file name; cdrom=none empties the drive. The VM boots from
        the CD-ROM at its next start. list=yes prints the images there are instead (as
        'list host isos').
    """
    args = ONE_HOST
    params = (
        Param("cdrom", "image file name in the ISO directory, or none", positional=True),
        Param("list", "print the images you may choose from", BOOL, default=False),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks set host cdrom hosted-vm-0-0-0 cdrom=debian-12.iso key=private.key",
            "Boot the VM from an installer image next time.",
        ),
        Example(
            "rocks set host cdrom hosted-vm-0-0-0 list=yes key=private.key", "The images there are."
        ),
        Example(
            "rocks set host cdrom hosted-vm-0-0-0 cdrom=none key=private.key", "Empty the drive."
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.errors import UsageError

        client = owner.client(self, p)
        target = owner.target(self, p.args[0])
        if p["list"]:
            for name in client.isos(target):
                self.say(name)
            return
        if p["cdrom"] is None:
            raise UsageError("you need to specify the image: cdrom=<name> or cdrom=none")
        answer = client.cdrom(target, p["cdrom"])
        self.say(f"{answer.host}: cdrom {answer.cdrom or 'none'} (from its next start)")
