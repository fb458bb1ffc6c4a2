"""rocks list host interface"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.output import Field
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
    records = "one per interface, by host and device"
    fields = (
        Field("host", "the host"),
        Field("subnet", "the network it is on", nullable=True),
        Field("iface", "the device (eth0...)"),
        Field("mac", "its MAC", nullable=True),
        Field("ip", "its IPv4 address", nullable=True),
        Field("netmask", "the netmask of its network", nullable=True),
        Field("module", "its driver module", nullable=True),
        Field("name", "the host's name on that network", nullable=True),
        Field("vlan", "its VLAN id (a virtual cluster's, on a VM)", "integer", nullable=True),
        Field("options", "module options", nullable=True),
        Field("channel", "channel", nullable=True),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.listings import list_interfaces

        t = self.table()
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
