"""rocks report service rocksd"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Say whether rocksd runs, where it listens and where it logs"
    description = "Exits with status 3 when it does not run (as an init script's status)."
    writes = False
    examples = (Example("rocks report service rocksd", "Is it running?"),)

    def run(self, p: Parsed) -> None:
        from flightdeck.cli.resident_daemon import status
        from flightdeck.process.daemon import NotRunning

        st = status()
        if st.pid is None:
            raise NotRunning(f"rocksd is not running (log {st.log})")
        self.say(f"rocksd is running (pid {st.pid}) on {st.socket}; log {st.log}")
