"""rocks set host power"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Args, Example, Param, Parsed

AIRBOSS_PARAMS = (
    Param("key", "your private key", default_text="~/.ssh/id_ed25519, then ~/.ssh/id_rsa"),
    Param(
        "airboss",
        "where the Airboss listens: host:port or https://host:port",
        default_text="attribute airboss, else localhost:8677",
    ),
    Param("ca", "the site CA certificate, for an https:// Airboss"),
)


class Command(Base):
    summary = "Power VMs on, off or into install through the Airboss, with your key"
    description = """
        Each host is a MAC, or a name that this database turns into its first MAC (the MAC is
        what the physical frontend and a virtual frontend share); a name it does not know is
        sent as it is (a physical-side name such as hosted-vm-0-0-0). action=install sets the
        boot action to install, then powers on. reset and shutdown (ACPI) are also accepted.
        Several hosts are handled in parallel; one line per host says what happened.
    """
    args = Args("host", "VMs: MACs or host names", min=1)
    params = (
        Param("action", "on, off, install, reset or shutdown", required=True),
        *AIRBOSS_PARAMS,
    )
    writes = False
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
        from flightdeck.pilot import commands as c
        from flightdeck.pilot import site

        action = c.check_action(p["action"])
        client = site.client(p["key"], p["airboss"], lambda: self.ctx.db, p["ca"])
        sent, names = site.targets(p.args, lambda: self.ctx.db)
        results = c.power_many(client, sent, action, names=names)
        c.report(results, self.say, lambda line: self.ctx.err.write(line + "\n"))
