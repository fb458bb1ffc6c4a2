"""rocks report service dhcp"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Say whether dnsmasq and the boot server run, where, and where they log"
    description = "Exits with status 3 when neither runs (as an init script's status)."
    writes = False
    examples = (Example("rocks report service dhcp", "Is it running?"),)

    def run(self, p: Parsed) -> None:
        from flightdeck.process.daemon import NotRunning
        from flightdeck.services.dhcp import status

        st = status()
        if st.dnsmasq is None and st.bootserver is None:
            raise NotRunning(f"the DHCP service is not running (log {st.log})")
        where = f" in netns {st.netns}" if st.netns else ""
        dns = f"running (pid {st.dnsmasq})" if st.dnsmasq else "NOT running"
        boot = f"running (pid {st.bootserver})" if st.bootserver else "NOT running"
        self.say(f"dnsmasq is {dns} on {st.interface}{where}; log {st.log}")
        self.say(f"boot server is {boot} on {st.url}")
