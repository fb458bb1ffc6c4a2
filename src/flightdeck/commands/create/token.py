"""rocks create token (pilot create token)"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed

#: The restriction parameters `create token` and `attenuate` share.
RESTRICTIONS = (
    Param(
        "ops",
        "operations allowed, comma-separated: power.on, power.off, power.install, power.reset, "
        "power.shutdown (or power for all five), macs, cdrom, console",
    ),
    Param("hosts", "VMs allowed: a Slurm hostlist of physical-side names or MACs"),
    Param("until", "valid until: +8h (s, m, h, d) or a time such as 2026-12-31T18:00Z"),
    Param("from", "client addresses allowed, comma-separated"),
)


class Command(Base):
    summary = "Make a capability token with your key: what it may do, on which VMs, until when"
    description = """
        A token (Biscuit) rooted in your private key: it can do what your key does on the
        Airboss, narrowed by ops=, hosts=, until= and from=, and anyone holding it can narrow
        it further (pilot attenuate) but never widen it. Give it to a batch scheduler instead
        of your key. Written to out= (mode 0600), or to standard output; its id (what
        revocation takes) goes to standard error. Made offline: the Airboss is not asked. Needs
        an Ed25519 key (pilot create keys makes one).
    """
    params = (
        Param("key", "your private key", default_text="~/.ssh/id_ed25519, then ~/.ssh/id_rsa"),
        *RESTRICTIONS,
        Param("out", "file to write the token to (never overwritten)"),
    )
    writes = False
    owner = True
    examples = (
        Example(
            "rocks create token key=private.key until=+30d out=t.token",
            "A token that can do what the key does, for 30 days.",
        ),
        Example(
            "rocks create token key=private.key ops=power.on,power.off "
            "hosts=compute-0-0-[0-31] until=+8h out=slurm.token",
            "Power on and off 32 nodes for 8 hours, nothing else.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.pilot.keyfile import find_key, load_key
        from flightdeck.pilot.tokenfile import capability, write_token
        from flightdeck.pilot.tokens import describe, restrictions

        capability()
        from flightdeck.crypto.capability import mint

        limits = restrictions(p["ops"], p["hosts"], p["until"], p["from"])
        token = mint(load_key(find_key(p["key"])), limits)
        write_token(p["out"], token, self.ctx.out)
        self.ctx.err.write(describe(token.id, token.sources()))
