"""rocks list appliance attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Args, Example, Parsed


class Command(Base):
    summary = "List the attributes set on appliances"
    args = Args("appliance", "appliance names")
    writes = False
    examples = (Example("rocks list appliance attr vm-container", "kvm=true and managed=true."),)
    records = "one per attribute set on an appliance"
    fields = (
        Field("appliance", "the appliance (vm-container, compute...)"),
        Field("attr", "the attribute's name"),
        Field("value", "its value, exactly as it was set"),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_appliance_attrs

        t = self.table(keep_owner=True)
        t.extend(list_appliance_attrs(self.ctx.db, p.args))
        self.emit(t)
