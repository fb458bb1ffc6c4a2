"""rocks set host interface"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import BOOL, INT, ONE_HOST, Example, Param, Parsed
from flightdeck.errors import UsageError

FIELDS = ("mac", "ip", "subnet", "vlan", "module", "name", "options", "channel", "disable-kvm")


class Command(Base):
    summary = "Change an interface of a host (mac, ip, subnet, vlan, module, name, options...)"
    args = ONE_HOST
    params = (
        Param("iface", "interface device", required=True, positional=True),
        Param("mac", "MAC address (none to clear)"),
        Param("ip", "IPv4 address, auto, or none"),
        Param("subnet", "network name"),
        Param("vlan", "VLAN id (0 = untagged)", INT),
        Param("module", "kernel driver module"),
        Param("name", "the host's name on this network"),
        Param("options", "interface options"),
        Param("channel", "channel"),
        Param("disable-kvm", "leave this NIC out of the VM's domain XML", BOOL),
    )
    examples = (
        Example(
            "rocks set host interface frontend-0-0-0 eth1 ip=137.110.119.119",
            "Move a virtual frontend's public address.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import set_interface

        changes = {f.replace("-", "_"): p[f.replace("-", "_")] for f in FIELDS if f in p.given}
        if not changes:
            raise UsageError(f"nothing to change: give one of {', '.join(f + '=' for f in FIELDS)}")
        set_interface(self.ctx.db, p.args[0], p["iface"], changes)
