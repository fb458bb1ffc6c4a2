"""rocks remove bootaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import Example, Param, Parsed


class Command(Base):
    summary = "Remove a boot action no host uses"
    params = (Param("action", "boot action name", required=True, positional=True),)
    examples = (
        Example(
            "rocks remove bootaction action='install vm frontend'",
            "The virtual frontend's installer.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services import bootactions

        bootactions.remove_bootaction(self.ctx.db, p["action"])
