"""rocks list appliance"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the appliances"
    writes = False
    examples = (Example("rocks list appliance", "frontend, vm-container, hosted-vm, compute."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_appliances

        t = Table(["appliance", "membership", "public"], keep_owner=True)
        t.extend(list_appliances(self.ctx.db))
        self.emit(t)
