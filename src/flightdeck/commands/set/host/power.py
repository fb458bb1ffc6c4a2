"""rocks set host power"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import Args, Example, Param, Parsed


class Command(Base):
    summary = "Power VMs on, off or into install through the Airboss, with your key"
    description = """
        Each host is a MAC, or a name: rocks sends a name this frontend's database knows as its
        first MAC (the MAC is what the physical frontend and a virtual frontend share), and
        any other name as it is (a physical-side name such as hosted-vm-0-0-0); pilot sends
        it as given. action=install sets the boot action to install, then powers on: on the
        Airboss's side and, run by root on a (virtual) frontend, in this frontend's database
        for the hosts it knows (the one that PXE-serves them; put back if refused). reset
        and shutdown (ACPI) are also accepted. Several hosts are handled in parallel; one line
        per host says what happened.
    """
    args = Args("host", "VMs: MACs or host names", min=1)
    params = (
        Param("action", "on, off, install, reset or shutdown", required=True),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks set host power frontend-0-0-0 action=install key=private.key",
            "Install the virtual frontend (the guide's first step).",
        ),
        Example(
            "rocks set host power 36:77:6e:c0:00:02 key=private.key action=install",
            "Install a compute node, named by its MAC.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.pilot import commands as c

        action = c.check_action(p["action"])
        client = owner.client(self, p)
        sent, names = owner.targets(self, p.args)
        before = owner.mark_install(self, sent) if action == "install" else {}
        results = c.power_many(client, sent, action, names=names)
        owner.restore_boot(self, before, [r.target for r in results if not r.ok])
        c.report(results, self.say, self.ctx.warn)
