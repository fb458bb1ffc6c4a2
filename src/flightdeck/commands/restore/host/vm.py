"""rocks restore host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Restore VMs from their saved memory file"
    args = SOME_HOSTS
    params = (
        Param(
            "file",
            "state file on the container (one VM only)",
            default_text="<kvm_save_directory or kvm_disk_dir>/<vm>.saved",
        ),
    )
    examples = (Example("rocks restore host vm compute-0-0-0", "Back where it was."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import restore_vms

        self.outcomes(restore_vms(self.ctx.db, p.args, p["file"]))
