"""rocks list network"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the networks (subnets)"
    writes = False
    examples = (Example("rocks list network", "private, public and any added."),)
    records = "one per network, in the order they were added"
    fields = (
        Field("network", "the network's name (private, public...)"),
        Field("subnet", "its IPv4 network address"),
        Field("netmask", "its netmask"),
        Field("mtu", "its MTU, bytes", "integer"),
        Field("dnszone", "its DNS zone", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_networks

        t = self.table(keep_owner=True)
        t.extend(
            (r.name, r.subnet, r.netmask, r.mtu, r.dnszone) for r in list_networks(self.ctx.db)
        )
        self.emit(t)
