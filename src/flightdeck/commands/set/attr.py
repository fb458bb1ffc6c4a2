"""rocks set attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Set a global attribute"
    params = (
        Param("attr", "attribute name", required=True, positional=True),
        Param("value", "value, stored exactly as given", required=True, positional=True),
    )
    examples = (
        Example(
            "rocks set attr kvm_domain_type qemu", "Hosts without hardware virtualisation (TCG)."
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import set_global

        set_global(self.ctx.db, p["attr"], p["value"])
