"""rocks stop service rocksd"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Stop rocksd (commands it is running finish; later ones run on their own)"
    description = """
        Stopping a rocksd that is not running is not an error: it says so and exits 0.
        rocks report service rocksd tells whether it runs (exit status 3 when not).
    """
    examples = (Example("rocks stop service rocksd", "Stop it."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.cli.resident_daemon import stop
        from flightdeck.process.daemon import NotRunning

        try:
            pid = stop()
        except NotRunning:
            self.say("rocksd was not running")
            return
        self.say(f"rocksd stopped (pid {pid})")
