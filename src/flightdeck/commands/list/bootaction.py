"""rocks list bootaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the boot actions (kernel, ramdisk, arguments)"
    writes = False
    examples = (Example("rocks list bootaction", "install, os, install vm frontend..."),)
    records = "one per boot action, by name"
    fields = (
        Field("action", "the boot action's name (install, os, install vm frontend...)"),
        Field("kernel", "the kernel: a path or URL", nullable=True),
        Field("ramdisk", "the initrd: a path or URL", nullable=True),
        Field("args", "the kernel command line", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_boot_actions

        t = self.table(keep_owner=True)
        t.extend(list_boot_actions(self.ctx.db))
        self.emit(t)
