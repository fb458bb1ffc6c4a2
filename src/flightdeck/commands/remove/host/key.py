"""rocks remove host key"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import INT, ONE_HOST, Example, Param, Parsed


class Command(Base):
    summary = "Remove a public key of a host (the Airboss refuses it from the next request)"
    args = ONE_HOST
    params = (Param("id", "the key's ID (see rocks list host key)", INT),)
    examples = (
        Example("rocks remove host key frontend-0-0-0 id=7", "Revoke key 7 of frontend-0-0-0."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.keys import remove_host_key

        remove_host_key(self.ctx.db, p.args[0], p["id"])
