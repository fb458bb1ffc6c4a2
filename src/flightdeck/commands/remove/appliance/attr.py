"""rocks remove appliance attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Args, Example, Param, Parsed


class Command(Base):
    summary = "Remove an attribute set on appliances"
    args = Args("appliance", "appliance names", min=1)
    params = (Param("attr", "attribute name", required=True, positional=True),)
    examples = (Example("rocks remove appliance attr compute kvm", "Computes stop hosting VMs."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import remove_appliance

        remove_appliance(self.ctx.db, p.args, p["attr"])
