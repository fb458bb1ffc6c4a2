"""rocks set cluster power"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.owner import AIRBOSS_PARAMS
from flightdeck.cli.params import ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Power every compute node of your virtual cluster through the Airboss, in parallel"
    description = """
        Asks the Airboss for the cluster's MAC list, then powers every node but the frontend,
        several at once (the original went one node per second); one line per node says what
        happened. The frontend is a MAC or a name, as for 'set host power'.
    """
    args = ONE_HOST
    params = (
        Param("action", "on, off, install, reset or shutdown", required=True),
        *AIRBOSS_PARAMS,
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks set cluster power frontend-0-0-0 action=install key=private.key",
            "Install all the compute nodes of the cluster at once.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.cli import owner
        from flightdeck.pilot import commands as c

        action = c.check_action(p["action"])
        client = owner.client(self, p)
        results = c.cluster_power(client, owner.target(self, p.args[0]), action)
        if not results:
            self.say(f"{p.args[0]}: the cluster has no compute nodes")
            return
        c.report(results, self.say, self.ctx.warn)
