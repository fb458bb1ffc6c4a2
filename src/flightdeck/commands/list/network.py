"""rocks list network"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import Example, Parsed


class Command(Base):
    summary = "List the networks (subnets)"
    writes = False
    examples = (Example("rocks list network", "private, public and any added."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_networks

        t = Table(["network", "subnet", "netmask", "mtu", "dnszone"], keep_owner=True)
        t.extend(
            (r.name, r.subnet, r.netmask, r.mtu, r.dnszone) for r in list_networks(self.ctx.db)
        )
        self.emit(t)
