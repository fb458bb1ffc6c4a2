"""rocks list membership"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the memberships (the names add host membership= takes)"
    writes = False
    examples = (Example("rocks list membership", "Compute, VM Container, Hosted VM, Frontend."),)
    records = "one per membership, in the order they were added"
    fields = (
        Field("membership", "the membership (what add host membership= takes)"),
        Field("appliance", "its appliance's name"),
        Field("public", "whether its hosts are on the public network", "boolean"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_appliances

        t = self.table(keep_owner=True)
        t.extend((m, a, pub) for a, m, pub in list_appliances(self.ctx.db))
        self.emit(t)
