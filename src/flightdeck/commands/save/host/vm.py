"""rocks save host vm"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Save running VMs' memory to a file on their container (they stop)"
    args = SOME_HOSTS
    params = (
        Param(
            "file",
            "state file on the container (one VM only)",
            default_text="<kvm_save_directory or kvm_disk_dir>/<vm>.saved",
        ),
    )
    examples = (Example("rocks save host vm compute-0-0-0", "Keep its state."),)

    def run(self, p: Parsed) -> None:
        from flightdeck.services.lifecycle import save_vms

        self.outcomes(save_vms(self.ctx.db, p.args, p["file"]))
