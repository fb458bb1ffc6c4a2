"""rocks set bootaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed

FIELDS = ("kernel", "ramdisk", "args")


class Command(Base):
    summary = "Change a boot action's kernel, ramdisk or arguments (none clears)"
    params = (
        Param("action", "boot action name", required=True, positional=True),
        Param("kernel", "kernel path (on the container for a VM frontend)"),
        Param("ramdisk", "initrd path"),
        Param("args", "kernel arguments"),
    )
    examples = (
        Example(
            "rocks set bootaction action='install vm frontend' kernel=/boot/vmlinuz "
            "ramdisk=/boot/initrd.img",
            "The virtual frontend's installer.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services import bootactions

        changes = {f: p[f] for f in FIELDS if f in p.given}
        bootactions.set_bootaction(self.ctx.db, p["action"], changes)
