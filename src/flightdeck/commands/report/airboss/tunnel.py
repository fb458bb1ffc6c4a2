"""rocks report airboss tunnel"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import HOSTS, INT, Example, Param, Parsed


class Command(Base):
    summary = "Print authorized_keys lines that let owners' keys open the guide's ssh tunnel only"
    description = """
        The guide reaches the Airboss from a virtual frontend with
        'ssh -f -N -L 8677:localhost:8677 <physical frontend>'. Give owners a tunnel-only
        account (docs/airboss.md: an account with no shell and an sshd Match block) and put these
        lines in its authorized_keys: each key of the named hosts (default: every registered
        key) may forward to the Airboss's port on this machine's loopback and do nothing else
        (restrict, port-forwarding, permitopen). Virtual frontends are told the account's name
        (attribute airboss_tunnel_user, default airboss) and this machine's ssh host keys, so
        the guide's command works as typed there.
    """
    args = HOSTS
    params = (Param("port", "the Airboss's port", INT, default=8677),)
    writes = False
    examples = (
        Example(
            "rocks report airboss tunnel > ~airboss/.ssh/authorized_keys",
            "Let every owner key open the tunnel.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.keys import tunnel_authorized_keys

        lines = tunnel_authorized_keys(self.ctx.db, p.args, p["port"])
        self.say("# Flightdeck owner keys: the Airboss tunnel only (rocks report airboss tunnel)")
        for line in lines:
            self.say(line)
