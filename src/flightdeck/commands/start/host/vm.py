"""rocks start host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Parsed


class Command(Base):
    summary = "Start VMs on their containers (install or boot, as their boot action says)"
    description = """
        Runs the allocate plugins, builds the domain XML (or takes a preboot plugin's), creates
        missing disk volumes, defines and starts the domain. A virtual frontend due to install
        boots its installer kernel directly and its boot action becomes os. VMs on different
        containers start in parallel; a failure on one container does not stop the others.
    """
    args = SOME_HOSTS
    examples = (
        Example("rocks start host vm compute-0-0-0", "Install or boot one VM."),
        Example("rocks start host vm frontend-0-0-0 hosted-vm-0-%", "A whole cluster."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import start_vms

        self.outcomes(start_vms(self.ctx.db, p.args))
