"""rocks remove host"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Remove physical hosts and everything attached to them (interfaces, attributes)"
    description = """
        A host that still carries VMs, or that is a virtual frontend, is refused: move or
        remove its VMs first, or use 'rocks remove cluster'.
    """
    args = SOME_HOSTS
    examples = (Example("rocks remove host compute-0-3", "Forget one host."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.inventory import remove_hosts

        remove_hosts(self.ctx.db, p.args)
