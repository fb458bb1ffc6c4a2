"""rocks list attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Args, Example, Parsed


class Command(Base):
    summary = "List the global attributes"
    args = Args("attr", "only this attribute", max=1)
    writes = False
    examples = (Example("rocks list attr", "Every global attribute."),)
    records = "one per global attribute, by name"
    fields = (
        Field("attr", "the attribute's name"),
        Field("value", "its value, exactly as it was set"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_global

        t = self.table(owner=False)
        t.extend(list_global(self.ctx.db, p.args[0] if p.args else None))
        self.emit(t)
