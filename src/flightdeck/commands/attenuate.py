"""rocks attenuate (pilot attenuate)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed
from flightdeck.commands.create.token import RESTRICTIONS


class Command(Base):
    summary = "Narrow a capability token (no key needed): fewer operations, VMs, time, addresses"
    description = """
        Appends one block of checks to the token in token=: the new token can do only what
        the old one could AND what this block allows. No key is needed, and nothing can
        widen a token. Written to out= (mode 0600) or standard output; its id to standard
        error. Revoking the old token also revokes this one.
    """
    params = (
        Param("token", "the token file to narrow", required=True),
        *RESTRICTIONS,
        Param("out", "file to write the new token to (never overwritten)"),
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks attenuate token=t.token ops=power.on,power.off hosts='compute-0-[0-3]' "
            "until=+8h out=slurm.token",
            "What Slurm's power saving needs, and nothing more.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.crypto.capability import attenuate
        from flightdeck.pilot.tokenfile import read_token, write_token
        from flightdeck.pilot.tokens import describe, restrictions

        held = read_token(p["token"])
        token = attenuate(held, restrictions(p["ops"], p["hosts"], p["until"], p["from"]))
        write_token(p["out"], token, self.ctx.out)
        self.ctx.err.write(describe(token.id, token.sources()))
