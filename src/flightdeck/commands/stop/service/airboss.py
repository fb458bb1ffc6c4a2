"""rocks stop service airboss"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Stop the Airboss daemon (SIGTERM: open requests finish first)"
    examples = (Example("rocks stop service airboss", "Stop it."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.airboss.daemon import stop

        self.say(f"airboss stopped (pid {stop()})")
