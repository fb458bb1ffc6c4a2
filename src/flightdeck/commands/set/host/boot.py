"""rocks set host boot"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Set what hosts do at their next boot: install or os"
    args = SOME_HOSTS
    params = (Param("action", "install, os or run", required=True, positional=True),)
    examples = (
        Example("rocks set host boot compute-0-0-0 action=install", "Reinstall at the next boot."),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.bootactions import set_host_boot

        set_host_boot(self.ctx.db, p.args, p["action"])
