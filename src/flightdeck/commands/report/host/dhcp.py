"""rocks report host dhcp"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Print dnsmasq's DHCP/TFTP configuration for the private network, from the database"
    description = (
        "Three files, each after a line '# file <path>': dnsmasq.conf (the interface, a static "
        "range so only known MACs get an address, TFTP for iPXE, the log insert-ethers reads), "
        "the hosts file (one fixed lease per MAC with an IP on the private network: MAC, IP, "
        "name) and the options file. Interfaces on a VLAN are not served (their virtual "
        "frontend answers them), as in Rocks. Nothing is written: see 'rocks sync dhcp'."
    )
    params = (
        Param(
            "interface",
            "the device dnsmasq listens on",
            default_text="the running service's, else the frontend's private interface",
        ),
    )
    writes = False
    examples = (Example("rocks report host dhcp", "What dnsmasq is (or would be) given."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.dhcp import report_dhcp

        for path, text in report_dhcp(self.ctx.db, p["interface"]):
            self.say(f"# file {path}")
            self.ctx.out.write(text)
