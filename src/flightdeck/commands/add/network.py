"""rocks add network"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import POSITIVE, Args, Example, Param, Parsed


class Command(Base):
    summary = "Add a network (subnet) to the database"
    args = Args("name", "the network's name", min=1, max=1)
    params = (
        Param("subnet", "network address", required=True, positional=True),
        Param("netmask", "netmask (dotted or prefix length)", required=True, positional=True),
        Param("mtu", "MTU in bytes", POSITIVE, default=1500),
        Param("dnszone", "DNS zone", default_text="the network's name"),
    )
    examples = (
        Example("rocks add network optiputer 192.168.1.0 255.255.255.0", "A third network."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import add_network

        add_network(
            self.ctx.db, p.args[0], p["subnet"], p["netmask"], mtu=p["mtu"], dnszone=p["dnszone"]
        )
