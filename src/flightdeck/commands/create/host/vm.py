"""rocks create host vm (the original's alias of start host vm)"""

from __future__ import annotations

from flightdeck.cli.params import Example
from flightdeck.commands.start.host import vm


class Command(vm.Command):
    summary = "Start VMs (alias of rocks start host vm)"
    examples: tuple[Example, ...] = (
        Example("rocks create host vm compute-0-0-0", "The same as rocks start host vm."),
    )
