"""rocks list bootaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the boot actions (kernel, ramdisk, arguments)"
    writes = False
    examples = (Example("rocks list bootaction", "install, os, install vm frontend..."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import list_boot_actions

        t = Table(["action", "kernel", "ramdisk", "args"], keep_owner=True)
        t.extend(list_boot_actions(self.ctx.db))
        self.emit(t)
