"""rocks report service airboss"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Say whether the Airboss daemon runs, where it listens and where it logs"
    description = "Exits with status 3 when it does not run (as an init script's status)."
    writes = False
    examples = (Example("rocks report service airboss", "Is it running?"),)

    def run(self, p: Parsed) -> None:
        from flightdeck.airboss.daemon import status
        from flightdeck.process.daemon import NotRunning

        st = status()
        if not st.running:
            raise NotRunning(f"airboss is not running (log {st.log})")
        self.say(f"airboss is running (pid {st.pid}) on {st.url}; log {st.log}")
