"""rocks report vm nextmac"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Print the next free VM MAC address"
    writes = False
    examples = (Example("rocks report vm nextmac", "e.g. 76:77:6e:40:00:03"),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.vms import next_mac

        self.say(next_mac(self.ctx.db))
