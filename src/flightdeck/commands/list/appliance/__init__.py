"""rocks list appliance"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the appliances"
    writes = False
    examples = (Example("rocks list appliance", "frontend, vm-container, hosted-vm, compute."),)
    records = "one per appliance, in the order they were added"
    fields = (
        Field("appliance", "the appliance's name (what host expressions take)"),
        Field("membership", "its membership (what add host membership= takes)"),
        Field("public", "whether its hosts are on the public network", "boolean"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_appliances

        t = self.table(keep_owner=True)
        t.extend(list_appliances(self.ctx.db))
        self.emit(t)
