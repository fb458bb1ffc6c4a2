"""rocks stop service dhcp"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "Stop dnsmasq and the boot server (SIGTERM)"
    examples = (Example("rocks stop service dhcp", "Stop them."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.dhcp import stop_service

        dns, boot = stop_service()
        self.say(f"dnsmasq stopped (pid {dns})" if dns else "dnsmasq was not running")
        self.say(f"boot server stopped (pid {boot})" if boot else "boot server was not running")
