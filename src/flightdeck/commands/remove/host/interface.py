"""rocks remove host interface"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Remove a network interface of a host"
    args = ONE_HOST
    params = (Param("iface", "interface device", required=True, positional=True),)
    examples = (Example("rocks remove host interface compute-0-0 eth1", "Drop eth1."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import remove_interface

        remove_interface(self.ctx.db, p.args[0], [p["iface"]])
