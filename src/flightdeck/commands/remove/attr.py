"""rocks remove attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Remove a global attribute"
    params = (Param("attr", "attribute name", required=True, positional=True),)
    examples = (Example("rocks remove attr cpu_mode", "No global CPU mode any more."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import remove_global

        remove_global(self.ctx.db, p["attr"])
