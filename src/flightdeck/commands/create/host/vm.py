"""rocks create host vm (the original's alias of start host vm)"""

from __future__ import annotations

from flightdeck.commands.start.host import vm


class Command(vm.Command):
    summary = "Start VMs (alias of rocks start host vm)"
