"""rocks set host attr"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Set an attribute on hosts (it wins over the appliance and global values)"
    args = SOME_HOSTS
    params = (
        Param("attr", "attribute name", required=True, positional=True),
        Param("value", "value, stored exactly as given", required=True, positional=True),
    )
    examples = (
        Example(
            "rocks set host attr vm-container-0-0 libvirt_uri qemu:///system",
            "This container is the local machine.",
        ),
        Example("rocks set host attr compute-0-0-0 cpu_mode host-model", "A portable CPU model."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.attributes import set_host

        set_host(self.ctx.db, p.args, p["attr"], p["value"])
