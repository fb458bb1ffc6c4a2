"""rocks set host installaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Choose the boot action hosts install with (a boot action row)"
    args = SOME_HOSTS
    params = (
        Param("action", "the name of a boot action (rocks list bootaction)", required=True,
              positional=True),
    )  # fmt: skip
    examples = (
        Example(
            'rocks set host installaction compute-0-0-0 action="install debian"',
            "Its next install boots that row's kernel and arguments.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.bootactions import set_host_action

        set_host_action(self.ctx.db, p.args, "install", p["action"])
