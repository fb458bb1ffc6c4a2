"""rocks add bootaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Add a boot action: a kernel, a ramdisk and kernel arguments"
    params = (
        Param("action", "boot action name", required=True, positional=True),
        Param("kernel", "kernel path (on the container for a VM frontend)"),
        Param("ramdisk", "initrd path"),
        Param("args", "kernel arguments"),
    )
    examples = (
        Example(
            "rocks add bootaction action='install vm frontend' kernel=/boot/vmlinuz "
            "ramdisk=/boot/initrd.img",
            "The virtual frontend's installer.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services import bootactions

        bootactions.add_bootaction(self.ctx.db, p["action"], p["kernel"], p["ramdisk"], p["args"])
