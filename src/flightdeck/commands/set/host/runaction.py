"""rocks set host runaction"""

from __future__ import annotations

from flightdeck.cli.command import Command as Base
from flightdeck.cli.params import SOME_HOSTS, Example, Param, Parsed


class Command(Base):
    summary = "Choose the boot action hosts run (a boot action row, for set host boot action=run)"
    args = SOME_HOSTS
    params = (
        Param("action", "the name of a boot action (rocks list bootaction)", required=True,
              positional=True),
    )  # fmt: skip
    examples = (
        Example(
            'rocks set host runaction compute-0-0-0 action=os',
            "Its next run boots that row's kernel and arguments.",
        ),
    )

    def run(self, p: Parsed) -> None:
        from flightdeck.services.bootactions import set_host_action

        set_host_action(self.ctx.db, p.args, "run", p["action"])
