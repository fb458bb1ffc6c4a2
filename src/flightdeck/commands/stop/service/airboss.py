"""rocks stop service airboss"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Stop the Airboss daemon (SIGTERM: open requests finish first)"
    description = """
        Stopping an Airboss that is not running is not an error (as dnsmasq with
        rocks stop service dhcp): it says so and exits 0, so scripts may stop it twice.
        rocks report service airboss tells whether it runs (exit status 3 when not).
    """
    examples = (Example("rocks stop service airboss", "Stop it."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.airboss.daemon import stop
        from flightdeck.process.daemon import NotRunning

        try:
            pid = stop()
        except NotRunning:
            self.say("airboss was not running")
            return
        self.say(f"airboss stopped (pid {pid})")
