"""rocks add host interface"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import INT, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Add a network interface to a host"
    args = ONE_HOST
    params = (
        Param("iface", "interface device, e.g. eth0", required=True, positional=True),
        Param("mac", "MAC address"),
        Param("ip", "IPv4 address, or auto for the next free one of subnet"),
        Param(
            "subnet",
            "network name (private, public...)",
            default_text="the network that contains ip",
        ),
        Param("vlan", "VLAN id (0 = untagged)", INT),
        Param("module", "kernel driver module"),
        Param("name", "the host's name on this network", default_text="host name"),
        Param("options", "interface options"),
        Param("channel", "channel"),
    )
    examples = (
        Example(
            "rocks add host interface vm-container-0-0 eth0 mac=52:54:00:fd:00:01 "
            "ip=10.1.255.254 subnet=private",
            "The container's private NIC.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import add_interface

        add_interface(
            self.ctx.db,
            p.args[0],
            p["iface"],
            mac=p["mac"],
            ip=p["ip"],
            subnet=p["subnet"],
            vlan=p["vlan"],
            module=p["module"],
            name=p["name"],
            options=p["options"],
            channel=p["channel"],
        )
