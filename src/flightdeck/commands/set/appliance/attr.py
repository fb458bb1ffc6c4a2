"""rocks set appliance attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Args, Example, Param, Parsed


class Command(Base):
    summary = "Set an attribute on appliances (it wins over the global value)"
    args = Args("appliance", "appliance names", min=1)
    params = (
        Param("attr", "attribute name", required=True, positional=True),
        Param("value", "value, stored exactly as given", required=True, positional=True),
    )
    examples = (Example("rocks set appliance attr compute kvm true", "Let computes host VMs too."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import set_appliance

        set_appliance(self.ctx.db, p.args, p["attr"], p["value"])
