"""rocks remove host attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Remove an attribute set on hosts (the appliance or global value applies again)"
    args = SOME_HOSTS
    params = (Param("attr", "attribute name", required=True, positional=True),)
    examples = (Example("rocks remove host attr compute-0-0-0 cpu_mode", "Back to the default."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import remove_host

        remove_host(self.ctx.db, p.args, p["attr"])
