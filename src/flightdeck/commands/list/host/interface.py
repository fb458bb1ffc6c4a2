"""rocks list host interface"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Table
from flightdeck.cli.params import HOSTS, Example, Parsed


class Command(Base):
    summary = "List the network interfaces of hosts"
    args = HOSTS
    writes = False
    examples = (
        Example(
            "rocks list host interface frontend-0-0-0",
            "The MACs of a virtual frontend (what pilot needs).",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import list_interfaces

        t = Table(
            [
                "host",
                "subnet",
                "iface",
                "mac",
                "ip",
                "netmask",
                "module",
                "name",
                "vlan",
                "options",
                "channel",
            ]
        )
        t.extend(
            (
                r.host,
                r.subnet,
                r.iface,
                r.mac,
                r.ip,
                r.netmask,
                r.module,
                r.name,
                r.vlan,
                r.options,
                r.channel,
            )
            for r in list_interfaces(self.ctx.db, p.args)
        )
        self.emit(t)
