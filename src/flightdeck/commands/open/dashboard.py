"""rocks open dashboard"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import ONE_HOST, Example, Parsed


class Command(Base):
    summary = "Print a one-time link to your cluster's web dashboard, through the Airboss"
    description = """
        The host is the cluster's virtual frontend (a MAC, or a name: rocks sends one this
        frontend's database knows as its first MAC). The link works once, within 60 s, and
        starts a browser session bound to your key and that cluster: every node with its live
        state, boot action and CD-ROM; power, cluster power in order, CD-ROM and consoles;
        the cluster's recent audit entries. The session ends after a quarter of an hour
        without a click (the Airboss's dashboard_idle), at most 8 hours after it began
        (dashboard_max), or at once when your key is removed. Run on the virtual frontend,
        rocks adds the nodes' names there (compute-0-0 ...) to the link, after its '#',
        which the browser never sends. The link is printed, never opened or stored: it is as
        good as your key for that session.
    """
    args = ONE_HOST
    params = AIRBOSS_PARAMS
    writes = False
    owner = True
    examples = (
        Example(
            "rocks open dashboard frontend-0-0-0 key=private.key",
            "A link to the dashboard of the cluster of frontend-0-0-0.",
        ),
        Example(
            "rocks open dashboard vi-1.rocksclusters.org key=private.key",
            "The same from the virtual frontend, with the nodes' names there.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.pilot.webconsole import DASHBOARD_HINT, dashboard_url

        client = owner.client(self, p)
        target = owner.target(self, p.args[0])
        names: dict[str, str] = {}
        if owner.is_this_frontend(self, target):
            names = owner.local_names(self, [m for n in client.macs(target) for m in n.macs])
        self.say(dashboard_url(client, target, names))
        self.ctx.warn(DASHBOARD_HINT)
