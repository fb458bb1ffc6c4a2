"""rocks set host vm cdrom"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Attach an ISO (a path on the VM's container) as the VM's CD-ROM, or none"
    description = "The CD-ROM is attached, and booted first, at the VM's next start."
    args = ONE_HOST
    params = (
        Param(
            "cdrom",
            "absolute path of the ISO on the container, or none",
            required=True,
            positional=True,
        ),
    )
    examples = (
        Example(
            "rocks set host vm cdrom compute-0-0-0 cdrom=/isos/debian-12.iso",
            "Boot the installer ISO next time.",
        ),
        Example("rocks set host vm cdrom compute-0-0-0 cdrom=none", "Detach it."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import set_cdrom

        set_cdrom(self.ctx.db, p.args[0], p["cdrom"])
