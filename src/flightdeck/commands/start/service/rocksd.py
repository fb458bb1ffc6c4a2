"""rocks start service rocksd"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Start rocksd, which serves rocks commands without their ~0.4 s of imports"
    description = """
        Runs rocksd in the background (its log rocksd.log and pid rocksd.pid in the state
        directory) and returns once its socket listens: FLIGHTDECK_RESIDENT_SOCKET, default
        /run/flightdeck/rocks.sock (0600 in a 0700 directory). From then on each rocks command
        of root's is run by a fork of it that has everything imported, with the caller's
        arguments, environment, directory and terminal; only root may use it, and only with
        the same Flightdeck and Python. FLIGHTDECK_RESIDENT=no runs a command without it.
        rocksd leaves when Flightdeck's files change (an upgrade): start it again.
    """
    examples = (Example("rocks start service rocksd", "Start it."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.cli.resident_daemon import start

        st = start()
        self.say(f"rocksd started (pid {st.pid}) on {st.socket}; log {st.log}")
